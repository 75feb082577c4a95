"""What a command of the ``newsbot`` command line is: a function of the
parsed arguments and the configuration that returns the exit code."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from bot.config import Config
from bot.storage import Storage, open_storage

Command = Callable[[argparse.Namespace, Config], int]
StorageCommand = Callable[[argparse.Namespace, Config, Storage], Awaitable[int]]


class UsageError(Exception):
    """A command-line argument that names nothing (exit code 2)."""


def storage_command(command: StorageCommand) -> Command:
    """A command that needs the database only: no HTTP client, no parse
    workers, and no sync of the feeds table to this config."""

    def handler(args: argparse.Namespace, config: Config) -> int:
        async def with_storage() -> int:
            storage = await open_storage(config.storage)
            try:
                return await command(args, config, storage)
            finally:
                await storage.close()

        return asyncio.run(with_storage())

    return handler
