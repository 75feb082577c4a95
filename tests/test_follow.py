"""Follow links (deep links), the story a shared card links to, and /link,
through the real PTB application and the fake Bot API; and their pure parts."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram.links import (
    QR_BORDER,
    QR_ERROR,
    QR_SCALE,
    ArticlePayload,
    BadPayload,
    FollowPayload,
    article_link,
    channel_link,
    follow_button_html,
    follow_payload,
    follow_qr_png,
    group_link,
    parse_start_payload,
    start_link,
)
from tests.bot_harness import (
    ALICE,
    BOB,
    LONG_ID,
    BotHarness,
    buttons,
    data_of,
    item,
    labels,
    running_bot,
    space_items,
)
from tests.fake_telegram import DEFAULT_BOT_USERNAME, FakeTelegram, UploadedFile
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

GROUP = -4002
BOT = DEFAULT_BOT_USERNAME


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


# -- pure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("sub-space", FollowPayload(("space",))),
        ("sub-space-science", FollowPayload(("space", "science"))),
        # "_" belongs to an id, "-" separates ids.
        ("sub-ai_robotics-space", FollowPayload(("ai_robotics", "space"))),
        ("sub-space-space", FollowPayload(("space",))),
        ("a-42", ArticlePayload(42)),
        ("a-0042", ArticlePayload(42)),
    ],
)
def test_start_payloads_of_ours_are_read(payload: str, expected: object) -> None:
    assert parse_start_payload(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "sub-",
        "sub--space",
        "sub-space-",
        "sub-Space",
        "sub-spa ce",
        "sub-" + "x" * 61,
        "a-",
        "a-+1",
        "a-1_0",
        "a-١٢",
        "a-" + "9" * 19,
        "hello",
        "sub-space!",
        "ünïcode",
    ],
)
def test_other_start_payloads_are_refused(payload: str) -> None:
    assert parse_start_payload(payload) == BadPayload(payload)


@given(st.text(max_size=100))
def test_reading_a_start_payload_never_raises(payload: str) -> None:
    parse_start_payload(payload)


def test_a_follow_payload_fits_telegrams_64_characters() -> None:
    assert follow_payload(["space", "ai_robotics"]) == "sub-space-ai_robotics"
    assert follow_payload([LONG_ID]) == f"sub-{LONG_ID}"
    assert follow_payload([LONG_ID, LONG_ID]) is None  # 4 + 32 + 1 + 32 > 64
    fits = follow_payload(["x" * 30, "y" * 29])
    assert fits is not None and len(fits) == 64


def test_links_have_telegrams_shapes() -> None:
    assert start_link("newsbot", "sub-space") == "https://t.me/newsbot?start=sub-space"
    assert group_link("newsbot", "sub-space") == "https://t.me/newsbot?startgroup=sub-space"
    assert channel_link("newsbot") == "https://t.me/newsbot?startchannel&admin=post_messages"
    assert article_link("newsbot", 7) == "https://t.me/newsbot?start=a-7"


def read_png(data: bytes) -> tuple[int, int, list[list[int]]]:
    """Width, height and 0/1 rows of a 1-bit greyscale PNG (what segno writes),
    undoing the PNG row filters. Pure Python, for the test only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    idat = b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IDAT":
            idat += body
        chunks[kind] = body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (1, 0), "expected 1-bit greyscale"
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8
    rows: list[list[int]] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for x in range(stride):
            left = row[x - 1] if x else 0
            up = previous[x]
            corner = previous[x - 1] if x else 0
            if kind == 1:
                row[x] = (row[x] + left) & 0xFF
            elif kind == 2:
                row[x] = (row[x] + up) & 0xFF
            elif kind == 3:
                row[x] = (row[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[x] = (row[x] + pred) & 0xFF
        rows.append([(row[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        previous = row
    return width, height, rows


def assert_qr_of(png: bytes, link: str) -> None:
    """``png`` shows exactly the QR symbol of ``link`` (segno's matrix,
    module by module, dark where the pixel is black), with its quiet zone."""
    width, height, rows = read_png(png)
    matrix = segno.make(link, error=QR_ERROR).matrix
    size = len(matrix) + 2 * QR_BORDER
    assert (width, height) == (size * QR_SCALE, size * QR_SCALE)
    for y in range(size):
        for x in range(size):
            inside = QR_BORDER <= y < size - QR_BORDER and QR_BORDER <= x < size - QR_BORDER
            dark = inside and bool(matrix[y - QR_BORDER][x - QR_BORDER])
            centre = rows[y * QR_SCALE + QR_SCALE // 2][x * QR_SCALE + QR_SCALE // 2]
            assert centre == (0 if dark else 1), f"module ({x}, {y})"


def test_the_qr_code_png_shows_the_follow_link() -> None:
    link = start_link("newsbot", "sub-space-science")
    assert_qr_of(follow_qr_png(link), link)
    with pytest.raises(AssertionError):
        assert_qr_of(follow_qr_png(link), start_link("newsbot", "sub-space"))


def test_the_web_button_escapes_the_link() -> None:
    snippet = follow_button_html('https://t.me/x?start=a&b="c"')
    assert 'href="https://t.me/x?start=a&amp;b=&quot;c&quot;"' in snippet
    assert snippet.endswith(">Follow on Telegram</a>")


# -- follow links through the bot ----------------------------------------


async def test_a_follow_link_subscribes_the_private_chat_after_one_tap(bot: BotHarness) -> None:
    asked = await bot.say(BOB, "/start sub-space-ai_robotics")
    question = asked.reply(BOB)
    assert check_telegram_html(question.params["text"]).startswith("Follow Space, AI and Robotics?")
    assert data_of(question) == ["fo:space-ai_robotics"]
    assert await bot.storage.chats.subscriptions(BOB) == []  # not before the tap

    tapped = await bot.ask(
        bot.fake.callback_query(
            BOB, BOB, "fo:space-ai_robotics", message_id=question.result["message_id"]
        )
    )
    assert tapped.answer().params["text"] == "Subscribed"
    (edit,) = tapped.of("editMessageText")
    assert "You now follow Space, AI and Robotics" in edit.params["text"]
    assert sorted(await bot.storage.chats.subscriptions(BOB)) == ["ai_robotics", "space"]

    again = await bot.press(BOB, BOB, "fo:space-ai_robotics")
    assert again.answer().params["text"] == "Already subscribed"


async def test_a_follow_link_with_unknown_categories_gets_a_friendly_answer(
    bot: BotHarness,
) -> None:
    gone = await bot.say(BOB, "/start sub-sport-cooking")
    text = gone.text(BOB)
    assert "no longer exist" in text
    assert "fo:" not in " ".join(data_of(gone.reply(BOB)))
    assert len(buttons(gone.reply(BOB))) == 4  # every category, to pick from

    partly = await bot.say(BOB, "/start sub-space-sport")
    assert "Follow Space?" in partly.text(BOB) and "No longer here: sport" in partly.text(BOB)
    assert data_of(partly.reply(BOB)) == ["fo:space"]


@pytest.mark.parametrize("payload", ["hello", "sub-Space", "x" * 65, "a-12x", "sub-space extra"])
async def test_a_broken_start_link_says_so_and_shows_the_welcome(
    bot: BotHarness, payload: str
) -> None:
    exchange = await bot.say(BOB, f"/start {payload}")
    text = exchange.text(BOB)  # one answer: the note, then the usual welcome
    assert text.startswith("That link doesn't lead anywhere I know")
    assert "I post news headlines" in text
    assert len(buttons(exchange.reply(BOB))) == 4
    assert await bot.storage.chats.subscriptions(BOB) == []


async def test_a_forged_follow_button_is_refused(bot: BotHarness) -> None:
    assert "expired" in (await bot.press(BOB, BOB, "fo:nope")).answer().params["text"]
    # Someone else's private chat: only its own user may subscribe it.
    other = await bot.press(BOB, ALICE, "fo:space")
    assert other.answer().params["show_alert"] is True
    assert await bot.storage.chats.subscriptions(BOB) == []


async def test_a_startgroup_link_subscribes_the_group_when_an_admin_added_the_bot(
    bot: BotHarness,
) -> None:
    bot.fake.add_chat(GROUP, "supergroup", title="Readers")
    bot.fake.set_member(GROUP, ALICE, "administrator")
    # What Telegram sends into the group the user picked for ?startgroup=sub-space.
    by_member = await bot.ask(bot.fake.message(GROUP, f"/start@{BOT} sub-space", user_id=BOB))
    assert "admins" in by_member.text(GROUP)
    assert await bot.storage.chats.subscriptions(GROUP) == []

    by_admin = await bot.ask(
        bot.fake.message(GROUP, f"/start@{BOT} sub-space-science", user_id=ALICE)
    )
    assert by_admin.text(GROUP).startswith("This chat now receives Space, Science.")
    assert sorted(await bot.storage.chats.subscriptions(GROUP)) == ["science", "space"]


async def test_a_story_link_shows_its_card_with_a_link_back(bot: BotHarness) -> None:
    (story,) = await bot.storage.search.search_articles("rover mission update 4", 1)
    exchange = await bot.say(BOB, f"/start a-{story.id}")
    card, more = exchange.sent(BOB)
    assert check_telegram_html(card.params["text"]).startswith("Rover mission update 4")
    assert card.params["link_preview_options"]["url"] == story.url
    read, share = buttons(card)
    assert read == {"text": "Read", "url": story.url}
    shared = parse_qs(urlsplit(share["url"]).query)["text"][0]
    assert shared.endswith(f"https://t.me/{BOT}?start=a-{story.id}")
    # Then the story's categories, one tap to follow (the usual toggle buttons).
    assert check_telegram_html(more.params["text"]) == "More like this: tap to follow."
    assert labels(more) == ["Space"]

    missing = await bot.say(BOB, "/start a-999999")
    assert "no longer in my archive" in missing.text(BOB)


async def test_a_delivered_cards_share_text_links_back_to_the_bot(bot: BotHarness) -> None:
    await bot.say(BOB, "/start sub-space")
    await bot.press(BOB, BOB, "fo:space")
    bot.feeds.serve("/space.xml", space_items(item("fresh", "Fresh comet sighting", hours_ago=0.1)))
    card = await bot.fake.wait_for_async(
        lambda c: c.method == "sendMessage" and "Fresh comet" in str(c.params.get("text")),
        chat_id=BOB,
        timeout=15,
    )
    (story,) = await bot.storage.search.search_articles("fresh comet sighting", 1)
    share = buttons(card)[1]["url"]
    shared = parse_qs(urlsplit(share).query)["text"][0]
    assert shared.endswith(article_link(BOT, story.id))


# -- /link ---------------------------------------------------------------


async def test_link_gives_follow_links_a_qr_code_and_a_web_button(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/link space science")
    follow = f"https://t.me/{BOT}?start=sub-space-science"
    (photo,) = exchange.of("sendPhoto", ALICE)
    assert photo.ok, photo.response
    upload = photo.params["photo"]
    assert isinstance(upload, UploadedFile)
    assert_qr_of(upload.data, follow)
    assert follow in str(photo.params["caption"])

    html = str(exchange.reply(ALICE).params["text"])
    text = check_telegram_html(html)
    assert follow in text
    assert f"https://t.me/{BOT}?startgroup=sub-space-science" in text
    assert f"https://t.me/{BOT}?startchannel&admin=post_messages" in text
    # The snippet arrives as code, escaped, and reads back as the HTML to paste.
    assert '<pre><code class="language-html">&lt;a href=' in html
    assert follow_button_html(follow) in text


async def test_link_without_categories_links_to_the_bot(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/link")
    (photo,) = exchange.of("sendPhoto", ALICE)
    assert_qr_of(photo.params["photo"].data, f"https://t.me/{BOT}")
    assert "startgroup" not in exchange.text(ALICE)


async def test_link_with_an_unknown_category_says_which(bot: BotHarness) -> None:
    unknown = await bot.say(ALICE, "/link spaec")
    assert "Did you mean Space?" in unknown.text(ALICE)
    assert unknown.of("sendPhoto") == []


async def test_the_longest_follow_link_still_confirms_with_one_button(bot: BotHarness) -> None:
    # Every category at once, the longest id among them: 62 characters of
    # payload, and the button's data still within 64 bytes.
    payload = f"sub-{LONG_ID}-space-science-ai_robotics"
    linked = await bot.say(ALICE, f"/link {LONG_ID} space science ai_robotics")
    assert f"?start={payload}" in linked.text(ALICE)
    asked = await bot.say(BOB, f"/start {payload}")
    (data,) = data_of(asked.reply(BOB))
    await bot.press(BOB, BOB, data)
    assert len(await bot.storage.chats.subscriptions(BOB)) == 4
