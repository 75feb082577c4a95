"""newsbot as a user runs it: a config file and ``newsbot poll --once --json``
in a fresh process."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import procs

# Categories a news bot would configure; the synthetic items' own <category>
# values match some of them by alias, keywords catch others.
_CATEGORIES = """
[[categories]]
id = "tech"
title = "Technology"
aliases = ["AI and Robotics", "Gadgets"]
keywords = ["software", "google", "apple", "android"]

[[categories]]
id = "science"
title = "Science"
aliases = ["Space", "Health"]
keywords = ["research", "nasa", "climate"]

[[categories]]
id = "business"
title = "Business"
keywords = ["market", "startup", "revenue"]

[[categories]]
id = "world"
title = "World"
aliases = ["Politics"]
keywords = ["election", "government"]

[[categories]]
id = "sports"
title = "Sports"
keywords = ["football", "league"]
"""
_FEED_CATEGORIES = ("tech", "science", "business", "world", "sports")


def write_config(folder: Path, urls: list[str], database_url: str | None = None) -> Path:
    """The configuration of a bot polling ``urls``, storing into SQLite in
    ``folder`` or into the PostgreSQL database at ``database_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    storage = f'url = "{database_url}"' if database_url else f'path = "{folder / "newsbot.db"}"'
    lines = [
        "[storage]",
        storage,
        "",
        "[polling]",
        'interval = "10m"',
        _CATEGORIES,
    ]
    for number, url in enumerate(urls):
        lines += ["[[feeds]]", f'url = "{url}"']
        if number % 3 == 0:
            lines.append(f'categories = ["{_FEED_CATEGORIES[number % 5]}"]')
        lines.append("")
    path = folder / "config.toml"
    path.write_text("\n".join(lines))
    return path


def database(folder: Path) -> Path:
    return folder / "newsbot.db"


def poll_once(folder: Path, *, sample_memory: bool = False) -> tuple[procs.Run, dict[str, Any]]:
    """One ``newsbot poll --once --json``; returns the run and its JSON summary."""
    run = procs.run(
        [
            sys.executable,
            "-m",
            "bot",
            "--config",
            str(folder / "config.toml"),
            "--log-level",
            "ERROR",
            "poll",
            "--once",
            "--json",
        ],
        sample_memory=sample_memory,
    )
    if run.returncode != 0:
        raise RuntimeError(f"newsbot poll failed ({run.returncode}): {run.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return run, summary
