"""Chat settings: the value object, and storage of it on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.storage import Storage
from tests.support import open_test_storage
from tests.test_storage import NOW, subscribed_chat


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def test_settings_store_only_what_differs_from_the_defaults() -> None:
    settings = DEFAULT_SETTINGS.changed(silent=True, digest_times=("08:00", "18:30"))
    assert settings.to_json() == '{"digest_times": ["08:00", "18:30"], "silent": true}'
    assert ChatSettings.from_json(settings.to_json()) == settings
    assert DEFAULT_SETTINGS.to_json() == "{}"


def test_an_unreadable_value_resets_only_itself() -> None:
    settings = ChatSettings.from_json('{"silent": "perhaps", "summary": false, "future": 1}')
    assert settings == DEFAULT_SETTINGS.changed(summary=False)
    assert ChatSettings.from_json("not json") == DEFAULT_SETTINGS
    assert ChatSettings.from_json("[1, 2]") == DEFAULT_SETTINGS
    assert ChatSettings.from_json(None) == DEFAULT_SETTINGS


def test_an_invalid_change_is_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match="silent"):
        DEFAULT_SETTINGS.changed(silent="perhaps")


async def test_settings_are_kept_per_chat(storage: Storage) -> None:
    await subscribed_chat(storage, 1, "tech")
    await subscribed_chat(storage, 2, "tech")
    assert await storage.chats.chat_settings(1) == DEFAULT_SETTINGS

    updated = await storage.chats.update_chat_settings(1, {"silent": True}, NOW)
    assert updated.silent
    updated = await storage.chats.update_chat_settings(1, {"timezone": "Europe/Berlin"}, NOW)
    assert updated == DEFAULT_SETTINGS.changed(silent=True, timezone="Europe/Berlin")

    assert await storage.chats.chat_settings(1) == updated
    assert await storage.chats.chat_settings(2) == DEFAULT_SETTINGS
    assert await storage.chats.settings_of_chats([1, 2, 3]) == {1: updated}
    assert await storage.chats.chats_with_settings() == {1: updated}


async def test_two_changes_at_once_both_stay(storage: Storage) -> None:
    await subscribed_chat(storage, 1, "tech")
    await asyncio.gather(
        *(
            storage.chats.update_chat_settings(1, {name: True}, NOW)
            for name in ("silent", "paused", "photo", "preview_above_text")
        )
    )
    settings = await storage.chats.chat_settings(1)
    assert (settings.silent, settings.paused, settings.photo, settings.preview_above_text) == (
        True,
        True,
        True,
        True,
    )


async def test_an_invalid_change_leaves_the_stored_settings_alone(storage: Storage) -> None:
    await subscribed_chat(storage, 1, "tech")
    await storage.chats.update_chat_settings(1, {"silent": True}, NOW)
    with pytest.raises(ValueError):
        await storage.chats.update_chat_settings(1, {"summary": "sometimes"}, NOW)
    assert await storage.chats.chat_settings(1) == DEFAULT_SETTINGS.changed(silent=True)


async def test_a_group_that_becomes_a_supergroup_keeps_its_settings(storage: Storage) -> None:
    await subscribed_chat(storage, -1, "tech")
    await storage.chats.update_chat_settings(-1, {"digest_times": ("07:30",)}, NOW)
    await storage.chats.migrate_chat(-1, -1001, NOW)
    assert (await storage.chats.chat_settings(-1001)).digest_times == ("07:30",)
    assert await storage.chats.chat_settings(-1) == DEFAULT_SETTINGS
