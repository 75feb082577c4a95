"""The PostgreSQL test server and its fixtures: what the storage tests on the
PostgreSQL backend rely on (loopback only, a fresh database per test, the
extension and locking features the backend uses)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from tests.postgres import (
    SKIP_REASON,
    URL_ENVIRONMENT_VARIABLE,
    PostgresError,
    PostgresServer,
    find_postgres_bindir,
    run_coroutine_in_thread,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

needs_binaries = pytest.mark.skipif(
    find_postgres_bindir() is None, reason="PostgreSQL server binaries not found"
)


async def test_the_server_listens_on_loopback_only(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert str(await conn.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
    finally:
        await conn.close()


_databases_seen: set[str] = set()


@pytest.mark.parametrize("run", ["first", "second"])
async def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str, run: str) -> None:
    # Both runs leave a table behind; whichever runs second would see the
    # other's table if the databases were shared.
    conn = await asyncpg.connect(postgres_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name not in _databases_seen
        _databases_seen.add(name)
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == []
        await conn.execute("CREATE TABLE left_behind (id int)")
        await conn.execute("INSERT INTO left_behind VALUES (1)")
    finally:
        await conn.close()


async def test_a_table_in_one_database_is_absent_from_another(
    postgres_server: PostgresServer,
) -> None:
    suffix = os.getpid()
    first = postgres_server.create_database(f"newsbot_isolation_a_{suffix}")
    second = postgres_server.create_database(f"newsbot_isolation_b_{suffix}")
    try:
        conn = await asyncpg.connect(first)
        await conn.execute("CREATE TABLE articles (id int)")
        await conn.close()
        conn = await asyncpg.connect(second)
        try:
            assert await conn.fetchval("SELECT to_regclass('public.articles')") is None
        finally:
            await conn.close()
    finally:
        postgres_server.drop_database(f"newsbot_isolation_a_{suffix}")
        postgres_server.drop_database(f"newsbot_isolation_b_{suffix}")


async def test_dropping_a_database_ends_the_connections_left_open(
    postgres_server: PostgresServer,
) -> None:
    name = f"newsbot_left_open_{os.getpid()}"
    url = postgres_server.create_database(name)
    forgotten = await asyncpg.connect(url)
    try:
        await asyncio.to_thread(postgres_server.drop_database, name)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await forgotten.fetchval("SELECT 1")
        admin = await asyncpg.connect(postgres_server.url("postgres"))
        try:
            assert (
                await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
                == 0
            )
        finally:
            await admin.close()
    finally:
        forgotten.terminate()


async def test_the_unaccent_extension_can_be_created(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        assert await conn.fetchval("SELECT unaccent('Crème brûlée à São Paulo')") == (
            "Creme brulee a Sao Paulo"
        )
    finally:
        await conn.close()


async def test_skip_locked_hands_each_worker_a_different_row(postgres_url: str) -> None:
    setup = await asyncpg.connect(postgres_url)
    await setup.execute("CREATE TABLE outbox (id int PRIMARY KEY)")
    await setup.execute("INSERT INTO outbox VALUES (1), (2)")
    await setup.close()
    claim = "SELECT id FROM outbox ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
    first, second = await asyncpg.connect(postgres_url), await asyncpg.connect(postgres_url)
    try:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        assert await first.fetchval(claim) == 1
        # The locked row is skipped at once, not waited for.
        assert await second.fetchval(claim) == 2
        assert await first.fetchval(claim) == 1  # a lock holder sees its own row
        await second_tx.rollback()
        await first_tx.rollback()
    finally:
        await first.close()
        await second.close()


async def test_an_advisory_lock_is_held_by_one_session_at_a_time(postgres_url: str) -> None:
    first, second = await asyncpg.connect(postgres_url), await asyncpg.connect(postgres_url)
    try:
        assert await first.fetchval("SELECT pg_try_advisory_lock(4242)") is True
        assert await second.fetchval("SELECT pg_try_advisory_lock(4242)") is False
        assert await first.fetchval("SELECT pg_advisory_unlock(4242)") is True
        assert await second.fetchval("SELECT pg_try_advisory_lock(4242)") is True
        # A session's locks end with it: a crashed process frees its lock.
        await second.close()
        assert await first.fetchval("SELECT pg_try_advisory_lock(4242)") is True
    finally:
        await first.close()
        await second.close()


async def test_database_url_gives_a_working_database_on_each_backend(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.id
    assert backend in ("sqlite", "postgresql")
    if backend == "sqlite":
        path = Path(database_url.removeprefix("sqlite://"))
        assert database_url.startswith("sqlite:///") and path.is_absolute()
        assert path.name == "newsbot.db" and not await asyncio.to_thread(path.exists)
        async with aiosqlite.connect(path) as db:
            await db.execute("CREATE TABLE t (x int)")
            await db.execute("INSERT INTO t VALUES (7)")
            async with db.execute("SELECT x FROM t") as cursor:
                assert await cursor.fetchall() == [(7,)]
    else:
        assert database_url.startswith("postgresql://postgres@127.0.0.1:")
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("CREATE TABLE t (x int)")
            await conn.execute("INSERT INTO t VALUES (7)")
            assert await conn.fetchval("SELECT x FROM t") == 7
        finally:
            await conn.close()


def test_without_a_server_the_postgresql_half_is_skipped_with_one_clear_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import tests.postgres
            tests.postgres.find_postgres_bindir = lambda: None
            from tests.postgres import database_url, postgres_server, postgres_url  # noqa: F401
            """
        )
    )
    (tmp_path / "test_backends.py").write_text(
        "def test_storage(database_url):\n    assert database_url\n"
    )
    env = {k: v for k, v in os.environ.items() if k != URL_ENVIRONMENT_VARIABLE}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-q", "test_backends.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert SKIP_REASON in result.stdout


@needs_binaries
def test_a_server_whose_port_is_taken_says_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = PostgresServer(port=port)
        with pytest.raises(PostgresError) as failure:
            server.start()
        directory = server.directory
        server.stop()
    message = str(failure.value)
    assert "pg_ctl" in message and "could not bind" in message, message
    assert directory is not None and not directory.exists()


def _command_line(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.postgres", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@needs_binaries
def test_the_command_line_starts_a_server_and_stops_it() -> None:
    parent = Path(tempfile.mkdtemp(prefix="newsbot-cli-postgres-"))
    parent.chmod(0o755)  # the server's own user must reach the directory
    directory = parent / "server"
    started = _command_line("start", "--dir", str(directory))
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/postgres")
        assert run_coroutine_in_thread(lambda: _select_one(url)) == 1
    finally:
        stopped = _command_line("stop", "--dir", str(directory))
        parent.rmdir()
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    with pytest.raises(OSError):
        run_coroutine_in_thread(lambda: _select_one(url))


def test_the_binaries_on_path_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("initdb", "pg_ctl", "postgres"):
        program = tmp_path / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert find_postgres_bindir() == tmp_path


def test_a_directory_without_the_server_itself_is_no_bindir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Debian's /usr/bin has a pg_ctl-like wrapper but no initdb or postgres.
    program = tmp_path / "pg_ctl"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_postgres_bindir() != tmp_path
