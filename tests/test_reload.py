"""Reloading the configuration while the bot runs: SIGHUP and /reload.

The plan (what changed, what needs a restart) is pure and tested on its
own; the rest runs the whole bot in-process against the fake Bot API and the
loopback feed server, with its configuration in a file the tests rewrite."""

from __future__ import annotations

import copy
import logging
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config, parse_config
from bot.errors import ConfigError
from bot.reload import CurrentConfig, plan_reload
from bot.runtime import Runtime
from bot.telegram.app import NewsbotApplication
from tests.bot_harness import ALICE, BOB, BotHarness, eventually, item, rss
from tests.config_files import write_toml
from tests.fake_telegram import FakeTelegram
from tests.faults import BotProcess, db_count, write_config
from tests.faults import eventually as faults_eventually
from tests.feed_server import FeedServer

BASE: dict[str, Any] = {
    "polling": {"interval": 1, "jitter": 0, "parse_workers": 1},
    "delivery": {"private_chat_interval": 0.2, "group_chat_interval": 0.2},
    "categories": [{"id": "space", "title": "Space"}],
    "feeds": [{"url": "https://example.org/space.xml", "categories": ["space"]}],
}


# -- the plan (pure) -----------------------------------------------------------


def _config(**changes: Any) -> Any:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        data[key] = value
    return parse_config(data)


def test_an_identical_file_changes_nothing() -> None:
    plan = plan_reload(_config(), _config())
    assert not plan.changed
    assert plan.summary() == ["nothing changed"]


def test_a_new_category_and_feed_are_listed_by_id_and_count() -> None:
    loaded = _config(
        categories=[{"id": "space", "title": "Space"}, {"id": "tech", "title": "Tech"}],
        feeds=[{"url": "https://example.org/tech.xml", "categories": ["tech"]}],
    )
    plan = plan_reload(_config(), loaded)
    assert plan.categories_added == ("tech",)
    assert plan.feeds_added == ("https://example.org/tech.xml",)
    assert plan.feeds_removed == ("https://example.org/space.xml",)
    assert plan.config.feeds == loaded.feeds
    assert "categories added: tech" in plan.summary()


def test_settings_that_need_a_restart_keep_their_running_values() -> None:
    running = _config(
        telegram={"token": "1:a", "webhook_port": 8443, "admins": [1]},
        storage={"path": "/data/a.db"},
        metrics={"listen": "127.0.0.1:9000"},
    )
    loaded = _config(
        telegram={"token": "1:b", "webhook_port": 9443, "admins": [1, 2]},
        storage={"path": "/data/b.db"},
        metrics={"listen": "127.0.0.1:9001"},
        polling={"interval": 5, "jitter": 0, "parse_workers": 2},
    )
    plan = plan_reload(running, loaded)
    assert set(plan.needs_restart) == {
        "telegram.token",
        "telegram.webhook_port",
        "storage.path",
        "metrics.listen",
        "polling.parse_workers",
    }
    assert set(plan.settings) == {"telegram.admins", "polling.interval"}
    assert plan.config.telegram.token == "1:a"
    assert plan.config.telegram.webhook_port == 8443
    assert plan.config.storage.path == "/data/a.db"
    assert plan.config.metrics.listen == "127.0.0.1:9000"
    assert plan.config.polling.parse_workers == 1
    assert plan.config.polling.interval == 5
    assert plan.config.telegram.admins == [1, 2]
    # Keys are named, values never: a value may be a secret.
    text = "\n".join(plan.summary())
    assert "needs a restart" in text and "1:b" not in text and "9443" not in text


def test_the_current_config_is_replaced_whole() -> None:
    current = CurrentConfig(_config())
    assert CurrentConfig.of(current) is current
    loaded = _config(categories=[{"id": "tech", "title": "Tech"}], feeds=[])
    current.replace(loaded)
    assert current.config is loaded and current.generation == 1


# -- the running bot ----------------------------------------------------------


def _file_config(fake: FakeTelegram, feeds: FeedServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "telegram": {"token": fake.token, "base_url": fake.base_url, "admins": [ALICE]},
        "storage": {"path": str(tmp_path / "bot.db")},
        "polling": {"interval": 1, "jitter": 0, "parse_workers": 1},
        "delivery": {"private_chat_interval": 0.2, "group_chat_interval": 0.2},
        "alerts": {"enabled": False},
        "categories": [{"id": "space", "title": "Space"}],
        "feeds": [{"url": feeds.url("/space.xml"), "categories": ["space"]}],
    }


def _with_tech(data: dict[str, Any], feeds: FeedServer) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["categories"].append({"id": "tech", "title": "Tech"})
    data["feeds"].append({"url": feeds.url("/tech.xml"), "categories": ["tech"]})
    return data


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@asynccontextmanager
async def bot_from_file(
    tmp_path: Path, fake: FakeTelegram, feeds: FeedServer, data: dict[str, Any]
) -> AsyncIterator[tuple[BotHarness, Path, _Records]]:
    feeds.serve("/space.xml", rss(item("space-1", "Rover lands"), title="Space Daily"))
    path = write_toml(tmp_path / "config.toml", data)
    app = NewsbotApplication(load_config(path), config_path=path)
    harness = BotHarness(fake, feeds, app)
    records = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    try:
        async with app.running(poll_interval=0.0):

            async def first_feed_stored() -> bool:
                return await harness.articles() >= 1

            await eventually(first_feed_stored)
            yield harness, path, records
    finally:
        root.removeHandler(records)
        root.setLevel(level)


async def _tech_feed_delivers_to_bob(harness: BotHarness, feeds: FeedServer, key: str) -> None:
    """A new story in the tech feed reaches BOB, who follows tech."""
    sent_before = len(harness.fake.calls("sendMessage", BOB))
    feeds.serve(
        "/tech.xml",
        rss(item(key, f"Chip story {key}"), item("tech-1", "Chip news"), title="Tech Today"),
    )

    async def card_sent() -> bool:
        return any(
            f"Chip story {key}" in str(c.params.get("text"))
            for c in harness.fake.calls("sendMessage", BOB)[sent_before:]
        )

    await eventually(card_sent, what=f"the card of {key} to the tech subscriber")


async def test_sighup_adds_a_category_and_a_feed_whose_cards_reach_its_subscriber(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.serve("/tech.xml", rss(item("tech-1", "Chip news"), title="Tech Today"))
    data = _file_config(fake_telegram, feed_server, tmp_path)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, logs):
        unknown = await bot.say(BOB, "/subscribe tech")
        assert "tech" in unknown.texts(BOB)[0].lower() and bot.app.config.category("tech") is None
        assert feed_server.hits("/tech.xml") == 0

        write_toml(path, _with_tech(data, feed_server))
        os.kill(os.getpid(), signal.SIGHUP)

        async def reloaded() -> bool:
            return bot.app.current.generation == 1

        await eventually(reloaded, what="the reload")
        assert any("config: reloaded: categories added: tech" in line for line in logs.lines)

        async def tech_fetched() -> bool:
            return await bot.articles() == 2

        await eventually(tech_fetched, what="the new feed fetched from the feed server")
        subscribed = await bot.say(BOB, "/subscribe tech")
        assert "Subscribed" in subscribed.texts(BOB)[0]
        await _tech_feed_delivers_to_bob(bot, feed_server, "tech-2")


async def test_a_broken_file_on_sighup_is_refused_and_the_running_config_keeps_working(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.serve("/tech.xml", rss(item("tech-1", "Chip news"), title="Tech Today"))
    data = _with_tech(_file_config(fake_telegram, feed_server, tmp_path), feed_server)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, logs):

        async def both_fetched() -> bool:
            return await bot.articles() == 2

        await eventually(both_fetched)
        await bot.say(BOB, "/subscribe tech")
        broken = copy.deepcopy(data)
        broken["feeds"][1]["categories"] = ["no_such_category"]
        write_toml(path, broken)
        os.kill(os.getpid(), signal.SIGHUP)

        def refusal() -> list[str]:
            return [line for line in logs.lines if "reload refused" in line]

        async def refused() -> bool:
            return bool(refusal())

        await eventually(refused, what="the refusal in the log")
        assert refusal()[0].startswith("ERROR ")
        assert "feeds[1].categories[0]: unknown category id 'no_such_category'" in refusal()[0]
        assert bot.app.current.generation == 0
        assert bot.app.config.category("tech") is not None
        await _tech_feed_delivers_to_bob(bot, feed_server, "tech-2")


async def test_reload_by_an_operator_applies_the_file_and_says_what_changed(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.serve("/tech.xml", rss(item("tech-1", "Chip news"), title="Tech Today"))
    data = _file_config(fake_telegram, feed_server, tmp_path)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, _):
        rewritten = _with_tech(data, feed_server)
        # The space feed leaves the file; the database pool size cannot
        # change without a restart.
        del rewritten["feeds"][0]
        rewritten["storage"]["pool_size"] = 3
        write_toml(path, rewritten)
        answer = (await bot.say(ALICE, "/reload")).text(ALICE)
        assert answer.startswith("Configuration reloaded.")
        assert "Categories added: tech" in answer
        assert "1 feed added" in answer
        assert "1 feed removed (no longer polled, its articles kept)" in answer
        assert "Needs a restart (the running values are kept): storage.pool_size" in answer
        assert bot.app.config.storage.pool_size == 10
        listed = {f.url for f in await bot.storage.feeds.feed_health()}
        assert listed == {feed_server.url("/tech.xml")}
        # The dropped feed's article stays findable.
        assert "Rover lands" in (await bot.say(ALICE, "/search rover")).texts(ALICE)[0]

        categories = (await bot.say(BOB, "/categories")).texts(BOB)[0]
        assert "Tech" in categories


async def test_reload_by_a_non_operator_is_refused_and_changes_nothing(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    data = _file_config(fake_telegram, feed_server, tmp_path)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, _):
        write_toml(path, _with_tech(data, feed_server))
        answer = (await bot.say(BOB, "/reload")).text(BOB)
        assert answer == "/reload is for the bot's operators."
        assert bot.app.current.generation == 0
        assert bot.app.config.category("tech") is None


async def test_reload_of_a_broken_file_replies_with_the_error_and_keeps_the_running_config(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    data = _file_config(fake_telegram, feed_server, tmp_path)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, _):
        path.write_text(path.read_text() + "[polling]\ninterval = 'soon'\n")
        answer = (await bot.say(ALICE, "/reload")).text(ALICE)
        assert answer.startswith("The configuration was not reloaded; the running one is kept.")
        assert "TOML syntax error" in answer or "polling" in answer
        assert bot.app.current.generation == 0
        assert (await bot.say(ALICE, "/latest")).texts(ALICE)


@pytest.mark.parametrize("admins", [[ALICE], [ALICE, BOB]])
async def test_a_reloaded_admins_list_decides_who_may_reload_next(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer, admins: list[int]
) -> None:
    data = _file_config(fake_telegram, feed_server, tmp_path)
    async with bot_from_file(tmp_path, fake_telegram, feed_server, data) as (bot, path, _):
        rewritten = copy.deepcopy(data)
        rewritten["telegram"]["admins"] = admins
        write_toml(path, rewritten)
        assert (await bot.say(ALICE, "/reload")).text(ALICE).startswith("Configuration reloaded")
        answer = (await bot.say(BOB, "/reload")).text(BOB)
        assert answer.startswith("Configuration reloaded") == (BOB in admins)


@pytest.mark.slow
async def test_sighup_to_a_running_newsbot_process_reloads_its_file_and_refuses_a_broken_one(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    processes: list[BotProcess],
) -> None:
    feed_server.serve("/a.xml", rss(item("a-1", "First story")))
    feed_server.serve("/b.xml", rss(item("b-1", "Second story")))
    config = write_config(tmp_path, fake_telegram, [feed_server.url("/a.xml")])
    db = tmp_path / "bot.db"
    bot = BotProcess(config, fake_telegram.token, tmp_path / "bot.log").start()
    processes.append(bot)

    def articles() -> int:
        try:
            return db_count(db, "SELECT count(*) FROM articles")
        except sqlite3.OperationalError:
            return 0  # the bot has not created its database yet

    await faults_eventually(lambda: articles() == 1, what="the first feed stored")

    write_config(tmp_path, fake_telegram, [feed_server.url("/a.xml"), feed_server.url("/b.xml")])
    assert bot.process is not None
    bot.process.send_signal(signal.SIGHUP)
    await faults_eventually(lambda: articles() == 2, what="the added feed stored")
    assert "config: reloaded: feeds added: 1" in bot.log()

    config.write_text(config.read_text() + "[[feeds]]\nurl = 'not a url'\n")
    bot.process.send_signal(signal.SIGHUP)
    await faults_eventually(lambda: "reload refused" in bot.log(), what="the refusal")
    assert "feeds[2].url: not an http(s) URL" in bot.log()
    hits = feed_server.hits("/b.xml")
    await faults_eventually(lambda: feed_server.hits("/b.xml") > hits, what="polling goes on")
    assert bot.running
    assert await bot.terminate() == 0


def _storage_section(database_url: str) -> dict[str, Any]:
    if database_url.startswith("postgresql://"):
        return {"url": database_url}
    return {"path": database_url.removeprefix("sqlite://")}


async def test_a_runtime_reload_syncs_the_feeds_table_and_keeps_runtime_feeds(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    """What every process does on its own SIGHUP, on either backend."""
    feed_server.serve("/a.xml", rss(item("a-1", "First story")))
    feed_server.serve("/b.xml", rss(item("b-1", "Second story")))
    data: dict[str, Any] = {
        "storage": _storage_section(database_url),
        "polling": {"interval": 600, "jitter": 0, "parse_workers": 1},
        "categories": [{"id": "space", "title": "Space"}],
        "feeds": [{"url": feed_server.url("/a.xml"), "categories": ["space"]}],
    }
    path = write_toml(tmp_path / "config.toml", data)
    runtime = await Runtime.open(load_config(path))
    try:
        await runtime.storage.feeds.add_runtime_feeds(
            [("https://runtime.example/feed.xml", ["space"])], runtime.clock.now()
        )
        await runtime.poller.run_round(all_feeds=False)
        data = copy.deepcopy(data)
        data["feeds"] = [{"url": feed_server.url("/b.xml"), "categories": ["space"]}]
        write_toml(path, data)
        plan = await runtime.reload(path)
        assert plan.feeds_added == (feed_server.url("/b.xml"),)
        assert plan.feeds_removed == (feed_server.url("/a.xml"),)
        listed = {f.url: f.origin for f in await runtime.storage.feeds.feed_health()}
        assert listed == {
            "https://runtime.example/feed.xml": "runtime",
            feed_server.url("/b.xml"): "config",
        }
        assert await runtime.storage.articles.article_count() == 1  # /a.xml's story stays
        broken = copy.deepcopy(data)
        broken["feeds"][0]["categories"] = ["nowhere"]
        write_toml(path, broken)
        with pytest.raises(ConfigError, match="unknown category id 'nowhere'"):
            await runtime.reload(path)
        assert runtime.config.feeds[0].categories == ["space"]
    finally:
        await runtime.close()
