"""A parser the test holds: a body that carries ``hold(gate)`` waits, once
it has started (``started(gate)`` exists), until the test releases it
(``release(gate)``); every other body is parsed by the real parser.

A parse that takes longer than its deadline, on any machine, without a
pathological body whose parse time depends on the machine's speed. The gate
is a file, so the parser holds in a worker process just as in a thread; it
is a module-level function, so worker processes can import it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bot.parsed import ParsedFeed

_HOLD = re.compile(rb"<!-- hold: (.+?) -->")


def hold(gate: Path) -> bytes:
    """The marker to put into a feed body (XML comment: the real parser
    ignores it) so that its parse waits for ``gate``."""
    return f"<!-- hold: {gate} -->".encode()


def started(gate: Path) -> Path:
    return gate.with_name(gate.name + ".started")


def release(gate: Path) -> None:
    gate.touch()


def parse(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    from bot.parse import parse as real_parse

    match = _HOLD.search(body)
    if match:
        gate = Path(match.group(1).decode())
        started(gate).touch()
        while not gate.exists():
            time.sleep(0.01)
    return real_parse(body, url, content_type)
