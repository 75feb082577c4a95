"""The ``newsbot`` command line against a loopback feed server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.fake_telegram import FakeTelegram
from tests.faults import write_config
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS

ARS = "wordpress-news-arstechnica.rss.xml"
OREN = "rss-windows1251-news-oren.rss.xml"


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


def test_health_names_suspended_chats_and_their_waiting_cards(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    with closing(sqlite3.connect(tmp_path / "newsbot.db")) as db, db:
        db.execute(
            "INSERT INTO chats (id, type, title, username, created_at, updated_at, "
            "suspended_reason) VALUES (-100777, 'channel', 'Night Desk', 'nightdesk', 0, 0, "
            "'Need administrator rights in the channel chat')"
        )
        db.execute(
            "INSERT INTO deliveries (article_id, chat_id, next_attempt_at, created_at) "
            "SELECT id, -100777, 0, 0 FROM articles LIMIT 2"
        )
    code, out, _ = run(capsys, config_path, "health")
    assert code == 0
    assert (
        "suspended chat -100777 (channel, @nightdesk): Need administrator rights in the "
        "channel chat; 2 cards wait until the bot may post there again"
    ) in out


def test_check_config_summarises(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, config_path, "check-config")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "configuration OK: 2 categories, 3 feeds"
    assert "  polling every 600s" in lines
    # One feed is "1 feed" (ngettext), not "1 feeds".
    assert "  - gaming: Gaming (1 feed, 0 rules)" in lines
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


def feeds_table(db: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as connection:
        return list(connection.execute("SELECT * FROM feeds ORDER BY id"))


def feed_states(db: Path) -> dict[str, tuple[int, int]]:
    """url -> (configured, disabled)"""
    with closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT url, configured, disabled FROM feeds")
        return {url: (configured, disabled) for url, configured, disabled in rows}


def other_config(tmp_path: Path, feed_server: FeedServer, *paths: str) -> Path:
    """A second configuration on the same database, with other feeds."""
    feeds = "".join(f'\n[[feeds]]\nurl = "{feed_server.url(p)}"\n' for p in paths)
    path = tmp_path / "other.toml"
    path.write_text(
        f'[storage]\npath = "{tmp_path / "newsbot.db"}"\n[polling]\nparse_workers = 1\n{feeds}',
        encoding="utf-8",
    )
    return path


def test_read_only_commands_never_change_the_feeds_table(
    tmp_path: Path,
    config_path: Path,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed_server.serve("/gone.xml", b"gone", status=410, content_type="text/plain")
    with config_path.open("a", encoding="utf-8") as file:
        file.write(f'\n[[feeds]]\nurl = "{feed_server.url("/gone.xml")}"\n')
    run(capsys, config_path, "poll", "--once", "--json")
    db = tmp_path / "newsbot.db"
    before = feeds_table(db)
    assert feed_states(db)[feed_server.url("/gone.xml")] == (1, 1)

    other = other_config(tmp_path, feed_server, "/gone.xml", "/elsewhere.xml")
    for command in (
        ["latest"],
        ["latest", "--limit", "3"],
        ["search", "dreadwolf"],
        ["health"],
        ["check-config"],
        ["healthcheck"],
        ["feeds", "list"],
    ):
        code, _, err = run(capsys, other, *command)
        assert code in (0, 1), (command, err)
        assert feeds_table(db) == before, command


def test_a_feed_disabled_by_410_stays_disabled_until_the_operator_resumes_it(
    tmp_path: Path,
    config_path: Path,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed_server.serve("/gone.xml", b"gone", status=410, content_type="text/plain")
    with config_path.open("a", encoding="utf-8") as file:
        file.write(f'\n[[feeds]]\nurl = "{feed_server.url("/gone.xml")}"\n')
    gone = feed_server.url("/gone.xml")
    db = tmp_path / "newsbot.db"
    code, out, _ = run(capsys, config_path, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 4)

    # Neither another poll nor an explicit sync (nor a restart, which syncs)
    # brings it back: 410 means gone for good until the operator says otherwise.
    code, out, err = run(capsys, config_path, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 3)
    assert f"feeds: {gone} stays disabled (fetch: HTTP 410 Gone" in err
    assert "re-enable with `newsbot feeds resume " in err
    code, _, _ = run(capsys, config_path, "feeds", "sync")
    assert code == 0
    assert feed_states(db)[gone] == (1, 1)

    code, out, _ = run(capsys, config_path, "feeds", "list")
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.endswith(f" {gone}")]
    feed_id = line.split()[0]
    assert line.split()[1] == "disabled"

    code, out, _ = run(capsys, config_path, "health")
    assert code == 0
    assert f"newsbot feeds resume {feed_id}" in out

    code, out, err = run(capsys, config_path, "feeds", "resume", feed_id)
    assert (code, err) == (0, "")
    assert gone in out
    assert feed_states(db)[gone] == (1, 0)
    feed_server.serve_file("/gone.xml", REAL_FEEDS / ARS)
    code, out, _ = run(capsys, config_path, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 4)
    code, out, _ = run(capsys, config_path, "feeds", "list")
    (line,) = [line for line in out.splitlines() if line.endswith(f" {gone}")]
    assert line.split()[1] == "ok"


def test_feeds_resume_accepts_a_url_and_makes_the_feed_due_now(
    tmp_path: Path,
    config_path: Path,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    ars = feed_server.url("/ars.xml")

    def next_check() -> int:
        with closing(sqlite3.connect(tmp_path / "newsbot.db")) as connection:
            (at,) = connection.execute(
                "SELECT next_check_at FROM feeds WHERE url = ?", (ars,)
            ).fetchone()
        return int(at)

    resumed_at = int(time.time())
    assert next_check() > resumed_at  # just fetched: the next check is ten minutes away
    code, out, err = run(capsys, config_path, "feeds", "resume", ars)
    assert (code, err) == (0, "")
    assert out.startswith(f"resumed feed 1 ({ars})")
    assert resumed_at <= next_check() <= time.time()


@pytest.mark.parametrize("feed", ["999", "https://unknown.example/feed.xml", "ars"])
def test_feeds_resume_of_an_unknown_feed_exits_2_with_one_line(
    config_path: Path, capsys: pytest.CaptureFixture[str], feed: str
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    code, out, err = run(capsys, config_path, "feeds", "resume", feed)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"newsbot: no feed {feed!r} in the database (see `newsbot feeds list`)"
    ]


def test_feeds_sync_makes_the_database_follow_the_configuration(
    tmp_path: Path,
    config_path: Path,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, config_path, "poll", "--once", "--json")
    other = other_config(tmp_path, feed_server, "/ars.xml", "/new.xml")
    code, out, err = run(capsys, other, "feeds", "sync")
    assert (code, err) == (0, "")
    db = tmp_path / "newsbot.db"
    assert feed_states(db) == {
        feed_server.url("/ars.xml"): (1, 0),
        feed_server.url("/new.xml"): (1, 0),
        feed_server.url("/oren.xml"): (0, 0),
        feed_server.url("/broken.xml"): (0, 0),
    }
    assert out.splitlines()[0] == f"2 feeds in {other}: 1 added, 2 no longer configured"
    code, out, _ = run(capsys, other, "feeds", "list")
    states = {line.split()[-1]: line.split()[1] for line in out.splitlines()}
    assert states[feed_server.url("/oren.xml")] == "removed"
    assert states[feed_server.url("/new.xml")] == "new"


def test_latest_and_search_on_an_empty_database_say_how_to_get_articles(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["latest"], ["latest", "--category", "gaming"], ["search", "mars"]):
        code, out, err = run(capsys, config_path, *command)
        assert (code, err) == (0, ""), command
        assert out.splitlines() == [
            f"no articles yet in {tmp_path / 'newsbot.db'}: `newsbot poll --once` fetches "
            "the configured feeds now (a running `newsbot run` does it by itself)"
        ], command


def test_latest_in_a_category_without_articles_says_so(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path.write_text(
        config_path.read_text(encoding="utf-8")
        + '\n[[categories]]\nid = "quiet"\ntitle = "Quiet"\n',
        encoding="utf-8",
    )
    run(capsys, config_path, "poll", "--once", "--json")
    code, out, _ = run(capsys, config_path, "latest", "--category", "quiet")
    assert (code, out) == (0, "no articles in quiet yet\n")


def test_a_relative_storage_path_resolves_next_to_the_config_file(
    tmp_path: Path,
    feed_server: FeedServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed_server.serve_file("/ars.xml", REAL_FEEDS / ARS)
    folder = tmp_path / "bot"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(
        '[storage]\npath = "data/news.db"\n[polling]\nparse_workers = 1\n'
        f'[[feeds]]\nurl = "{feed_server.url("/ars.xml")}"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(folder)
    code, _, _ = run(capsys, Path("config.toml"), "poll", "--once", "--json")
    assert code == 0
    monkeypatch.chdir(elsewhere)
    code, out, _ = run(capsys, config, "latest", "--limit", "1")
    assert code == 0
    assert "Dragon Age: Dreadwolf" in out
    code, out, _ = run(capsys, config, "check-config")
    assert f"  database: {folder / 'data' / 'news.db'}" in out.splitlines()
    assert list(elsewhere.iterdir()) == []
    assert (folder / "data" / "news.db").is_file()


def test_newsbot_config_in_the_environment_is_the_default_config(
    tmp_path: Path,
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path / "..")
    monkeypatch.setenv("NEWSBOT_CONFIG", str(config_path))
    code = main(["--log-level", "WARNING", "check-config"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "configuration OK: 2 categories, 3 feeds"
    # An explicit --config still wins, before or after the command.
    other = tmp_path / "other.toml"
    other.write_text("", encoding="utf-8")
    for argv in (["--config", str(other), "check-config"], ["check-config", "-c", str(other)]):
        code = main(["--log-level", "WARNING", *argv])
        out, _ = capsys.readouterr()
        assert (code, out.splitlines()[0]) == (0, "configuration OK: 0 categories, 0 feeds")
    monkeypatch.setenv("NEWSBOT_CONFIG", str(tmp_path / "missing.toml"))
    code = main(["--log-level", "WARNING", "health"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [
        f"newsbot: config: {tmp_path / 'missing.toml'}: file not found "
        "(copy config.example.toml to start)"
    ]


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


def test_starting_the_cli_does_not_import_what_only_admin_commands_use() -> None:
    """Every ``poll --once`` (a cron job) pays for each module imported at
    start-up; discovery, OPML, copying and the health check wait for their
    commands."""
    code = (
        "import sys, bot.cli.main; "
        "print(sorted(m for m in ('bot.feed_admin', 'bot.discover', 'bot.opml', "
        "'bot.storage.copy', 'bot.health', 'telegram') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
