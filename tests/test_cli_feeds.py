"""``newsbot feeds add/remove/pause/resume/check/import/export/list --json``:
runtime feeds from the command line, against loopback feeds."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.opml import parse_opml
from tests.feed_server import FeedServer
from tests.support import REAL_FEED_FILES, REAL_FEEDS

ARS = "wordpress-news-arstechnica.rss.xml"
# Another feed's articles: two feeds with the same stories share them.
OTHER = "rss-windows1251-news-oren.rss.xml"

CATEGORIES = """
[[categories]]
id = "gaming"
title = "Gaming"
aliases = ["Games"]

[[categories]]
id = "space"
title = "Space and Astronomy"

[[categories]]
id = "tech"
title = "Tech"
"""


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# The runtime feeds of these tests are on loopback, which only the operator's
# say-so allows (test_netguard covers the refusal).
TRUST_LOOPBACK = "[security]\nallow_private_addresses = true\n"


def write_config(path: Path, db: Path, feeds: str = "", extra: str = TRUST_LOOPBACK) -> Path:
    path.write_text(
        f'[storage]\npath = "{db}"\n[polling]\nparse_workers = 1\njitter = 0\n'
        f"{extra}\n{CATEGORIES}\n{feeds}",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.serve_file("/ars.xml", REAL_FEEDS / ARS)
    feed_server.serve_file("/runtime.xml", REAL_FEEDS / OTHER, content_type="application/xml")
    feeds = f'[[feeds]]\nurl = "{feed_server.url("/ars.xml")}"\ncategories = ["gaming"]\n'
    return write_config(tmp_path / "config.toml", tmp_path / "newsbot.db", feeds)


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "--log-level", "WARNING", *args])
    out, err = capsys.readouterr()
    return code, out, err


def listed(capsys: pytest.CaptureFixture[str], config: Path) -> list[dict[str, object]]:
    code, out, _ = run(capsys, config, "feeds", "list", "--json")
    assert code == 0
    feeds: list[dict[str, object]] = json.loads(out)
    return feeds


def test_feeds_add_lists_a_runtime_feed_that_the_config_sync_leaves_alone(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, config, "feeds", "sync")[0] == 0
    url = feed_server.url("/runtime.xml")
    code, out, err = run(capsys, config, "feeds", "add", url, "--category", "tech")
    assert (code, err) == (0, "")
    # What was found (fetched and parsed), then what was added.
    assert out.startswith(f"found {url}: 'Новости Оренбурга и области / Раздел Новости', 10 items")
    assert out.splitlines()[-1].startswith("added feed 2 (") and "in tech" in out
    # The config file drops its own feed: the runtime one is still polled.
    empty = write_config(config.parent / "empty.toml", config.parent / "newsbot.db")
    assert run(capsys, empty, "feeds", "sync")[0] == 0
    feeds = {f["url"]: f for f in listed(capsys, config)}
    assert feeds[url]["origin"] == "runtime"
    assert feeds[url]["state"] == "new" and feeds[url]["categories"] == ["tech"]
    assert feeds[feed_server.url("/ars.xml")]["state"] == "removed"
    code, out, _ = run(capsys, empty, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 1)
    assert feed_server.hits("/runtime.xml") == 2  # once by `feeds add`, once polled
    code, out, _ = run(capsys, config, "feeds", "add", url)
    assert (code, out) == (0, f"feed 2 ({url}) is already listed (runtime); nothing changed\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "https://x.example/feed", "--category", "sports"], "unknown category 'sports'"),
        (["add", "ftp://x.example/feed"], "not an http(s) URL: 'ftp://x.example/feed'"),
        (["add", "not a url"], "not an http(s) URL: 'not a url'"),
        (["add", "http://x.example:99999/"], "not a valid URL"),
        (["remove", "42"], "no feed '42' in the database"),
        (["pause", "https://nowhere.example/"], "no feed 'https://nowhere.example/'"),
        (["check", "42"], "no feed '42' in the database"),
        (["import", "/nonexistent/file.opml"], "cannot read /nonexistent/file.opml"),
    ],
)
def test_feeds_commands_with_bad_input_exit_2_with_one_line(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, config, "feeds", *args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and message in err, err


def test_feeds_remove_keeps_the_articles_and_refuses_a_config_feed(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.url("/runtime.xml")
    assert run(capsys, config, "feeds", "add", url)[0] == 0
    assert run(capsys, config, "poll", "--once")[0] == 0

    def stored() -> int:
        with sqlite3.connect(config.parent / "newsbot.db") as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM articles JOIN feeds ON feeds.id = feed_id "
                "WHERE feeds.url = ?",
                (url,),
            ).fetchone()
        return int(count)

    before = stored()
    assert before > 0
    code, out, _ = run(capsys, config, "feeds", "remove", url)
    assert code == 0
    assert f"no longer polled; its {before} stored articles are kept" in out
    assert stored() == before
    states = {f["url"]: f["state"] for f in listed(capsys, config)}
    assert states[url] == "removed"
    code, _, err = run(capsys, config, "feeds", "remove", feed_server.url("/ars.xml"))
    assert code == 2 and "is in the configuration file; remove it there" in err


def test_feeds_pause_stops_polling_until_resume(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ars = feed_server.url("/ars.xml")
    assert run(capsys, config, "feeds", "sync")[0] == 0
    code, out, _ = run(capsys, config, "feeds", "pause", ars)
    assert (code, out) == (0, f"paused feed 1 ({ars}): not polled until `newsbot feeds resume 1`\n")
    code, out, _ = run(capsys, config, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 0)
    assert [f["state"] for f in listed(capsys, config)] == ["paused"]
    assert run(capsys, config, "feeds", "resume", "1")[0] == 0
    code, out, _ = run(capsys, config, "poll", "--once", "--json")
    assert (code, json.loads(out)["feeds"]) == (0, 1)


def test_feeds_check_fetches_one_feed_now_and_prints_the_outcome(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.serve("/broken.xml", b"<html>no feed</html>", content_type="text/html")
    assert run(capsys, config, "feeds", "sync")[0] == 0
    code, _, err = run(capsys, config, "feeds", "add", feed_server.url("/broken.xml"))
    assert code == 1 and "no feed found at" in err
    add = ["feeds", "add", feed_server.url("/broken.xml"), "--no-discover"]
    assert run(capsys, config, *add)[0] == 0
    code, out, _ = run(capsys, config, "feeds", "check", "1")
    assert code == 0
    assert out.startswith(f"feed 1 ({feed_server.url('/ars.xml')}): ok in ")
    assert out.endswith(": 20 new articles, 0 cards queued\n")
    code, out, _ = run(capsys, config, "feeds", "check", "1")
    assert (code, out.endswith("same body as last time, nothing new\n")) == (0, True)
    code, out, _ = run(capsys, config, "feeds", "check", feed_server.url("/broken.xml"))
    assert code == 1
    assert "failed: parse: not an RSS, Atom or RDF feed" in out
    assert feed_server.hits("/ars.xml") == 2


def test_feeds_add_of_a_literal_private_address_is_refused_by_default(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = write_config(tmp_path / "strict.toml", tmp_path / "newsbot.db", extra="")
    for url, reason in [
        (feed_server.url("/runtime.xml"), "a loopback address"),
        ("http://2130706433/feed", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::ffff:10.0.0.1]/feed", "a private or reserved address"),
    ]:
        code, out, err = run(capsys, strict, "feeds", "add", url)
        assert (code, out) == (2, "")
        # (Above it, the config's warning that it lists no feeds.)
        line = err.splitlines()[-1]
        assert line.startswith("newsbot: ") and reason in line and "must be public" in line
    code, out, _ = run(capsys, strict, "feeds", "list", "--json")
    assert json.loads(out) == []


def test_feeds_import_prints_a_preview_then_adds_the_feeds_in_their_categories(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, config, "feeds", "sync")[0] == 0
    opml = tmp_path / "list.opml"
    opml.write_text(
        f"""<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="games"><outline type="rss" text="Ars" xmlUrl="{feed_server.url("/ars.xml")}"/>
    <outline type="rss" text="New" xmlUrl="https://new.example/feed"/></outline>
  <outline text="Cooking"><outline type="rss" text="Food" xmlUrl="https://food.example/rss"/></outline>
  <outline type="rss" text="Local" xmlUrl="file:///etc/passwd"/>
</body></opml>""",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, config, "feeds", "import", str(opml), "--dry-run")
    assert code == 0
    assert out.splitlines() == [
        f"{opml}: 3 feeds, 1 already present, 2 to add, 1 skipped (not http(s) URLs)",
        "  + https://new.example/feed  [gaming]",
        "  + https://food.example/rss  [no category (only keyword/alias rules)]",
        "  folders matching no category: 'Cooking' (--category ID places their feeds)",
        "dry run: nothing added",
    ]
    assert len(listed(capsys, config)) == 1
    code, out, _ = run(capsys, config, "feeds", "import", str(opml), "--category", "tech")
    assert code == 0
    assert "  + https://food.example/rss  [tech]" in out.splitlines()
    assert out.splitlines()[-1].startswith("added 2 feeds")
    feeds = {f["url"]: (f["origin"], f["categories"]) for f in listed(capsys, config)}
    assert feeds["https://new.example/feed"] == ("runtime", ["gaming"])
    assert feeds["https://food.example/rss"] == ("runtime", ["tech"])
    code, _, err = run(capsys, config, "feeds", "import", str(opml), "--category", "nope")
    assert code == 2 and "unknown category 'nope'" in err


def test_feeds_import_refuses_a_file_over_the_size_cap_without_reading_it_whole(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = tmp_path / "big.opml"
    with big.open("wb") as file:
        file.write(b'<opml version="2.0"><body>')
        line = b'<outline type="rss" text="x" xmlUrl="https://x.example/feed"/>\n' * 1000
        while file.tell() < 50 * 1024 * 1024:
            file.write(line)
        file.write(b"</body></opml>")
    code, out, err = run(capsys, config, "feeds", "import", str(big))
    assert (code, out) == (2, "")
    assert "over the 5242880-byte cap" in err and len(err.splitlines()) == 1


def test_feeds_export_then_import_is_lossless_over_the_real_feeds(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_config(tmp_path / "source.toml", tmp_path / "source.db")
    ids = ["gaming", "space", "tech"]
    wanted: dict[str, list[str]] = {}
    for number, path in enumerate(REAL_FEED_FILES):
        feed_server.serve_file(f"/real/{path.name}", path)
        url = feed_server.url(f"/real/{path.name}")
        # None, one, or two categories, in turn.
        chosen = [ids[number % 3], ids[(number + 1) % 3]][: number % 3]
        wanted[url] = chosen
        args = [a for c in chosen for a in ("--category", c)]
        assert run(capsys, source, "feeds", "add", url, *args)[0] == 0
    assert run(capsys, source, "poll", "--once")[0] == 0  # titles and site URLs
    code, exported, _ = run(capsys, source, "feeds", "export")
    assert code == 0
    document = parse_opml(exported.encode())
    titles = {f["url"]: f["title"] for f in listed(capsys, source)}
    assert {f.url: f.title for f in document.feeds} == {u: titles[u] or u for u in wanted}
    out_file = tmp_path / "feeds.opml"
    assert run(capsys, source, "feeds", "export", str(out_file))[0] == 0
    assert parse_opml(out_file.read_bytes()) == document
    target = write_config(tmp_path / "target.toml", tmp_path / "target.db")
    code, out, _ = run(capsys, target, "feeds", "import", str(out_file))
    assert code == 0 and out.startswith(f"{out_file}: 58 feeds, 0 already present, 58 to add")
    imported = {f["url"]: sorted(f["categories"]) for f in listed(capsys, target)}  # type: ignore[arg-type]
    assert imported == {u: sorted(c) for u, c in wanted.items()}
    # And once more: everything is already there.
    code, out, _ = run(capsys, target, "feeds", "import", str(out_file))
    assert out.startswith(f"{out_file}: 58 feeds, 58 already present, 0 to add")


def site_page(*hrefs: str) -> bytes:
    links = "".join(f'<link rel="alternate" type="application/rss+xml" href="{h}">' for h in hrefs)
    return f"<!DOCTYPE html><html><head>{links}</head><body>hi</body></html>".encode()


def test_feeds_add_of_a_page_with_several_feeds_lists_them_and_adds_the_one_picked(
    config: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.serve("/site", site_page("/ars.xml", "/runtime.xml"), content_type="text/html")
    code, out, _ = run(capsys, config, "feeds", "add", feed_server.url("/site"))
    assert code == 2
    assert out.splitlines() == [
        f"2 feeds found at {feed_server.url('/site')}; choose one with --pick N:",
        f"  1. {feed_server.url('/ars.xml')}  Ars Technica (20 items)",
        f"  2. {feed_server.url('/runtime.xml')}  Новости Оренбурга и области / Раздел Новости "
        "(10 items)",
    ]
    assert listed(capsys, config) == []
    code, out, _ = run(capsys, config, "feeds", "add", feed_server.url("/site"), "--pick", "2")
    assert code == 0 and out.splitlines()[-1].startswith(
        f"added feed 1 ({feed_server.url('/runtime.xml')})"
    )
    code, _, err = run(capsys, config, "feeds", "add", feed_server.url("/site"), "--pick", "3")
    assert code == 2 and "--pick 3: 2 feeds were found" in err


def test_feeds_add_of_a_site_finds_its_feed_path_and_shows_what_its_tags_map_to(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", tmp_path / "n.db")
    feed_server.serve_file("/feed", REAL_FEEDS / ARS)
    feed_server.serve("/", site_page(), content_type="text/html")
    code, out, _ = run(capsys, config, "feeds", "add", feed_server.url("/"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"found {feed_server.url('/feed')}: 'Ars Technica', 20 items"
    assert len([line for line in lines if line.startswith("  - ")]) == 3
    assert "  its own tags map to: gaming, tech, space" in out
    assert [f["url"] for f in listed(capsys, config)] == [feed_server.url("/feed")]
