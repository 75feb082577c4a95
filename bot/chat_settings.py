"""What each chat chose for itself: language, time zone, digest times, quiet
hours and how its cards look.

One value object, stored whole per chat (``ChatStore.chat_settings`` /
``update_chat_settings``) as JSON: a setting added later needs no schema
change, and a value this version cannot read falls back to its default
instead of making the chat unreadable. Defaults are what a chat that never
opened ``/settings`` gets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)


class ChatSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    language: str | None = None  # None: not chosen; the chat's default applies
    timezone: str | None = None  # IANA name or UTC+H:MM; None: [telegram] default_timezone
    digest_times: tuple[str, ...] = ()  # "HH:MM" in the chat's zone; empty: instant cards
    quiet_hours: tuple[str, str] | None = None  # ("HH:MM", "HH:MM"), may wrap midnight
    link_preview: bool = True
    preview_above_text: bool = False
    summary: bool = True
    photo: bool = False  # the article's image as a photo card when the feed gave one
    silent: bool = False  # disable_notification
    paused: bool = False  # no cards are queued while paused

    def to_json(self) -> str:
        """Only what differs from the defaults, so that a default changed
        later reaches every chat that never chose."""
        return json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ChatSettings:
        if not text:
            return DEFAULT_SETTINGS
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("chat settings: unreadable JSON kept aside, defaults used")
            return DEFAULT_SETTINGS
        if not isinstance(data, dict):
            return DEFAULT_SETTINGS
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ChatSettings:
        """Each field on its own: one unreadable value (a setting an older or
        newer version wrote differently) resets only itself."""
        good: dict[str, Any] = {}
        for name, value in data.items():
            if name not in cls.model_fields:
                continue
            try:
                cls.model_validate({name: value})
            except ValidationError:
                log.warning("chat settings: unreadable %s=%r, default used", name, value)
                continue
            good[name] = value
        return cls.model_validate(good)

    def changed(self, **changes: Any) -> ChatSettings:
        """A copy with ``changes`` validated (ValueError names a bad one)."""
        data = self.model_dump()
        data.update(changes)
        try:
            return type(self).model_validate(data)
        except ValidationError as error:
            raise ValueError(str(error)) from None


DEFAULT_SETTINGS = ChatSettings()
