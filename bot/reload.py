"""Reloading the configuration while the bot runs: what changed, and what
cannot change without a restart. Pure (no I/O); ``bot.runtime`` applies it.

``CurrentConfig`` is the one owner of the configuration a running process
uses: the poller reads it at the start of each round, the sender for each
card, the handlers for each update. A reload replaces the whole value at once,
so nobody ever sees half of an old file and half of a new one.

``plan_reload(running, loaded)`` compares two valid configurations. Settings
that are built into something long-lived at start (the bot token, the
database, the webhook listener, the metrics endpoint, the HTTP clients and
parse workers, the pacing of sends, the alert jobs) keep their running values
in the configuration it returns, and are named as needing a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import Config

# Dotted keys (a whole section when no field is named) whose new value only
# takes effect after a restart.
RESTART_ONLY: tuple[str, ...] = (
    "telegram.token",
    "telegram.base_url",
    "telegram.base_file_url",
    "telegram.webhook_url",
    "telegram.webhook_listen",
    "telegram.webhook_port",
    "telegram.webhook_secret",
    "storage",
    "polling.connect_timeout",
    "polling.read_timeout",
    "polling.total_timeout",
    "polling.max_body_bytes",
    "polling.concurrency",
    "polling.per_host_concurrency",
    "polling.parse_workers",
    "polling.max_parse_workers",
    "polling.parse_timeout",
    "polling.user_agent",
    "security",
    "delivery.messages_per_second",
    "alerts",
    "metrics",
)

_SECTIONS = ("telegram", "storage", "polling", "delivery", "security", "alerts", "metrics")


class CurrentConfig:
    """The configuration a process runs with now; ``replace`` swaps it whole."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.generation = 0  # how many times it was replaced

    @classmethod
    def of(cls, config: Config | CurrentConfig) -> CurrentConfig:
        return config if isinstance(config, CurrentConfig) else cls(config)

    @property
    def config(self) -> Config:
        return self._config

    def replace(self, config: Config) -> None:
        self._config = config
        self.generation += 1


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload does: ``config`` is what the process runs with from now
    on (the file's values, except the restart-only ones, kept as running)."""

    config: Config
    settings: tuple[str, ...] = ()  # dotted keys applied now
    needs_restart: tuple[str, ...] = ()  # dotted keys that keep their running value
    categories_added: tuple[str, ...] = ()
    categories_removed: tuple[str, ...] = ()
    categories_changed: tuple[str, ...] = ()
    feeds_added: tuple[str, ...] = ()
    feeds_removed: tuple[str, ...] = ()
    feeds_changed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(
            self.settings
            or self.needs_restart
            or self.categories_added
            or self.categories_removed
            or self.categories_changed
            or self.feeds_added
            or self.feeds_removed
            or self.feeds_changed
        )

    def summary(self) -> list[str]:
        """One line per kind of change, in English, naming keys and ids but
        never a value (a value may be a secret)."""
        lines = []
        for label, ids in (
            ("categories added", self.categories_added),
            ("categories removed", self.categories_removed),
            ("categories changed", self.categories_changed),
        ):
            if ids:
                lines.append(f"{label}: {', '.join(ids)}")
        for label, count in (
            ("feeds added", len(self.feeds_added)),
            ("feeds removed (no longer polled, their articles kept)", len(self.feeds_removed)),
            ("feeds changed", len(self.feeds_changed)),
        ):
            if count:
                lines.append(f"{label}: {count}")
        if self.settings:
            lines.append(f"settings changed: {', '.join(self.settings)}")
        if self.needs_restart:
            lines.append(f"needs a restart (running values kept): {', '.join(self.needs_restart)}")
        return lines or ["nothing changed"]


def _restart_only(key: str) -> bool:
    return any(key == rule or key.startswith(rule + ".") for rule in RESTART_ONLY)


def _flat(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{section}.{name}": value for name, value in values.items()}


def _by_key(items: list[Any], key: str) -> dict[str, Any]:
    return {getattr(item, key): item for item in items}


def _compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    added = tuple(k for k in new if k not in old)
    removed = tuple(k for k in old if k not in new)
    changed = tuple(k for k in new if k in old and new[k] != old[k])
    return added, removed, changed


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    """What replacing ``running`` by ``loaded`` (both valid) changes."""
    settings: list[str] = []
    needs_restart: list[str] = []
    sections: dict[str, Any] = {}
    for section in _SECTIONS:
        old_section = getattr(running, section)
        new_section = getattr(loaded, section)
        old = _flat(section, old_section.model_dump())
        new = _flat(section, new_section.model_dump())
        kept: dict[str, Any] = {}
        for key, value in new.items():
            if value == old[key]:
                continue
            if _restart_only(key):
                needs_restart.append(key)
                kept[key.split(".", 1)[1]] = old[key]
            else:
                settings.append(key)
        sections[section] = new_section.model_copy(update=kept) if kept else new_section
    if running.token != loaded.token and "telegram.token" not in needs_restart:
        # Set through NEWSBOT_TOKEN in the environment: same rule.
        needs_restart.append("telegram.token")
    categories = _compare(_by_key(running.categories, "id"), _by_key(loaded.categories, "id"))
    feeds = _compare(_by_key(running.feeds, "url"), _by_key(loaded.feeds, "url"))
    return ReloadPlan(
        config=loaded.model_copy(update=sections),
        settings=tuple(settings),
        needs_restart=tuple(needs_restart),
        categories_added=categories[0],
        categories_removed=categories[1],
        categories_changed=categories[2],
        feeds_added=feeds[0],
        feeds_removed=feeds[1],
        feeds_changed=feeds[2],
    )
