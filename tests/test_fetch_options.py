"""Per-feed fetch options of the operator's feeds: extra headers, basic auth
with the password from the environment, a proxy of the feed's own, the
environment's proxies (HTTP_PROXY, NO_PROXY), and per-feed limits; and the
secrets among them never shown in logs, listings, exports or errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.config import FeedConfig, PollingConfig, load_config, parse_config
from bot.errors import ConfigError
from bot.fetch import Fetcher, make_public_only_client
from bot.fetch_options import FetchOptions, options_of, shown_options
from bot.runtime import Runtime
from tests.config_files import write_toml
from tests.faults import FakeDNS
from tests.feed_server import FeedServer
from tests.http_proxy import LoopbackProxy
from tests.test_netguard import NOW, PUBLIC_V4, FakeInternet
from tests.test_pipeline import item, rss

PASSWORD_ENV = "FEED_X_PASSWORD"
PASSWORD = "hunter2-correct-horse"
COOKIE = "session=cookie-secret-4711"
PROXY_PASSWORD = "proxy-secret-0815"
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxies_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which proxy variables are set."""
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _data(tmp_path: Path, feeds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "storage": {"path": str(tmp_path / "newsbot.db")},
        "polling": {"interval": 600, "jitter": 0.0, "parse_workers": 1},
        "categories": [{"id": "news", "title": "News"}],
        "feeds": feeds,
    }


async def _poll(tmp_path: Path, feeds: list[dict[str, Any]]) -> list[str | None]:
    """One round over ``feeds``; each feed's last error (None: fetched)."""
    runtime = await Runtime.open(parse_config(_data(tmp_path, feeds)))
    try:
        await runtime.poller.run_round(all_feeds=True)
        return [f.last_error for f in await runtime.storage.feeds.feed_health()]
    finally:
        await runtime.close()


async def test_per_feed_headers_are_sent_to_the_feed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", rss(item("a")))
    feed_server.serve("/plain.xml", rss(item("p")))
    headers = {"User-Agent": "MyReader/2.0", "Cookie": COOKIE, "Referer": "https://example.org/"}
    errors = await _poll(
        tmp_path,
        [
            {"url": feed_server.url("/a.xml"), "headers": headers},
            {"url": feed_server.url("/plain.xml")},
        ],
    )
    assert errors == [None, None]
    (sent,) = feed_server.requests("/a.xml")
    assert sent.headers["user-agent"] == "MyReader/2.0"
    assert sent.headers["cookie"] == COOKIE
    assert sent.headers["referer"] == "https://example.org/"
    (plain,) = feed_server.requests("/plain.xml")
    assert plain.headers["user-agent"].startswith("newsbot/") and "cookie" not in plain.headers


async def test_basic_auth_takes_its_password_from_the_environment(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    feed_server.serve("/private.xml", rss(item("secret-story")), basic_auth=("reader", PASSWORD))
    feed_server.serve("/also-private.xml", rss(item("x")), basic_auth=("reader", PASSWORD))
    errors = await _poll(
        tmp_path,
        [
            {
                "url": feed_server.url("/private.xml"),
                "auth": {"username": "reader", "password_env": PASSWORD_ENV},
            },
            {"url": feed_server.url("/also-private.xml")},
        ],
    )
    assert errors == [None, "fetch: HTTP 401"]


async def test_credentials_are_not_sent_on_to_another_origin_after_a_redirect(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    dns = FakeDNS({"feeds.example": feed_server.port, "cdn.example": feed_server.port})
    port = feed_server.port
    feed_server.redirect("/moving.xml", f"http://feeds.example:{port}/moved.xml", status=302)
    feed_server.redirect("/moved.xml", f"http://cdn.example:{port}/elsewhere.xml", status=302)
    feed_server.serve("/elsewhere.xml", rss(item("a")))
    feed = {
        "url": f"http://feeds.example:{port}/moving.xml",
        "headers": {"User-Agent": "MyReader/2.0", "Cookie": COOKIE},
        "auth": {"username": "reader", "password_env": PASSWORD_ENV},
    }
    runtime = await Runtime.open(parse_config(_data(tmp_path, [feed])), network=dns.network)
    try:
        await runtime.poller.run_round(all_feeds=True)
        assert [f.last_error for f in await runtime.storage.feeds.feed_health()] == [None]
    finally:
        await runtime.close()
    for path in ("/moving.xml", "/moved.xml"):  # the feed's own origin
        (own,) = feed_server.requests(path)
        assert own.headers["cookie"] == COOKIE and own.headers["authorization"].startswith("Basic ")
    (other,) = feed_server.requests("/elsewhere.xml")
    assert "cookie" not in other.headers and "authorization" not in other.headers
    assert other.headers["user-agent"] == "MyReader/2.0"
    assert other.headers["host"] == f"cdn.example:{port}"


def test_a_missing_password_variable_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    feed = {
        "url": "https://example.org/a.xml",
        "auth": {"username": "reader", "password_env": PASSWORD_ENV},
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(tmp_path, [feed]))
    assert f"feeds[0].auth.password_env: environment variable {PASSWORD_ENV} is not set" in str(
        raised.value
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Bad Name": "x"}, "not a header name: 'Bad Name'"),
        ({"Accept-Encoding": "br"}, "header Accept-Encoding is set by the bot itself"),
        ({"Cookie": f"{COOKIE}\r\nX-Injected: 1"}, "header Cookie: the value must be one line"),
    ],
)
def test_bad_headers_are_config_errors_that_never_show_the_value(
    tmp_path: Path, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(tmp_path, [{"url": "https://example.org/a.xml", "headers": headers}]))
    assert message in str(raised.value)
    assert COOKIE not in str(raised.value)


def test_a_proxy_that_is_not_http_is_refused_without_showing_its_credentials(
    tmp_path: Path,
) -> None:
    feed = {"url": "https://example.org/a.xml", "proxy": f"socks5://u:{PROXY_PASSWORD}@p:1080"}
    with pytest.raises(ConfigError) as raised:
        parse_config(_data(tmp_path, [feed]))
    assert "proxy must be an http:// or https:// URL" in str(raised.value)
    assert PROXY_PASSWORD not in str(raised.value)


async def test_a_feed_proxy_carries_the_request_with_its_credentials(
    tmp_path: Path, feed_server: FeedServer, http_proxy: LoopbackProxy
) -> None:
    feed_server.serve("/a.xml", rss(item("a")))
    feed_server.serve("/direct.xml", rss(item("d")))
    proxy = http_proxy.url.replace("http://", f"http://user:{PROXY_PASSWORD}@")
    errors = await _poll(
        tmp_path,
        [
            {"url": feed_server.url("/a.xml"), "proxy": proxy},
            {"url": feed_server.url("/direct.xml")},
        ],
    )
    assert errors == [None, None]
    assert [r.url for r in http_proxy.requests] == [feed_server.url("/a.xml")]
    assert http_proxy.requests[0].headers["proxy-authorization"].startswith("Basic ")
    assert feed_server.hits("/a.xml") == 1 and feed_server.hits("/direct.xml") == 1


async def test_http_proxy_from_the_environment_is_honoured(
    tmp_path: Path,
    feed_server: FeedServer,
    http_proxy: LoopbackProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", http_proxy.url)
    feed_server.serve("/a.xml", rss(item("a")))
    assert await _poll(tmp_path, [{"url": feed_server.url("/a.xml")}]) == [None]
    assert [r.url for r in http_proxy.requests] == [feed_server.url("/a.xml")]


async def test_no_proxy_sends_a_matching_host_direct(
    tmp_path: Path,
    feed_server: FeedServer,
    http_proxy: LoopbackProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", http_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    feed_server.serve("/a.xml", rss(item("a")))
    assert await _poll(tmp_path, [{"url": feed_server.url("/a.xml")}]) == [None]
    assert http_proxy.requests == []
    assert feed_server.hits("/a.xml") == 1


async def test_runtime_feeds_never_go_through_the_environment_proxy(
    http_proxy: LoopbackProxy, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy the address check would vet the proxy, not the feed."""
    monkeypatch.setenv("HTTP_PROXY", http_proxy.url)
    feed_server.serve("/a.xml", rss(item("a")))
    internet = FakeInternet()

    async def public(host: str, port: int) -> list[str]:
        return [PUBLIC_V4]

    config = PollingConfig()
    client = make_public_only_client(config, public, internet.network)
    try:
        result = await Fetcher(client, config, client).fetch(
            f"http://feeds.example:{feed_server.port}/a.xml",
            etag=None,
            last_modified=None,
            now=NOW,
            trusted=False,
        )
    finally:
        await client.aclose()
    assert result.body == rss(item("a"))
    assert internet.connected == [(PUBLIC_V4, feed_server.port)]
    assert feed_server.hits("/a.xml") == 1 and http_proxy.requests == []


async def test_max_new_per_round_caps_one_feeds_cards(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", rss(item("old")))
    feeds = [{"url": feed_server.url("/a.xml"), "categories": ["news"], "max_new_per_round": 2}]
    runtime = await Runtime.open(parse_config(_data(tmp_path, feeds)))
    try:
        await runtime.storage.chats.upsert_chat(1, "private", "Reader", None, runtime.clock.now())
        await runtime.storage.chats.subscribe(1, ["news"], runtime.clock.now())
        await runtime.poller.run_round(all_feeds=True)
        feed_server.serve("/a.xml", rss(*(item(f"new{n}") for n in range(5)), item("old")))
        report = await runtime.poller.run_round(all_feeds=True)
        assert report is not None
        assert report.new_articles == 5 and report.deliveries == 2
    finally:
        await runtime.close()


def test_options_are_plain_data_and_shown_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    feed = FeedConfig(
        url="https://example.org/a.xml",
        interval=900,
        headers={"User-Agent": "MyReader/2.0", "Cookie": COOKIE},
        auth={"username": "reader", "password_env": PASSWORD_ENV},  # type: ignore[arg-type]
        proxy=f"http://user:{PROXY_PASSWORD}@proxy.example:3128",
    )
    options = options_of(feed)
    assert options == FetchOptions(
        headers=(("User-Agent", "MyReader/2.0"), ("Cookie", COOKIE)),
        basic_auth=("reader", PASSWORD),
        proxy=f"http://user:{PROXY_PASSWORD}@proxy.example:3128",
    )
    assert shown_options(feed) == {
        "interval": 900,
        "headers": {"User-Agent": "MyReader/2.0", "Cookie": "<hidden>"},
        "auth": {"username": "reader", "password_env": PASSWORD_ENV},
        "proxy": "http://<hidden>@proxy.example:3128",
    }
    text = f"cannot connect via http://user:{PROXY_PASSWORD}@proxy.example:3128 with {COOKIE}"
    cleaned = options.clean(text)
    assert PROXY_PASSWORD not in cleaned and COOKIE not in cleaned


def test_secrets_never_appear_in_logs_listings_exports_or_errors(
    tmp_path: Path,
    feed_server: FeedServer,
    http_proxy: LoopbackProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    feed_server.serve("/private.xml", rss(item("a")), basic_auth=("reader", "another-password"))
    proxy = http_proxy.url.replace("http://", f"http://user:{PROXY_PASSWORD}@")
    data = _data(
        tmp_path,
        [
            {
                "url": feed_server.url("/private.xml"),
                "categories": ["news"],
                "headers": {"Cookie": COOKIE, "X-Api-Key": "apikey-secret-9999"},
                "auth": {"username": "reader", "password_env": PASSWORD_ENV},
                "proxy": proxy,
            },
            # A proxy that is not there: the fetch fails with an error of its own.
            {
                "url": feed_server.url("/gone.xml"),
                "proxy": f"http://u:{PROXY_PASSWORD}@127.0.0.1:9",
            },
        ],
    )
    config = write_toml(tmp_path / "config.toml", data)
    caplog.set_level(logging.DEBUG)
    outputs = []
    for argv in (
        ["poll", "--once", "--json"],
        ["feeds", "list"],
        ["feeds", "list", "--json"],
        ["feeds", "export"],
        ["check-config"],
        ["health"],
    ):
        code = main(["--config", str(config), "--log-level", "DEBUG", *argv])
        captured = capsys.readouterr()
        outputs.append((argv, code, captured.out + captured.err))
    listed = outputs[1][2]
    assert "headers: Cookie, X-Api-Key" in listed and "proxy: http://<hidden>@127.0.0.1" in listed
    assert f"password from ${PASSWORD_ENV}" in listed
    everything = "\n".join(o for _, _, o in outputs) + caplog.text
    assert "fetch: HTTP 401" in everything  # the failure itself is told
    for secret in (PASSWORD, COOKIE, "apikey-secret-9999", PROXY_PASSWORD):
        assert secret not in everything, f"{secret!r} leaked"


async def test_a_reload_changes_a_feeds_headers_from_the_next_round(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", rss(item("a")))
    feeds: list[dict[str, Any]] = [{"url": feed_server.url("/a.xml")}]
    path = write_toml(tmp_path / "config.toml", _data(tmp_path, feeds))
    runtime = await Runtime.open(load_config(path))
    try:
        await runtime.poller.run_round(all_feeds=True)
        feeds[0]["headers"] = {"Referer": "https://example.org/reloaded"}
        write_toml(path, _data(tmp_path, feeds))
        plan = await runtime.reload(path)
        assert plan.feeds_changed == (feed_server.url("/a.xml"),)
        await runtime.poller.run_round(all_feeds=True)
    finally:
        await runtime.close()
    first, second = feed_server.requests("/a.xml")
    assert "referer" not in first.headers
    assert second.headers["referer"] == "https://example.org/reloaded"
