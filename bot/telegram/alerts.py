"""Telling the operators (``[telegram] admins``) that a handler failed.

The traceback always goes to the log. Operators get a short private message,
once per distinct error per hour: a bug hit by every update would otherwise
send them one message per update. "Distinct" is the exception type plus where
it was raised: the line of newsbot's own code where the error left it (a
``BadRequest`` always comes from deep inside python-telegram-bot; the line of
ours that made the call is what tells one failure from another).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot.alerts import SendPrivate, tell_operators
from bot.render import escape
from bot.text import cut_at_word

log = logging.getLogger(__name__)

REPEAT_AFTER = timedelta(hours=1)
_MAX_REMEMBERED = 1000
_PACKAGE = Path(__file__).resolve().parent.parent  # .../bot
_DETAIL_LIMIT = 600  # of the exception's own text; the alert stays far below 4096


@dataclass(frozen=True, slots=True)
class ErrorKey:
    kind: str  # the exception's type, e.g. "telegram.error.BadRequest"
    where: str  # "bot/telegram/handlers.py:93 in reply"


def error_key(error: BaseException) -> ErrorKey:
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    frames = traceback.extract_tb(error.__traceback__)
    chosen = _first_run_of_ours(frames) or list(frames)
    if not chosen:
        return ErrorKey(name, "unknown")
    frame = chosen[-1]
    return ErrorKey(name, f"{_shown_path(frame.filename)}:{frame.lineno} in {frame.name}")


def _first_run_of_ours(frames: traceback.StackSummary) -> list[traceback.FrameSummary]:
    """Our frames from the first one to where the call left our code. Later
    frames of ours are callbacks from a library (the rate limiter inside a
    Bot API call): every Telegram error passes through them."""
    run: list[traceback.FrameSummary] = []
    for frame in frames:
        if _is_ours(frame.filename):
            run.append(frame)
        elif run:
            break
    return run


def _is_ours(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def _shown_path(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(_PACKAGE.parent))
    except (OSError, ValueError):
        return path.name


def alert_text(error: BaseException, key: ErrorKey, context: str) -> str:
    """The operator's message: HTML, every piece escaped after being cut as
    plain text, a few hundred characters at most."""
    detail = cut_at_word(str(error) or "(no message)", _DETAIL_LIMIT)
    return "\n".join(
        [
            "<b>newsbot: a handler failed</b>",
            f"<code>{escape(key.kind.rsplit('.', 1)[-1])}: {escape(detail)}</code>",
            f"at {escape(key.where)}",
            escape(cut_at_word(context, 200)),
            "",
            "<i>The traceback is in the log. The same error is reported at most once an hour.</i>",
        ]
    )


class OperatorAlerts:
    """Remembers which errors the operators were told about, and when."""

    def __init__(self, admins: Sequence[int], repeat_after: timedelta = REPEAT_AFTER) -> None:
        self.admins = list(admins)
        self.repeat_after = repeat_after
        self._told: dict[ErrorKey, datetime] = {}

    def due(self, key: ErrorKey, now: datetime) -> bool:
        """True (and remembered) if the operators were not told about ``key``
        within the last ``repeat_after``."""
        last = self._told.get(key)
        if last is not None and now - last < self.repeat_after:
            return False
        if len(self._told) >= _MAX_REMEMBERED:
            self._told = {k: t for k, t in self._told.items() if now - t < self.repeat_after}
        self._told[key] = now
        return True

    async def report(
        self, error: BaseException, context: str, now: datetime, send: SendPrivate
    ) -> None:
        """Tell every operator about ``error`` if it is due. Never raises: a
        failed alert is logged, and the original error is in the log already."""
        if not self.admins:
            return
        key = error_key(error)
        if not self.due(key, now):
            return
        await tell_operators(self.admins, alert_text(error, key, context), send, key.kind)
