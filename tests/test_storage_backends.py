"""Choosing and opening a backend: clear errors naming the key when
PostgreSQL cannot be used, and the commands that look after a database."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import StorageConfig
from bot.errors import StorageError
from bot.storage import open_storage, postgres_dsn
from bot.storage.schema_postgres import SCHEMA_VERSION
from tests.support import open_test_storage


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_server_is_named_with_the_key() -> None:
    url = f"postgresql://newsbot@127.0.0.1:{closed_port()}/newsbot"
    with pytest.raises(
        StorageError, match=r"^storage\.url: cannot reach PostgreSQL at 127\.0\.0\.1:"
    ):
        await open_storage(StorageConfig(url=url))


async def test_a_missing_database_says_how_to_create_it(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_newsbot_db"
    with pytest.raises(
        StorageError, match=r"database 'no_such_newsbot_db' does not exist.*createdb"
    ):
        await open_storage(StorageConfig(url=missing))


async def test_a_schema_newer_than_this_newsbot_is_refused(postgres_url: str) -> None:
    storage = await open_test_storage(postgres_url)
    await storage.db.execute("UPDATE schema_version SET version = ?", SCHEMA_VERSION + 1)
    await storage.close()
    with pytest.raises(StorageError, match="newer than this newsbot"):
        await open_test_storage(postgres_url)


def test_the_password_comes_from_the_environment_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSBOT_DATABASE_PASSWORD", "s3cr3t/pw")
    dsn, where = postgres_dsn("postgresql://newsbot@db.internal:6543/news")
    assert dsn == "postgresql://newsbot:s3cr3t%2Fpw@db.internal:6543/news"
    assert where == "db.internal:6543/news"
    monkeypatch.delenv("NEWSBOT_DATABASE_PASSWORD")
    dsn, where = postgres_dsn("postgresql://newsbot:inurl@db.internal/news")
    assert "inurl" in dsn and "inurl" not in where


def test_a_non_postgresql_url_is_refused_naming_the_key(tmp_path: Path) -> None:
    from bot.config import parse_config
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.url: only postgresql:// URLs"):
        parse_config({"storage": {"url": "mysql://x@y/z"}})


def test_roles_need_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "n.db"}"\n', encoding="utf-8")
    code = main(["--config", str(config), "run", "--role", "sender"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines()[-1] == (
        "newsbot: config: --role needs PostgreSQL ([storage] url): SQLite serves one "
        "process, which runs every role"
    )


def test_db_migrate_and_status_on_both_backends(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = database_url.removeprefix("sqlite://")
    key = "url" if location.startswith("postgresql://") else "path"
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\n{key} = "{location}"\n', encoding="utf-8")
    assert main(["--config", str(config), "db", "migrate"]) == 0
    assert "schema is up to date" in capsys.readouterr().out
    assert main(["--config", str(config), "db", "status"]) == 0
    out = capsys.readouterr().out
    assert "schema:    version " in out and "articles:  0" in out


async def test_statements_in_a_transaction_count_their_rows_and_leave_none_open(
    database_url: str,
) -> None:
    # SQLite runs a statement that returns no rows in one trip to its
    # thread, without closing it: its count of changed rows is still the
    # statement's own, and everything the transaction did is committed.
    storage = await open_test_storage(database_url)
    try:
        db = storage.db
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY, word TEXT)")
            await tx.executemany(
                "INSERT INTO scratch (id, word) VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")]
            )
            assert (
                await tx.execute("UPDATE scratch SET word = word || '!' WHERE word <> ?", "a") == 2
            )
            await tx.execute("INSERT INTO scratch (id, word) VALUES (?, ?) RETURNING id", 4, "d")
            assert await tx.execute("DELETE FROM scratch WHERE word = ?", "none") == 0
            assert await tx.fetchval("SELECT count(*) FROM scratch") == 4
        assert sorted(r[0] for r in await db.fetch("SELECT word FROM scratch")) == [
            "a",
            "b!",
            "c!",
            "d",
        ]
        assert await db.execute("DELETE FROM scratch") == 4
    finally:
        await storage.close()
