"""Fixtures every test may use: the loopback servers, PostgreSQL, bot
processes, and a root logger left as each test found it."""

import logging
from collections.abc import Iterator

import pytest

from tests.fake_telegram import fake_telegram  # noqa: F401
from tests.faults import processes  # noqa: F401
from tests.feed_server import feed_server  # noqa: F401
from tests.http_proxy import http_proxy  # noqa: F401
from tests.postgres import database_url, postgres_server, postgres_url  # noqa: F401
from tests.websub_hub import websub_hub  # noqa: F401


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``newsbot``'s main() installs a root log handler bound to the stderr
    of the moment (captured by pytest) and sets the root level from
    --log-level: left behind, later tests would log into a closed file, and
    --log-level ERROR would hide the warnings they wait for."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
