"""The PostgreSQL server newsbot's side runs on when ``--backend`` asks for it.

Either a server someone gave us (``--postgres-url``: any database of it; we
create and drop our own databases there) or a throwaway one started from the
distribution's binaries with ``tests.postgres.PostgresServer`` (fsync and
synchronous commit off, as in the tests: what is measured is newsbot's work,
not this VM's disk). Every measured run gets a fresh database.

The server's CPU is not in the polling process' ``wait4`` figures, so for a
server we started we also read its CPU from /proc: the postmaster's own and
reaped children's times (backends of connections that closed) plus those of
the processes still running (checkpointer, WAL writer, open backends).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from types import TracebackType

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int, *, with_children: bool) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14, stime 15,
    # cutime 16, cstime 17 (1-based, as in proc(5)).
    utime, stime, cutime, cstime = (int(fields[i - 3]) for i in (14, 15, 16, 17))
    ticks = utime + stime + ((cutime + cstime) if with_children else 0)
    return ticks / _TICKS


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"{task.path}/children").read_text().split()]
    except OSError:
        pass
    return found


class BenchPostgres:
    """A PostgreSQL server for the benchmark, with fresh databases on demand."""

    def __init__(self, url: str | None = None) -> None:
        from tests.postgres import PostgresServer

        self._server = PostgresServer.attach(url) if url else PostgresServer()
        self._owned = url is None
        self._names = itertools.count(1)
        self._made: list[str] = []

    def __enter__(self) -> BenchPostgres:
        self._server.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._owned:
                for name in self._made:
                    self._server.drop_database(name)
        finally:
            self._server.__exit__(exc_type, exc, tb)

    @property
    def description(self) -> str:
        return "a throwaway server (fsync off)" if self._owned else "the server given"

    def fresh_database(self, label: str) -> str:
        """The URL of a new, empty database (the one of the same label made
        before is dropped first)."""
        name = f"newsbot_bench_{os.getpid()}_{label}"
        self._server.drop_database(name)
        url = self._server.create_database(name)
        if name not in self._made:
            self._made.append(name)
        return url

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        self._server.drop_database(name)

    def server_cpu(self) -> float | None:
        """CPU seconds the server has used so far, or None when it is not ours."""
        if not self._owned:
            return None
        try:
            pid = int((self._server.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return _cpu_of(pid, with_children=True) + sum(
            _cpu_of(child, with_children=False) for child in _children(pid)
        )
