"""Logging set-up: one line per event, and the bot token never in the output."""

from __future__ import annotations

import logging
import re

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A Bot API token: digits, a colon, 30+ URL-safe characters.
_TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")


class RedactingFilter(logging.Filter):
    """Replaces bot tokens in log records, including in exception text, so a
    URL like https://api.telegram.org/bot<token>/sendMessage is never logged."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        return _TOKEN_SHAPE.sub("<token>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


_filter = RedactingFilter()

# Libraries whose lines below a level carry values, not events: held at that
# level whatever --log-level says (higher levels still quieten them).
QUIET_LOGGERS = {
    # At DEBUG aiosqlite logs every statement with its parameters: the WebSub
    # hub secrets, the webhook secret, feed credentials, chats' settings.
    # (asyncpg logs no statements.)
    "aiosqlite": logging.INFO,
    # httpx logs every request URL at INFO, and Bot API URLs contain the
    # token; httpcore logs each connection step at DEBUG.
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "apscheduler": logging.WARNING,
    # With max_retries=0 the rate limiter logs every RetryAfter it hands on as
    # an ERROR with a traceback; the sender logs and handles them itself.
    "telegram.ext.AIORateLimiter": logging.CRITICAL,
}


def setup_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(_filter)
        root.addHandler(handler)
    root.setLevel(numeric)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(numeric, floor))


def register_secret(secret: str) -> None:
    """Add a secret (the bot token) to what every log handler redacts."""
    if secret and secret not in _filter.secrets:
        _filter.secrets = (*_filter.secrets, secret)
