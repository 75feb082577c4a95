"""The ``newsbot`` command line against a loopback feed server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.fake_telegram import FakeTelegram
from tests.faults import write_config
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS

ARS = "wordpress-news-arstechnica.rss.xml"
OREN = "rss-windows1251-news-oren.rss.xml"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    # main() installs a root log handler bound to the (captured) stderr.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config_path(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.serve_file("/ars.xml", REAL_FEEDS / ARS)
    feed_server.serve_file("/oren.xml", REAL_FEEDS / OREN, content_type="application/xml")
    feed_server.serve("/broken.xml", b"<html><body>moved</body></html>", content_type="text/html")
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "newsbot.db"}"

[polling]
interval = "10m"
parse_workers = 1
jitter = 0

[[categories]]
id = "gaming"
title = "Gaming"

[[categories]]
id = "russia"
title = "Russia"
keywords = ["в Оренбурге", "Орске"]

[[feeds]]
url = "{feed_server.url("/ars.xml")}"
name = "Ars"
categories = ["gaming"]

[[feeds]]
url = "{feed_server.url("/oren.xml")}"

[[feeds]]
url = "{feed_server.url("/broken.xml")}"
""",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "--log-level", "WARNING", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_poll_once_json_prints_one_object(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, config_path, "poll", "--once", "--json")
    assert code == 0
    (line,) = out.splitlines()
    summary = json.loads(line)
    assert {
        "feeds",
        "fetched",
        "not_modified",
        "unchanged",
        "failed",
        "new_articles",
        "seconds",
    } <= set(summary)
    assert summary["feeds"] == 3
    assert summary["fetched"] == 2
    assert summary["failed"] == 1
    assert summary["new_articles"] == 30
    assert isinstance(summary["seconds"], float | int)

    code, out, _ = run(capsys, config_path, "poll", "--once", "--json")
    again = json.loads(out)
    assert (again["unchanged"], again["new_articles"], again["failed"]) == (2, 0, 1)


def test_poll_once_prints_a_line_per_feed_and_a_summary(
    config_path: Path, capsys: pytest.CaptureFixture[str], feed_server: FeedServer
) -> None:
    code, out, _ = run(capsys, config_path, "poll", "--once")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    expected = {
        "/ars.xml": ("new", "20 new"),
        "/oren.xml": ("new", "10 new"),
        "/broken.xml": ("failed", "parse: not an RSS, Atom or RDF feed"),
    }
    for path, (status, detail) in expected.items():
        (line,) = [line for line in lines[:3] if f" {feed_server.url(path)} " in line]
        assert line.startswith(status) and line.endswith(detail), line
    assert lines[3].startswith("3 feeds: 2 fetched, 0 not modified, 0 unchanged, 1 failed; 30 new")


def test_latest_by_category_prints_title_source_time_and_url(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    code, out, _ = run(capsys, config_path, "latest", "--category", "gaming", "--limit", "2")
    assert code == 0
    assert out.splitlines() == [
        "2023-12-04 20:25  New teaser reminds us that Dragon Age: Dreadwolf still exists — Ars",
        f"{'':18}https://arstechnica.com/?p=1988420",
        "2023-12-04 20:16  Judge: Amazon “cannot claim shock” that bathroom spycams were "
        "used as advertised — Ars",
        f"{'':18}https://arstechnica.com/?p=1988382",
    ]

    # Keywords match Cyrillic phrases; the source is the feed's own title.
    code, out, _ = run(capsys, config_path, "latest", "--category", "russia")
    assert code == 0
    source = "Новости Оренбурга и области / Раздел Новости"
    assert out.splitlines() == [
        f"2014-01-22 14:25  ЧОПовцы в Оренбурге избили молодого человека — {source}",
        f"{'':18}http://www.oren.ru/news/2743420/",
        f"2014-01-22 13:01  В Орске граждан эвакуировали с железнодорожного вокзала — {source}",
        f"{'':18}http://www.oren.ru/news/2743411/",
    ]


def test_latest_with_an_unknown_category_exits_2(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, config_path, "latest", "--category", "sports")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "newsbot: config: unknown category 'sports' (known: gaming, russia)"
    ]


def test_search_prints_matches_and_says_when_there_are_none(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    code, out, _ = run(capsys, config_path, "search", "dreadwolf")
    assert code == 0
    assert out.splitlines() == [
        "2023-12-04 20:25  New teaser reminds us that Dragon Age: Dreadwolf still exists — Ars",
        f"{'':18}https://arstechnica.com/?p=1988420",
    ]
    code, out, _ = run(capsys, config_path, "search", "C++", "AND", '"(')
    assert code == 0
    code, out, _ = run(capsys, config_path, "search", "zzzqqq")
    assert (code, out) == (0, "no matches\n")


def test_health_shows_each_feed(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    code, out, _ = run(capsys, config_path, "health")
    assert code == 0
    assert "ok           20 articles" in out
    assert "failing       0 articles  last ok never" in out
    assert "1 errors: parse: not an RSS, Atom or RDF feed" in out


def test_check_config_summarises(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, config_path, "check-config")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "configuration OK: 2 categories, 3 feeds"
    assert "  polling every 600s" in lines
    assert "  - gaming: Gaming (1 feeds, 0 rules)" in lines
    assert "  - russia: Russia (0 feeds, 2 rules)" in lines
    assert err == ""


def test_an_unusable_database_path_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{tmp_path}"\n', encoding="utf-8")  # a directory
    code, out, err = run(capsys, config, "latest")
    assert (code, out) == (1, "")
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"newsbot: storage: cannot open {tmp_path}: unable to open database file"
    )


def test_a_rejected_token_exits_2_with_one_line(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, fake_telegram, ["http://127.0.0.1:9/feed.xml"])
    monkeypatch.setenv("NEWSBOT_TOKEN", "7099999999:AAHsomeOtherRevokedTokenValue_zyxwvu1")

    code, out, err = run(capsys, config, "run")

    assert (code, out) == (2, "")
    # (The test configuration's short polling interval earns a config warning.)
    assert [line for line in err.splitlines() if " WARNING bot.config: " not in line] == [
        "newsbot: telegram: the bot token was rejected (check NEWSBOT_TOKEN or [telegram] token)"
    ]
