"""The database: ``newsbot db migrate|status|copy``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.cli.command import UsageError, storage_command
from bot.config import Config, StorageConfig
from bot.storage import Storage, open_storage
from bot.storage.db import PostgresDatabase, SqliteDatabase


def migrate(args: argparse.Namespace, config: Config) -> int:
    async def migrate() -> int:
        storage = await open_storage(config.storage)  # opening migrates
        try:
            print(f"{storage.backend} database {storage.where}: schema is up to date")
        finally:
            await storage.close()
        return 0

    return asyncio.run(migrate())


async def _db_status_of(storage: Storage) -> int:
    counts = await storage.outbox.delivery_counts()
    print(f"backend:   {storage.backend} ({storage.where})")
    print(f"schema:    version {await storage.schema_version()}")
    print(f"feeds:     {len(await storage.feeds.all_feeds())}")
    print(f"articles:  {await storage.articles.article_count()}")
    print("cards:     " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    return 0


def status(args: argparse.Namespace, config: Config) -> int:
    return storage_command(lambda args, config, storage: _db_status_of(storage))(args, config)


def copy(args: argparse.Namespace, config: Config) -> int:
    from bot.storage.copy import copy_database

    target_url = args.target
    if not str(target_url).startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--to must be a postgresql:// URL, got {target_url!r}")
    source_path = Path(args.source).expanduser()
    if not source_path.is_file():
        raise UsageError(f"--from: no SQLite database at {source_path}")

    async def copy() -> int:
        source = await open_storage(StorageConfig(path=str(source_path)))
        try:
            target = await open_storage(StorageConfig(url=target_url))
            try:
                assert isinstance(source.db, SqliteDatabase)
                assert isinstance(target.db, PostgresDatabase)
                print(f"copying {source.where} into {target.where}")
                await copy_database(
                    source.db,
                    target.db,
                    lambda done: print(
                        f"  {done.table:<18} {done.rows:>8} rows, {done.added:>8} new"
                    ),
                )
            finally:
                await target.close()
        finally:
            await source.close()
        print("done: run the bot with [storage] url set to the PostgreSQL database")
        return 0

    return asyncio.run(copy())
