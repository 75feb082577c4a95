"""Digests, quiet hours and the burst cap end to end: the real PTB
application, the fake Bot API, feeds on the loopback server, and a clock
the test moves."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.clock import ManualClock
from bot.parse import parse
from tests.bot_harness import (
    BOB,
    CAROL,
    SEEDED,
    BotHarness,
    buttons,
    eventually,
    item,
    rss,
    running_bot,
    space_items,
)
from tests.fake_telegram import ApiError, Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS
from tests.telegram_html import check_telegram_html, telegram_length

NASA = "wordpress-news-nasa-2023.rss.xml"
ARS = "wordpress-news-arstechnica.rss.xml"


def start_clock() -> ManualClock:
    # Near the real now: the feeds' items are dated from it.
    return ManualClock(datetime.now(UTC).replace(second=0, microsecond=0))


def sender(bot: BotHarness) -> None:
    """Nudge the sender after the clock moved (it also looks every few seconds)."""
    assert bot.app.services is not None
    bot.app.services.sender.wake()


async def held(bot: BotHarness, chat_id: int) -> int:
    return len(await bot.storage.outbox.held_cards(chat_id))


def news_to(bot: BotHarness, chat_id: int, since: int) -> list[Call]:
    """Messages the sender (not a command's reply) sent to ``chat_id`` after
    call number ``since``: digests link their headlines, cards have link buttons."""
    return [
        c
        for c in bot.fake.calls()[since:]
        if c.method == "sendMessage"
        and c.chat_id == chat_id
        and ("<a href=" in str(c.params["text"]) or any("url" in b for b in buttons(c)))
    ]


async def news_arrives(bot: BotHarness, chat_id: int, since: int) -> None:
    async def arrived() -> bool:
        return bool(news_to(bot, chat_id, since))

    await eventually(arrived, what=f"news for {chat_id}")


async def stored(bot: BotHarness, count: int) -> None:
    async def all_stored() -> bool:
        return await bot.articles() == count

    await eventually(all_stored, what=f"{count} articles stored")


async def test_a_digest_arrives_at_its_minute_with_the_real_feeds_headlines_and_no_cards(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    extra = [
        {"url": feed_server.url("/nasa.xml"), "categories": ["space"], "name": "NASA"},
        {"url": feed_server.url("/ars.xml"), "categories": ["ai_robotics"], "name": "Ars"},
    ]
    feed_server.serve("/nasa.xml", rss(item("nasa-seed", "NASA seed")))
    feed_server.serve("/ars.xml", rss(item("ars-seed", "Ars seed")))
    async with running_bot(
        tmp_path,
        fake_telegram,
        feed_server,
        clock=clock,
        extra_feeds=extra,
        wait_for_articles=False,
    ) as bot:
        await stored(bot, SEEDED + 1 + 2)
        digest_at = clock.now() + timedelta(minutes=30)
        await bot.say(BOB, "/subscribe space ai_robotics")
        reply = await bot.say(BOB, f"/digest {digest_at:%H:%M}")
        assert f"a digest at {digest_at:%H:%M} (UTC)" in reply.text(BOB)
        settings = await bot.storage.chats.chat_settings(BOB)
        assert settings.digest_times == (f"{digest_at:%H:%M}",)
        since = len(fake_telegram.calls())

        nasa = (REAL_FEEDS / NASA).read_bytes()
        ars = (REAL_FEEDS / ARS).read_bytes()
        feed_server.serve("/nasa.xml", nasa)
        feed_server.serve("/ars.xml", ars)
        new = len(parse(nasa, feed_server.url("/nasa.xml")).entries)
        new += len(parse(ars, feed_server.url("/ars.xml")).entries)
        clock.advance(120)  # the feeds are due again
        await stored(bot, SEEDED + 1 + 2 + new)

        async def all_held() -> bool:
            return await held(bot, BOB) == new

        await eventually(all_held, what="every new card held for the digest")
        assert news_to(bot, BOB, since) == []  # digest mode: no instant cards

        clock.set(digest_at.replace(second=0) - timedelta(seconds=1))
        sender(bot)
        await bot.say(BOB, "/help")  # a round trip: the sender had its chance meanwhile
        assert news_to(bot, BOB, since) == []

        clock.set(digest_at.replace(second=0))
        sender(bot)
        await news_arrives(bot, BOB, since)
        (digest,) = news_to(bot, BOB, since)
        text = str(digest.params["text"])
        shown = check_telegram_html(text)
        print("\n--- digest as sent (Telegram HTML) ---\n" + text + "\n--- as read ---\n" + shown)
        assert text.startswith("<b>Your digest, ")
        assert f"{digest_at.day} " in shown.splitlines()[0]
        assert shown.index("Space") < shown.index("AI and Robotics")  # config order
        assert text.count("<a href=") <= 20  # at most 10 per category
        # Ars brought more than ten stories: the rest are counted, not listed.
        assert re.search(r"\n…and \d+ more — /latest ai_robotics$", shown)
        assert digest.params.get("link_preview_options", {}).get("is_disabled") is True

        async def all_sent() -> bool:
            counts = await bot.storage.outbox.delivery_counts()
            return counts.get("sent", 0) == new and not counts.get("pending")

        await eventually(all_sent, what="every card of the digest marked sent")
        # The next digest time: nothing new, nothing sent.
        clock.advance(86400)
        sender(bot)

        async def next_time_done() -> bool:
            done = (await bot.storage.outbox.last_digest_times([BOB])).get(BOB)
            return done is not None and done > digest_at + timedelta(hours=23)

        await eventually(next_time_done, what="the next digest time handled")
        await bot.say(BOB, "/help")
        assert len(news_to(bot, BOB, since)) == 1


async def test_a_digest_time_missed_while_the_bot_was_down_is_sent_once_at_start_up(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    async with running_bot(tmp_path, fake_telegram, feed_server, clock=clock) as bot:
        first = clock.now() + timedelta(minutes=10)
        second = clock.now() + timedelta(minutes=20)
        await bot.say(BOB, "/subscribe space")
        await bot.say(BOB, f"/digest {first:%H:%M} {second:%H:%M}")
        feed_server.serve("/space.xml", space_items(item("s-new", "Comet seen", hours_ago=0.1)))
        clock.advance(60)

        async def one_held() -> bool:
            return await held(bot, BOB) == 1

        await eventually(one_held)
    since = len(fake_telegram.calls())
    # Down over both digest times; started again, it sends one digest.
    clock.set(second + timedelta(hours=2))
    async with running_bot(
        tmp_path, fake_telegram, feed_server, clock=clock, wait_for_articles=False
    ) as bot:
        await news_arrives(bot, BOB, since)
        await bot.say(BOB, "/help")
        (digest,) = news_to(bot, BOB, since)
        assert "Comet seen" in str(digest.params["text"])


async def test_a_digest_sent_late_is_headed_by_its_due_date(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    digest_at = clock.now() + timedelta(minutes=10)
    if digest_at.time() == datetime.min.time():
        # Started again a minute short of a day later must be the next date.
        digest_at += timedelta(minutes=1)
    async with running_bot(tmp_path, fake_telegram, feed_server, clock=clock) as bot:
        await bot.say(BOB, "/subscribe space")
        await bot.say(BOB, f"/digest {digest_at:%H:%M}")
        feed_server.serve("/space.xml", space_items(item("s-late", "Comet seen", hours_ago=0.1)))
        clock.advance(60)

        async def one_held() -> bool:
            return await held(bot, BOB) == 1

        await eventually(one_held)
    since = len(fake_telegram.calls())
    # Down over the digest time until the next date, not yet at the next
    # digest time: the digest that goes out now is the one that was due.
    clock.set(digest_at + timedelta(days=1, minutes=-1))
    assert clock.now().date() != digest_at.date()
    async with running_bot(
        tmp_path, fake_telegram, feed_server, clock=clock, wait_for_articles=False
    ) as bot:
        await news_arrives(bot, BOB, since)
        await bot.say(BOB, "/help")
        (digest,) = news_to(bot, BOB, since)
        heading = check_telegram_html(str(digest.params["text"])).splitlines()[0]
        assert heading == f"Your digest, {digest_at.day} {digest_at:%B} {digest_at.year}"


async def test_quiet_hours_hold_cards_and_release_a_pile_as_one_digest_and_a_few_as_cards(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    async with running_bot(tmp_path, fake_telegram, feed_server, clock=clock) as bot:
        start, end = clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1)
        await bot.say(BOB, "/subscribe space")
        await bot.say(CAROL, "/subscribe science")
        reply = await bot.say(BOB, f"/quiet {start:%H:%M}-{end:%H:%M}")
        assert f"{start:%H:%M}–{end:%H:%M} (UTC)" in reply.text(BOB)
        await bot.say(CAROL, f"/quiet {start:%H:%M}-{end:%H:%M}")
        since = len(fake_telegram.calls())
        space = [item(f"q-{n}", f"Night launch {n}", hours_ago=0.01 * n) for n in range(7)]
        feed_server.serve("/space.xml", space_items(*space))
        science = [item(f"qs-{n}", f"Night paper {n}", hours_ago=0.01 * n) for n in range(3)]
        feed_server.serve("/science.xml", rss(*science))
        clock.advance(60)

        async def all_held() -> bool:
            return await held(bot, BOB) == 7 and await held(bot, CAROL) == 3

        await eventually(all_held, what="cards held in quiet hours")
        assert news_to(bot, BOB, since) == [] and news_to(bot, CAROL, since) == []

        clock.set(end.replace(second=0))
        sender(bot)

        async def released() -> bool:
            return len(news_to(bot, BOB, since)) == 1 and len(news_to(bot, CAROL, since)) == 3

        await eventually(released, what="quiet hours released")
        (pile,) = news_to(bot, BOB, since)
        text = str(pile.params["text"])
        assert text.startswith("<b>While it was quiet, ")
        assert all(f"Night launch {n}" in text for n in range(7))
        cards = [str(c.params["text"]) for c in news_to(bot, CAROL, since)]
        assert all("<a href=" not in card for card in cards)  # cards, not a digest
        assert sorted(f"Night paper {n}" in "".join(cards) for n in range(3)) == [True] * 3
        await bot.say(BOB, "/quiet off")
        assert (await bot.storage.chats.chat_settings(BOB)).quiet_hours is None


async def test_past_the_burst_cap_the_rest_of_the_hour_folds_into_one_message(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    async with running_bot(
        tmp_path, fake_telegram, feed_server, clock=clock, max_cards_per_hour=3
    ) as bot:
        await bot.say(BOB, "/subscribe space")
        since = len(fake_telegram.calls())
        burst = [item(f"b-{n}", f"Burst story {n}", hours_ago=0.01 * n) for n in range(8)]
        feed_server.serve("/space.xml", space_items(*burst))
        clock.advance(60)

        async def capped() -> bool:
            return len(news_to(bot, BOB, since)) == 3 and await held(bot, BOB) == 5

        await eventually(capped, what="three cards sent and five held")
        clock.advance(3601)
        sender(bot)

        async def folded() -> bool:
            return len(news_to(bot, BOB, since)) == 4

        await eventually(folded, what="the rest folded into one message")
        fold = str(news_to(bot, BOB, since)[-1].params["text"])
        assert fold.startswith("<b>5 more stories</b>")
        assert fold.count("<a href=") == 5
        assert await bot.storage.outbox.pending_count() == 0


async def test_a_long_digest_comes_in_parts_and_a_failed_send_is_retried_whole(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    async with running_bot(tmp_path, fake_telegram, feed_server, clock=clock) as bot:
        digest_at = clock.now() + timedelta(minutes=30)
        await bot.say(BOB, "/subscribe space science ai_robotics")
        await bot.say(BOB, f"/digest {digest_at:%H:%M}")
        since = len(fake_telegram.calls())
        long = "A very long headline about what happened today in the world of news " * 4

        def stories(prefix: str) -> list[str]:
            return [
                item(f"{prefix}-long-{n}", f"{prefix} {n}: {long}", hours_ago=0.01 * n)
                for n in range(12)
            ]

        feed_server.serve("/space.xml", space_items(*stories("space")))
        feed_server.serve("/science.xml", rss(*stories("science")))
        feed_server.serve("/robots.xml", rss(*stories("robots")))
        clock.advance(60)

        async def all_held() -> bool:
            return await held(bot, BOB) == 36

        await eventually(all_held, what="36 cards held")
        fake_telegram.fail_next("sendMessage", ApiError.server_error(), chat_id=BOB)
        clock.set(digest_at.replace(second=0))
        sender(bot)

        async def put_back() -> bool:
            # Recorded, with its retry time counted from the clock as it was.
            return bool(
                await bot.storage.db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE chat_id = ? AND status = 'pending' "
                    "AND error IS NOT NULL",
                    BOB,
                )
            )

        await eventually(put_back, what="the refused digest put back")
        assert [c.ok for c in news_to(bot, BOB, since)] == [False]
        clock.advance(60)  # past the retry's backoff
        sender(bot)

        async def in_parts() -> bool:
            return len([c for c in news_to(bot, BOB, since) if c.ok]) >= 2

        await eventually(in_parts, what="the digest in parts")

        async def all_sent() -> bool:
            return (await bot.storage.outbox.delivery_counts()).get("sent") == 36

        await eventually(all_sent, what="every card of the digest sent")
        parts = [str(c.params["text"]) for c in news_to(bot, BOB, since) if c.ok]
        assert len(parts) == 2
        assert parts[0].startswith("<b>Your digest, ") and not parts[1].startswith("<b>Your")
        assert sum(part.count("<a href=") for part in parts) == 30
        for part in parts:
            assert telegram_length(part) <= 4096
        # Split only because it had to be: the two would not fit in one.
        assert telegram_length(parts[0]) + telegram_length(parts[1]) > 4096
        assert "…and 2 more — /latest robots" not in "".join(parts)
        assert "…and 2 more — /latest ai_robotics" in "".join(parts)


async def test_a_digest_to_a_chat_that_blocked_the_bot_drops_its_cards_with_the_chat(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    clock = start_clock()
    async with running_bot(tmp_path, fake_telegram, feed_server, clock=clock) as bot:
        digest_at = clock.now() + timedelta(minutes=30)
        await bot.say(BOB, "/subscribe space")
        await bot.say(BOB, f"/digest {digest_at:%H:%M}")
        stories = [item(f"blk-{n}", f"Blocked story {n}", hours_ago=0.01 * n) for n in range(3)]
        feed_server.serve("/space.xml", space_items(*stories))
        clock.advance(60)

        async def all_held() -> bool:
            return await held(bot, BOB) == 3

        await eventually(all_held, what="three cards held")
        fake_telegram.fail_next("sendMessage", ApiError.blocked_by_user(), chat_id=BOB)
        clock.set(digest_at.replace(second=0))
        sender(bot)

        async def dropped() -> bool:
            counts = await bot.storage.outbox.delivery_counts()
            return counts == {"dropped": 3}

        await eventually(dropped, what="the digest's cards dropped")
        chat = await bot.storage.chats.get_chat(BOB)
        assert chat is not None and not chat.active
