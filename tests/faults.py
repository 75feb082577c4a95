"""Helpers shared by the fault, crash and secrets tests: a resolver that
plays DNS for made-up host names, a polling wait, ``newsbot run`` as a child
process with its config and readers, and database checks that read the
SQLite file directly (so they also work on a database a killed process left
behind)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.fetch import Network
from tests.support import open_test_storage

if TYPE_CHECKING:
    from tests.fake_telegram import FakeTelegram


class FakeDNS(AbstractResolver):
    """Resolves made-up host names without any real DNS (``network``): a
    name mapped to a port goes to 127.0.0.1 on that port, a name mapped to
    None fails the way the resolver does ("[Errno -2] Name or service not
    known"), ``localhost`` is 127.0.0.1, and every other name fails too
    (nothing is looked up for real). Hosts written as addresses never
    reach a resolver."""

    def __init__(self, hosts: dict[str, int | None]) -> None:
        self.hosts = hosts

    @property
    def network(self) -> Network:
        return Network(resolver=self)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host == "localhost":
            answer: int | None = port
        elif host in self.hosts:
            answer = self.hosts[host]
        else:
            answer = None
        if answer is None:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": answer,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], within: float = 30.0, what: str = ""
) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``within`` s
    (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {within} s")
        await asyncio.sleep(0.05)


def query(db_path: Path | str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query on the database file."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return list(connection.execute(sql, params))
    finally:
        connection.close()


def stories_sent_twice(db_path: Path | str) -> list[tuple[Any, ...]]:
    """(chat, story URL, outbox rows) for every story queued more than once to
    the same chat, even as two different article rows."""
    return query(
        db_path,
        """
        SELECT d.chat_id, a.url, count(*) FROM deliveries AS d
        JOIN articles AS a ON a.id = d.article_id
        WHERE d.status != 'dropped'
        GROUP BY d.chat_id, a.url HAVING count(*) > 1
        """,
    )


class BotProcess:
    """``python -m bot --config PATH run`` as a child process, its output in a
    log file. Stopped only through its own pid."""

    def __init__(
        self,
        config_path: Path,
        token: str,
        log_path: Path,
        log_level: str = "INFO",
        roles: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.token = token
        self.log_path = log_path
        self.log_level = log_level
        self.roles = roles
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        env = {**os.environ, "NEWSBOT_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bot",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    self.log_level,
                    "run",
                    *(["--role", self.roles] if self.roles else []),
                ],
                env=env,
                cwd=self.config_path.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, like a power cut or the OOM killer."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await eventually(lambda: not self.running, within=30, what="the killed bot to die")

    async def terminate(self, within: float = 30.0) -> int:
        """SIGTERM, as ``docker stop`` sends it; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        await eventually(lambda: not self.running, within=within, what="a clean exit")
        return self.process.returncode

    def ensure_stopped(self) -> None:
        """For test teardown: whatever happened, leave no child behind."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    """Bot processes a test started; whatever happened, none is left running."""
    started: list[BotProcess] = []
    yield started
    for process in started:
        process.ensure_stopped()


def write_config(
    tmp_path: Path,
    fake: FakeTelegram,
    feed_urls: list[str],
    *,
    storage_url: str | None = None,
    interval: float = 1,
    **delivery: Any,
) -> Path:
    settings = {"messages_per_second": 29, "private_chat_interval": 1, **delivery}
    lines = [
        "[telegram]",
        f"base_url = {json.dumps(fake.base_url)}",
        "[storage]",
        f"path = {json.dumps(str(tmp_path / 'bot.db'))}",
        *([f"url = {json.dumps(storage_url)}"] if storage_url else []),
        "[polling]",
        f"interval = {interval}",
        "jitter = 0",
        "parse_workers = 1",
        "[delivery]",
        *(f"{key} = {value}" for key, value in settings.items()),
        "[[categories]]",
        'id = "news"',
        'title = "News"',
    ]
    for url in feed_urls:
        lines += ["[[feeds]]", f"url = {json.dumps(url)}", 'categories = ["news"]']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def subscribe_readers(db_path: Path, readers: list[int]) -> None:
    """Readers subscribed before the bot starts, as earlier /subscribe left them."""
    now = datetime.now(UTC)
    storage = await open_test_storage(db_path)
    try:
        for chat_id in readers:
            await storage.chats.upsert_chat(chat_id, "private", None, None, now)
            await storage.chats.subscribe(chat_id, ["news"], now)
    finally:
        await storage.close()


def db_count(db: Path, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(query(db, sql, params)[0][0])
