"""How a chat's settings shape its cards: summary, photo card (and the text
card when Telegram cannot fetch the image), link preview, silent delivery,
and times in the chat's zone. Pure rendering first, then the sender against
the fake Bot API on both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import Bot

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.clock import SystemClock
from bot.config import DeliveryConfig, FeedConfig
from bot.deliver import Sender
from bot.errors import StorageError
from bot.i18n import translator
from bot.local_time import zone_abbreviation
from bot.models import Article, NewArticle
from bot.render import CAPTION_LIMIT, escape, format_time, render_card, render_list
from bot.storage import Storage
from bot.text import cut_html, cut_text, utf16_length
from bot.timezones import zone
from tests.fake_telegram import FakeTelegram
from tests.support import open_test_storage
from tests.telegram_html import check_telegram_html, telegram_length

WINTER = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SUMMER = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
IMAGE = "https://images.example/rocket.jpg"


def article(**overrides: object) -> Article:
    values: dict[str, object] = {
        "id": 1,
        "feed_id": 1,
        "url": "https://example.org/story?id=1&x=2",
        "title": "Rocket lands",
        "summary": "A reusable booster came back.",
        "author": None,
        "published": WINTER,
        "image_url": IMAGE,
        "source": "Space Daily",
        "categories": ("space",),
    }
    values.update(overrides)
    return Article.model_validate(values)


# -- times in the chat's zone -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "when", "shown"),
    [
        ("Europe/Berlin", WINTER, "15 Jan 2026, 13:00 CET"),
        ("Europe/Berlin", SUMMER, "15 Jul 2026, 14:00 CEST"),
        ("America/New_York", WINTER, "15 Jan 2026, 07:00 EST"),
        ("America/New_York", SUMMER, "15 Jul 2026, 08:00 EDT"),
        ("UTC+5:30", WINTER, "15 Jan 2026, 17:30 UTC+5:30"),
        ("UTC-3", SUMMER, "15 Jul 2026, 09:00 UTC-3"),
        ("UTC", WINTER, "15 Jan 2026, 12:00 UTC"),
        # tzdata has no letters for Dubai ("+04"): the offset is spelled out.
        ("Asia/Dubai", WINTER, "15 Jan 2026, 16:00 UTC+4"),
    ],
)
def test_a_time_is_shown_in_the_zone_with_its_abbreviation_of_that_day(
    name: str, when: datetime, shown: str
) -> None:
    assert format_time(when, zone=zone(name)) == shown


def test_the_abbreviation_follows_daylight_saving_at_the_instant_not_today() -> None:
    berlin = zone("Europe/Berlin")
    # The night Berlin moves its clocks forward: 00:59 UTC is CET, 01:00 CEST.
    assert zone_abbreviation(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), berlin) == "CET"
    assert zone_abbreviation(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), berlin) == "CEST"
    night = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert translator(None).date_time(night, berlin, year=False) == "29 Mar, 03:00 CEST"


def test_a_card_and_a_list_show_the_time_in_the_chats_zone() -> None:
    story = article(published=SUMMER)
    card = render_card(story, zone=zone("America/New_York"))
    assert "15 Jul 2026, 08:00 EDT" in check_telegram_html(card.html)
    assert "08:00 EDT" in card.plain
    listing = check_telegram_html(render_list("Latest", [story], zone=zone("UTC+5:30")))
    assert "15 Jul, 17:30 UTC+5:30" in listing
    assert "15 Jul, 12:00 UTC" in check_telegram_html(render_list("Latest", [story]))


# -- the card's options -----------------------------------------------------


def test_a_card_without_summary_leaves_the_summary_out() -> None:
    shown = check_telegram_html(render_card(article(), settings=ChatSettings(summary=False)).html)
    assert "Rocket lands" in shown and "booster" not in shown


def test_a_photo_card_is_made_only_when_the_chat_wants_it_and_the_feed_gave_an_image() -> None:
    assert render_card(article()).photo_url is None
    wanted = ChatSettings(photo=True)
    card = render_card(article(), settings=wanted)
    assert card.photo_url == IMAGE and check_telegram_html(card.caption).startswith("Rocket")
    assert render_card(article(image_url=None), settings=wanted).photo_url is None
    assert (
        render_card(article(image_url="ftp://x.example/a.jpg"), settings=wanted).photo_url is None
    )


def test_a_photo_caption_is_cut_within_telegrams_limit_as_valid_html() -> None:
    many = tuple(f"category_number_{n}_with_a_long_name" for n in range(60))
    card = render_card(
        article(title="Big " * 60, summary="Words & <more> " * 40, categories=many),
        settings=ChatSettings(photo=True),
    )
    assert telegram_length(card.html) > CAPTION_LIMIT
    assert telegram_length(card.caption) <= CAPTION_LIMIT
    assert check_telegram_html(card.caption).endswith("…")


def test_cut_html_never_cuts_inside_a_tag_or_an_entity() -> None:
    markup = '<b>Tom &amp; Jerry</b>\n\n<a href="https://x.example/?a=1&amp;b=2">read it</a>'
    for limit in range(1, telegram_length(markup) + 2):
        cut = cut_html(markup, limit)
        assert telegram_length(cut) <= limit
        check_telegram_html(cut)
    assert cut_html(markup, 100) == markup
    assert cut_html(markup, 8) == "<b>Tom &amp;…</b>"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["b", "i", "code", None]),
            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"])),
        ),
        max_size=8,
    ),
    st.integers(min_value=1, max_value=120),
)
def test_cut_html_keeps_any_card_shaped_html_valid_and_within_the_limit(
    pieces: list[tuple[str | None, str]], limit: int
) -> None:
    markup = "".join(f"<{t}>{escape(x)}</{t}>" if t else escape(x) for t, x in pieces)
    if not check_telegram_html(markup).strip():
        return  # Telegram refuses empty texts whatever the cut
    cut = cut_html(markup, limit)
    check_telegram_html(cut)
    assert telegram_length(cut) <= max(limit, 1)


def test_cut_text_counts_as_telegram_does() -> None:
    assert cut_text("🚀" * 10, 5) == "🚀🚀…"
    assert utf16_length(cut_text("word " * 300, CAPTION_LIMIT)) <= CAPTION_LIMIT


def test_link_preview_choices_reach_the_card() -> None:
    assert render_card(article()).link_preview
    card = render_card(
        article(), settings=ChatSettings(link_preview=False, preview_above_text=True, silent=True)
    )
    assert (card.link_preview, card.preview_above_text, card.silent) == (False, True, True)


# -- the sender, against the fake Bot API, on both backends -------------------


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    made = fake_telegram.make_bot()
    async with made:
        yield made


async def seed(storage: Storage, chats: dict[int, ChatSettings], image: str | None = IMAGE) -> None:
    """One space story pending for each chat, each chat with its settings."""
    now = datetime.now(UTC)
    await storage.feeds.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/f.xml", categories=["space"])], now
    )
    for chat_id, settings in chats.items():
        await storage.chats.upsert_chat(chat_id, "private", f"chat {chat_id}", None, now)
        await storage.chats.subscribe(chat_id, ["space"], now)
        changes = settings.model_dump(exclude_defaults=True)
        if changes:
            await storage.chats.update_chat_settings(chat_id, changes, now)
    for fetch in range(2):  # the first fetch of a feed only marks what is there
        (feed,) = await storage.feeds.due_feeds(now + timedelta(days=1))
        story = NewArticle(
            key=f"k{fetch}",
            url=f"https://news.example/{fetch}",
            title=f"Story {fetch}",
            summary="What happened, in a sentence.",
            author=None,
            published=datetime(2026, 7, 15, 12, 0, tzinfo=UTC),
            image_url=image,
            categories=("space",),
        )
        await storage.articles.store_articles(
            feed,
            [story],
            now=now,
            next_check=now,
            feed_title="Feed",
            site_url=None,
            body_hash=str(fetch),
            etag=None,
            last_modified=None,
            fetch_url=None,
        )


def sender(storage: Storage, bot: Bot, default_timezone: str = "UTC") -> Sender:
    return Sender(
        storage,
        bot.send_message,
        DeliveryConfig(private_chat_interval=0.01, group_chat_interval=0.01),
        SystemClock(),
        {"space": "Space"},
        send_photo=bot.send_photo,
        default_timezone=default_timezone,
    )


async def test_each_chats_card_options_change_what_telegram_receives(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    plain, quiet, above, photo = 101, 102, 103, 104
    await seed(
        storage,
        {
            plain: DEFAULT_SETTINGS,
            quiet: ChatSettings(link_preview=False, summary=False, silent=True),
            above: ChatSettings(preview_above_text=True, timezone="Europe/Berlin"),
            photo: ChatSettings(photo=True, silent=True),
        },
    )
    await sender(storage, bot).drain(within=20)

    (default_card,) = fake_telegram.sent_messages(plain)
    assert default_card["parse_mode"] == "HTML"
    assert default_card["link_preview_options"] == {
        "is_disabled": False,
        "url": "https://news.example/1",
        "prefer_large_media": True,
        "show_above_text": False,
    }
    assert "disable_notification" not in default_card
    assert "What happened" in default_card["text"] and "12:00 UTC" in default_card["text"]

    (quiet_card,) = fake_telegram.sent_messages(quiet)
    assert quiet_card["link_preview_options"] == {"is_disabled": True}
    assert quiet_card["disable_notification"] is True
    assert "What happened" not in quiet_card["text"]

    (above_card,) = fake_telegram.sent_messages(above)
    assert above_card["link_preview_options"]["show_above_text"] is True
    assert "14:00 CEST" in check_telegram_html(above_card["text"])

    assert not fake_telegram.sent_messages(photo)
    (photo_call,) = fake_telegram.calls("sendPhoto", photo)
    assert photo_call.ok and photo_call.params["photo"] == IMAGE
    assert photo_call.params["parse_mode"] == "HTML"
    assert photo_call.params["disable_notification"] is True
    assert "Story 1" in check_telegram_html(photo_call.params["caption"])
    assert photo_call.params["reply_markup"]["inline_keyboard"][0][0]["text"] == "Read"
    assert await storage.outbox.has_pending_deliveries() is False


async def test_a_photo_telegram_cannot_fetch_arrives_as_a_text_card(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.refuse_photo_url(IMAGE)
    await seed(storage, {201: ChatSettings(photo=True, silent=True)})
    await sender(storage, bot).drain(within=20)
    (refused,) = fake_telegram.calls("sendPhoto", 201)
    assert not refused.ok
    (card,) = fake_telegram.sent_messages(201)
    assert "Story 1" in check_telegram_html(card["text"])
    assert card["disable_notification"] is True
    assert card["link_preview_options"]["url"] == "https://news.example/1"


async def test_a_chat_that_wants_photos_gets_a_text_card_for_a_story_without_image(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {301: ChatSettings(photo=True)}, image=None)
    await sender(storage, bot).drain(within=20)
    assert not fake_telegram.calls("sendPhoto")
    assert len(fake_telegram.sent_messages(301)) == 1


async def test_a_chat_without_a_zone_of_its_own_reads_times_in_the_bots_default_zone(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {401: DEFAULT_SETTINGS, 402: ChatSettings(timezone="UTC+5:30")})
    await sender(storage, bot, default_timezone="America/New_York").drain(within=20)
    (default_zone,) = fake_telegram.sent_messages(401)
    (own_zone,) = fake_telegram.sent_messages(402)
    assert "08:00 EDT" in check_telegram_html(default_zone["text"])
    assert "17:30 UTC+5:30" in check_telegram_html(own_zone["text"])


async def test_a_card_waits_while_its_chats_settings_cannot_be_read(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(storage, {501: ChatSettings(silent=True)})
    read = storage.chats.settings_of_chats
    failures = []

    async def failing_once(chat_ids: object) -> dict[int, ChatSettings]:
        if not failures:
            failures.append(chat_ids)
            raise StorageError("database is locked")
        return await read(chat_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.chats, "settings_of_chats", failing_once)
    await sender(storage, bot).drain(within=20)
    assert failures
    # Sent once, after the read worked, and as the chat wants it.
    (card,) = fake_telegram.sent_messages(501)
    assert card["disable_notification"] is True
