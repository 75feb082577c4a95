"""Shared test helpers: where the real-world feed corpus lives, the article
invariants every test checks, and a config builder for loopback servers."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.config import Config, StorageConfig, parse_config
from bot.storage import Storage, open_storage


def _corpus_dir() -> Path:
    # The corpus is shared, not part of the repository: next to the checkout
    # (where CI puts it), or where NEWSBOT_FEEDS_DIR says.
    candidates = [
        os.environ.get("NEWSBOT_FEEDS_DIR"),
        Path(__file__).resolve().parents[2] / "shared" / "feeds" / "real",
        "/work/shared/feeds/real",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise RuntimeError("the real-world feed corpus (shared/feeds/real) was not found")


REAL_FEEDS = _corpus_dir()
REAL_FEED_FILES = sorted(p for p in REAL_FEEDS.iterdir() if p.name.endswith(".xml"))
assert len(REAL_FEED_FILES) == 58, f"expected 58 feeds in {REAL_FEEDS}"

# A tag-like "<word" in plain text is only allowed when the source wrote it
# as text (escaped: "&lt;word"), e.g. IRC nicks "<L29Ah>" or "`<meta>` tags".
_TAG_LIKE = re.compile(r"<(/?[a-zA-Z!][^\s<>]{0,40})")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


def markup_problems(text: str, source: bytes) -> list[str]:
    """Tags and undecoded entities left in ``text``, which came from ``source``."""
    raw = source.decode("latin-1")
    problems = [
        f"tag {m.group(0)!r}"
        for m in _TAG_LIKE.finditer(text)
        if f"lt;{m.group(1)}" not in raw and f"#60;{m.group(1)}" not in raw
    ]
    problems += [f"entity {m.group(0)!r}" for m in _ENTITY.finditer(text)]
    return problems


def is_absolute_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_aware(when: datetime) -> bool:
    return when.tzinfo is not None and when.utcoffset() is not None


def loopback_config(
    tmp_path: Path,
    feeds: list[dict[str, Any]],
    *,
    categories: list[dict[str, Any]] | None = None,
    **polling: Any,
) -> Config:
    """A config for tests: a temp database, no jitter, one parse worker
    (a thread, no process pool) unless ``polling`` says otherwise."""
    settings: dict[str, Any] = {"interval": 600, "jitter": 0.0, "parse_workers": 1}
    settings.update(polling)
    return parse_config(
        {
            "storage": {"path": str(tmp_path / "newsbot.db")},
            "polling": settings,
            "categories": categories or [],
            "feeds": feeds,
        }
    )


async def open_test_storage(where: str | os.PathLike[str]) -> Storage:
    """Open storage at a SQLite path or a ``postgresql://`` URL."""
    location = str(where).removeprefix("sqlite://")
    if location.startswith(("postgresql://", "postgres://")):
        return await open_storage(StorageConfig(url=location))
    return await open_storage(StorageConfig(path=location))
