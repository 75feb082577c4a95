"""The operators' feed commands through the real PTB application and the fake
Bot API: /addfeed with discovery, /removefeed, /feeds, /feed and its buttons,
/export and OPML documents; and every one refused to anyone else.

Runtime feeds may only be fetched from public addresses, so the sites here
have public names (``site.example``) that a stub resolver answers and a
transport carries to the loopback feed server, refusing any other connection
(see tests/test_netguard.py): a guard that let a private address through
fails closed."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.opml import MAX_OPML_BYTES
from bot.telegram.feed_buttons import MAX_CALLBACK_DATA
from tests.bot_harness import (
    ALICE,
    APOLOGY,
    BOB,
    BotHarness,
    Exchange,
    buttons,
    data_of,
    eventually,
    labels,
    message_id,
    running_bot,
)
from tests.fake_telegram import ApiError, Call, FakeTelegram, UploadedFile
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS
from tests.telegram_html import check_telegram_html
from tests.test_netguard import PUBLIC_V4, FakeInternet, StubResolver

ARS = "wordpress-news-arstechnica.rss.xml"
VERGE = "atom-theverge.atom.xml"
HTML = "text/html; charset=utf-8"
GROUP = -4001
REFUSAL = "This command is for the bot's operators."


@asynccontextmanager
async def public_sites_bot(
    tmp_path: Path, fake: FakeTelegram, feeds: FeedServer, *, expect_error_logs: bool = False
) -> AsyncIterator[BotHarness]:
    resolver = StubResolver(
        {"site.example": [PUBLIC_V4], "feeds.example": [PUBLIC_V4], "inside.example": ["10.0.0.7"]}
    )
    async with running_bot(
        tmp_path,
        fake,
        feeds,
        feed_network=FakeInternet().network,
        feed_resolver=resolver,
        expect_error_logs=expect_error_logs,
    ) as harness:
        yield harness


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with public_sites_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def public(feeds: FeedServer, path: str, host: str = "site.example") -> str:
    port = feeds.url("/").split(":")[2].rstrip("/")
    return f"http://{host}:{port}{path}"


def page(*hrefs: str) -> bytes:
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" title="Feed" href="{href}">'
        for href in hrefs
    )
    return f"<!DOCTYPE html><html><head><title>Site</title>{links}</head><body/></html>".encode()


def shown(exchange: Exchange, method: str = "editMessageText") -> str:
    (call,) = exchange.of(method)
    return check_telegram_html(str(call.params["text"]))


def data_labelled(call: object, label: str) -> str:
    from tests.fake_telegram import Call

    assert isinstance(call, Call)
    (data,) = [b["callback_data"] for b in buttons(call) if b["text"] == label]
    assert isinstance(data, str)
    return data


def pressed_on(call: Call) -> int:
    """The id of the message a sent or edited answer stands in."""
    if call.method == "editMessageText":
        value = call.params["message_id"]
        assert isinstance(value, int)
        return value
    return message_id(call)


async def addfeed(bot: BotHarness, arguments: str) -> tuple[Call, str]:
    """/addfeed that discovers: "Looking…" at once, then that very message
    edited into the answer; the answer's call and its text as the user sees it."""
    exchange = await bot.say(ALICE, f"/addfeed {arguments}")
    url = arguments.split()[0]
    assert exchange.text(ALICE) == f"Looking for feeds at {url}…"
    (answer,) = exchange.of("editMessageText", ALICE)
    assert answer.params["message_id"] == message_id(exchange.reply(ALICE))
    return answer, check_telegram_html(str(answer.params["text"]))


async def runtime_feeds(bot: BotHarness) -> dict[str, tuple[str, ...]]:
    return {
        f.url: f.categories
        for f in await bot.storage.feeds.all_feeds()
        if f.origin == "runtime" and f.configured
    }


# -- who may -----------------------------------------------------------------


async def test_every_feed_command_is_refused_to_non_operators(bot: BotHarness) -> None:
    for command in ("/addfeed https://x.example/feed", "/removefeed 1", "/feeds", "/feed 1"):
        assert (await bot.say(BOB, command)).text(BOB) == REFUSAL
    exchange = await bot.say(BOB, "/export")
    assert exchange.text(BOB) == REFUSAL and exchange.of("sendDocument") == []
    # In a group too, even from a group admin: operators are users, not roles.
    assert (await bot.say(GROUP, "/feeds", user_id=BOB)).text(GROUP) == REFUSAL


async def test_buttons_are_checked_for_an_operator_on_every_press(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/feeds")
    call = exchange.reply(ALICE)
    for data in data_of(call):
        answer = (await bot.press(BOB, BOB, data)).answer()
        assert answer.params["text"] == "Only the bot's operators can use these buttons."
    assert len(await bot.storage.feeds.all_feeds()) == 3


async def test_documents_from_non_operators_are_refused_in_private_and_ignored_in_groups(
    bot: BotHarness,
) -> None:
    private = await bot.ask(bot.fake.document_message(BOB, b"<opml/>", "mine.opml"))
    assert private.text(BOB) == "I only import feed lists from my operators."
    group = await bot.ask(bot.fake.document_message(GROUP, b"<opml/>", "x.opml", user_id=BOB))
    assert group.calls == []
    assert bot.fake.calls("getFile") == []


async def test_help_lists_the_operator_commands_to_operators_only_and_the_menu_never(
    bot: BotHarness,
) -> None:
    operator = (await bot.say(ALICE, "/help")).text(ALICE)
    for command in ("/addfeed", "/removefeed", "/feeds", "/feed ", "/export"):
        assert command in operator
    other = (await bot.say(BOB, "/help")).text(BOB)
    assert "/addfeed" not in other and "/export" not in other
    menu = [c["command"] for c in bot.fake.commands()]
    assert not {"addfeed", "removefeed", "feeds", "feed", "export"} & set(menu)


# -- /addfeed and discovery --------------------------------------------------


async def test_addfeed_of_a_site_page_shows_what_it_found_and_adds_it_on_add(
    bot: BotHarness,
) -> None:
    bot.feeds.serve_file("/ars.xml", REAL_FEEDS / ARS)
    bot.feeds.serve("/blog", page("/ars.xml"), content_type=HTML)
    preview, text = await addfeed(bot, public(bot.feeds, "/blog"))
    assert text.startswith("Ars Technica\n" + public(bot.feeds, "/ars.xml") + "\n20 items\nNewest:")
    assert text.count("\n• ") == 3
    assert "Its own tags map to: Science, Space" in text
    assert labels(preview) == ["Add", "Cancel"]
    assert all(len(d.encode()) <= MAX_CALLBACK_DATA for d in data_of(preview))
    added = await bot.press(
        ALICE, ALICE, data_labelled(preview, "Add"), message_id=pressed_on(preview)
    )
    assert shown(added).startswith("Added feed 4 (Ars Technica)")
    assert await runtime_feeds(bot) == {public(bot.feeds, "/ars.xml"): ()}
    # The same button again: its work is done.
    again = await bot.press(
        ALICE, ALICE, data_labelled(preview, "Add"), message_id=pressed_on(preview)
    )
    assert "expired" in again.answer().params["text"]
    repeated = await bot.say(ALICE, f"/addfeed {public(bot.feeds, '/ars.xml')}")
    assert repeated.text(ALICE) == "That feed is already listed as feed 4."


async def test_addfeed_with_categories_adds_in_them(bot: BotHarness) -> None:
    bot.feeds.serve_file("/ars.xml", REAL_FEEDS / ARS)
    preview, text = await addfeed(bot, f"{public(bot.feeds, '/ars.xml')} space")
    assert "It will be added in: Space" in text
    await bot.press(ALICE, ALICE, data_labelled(preview, "Add"), message_id=pressed_on(preview))
    assert await runtime_feeds(bot) == {public(bot.feeds, "/ars.xml"): ("space",)}
    wrong = await bot.say(ALICE, f"/addfeed {public(bot.feeds, '/ars.xml')} cooking")
    assert "unknown category 'cooking'" in wrong.text(ALICE)


async def test_several_feeds_on_a_page_are_offered_as_buttons_and_one_without_tags_asks_a_category(
    bot: BotHarness,
) -> None:
    bot.feeds.serve_file("/ars.xml", REAL_FEEDS / ARS)
    bot.feeds.serve_file("/verge.atom", REAL_FEEDS / VERGE, content_type="application/atom+xml")
    bot.feeds.serve(
        "/", page("/ars.xml", public(bot.feeds, "/verge.atom", "feeds.example")), content_type=HTML
    )
    choice, text = await addfeed(bot, public(bot.feeds, "/"))
    assert text.startswith(f"2 feeds at {public(bot.feeds, '/')}; which one?")
    assert labels(choice) == ["1. Ars Technica", "2. The Verge - All Posts", "Cancel"]
    picked = await bot.press(
        ALICE,
        ALICE,
        data_labelled(choice, "2. The Verge - All Posts"),
        message_id=pressed_on(choice),
    )
    text = shown(picked)
    assert text.startswith("The Verge - All Posts\n") and "10 items" in text
    assert "pick one for its articles" in text
    (edit,) = picked.of("editMessageText")
    assert labels(edit) == ["Space", "Science", "AI and Robotics", "Long Reads", "Cancel"]
    assert all(len(d.encode()) <= MAX_CALLBACK_DATA for d in data_of(edit))
    added = await bot.press(
        ALICE, ALICE, data_labelled(edit, "Long Reads"), message_id=pressed_on(choice)
    )
    assert shown(added).startswith("Added feed 4 (The Verge - All Posts)")
    verge = public(bot.feeds, "/verge.atom", "feeds.example")
    assert await runtime_feeds(bot) == {verge: ("a_very_long_category_identifier_",)}


async def test_a_site_with_only_a_feed_path_is_found_there(bot: BotHarness) -> None:
    bot.feeds.serve_file("/feed", REAL_FEEDS / ARS)
    bot.feeds.serve("/", page(), content_type=HTML)
    preview, text = await addfeed(bot, public(bot.feeds, "/"))
    assert text.startswith("Ars Technica\n" + public(bot.feeds, "/feed") + "\n")
    cancel = await bot.press(
        ALICE, ALICE, data_labelled(preview, "Cancel"), message_id=pressed_on(preview)
    )
    assert shown(cancel) == "Cancelled."
    assert await runtime_feeds(bot) == {}


async def test_discovery_refuses_a_page_whose_feed_points_at_a_private_address(
    bot: BotHarness,
) -> None:
    bot.feeds.serve_file("/secret.xml", REAL_FEEDS / ARS)
    bot.feeds.serve(
        "/",
        page(public(bot.feeds, "/secret.xml", "inside.example"), bot.feeds.url("/secret.xml")),
        content_type=HTML,
    )
    _, text = await addfeed(bot, public(bot.feeds, "/"))
    assert text.startswith("no feed found at")
    assert "inside.example is 10.0.0.7, a private or reserved address" in text
    assert "a loopback address" in text
    assert bot.feeds.hits("/secret.xml") == 0
    _, literal = await addfeed(bot, bot.feeds.url("/secret.xml"))
    assert "a loopback address" in literal and "must be public" in literal
    assert bot.feeds.hits("/secret.xml") == 0
    assert await runtime_feeds(bot) == {}


def is_preview_to(chat_id: int) -> Callable[[Call], bool]:
    """The answer to /addfeed with an Add button, however it reaches the chat."""

    def match(call: Call) -> bool:
        return (
            call.chat_id == chat_id
            and call.method in ("sendMessage", "editMessageText")
            and "Add" in labels(call)
        )

    return match


async def discovery_held_at_the_site(bot: BotHarness) -> tuple[threading.Event, str]:
    """Alice's /addfeed of a site that answers only once the returned event
    is set, and its URL; returns when the discovery is waiting on the site."""
    held = threading.Event()
    bot.feeds.serve_file("/slow.xml", REAL_FEEDS / ARS, gate=held)
    url = public(bot.feeds, "/slow.xml")
    bot.fake.push_update(bot.fake.message(ALICE, f"/addfeed {url}"))

    async def discovery_is_waiting_on_the_site() -> bool:
        return bot.feeds.hits("/slow.xml") == 1

    try:
        await eventually(discovery_is_waiting_on_the_site)
    except BaseException:
        held.set()
        raise
    return held, url


async def test_a_slow_feed_discovery_does_not_hold_up_other_chats(bot: BotHarness) -> None:
    held, url = await discovery_held_at_the_site(bot)
    try:
        bot.fake.push_update(bot.fake.message(BOB, "/latest"))
        latest = await bot.fake.wait_for_async("sendMessage", chat_id=BOB, timeout=15)
        assert "Latest headlines" in str(latest.params["text"])
        assert await runtime_feeds(bot) == {}
    finally:
        held.set()
    preview = await bot.fake.wait_for_async(is_preview_to(ALICE), timeout=15)
    assert check_telegram_html(str(preview.params["text"])).startswith(f"Ars Technica\n{url}\n")
    added = await bot.press(
        ALICE, ALICE, data_labelled(preview, "Add"), message_id=pressed_on(preview)
    )
    assert shown(added).startswith("Added feed 4 (Ars Technica)")
    assert await runtime_feeds(bot) == {url: ()}


async def test_the_same_url_sent_twice_while_it_is_looked_up_is_looked_up_and_offered_once(
    bot: BotHarness,
) -> None:
    held, url = await discovery_held_at_the_site(bot)
    try:
        bot.fake.push_update(bot.fake.message(ALICE, f"/addfeed  {url} "))
        again = await bot.fake.wait_for_async(
            lambda c: (
                c.method == "sendMessage"
                and c.chat_id == ALICE
                and "already looking" in str(c.params["text"])
            ),
            timeout=15,
        )
        assert check_telegram_html(str(again.params["text"])) == (
            f"I'm already looking for feeds at {url}: the answer is on its way."
        )
    finally:
        held.set()
    preview = await bot.fake.wait_for_async(is_preview_to(ALICE), timeout=15)
    await bot.press(ALICE, ALICE, data_labelled(preview, "Add"), message_id=pressed_on(preview))
    assert await runtime_feeds(bot) == {url: ()}
    assert bot.feeds.hits("/slow.xml") == 1
    assert len([c for c in bot.fake.calls() if is_preview_to(ALICE)(c)]) == 1


async def test_a_discovery_failing_in_the_background_reaches_the_error_handler(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with public_sites_bot(
        tmp_path, fake_telegram, feed_server, expect_error_logs=True
    ) as bot:
        bot.feeds.serve_file("/ars.xml", REAL_FEEDS / ARS)
        url = public(bot.feeds, "/ars.xml")
        odd = ApiError(400, "Bad Request: odd failure")
        bot.fake.fail_next("editMessageText", odd, chat_id=ALICE)
        exchange = await bot.ask(bot.fake.message(ALICE, f"/addfeed {url}"), check=False)
        looking, alert, apology = exchange.texts(ALICE)
        assert looking == f"Looking for feeds at {url}…"
        # The operators hear what failed where, the user gets the apology.
        assert "BadRequest: Odd failure" in alert and "the command /addfeed" in alert
        assert APOLOGY in apology
        assert any("error while handling an update" in line for line in bot.error_logs)
        assert await runtime_feeds(bot) == {}


# -- /feeds, /feed and the buttons -------------------------------------------


async def test_feeds_are_listed_page_by_page_with_prev_and_next(bot: BotHarness) -> None:
    now = bot.app.runtime.clock.now() if bot.app.runtime else None
    assert now is not None
    await bot.storage.feeds.add_runtime_feeds(
        [(f"https://n{n}.example/feed", ()) for n in range(10)], now
    )
    exchange = await bot.say(ALICE, "/feeds")
    first = exchange.reply(ALICE)
    text = exchange.text(ALICE)
    assert text.startswith("Feeds 1–8 of 13\n1 Space Daily — ok\n")
    assert "20 this week" not in text and "· config" in text and "· runtime" in text
    assert "next " in text and "last ok " in text
    assert labels(first) == ["1", "2", "3", "4", "5", "6", "7", "8", "Next ›"]
    second = await bot.press(
        ALICE, ALICE, data_labelled(first, "Next ›"), message_id=message_id(first)
    )
    assert shown(second).startswith("Feeds 9–13 of 13\n9 https://n5.example/feed — new")
    (edit,) = second.of("editMessageText")
    assert labels(edit) == ["9", "10", "11", "12", "13", "‹ Prev"]
    details = await bot.press(ALICE, ALICE, data_labelled(edit, "9"), message_id=message_id(first))
    assert shown(details).startswith("9 https://n5.example/feed\n")


async def test_feed_details_check_pause_resume_and_remove_after_confirming(
    bot: BotHarness,
) -> None:
    bot.feeds.serve_file("/ars.xml", REAL_FEEDS / ARS)
    url = public(bot.feeds, "/ars.xml")
    assert bot.app.runtime is not None
    await bot.storage.feeds.add_runtime_feeds([(url, ("science",))], bot.app.runtime.clock.now())
    config_feed = (await bot.say(ALICE, "/feed 1")).reply(ALICE)
    assert labels(config_feed) == ["Check now", "Pause", "‹ All feeds"]  # no Remove
    exchange = await bot.say(ALICE, "/feed 4")
    card = exchange.reply(ALICE)
    text = exchange.text(ALICE)
    assert text.startswith(f"4 {url}\n{url}\nState: new\nOrigin: runtime\nCategories: Science\n")
    assert labels(card) == ["Check now", "Pause", "Remove", "‹ All feeds"]
    where = message_id(card)

    checked = await bot.press(ALICE, ALICE, data_labelled(card, "Check now"), message_id=where)
    assert checked.answer().params["text"] == "Checking…"
    after = shown(checked)
    assert after.startswith("Checked: 20 new articles.\n\n4 Ars Technica")
    assert "State: ok" in after and "Articles stored: 20" in after

    paused = await bot.press(ALICE, ALICE, data_labelled(card, "Pause"), message_id=where)
    assert "State: paused" in shown(paused) and "Next check: not polled" in shown(paused)
    (edit,) = paused.of("editMessageText")
    assert labels(edit) == ["Check now", "Resume", "Remove", "‹ All feeds"]
    resumed = await bot.press(ALICE, ALICE, data_labelled(edit, "Resume"), message_id=where)
    assert "State: ok" in shown(resumed)

    asked = await bot.press(ALICE, ALICE, data_labelled(card, "Remove"), message_id=where)
    assert shown(asked).startswith("Remove feed 4 (Ars Technica)?")
    (confirm,) = asked.of("editMessageText")
    assert labels(confirm) == ["Yes, remove it", "Keep it"]
    assert await runtime_feeds(bot) == {url: ("science",)}
    removed = await bot.press(
        ALICE, ALICE, data_labelled(confirm, "Yes, remove it"), message_id=where
    )
    assert shown(removed).startswith("Removed feed 4 (Ars Technica)")
    assert await runtime_feeds(bot) == {}


async def test_removefeed_removes_runtime_feeds_and_explains_config_ones(bot: BotHarness) -> None:
    assert bot.app.runtime is not None
    await bot.storage.feeds.add_runtime_feeds(
        [("https://gone.example/feed", ())], bot.app.runtime.clock.now()
    )
    text = (await bot.say(ALICE, "/removefeed https://gone.example/feed")).text(ALICE)
    assert text.startswith("Removed feed 4 (https://gone.example/feed)")
    config = (await bot.say(ALICE, "/removefeed 1")).text(ALICE)
    assert "is in the configuration file" in config
    assert (await bot.say(ALICE, "/removefeed")).text(ALICE) == "Usage: /removefeed ID|URL"
    assert "no feed '77'" in (await bot.say(ALICE, "/feed 77")).text(ALICE)


@pytest.mark.parametrize(
    "data",
    [
        "fd:add:AAAAAAAAAAAA",  # well formed, but nothing waits behind it
        "fd:imp:zzzzzzzzzzzz",
        "fd:pick:AAAAAAAAAAAA:0",
        "fd:zz:1",
        "fd:f:-1",
        "fd:pg:" + "9" * 60,
    ],
)
async def test_forged_and_stale_buttons_get_a_short_answer(bot: BotHarness, data: str) -> None:
    answer = (await bot.press(ALICE, ALICE, data)).answer()
    assert "expired" in answer.params["text"]


async def test_a_button_for_a_feed_that_is_gone_answers_what_is_wrong(bot: BotHarness) -> None:
    answer = (await bot.press(ALICE, ALICE, "fd:chk:999")).answer()
    assert "no feed '999'" in answer.params["text"]
    assert bot.app.runtime is not None
    (feed_id,) = await bot.storage.feeds.add_runtime_feeds(
        [("https://gone.example/feed", ())], bot.app.runtime.clock.now()
    )
    await bot.storage.feeds.remove_runtime_feed(feed_id)
    for data in (f"fd:chk:{feed_id}", f"fd:rmy:{feed_id}", "fd:rmy:1"):
        answer = (await bot.press(ALICE, ALICE, data)).answer()
        assert answer.params.get("show_alert") is True, data
    assert len(await bot.storage.feeds.all_feeds()) == 4


# -- OPML documents ----------------------------------------------------------


async def test_export_sends_a_document_that_sent_back_is_all_present(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/export")
    (sent,) = exchange.of("sendDocument")
    assert sent.ok and sent.params["caption"].startswith("3 feeds as OPML 2.0")
    upload = sent.params["document"]
    assert isinstance(upload, UploadedFile) and upload.filename == "newsbot-feeds.opml"
    assert b'<opml version="2.0">' in upload.data
    back = await bot.ask(bot.fake.document_message(ALICE, upload.data, upload.filename))
    preview = back.reply(ALICE)
    assert back.text(ALICE) == "newsbot-feeds.opml: 3 feeds, 3 already present, 0 to add"
    assert labels(preview) == ["Cancel"]  # nothing to import
    assert len(bot.fake.calls("downloadFile")) == 1


async def test_an_opml_document_is_previewed_then_imported_on_the_button(bot: BotHarness) -> None:
    opml = b"""<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
      <outline text="Space"><outline type="rss" text="A" xmlUrl="https://a.example/feed"/></outline>
      <outline text="Cooking"><outline type="rss" text="B" xmlUrl="https://b.example/rss"/></outline>
    </body></opml>"""
    exchange = await bot.ask(bot.fake.document_message(ALICE, opml, "mine.xml"))
    preview = exchange.reply(ALICE)
    assert exchange.text(ALICE).splitlines() == [
        "mine.xml: 2 feeds, 0 already present, 2 to add",
        "• https://a.example/feed — Space",
        "• https://b.example/rss — no category (tags and keywords only)",
        "Folders matching no category: Cooking",
    ]
    assert labels(preview) == ["Import", "Cancel"]
    imported = await bot.press(
        ALICE, ALICE, data_labelled(preview, "Import"), message_id=message_id(preview)
    )
    assert shown(imported) == "Imported 2 feeds from mine.xml: polled at the next tick."
    assert await runtime_feeds(bot) == {
        "https://a.example/feed": ("space",),
        "https://b.example/rss": (),
    }


async def test_documents_too_big_of_the_wrong_kind_or_hostile_are_refused(bot: BotHarness) -> None:
    big = await bot.ask(
        bot.fake.document_message(ALICE, b"<opml/>", "big.opml", file_size=MAX_OPML_BYTES + 1)
    )
    assert big.text(ALICE) == "That file is too big: feed lists are at most 5 MB."
    assert bot.fake.calls("getFile") == []
    other = await bot.ask(bot.fake.document_message(ALICE, b"hi", "notes.txt"))
    assert other.text(ALICE) == "Send an OPML file (.opml or .xml) to import feeds."
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<opml version="2.0"><body><outline text="&b;" xmlUrl="https://x.example/"/></body></opml>'
    )
    hostile = await bot.ask(bot.fake.document_message(ALICE, bomb, "bomb.opml"))
    assert hostile.text(ALICE).startswith("I can't import bomb.opml: ")
    assert await runtime_feeds(bot) == {}
