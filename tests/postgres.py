"""A throwaway PostgreSQL server on 127.0.0.1 for the storage tests.

Every storage behaviour is tested on both backends, against a real server.
``PostgresServer`` runs one from the distribution's own binaries (Debian's
``postgresql`` package): ``initdb`` into a fresh directory, ``pg_ctl start``
on a free loopback port, and ``pg_ctl stop -m immediate`` plus removing the
directory at the end. Nothing durable is wanted, so fsync, synchronous commit
and full-page writes are off; the server listens on 127.0.0.1 only, with its
Unix socket inside its own directory (never the system's /var/run).

The superuser role is always ``postgres`` (``initdb -U postgres``, whoever
runs it) and authentication is ``trust``, so every URL has the shape::

    postgresql://postgres@127.0.0.1:PORT/DATABASE

The server refuses to run as root. When we are root, ``initdb`` and
``pg_ctl`` run as the ``postgres`` system user, in a directory that user owns
and can reach; as an ordinary user they run as that user.

    with PostgresServer() as server:            # or the ``postgres_server`` fixture
        server.create_database("scratch")
        url = server.url("scratch")
        ...

``PostgresServer.attach(url)`` wraps a server someone else started (CI starts
one for the whole run and passes its URL in ``NEWSBOT_TEST_POSTGRES_URL``):
the same database helpers, and ``stop()`` leaves that server alone.

A command line for scripts that want one server for several processes::

    python -m tests.postgres find                 # prints the bin directory, or exits 1
    python -m tests.postgres start --dir DIR      # prints the URL, leaves it running
    python -m tests.postgres stop --dir DIR       # stops it, removes DIR

Database administration goes through asyncpg (a project dependency), each
call on its own event loop in a worker thread, so it is safe to call from
synchronous fixtures while a test's event loop exists.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

# Set by CI (.ci/run) to a server it started for the whole run.
URL_ENVIRONMENT_VARIABLE = "NEWSBOT_TEST_POSTGRES_URL"
SKIP_REASON = (
    "PostgreSQL server binaries not found (install Debian's postgresql package): "
    "the PostgreSQL half of the storage tests is skipped"
)
SUPERUSER = "postgres"
HOST = "127.0.0.1"
# Settings for a server whose data is thrown away: durability costs time and
# buys nothing here. max_connections leaves room for tests that open many
# pools at once (several bot processes sharing one database).
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
START_TIMEOUT = 60.0
LOG_TAIL_LINES = 30

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")


class PostgresError(RuntimeError):
    """The throwaway server could not be set up or administered."""


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    PATH's ``pg_ctl`` wins (resolved through symlinks, so a link in
    /usr/local/bin leads to the real directory); then Debian's versioned
    ``/usr/lib/postgresql/<version>/bin``, highest version first. A directory
    counts only if all three programs are there: Debian's /usr/bin wrappers
    (pg_wrapper) are no server.
    """
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    versioned = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates.extend(sorted(versioned, key=lambda p: int(p.parent.name), reverse=True))
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def run_coroutine_in_thread(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a private event loop in another thread.

    Fixtures are synchronous, and the calling thread may already have an
    event loop (pytest-asyncio's), which ``asyncio.run`` would disturb.
    """

    async def main() -> _T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _quote_identifier(name: str) -> str:
    """A database name as SQL, refusing anything but plain lower-case names.

    CREATE/DROP DATABASE take no parameters, so the name is spliced in; the
    tests only ever make names like ``newsbot_test_123_4``.
    """
    if not _IDENTIFIER.match(name):
        raise ValueError(f"database name {name!r} is not a plain lower-case SQL identifier")
    return f'"{name}"'


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(server log is empty)"


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1, with database helpers.

    ``directory``: where the cluster lives (created if missing; it must be
    empty of a cluster). Default: a fresh temporary directory, removed on
    ``stop()``. ``port``: default a free one. ``bindir``: default
    ``find_postgres_bindir()``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        bindir: Path | None = None,
    ) -> None:
        self.directory = directory
        self.port = port
        self._wanted_port = port
        self.bindir = bindir
        self._base_url: str | None = None
        self._query = ""  # an attached server's URL parameters (?sslmode=...)
        self._owns_server = True

    @classmethod
    def attach(cls, url: str) -> PostgresServer:
        """A server already running at ``url`` (any database of it): the
        database helpers work, ``start()``/``stop()`` do nothing."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise PostgresError(
                f"{url!r} is not a PostgreSQL URL (postgresql://user@host:port/database)"
            )
        server = cls(port=parts.port)
        server._owns_server = False
        server._base_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        server._query = f"?{parts.query}" if parts.query else ""
        return server

    # Paths inside the server's directory.
    @property
    def data_dir(self) -> Path:
        return self._directory() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._directory() / "socket"

    @property
    def log_file(self) -> Path:
        return self._directory() / "server.log"

    def _directory(self) -> Path:
        if self.directory is None:
            raise PostgresError("the server has no directory yet: call start() first")
        return self.directory

    # Lifecycle.
    def start(self) -> PostgresServer:
        """initdb, start on 127.0.0.1, wait until it accepts connections."""
        if not self._owns_server or self._base_url is not None:
            return self
        if self.bindir is None:
            self.bindir = find_postgres_bindir()
        if self.bindir is None:
            raise PostgresError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH "
                "or in /usr/lib/postgresql/*/bin: install Debian's postgresql package"
            )
        self._prepare_directory()
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "-A", "trust",
            # Feeds come in every script: UTF-8, in a locale every glibc has.
            "-E", "UTF8",
            "--locale=C.UTF-8",
            # Nothing here must survive a power cut, so no fsync either.
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        # Another process may take a free port between our check and the
        # server's bind: choose again, a few times, unless the caller chose.
        attempts = 1 if self._wanted_port is not None else 3
        for attempt in range(attempts):
            self.port = self._wanted_port or _free_loopback_port()
            try:
                self._pg_ctl_start()
                break
            except PostgresError:
                port_taken = "could not bind" in _log_tail(self.log_file)
                if attempt == attempts - 1 or not port_taken:
                    raise
        self._base_url = f"postgresql://{SUPERUSER}@{HOST}:{self.port}"
        self._wait_until_accepting()
        return self

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: nothing is kept) and remove
        its directory. Safe to call twice, or after a failed start."""
        if not self._owns_server:
            return
        self._base_url = None
        if self.directory is None:
            return
        if (self.data_dir / "postmaster.pid").exists() and self.bindir is not None:
            self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False
            )
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Databases.
    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/<database>``."""
        if self._base_url is None:
            raise PostgresError("the server is not running: call start() first")
        return f"{self._base_url}/{database}{self._query}"

    def create_database(self, name: str) -> str:
        """Create an empty database (a copy of template1); return its URL."""
        statement = f"CREATE DATABASE {_quote_identifier(name)}"
        self._admin(lambda conn: conn.execute(statement))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, ending any connections still open
        to it (a test that forgot to close its pool must not block this)."""
        # WITH (FORCE) (PostgreSQL 13 and later) terminates the other
        # sessions first, in the same statement.
        statement = f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)"
        self._admin(lambda conn: conn.execute(statement))

    def _admin(self, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``work(connection)`` on a connection to the ``postgres``
        database, outside any transaction (CREATE DATABASE refuses one)."""
        url = self.url("postgres")

        async def session() -> _T:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                return await work(conn)
            finally:
                await conn.close()

        return run_coroutine_in_thread(session)

    # Internals.
    def _server_user(self) -> pwd.struct_passwd | None:
        """The account the server runs as when we are root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresError(
                "running as root, and PostgreSQL refuses to run as root; there is no "
                "'postgres' user to run it as (Debian's postgresql-common creates one)"
            ) from None

    def _prepare_directory(self) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="newsbot-postgres-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            raise PostgresError(f"{self.directory} already holds a cluster; give an empty one")
        self.directory.chmod(0o755)
        user = self._server_user()
        if user is None:
            self.socket_dir.mkdir(exist_ok=True)
            return
        # The postgres user must be able to walk down to the directory (mkdtemp
        # makes it 0700; pytest's tmp_path sits under a 0700 parent).
        for parent in self.directory.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise PostgresError(
                    f"{parent} is not searchable by others, so the 'postgres' user cannot "
                    f"reach {self.directory}: put the server's directory elsewhere"
                )
        os.chown(self.directory, user.pw_uid, user.pw_gid)
        self.socket_dir.mkdir(exist_ok=True)
        os.chown(self.socket_dir, user.pw_uid, user.pw_gid)

    def _pg_ctl_start(self) -> None:
        # pg_ctl hands -o to a shell, hence the quoting.
        options = [f"-p {self.port}", f"-k {shlex.quote(str(self.socket_dir))}"]
        options += [f"-c {name}={shlex.quote(value)}" for name, value in SERVER_SETTINGS.items()]
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
            "-o", " ".join(options), "-w", "-t", str(int(START_TIMEOUT)), "start",
        )  # fmt: skip

    def _wait_until_accepting(self) -> None:
        """pg_ctl -w waits for "ready"; confirm over TCP that we can log in."""
        deadline = time.monotonic() + START_TIMEOUT
        url = self.url("postgres")

        async def probe() -> None:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.close()

        while True:
            try:
                run_coroutine_in_thread(probe)
                return
            except (OSError, asyncpg.PostgresError) as error:  # TimeoutError is an OSError
                if time.monotonic() > deadline:
                    raise PostgresError(
                        f"PostgreSQL on {HOST}:{self.port} started but accepts no "
                        f"connections ({error}); server log {self.log_file}:\n"
                        f"{_log_tail(self.log_file)}"
                    ) from error
                time.sleep(0.05)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        assert self.bindir is not None
        command = [str(self.bindir / program), *args]
        user = self._server_user()
        try:
            result = subprocess.run(
                command,
                cwd=self._directory(),
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT + 30,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                env={**os.environ, "LC_ALL": "C.UTF-8"},
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresError(f"{_describe(command)} failed: {error}") from error
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip() or "(no output)"
            raise PostgresError(
                f"{_describe(command)} exited with status {result.returncode}:\n{output}\n"
                f"server log {self.log_file}:\n{_log_tail(self.log_file)}"
            )


# Fixtures (registered in conftest.py).
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The server for this test run: CI's (``NEWSBOT_TEST_POSTGRES_URL``), or
    a throwaway one started here; skips the test when there is neither."""
    external = os.environ.get(URL_ENVIRONMENT_VARIABLE)
    if external:
        yield PostgresServer.attach(external)
        return
    if find_postgres_bindir() is None:
        pytest.skip(SKIP_REASON)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database of its own for this test, dropped
    afterwards (with any connections the test left open)."""
    # The process id keeps two runs sharing one server (or a leftover of a
    # killed run) from meeting on a name.
    name = f"newsbot_test_{os.getpid()}_{next(_database_numbers)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


def sqlite_url(path: Path) -> str:
    """``sqlite://`` followed by the absolute path: ``sqlite:///tmp/x/newsbot.db``."""
    return f"sqlite://{path.resolve()}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend in turn: a test taking it runs twice,
    with ids ``[sqlite]`` and ``[postgresql]``. The PostgreSQL run alone is
    skipped when there is no server."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "newsbot.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


def _describe(command: Sequence[str]) -> str:
    return " ".join(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.postgres",
        description="Run a throwaway PostgreSQL server on 127.0.0.1 for the tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("find", help="print the server binaries' directory (exit 1: none)")
    start = commands.add_parser("start", help="start a server in DIR and print its URL")
    start.add_argument("--dir", type=Path, required=True)
    start.add_argument("--port", type=int)
    stop = commands.add_parser("stop", help="stop the server in DIR and remove DIR")
    stop.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "find":
        bindir = find_postgres_bindir()
        if bindir is None:
            return 1
        print(bindir)
        return 0
    if args.command == "start":
        server = PostgresServer(args.dir, port=args.port)
        try:
            server.start()
        except PostgresError as error:
            print(f"error: {error}", file=sys.stderr)
            server.stop()
            return 1
        print(server.url("postgres"))
        return 0
    # stop: the binaries are found again; the data directory says where it is.
    server = PostgresServer(args.dir)
    server.bindir = find_postgres_bindir()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
