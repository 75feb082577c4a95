"""Configuration: a valid file loads; every kind of bad file is one
``ConfigError`` naming the key; the CLI turns it into exit code 2."""

from __future__ import annotations

import logging
import shlex
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli.main import main
from bot.config import (
    DATA_DIR_ENV,
    TOKEN_ENV,
    Config,
    StorageConfig,
    load_config,
    parse_config,
    parse_duration,
)
from bot.errors import ConfigError

EXAMPLE = """
[telegram]
token = "123456:from-the-file"
admins = [1111]

[storage]
path = "data/newsbot.db"

[polling]
interval = "10m"
max_interval = "1d"
jitter = 0.1
read_timeout = "20s"
max_body_bytes = 2_000_000
parse_workers = 2

[delivery]
messages_per_second = 25
group_chat_interval = "3s"

[[categories]]
id = "tech"
title = "Technology"
aliases = ["Gadgets"]

[[categories]]
id = "space"
title = "Space"
keywords = ["NASA", "SpaceX"]

[[feeds]]
url = "https://arstechnica.com/feed/"
categories = ["tech"]

[[feeds]]
url = "https://www.nasa.gov/feed/"
categories = ["space", "tech"]
name = "NASA"
interval = "1h30m"
"""


@pytest.fixture(autouse=True)
def _no_newsbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # The CLI installs a root log handler bound to the (captured) stderr.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


def test_the_example_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.telegram.token == "123456:from-the-file"
    assert config.telegram.admins == [1111]
    assert config.storage.path == str(tmp_path / "data" / "newsbot.db")
    assert config.polling.interval == 600
    assert config.polling.max_interval == 86400
    assert config.polling.parse_workers == 2
    assert [c.id for c in config.categories] == ["tech", "space"]
    assert config.feeds[1].categories == ["space", "tech"]
    assert config.feeds[1].name == "NASA"
    assert config.feeds[1].interval == 5400
    assert config.warnings() == []


def test_the_shipped_example_config_loads() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "config.example.toml")
    assert config.polling.interval == 600
    assert config.categories and config.feeds
    assert all(set(f.categories) <= {c.id for c in config.categories} for f in config.feeds)
    assert config.warnings() == []


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    # The database sits next to the config file.
    assert config == Config(storage=StorageConfig(path=str(tmp_path / "newsbot.db")))
    assert config.polling.interval == 600
    assert "no [[feeds]] configured: nothing will be polled" in config.warnings()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10m", 600),
        ("1h30m", 5400),
        (5, 5),
        (2.5, 2.5),
        ("90", 90),
        ("1h 30m", 5400),
        ("1d", 86400),
    ],
)
def test_intervals_accept_numbers_and_units(value: object, seconds: float) -> None:
    assert parse_config({"polling": {"interval": value}}).polling.interval == seconds
    assert parse_duration(value) == seconds


def test_a_short_interval_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        config = load_config(write(tmp_path, "[polling]\ninterval = 5\n"))
    assert config.polling.interval == 5
    assert any("polling.interval is 5s" in r.getMessage() for r in caplog.records)


def test_environment_token_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.token == "123456:from-the-file"
    monkeypatch.setenv(TOKEN_ENV, "999:from-the-environment")
    assert config.token == "999:from-the-environment"


def test_unknown_category_in_a_feed_names_the_key() -> None:
    message = config_error(
        {
            "categories": [{"id": "tech", "title": "T"}],
            "feeds": [{"url": "https://a.example/", "categories": ["sport"]}],
        }
    )
    assert "feeds[0].categories[0]" in message
    assert "'sport'" in message and "known: tech" in message


def test_duplicate_category_ids_are_rejected() -> None:
    message = config_error(
        {"categories": [{"id": "tech", "title": "A"}, {"id": "tech", "title": "B"}]}
    )
    assert "categories[1].id" in message and "duplicate" in message


def test_duplicate_feed_urls_are_rejected() -> None:
    message = config_error(
        {"feeds": [{"url": "https://a.example/"}, {"url": "https://a.example/"}]}
    )
    assert "feeds[1].url" in message and "duplicate" in message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/feed",
        "example.com/feed",
        "http://",
        "",
        "http://[::1",
        "http://127.0.0.1:99999/feed",
        "http://example.com:abc/feed",
    ],
)
def test_bad_feed_urls_are_rejected(url: str) -> None:
    assert "feeds[0].url" in config_error({"feeds": [{"url": url}]})


@pytest.mark.parametrize("value", ["10x", -5, 0, "", "h", "1h30", "nan", "inf", True, [], 10**400])
def test_bad_intervals_are_rejected(value: object) -> None:
    assert "polling.interval" in config_error({"polling": {"interval": value}})


def test_bad_feed_interval_names_the_feed() -> None:
    assert "feeds[0].interval" in config_error(
        {"feeds": [{"url": "https://a.example/", "interval": "soon"}]}
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"polling": {"intervall": 5}}, "polling.intervall: unknown key"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"feeds": [{"url": "https://a.example/", "tags": []}]}, "feeds[0].tags: unknown key"),
        ({"categories": [{"id": "Not OK", "title": "x"}]}, "categories[0].id"),
        ({"categories": [{"id": "ok", "title": "  "}]}, "categories[0].title"),
        ({"categories": [{"id": "ok"}]}, "categories[0].title"),
        ({"feeds": [{}]}, "feeds[0].url"),
        ({"feeds": "https://a.example/"}, "feeds"),
        ({"polling": {"max_body_bytes": 10}}, "polling.max_body_bytes"),
        ({"polling": {"jitter": 2}}, "polling.jitter"),
        ({"delivery": {"messages_per_second": 100}}, "delivery.messages_per_second"),
        ({"telegram": {"webhook_secret": "no spaces allowed"}}, "telegram.webhook_secret"),
        ({"telegram": {"admins": ["me"]}}, "telegram.admins[0]"),
        ({"storage": {"path": ""}}, "storage.path"),
    ],
)
def test_bad_values_name_their_key(data: dict[str, Any], key: str) -> None:
    assert key in config_error(data)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[polling]\ninterval = "10m"\nthis is not toml\n')
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*line 3"):
        load_config(path)


def test_a_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[telegram]\ntoken = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_several_problems_are_reported_together() -> None:
    message = config_error({"polling": {"interval": "10x", "jitter": 5}})
    assert "polling.interval" in message and "polling.jitter" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[feeds]]\nurl = "https://a.example/"\ncategories = ["nope"]\n',
            "feeds[0].categories[0]",
        ),
        ("[polling]\ninterval = -5\n", "polling.interval"),
        ("[polling\n", "line 1"),
        ("[mystery]\n", "mystery: unknown key"),
    ],
)
def test_cli_exits_2_with_one_line_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    text: str,
    expected: str,
) -> None:
    path = write(tmp_path, text)
    assert main(["--config", str(path), "check-config"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("newsbot: config: ")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_cli_exits_2_for_a_missing_file_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    missing = str(tmp_path / "missing.toml")
    for command in (["check-config"], ["poll", "--once"], ["latest"], ["search", "x"], ["health"]):
        assert main(["--config", missing, *command]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "file not found" in err


# -- fuzzing: whatever the input, only ConfigError comes out -----------------

_KEYS = [
    "telegram", "storage", "polling", "delivery", "categories", "feeds", "token", "base_url",
    "webhook_url", "webhook_port", "webhook_secret", "admins", "path", "interval", "max_interval",
    "jitter", "connect_timeout", "read_timeout", "total_timeout", "max_body_bytes", "concurrency",
    "per_host_concurrency", "parse_workers", "user_agent", "messages_per_second",
    "private_chat_interval", "group_chat_interval", "max_attempts", "max_age",
    "max_new_per_feed", "id", "title", "description", "aliases", "keywords", "url", "name",
    "websub", "enabled", "listen", "callback_url", "lease", "fallback_interval",
]  # fmt: skip
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["10m", "1h30m", "-5", "10x", "0", "https://a.example/f", "ftp://x", "tech"]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(_KEYS), st.text(max_size=5)), children, max_size=4
        ),
    ),
    max_leaves=12,
)
_config_dicts = st.dictionaries(st.sampled_from(_KEYS[:6]), _values, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_config_dicts)
def test_parse_config_only_ever_raises_config_error(data: dict[str, Any]) -> None:
    try:
        config = parse_config(data)
    except ConfigError as error:
        assert str(error).startswith("config: ")
        assert "\n" not in str(error)
    else:
        assert isinstance(config, Config)


_toml_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "[telegram]",
                "[polling]",
                "[storage]",
                "[delivery]",
                "[[feeds]]",
                "[[categories]]",
                "[[feeds]",
                'url = "https://a.example/feed"',
                'url = "not a url"',
                'id = "tech"',
                'title = "Tech"',
                'categories = ["tech"]',
                "categories = [1, 2]",
                'interval = "10m"',
                "interval = -1",
                "interval = 99999999999999999999999999999999999",
                'interval = "1h30m',
                "jitter = 0.5",
                "x = ",
                "= 1",
                "a.b.c = 1",
                'path = ""',
                "token = '''multi",
                "\x00",
            ]
        ),
        st.text(max_size=15),
    ),
    max_size=10,
).map("\n".join)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_toml_lines)
def test_load_config_only_ever_raises_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError as error:
            assert "\n" not in str(error)


def test_toml_integers_beyond_float_range_are_config_errors(tmp_path: Path) -> None:
    text = "[polling]\ninterval = " + "9" * 400 + "\n"
    assert isinstance(tomllib.loads(text)["polling"]["interval"], int)
    with pytest.raises(ConfigError, match=r"polling\.interval"):
        load_config(write(tmp_path, text))


# -- where the database lives --------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_a_relative_storage_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    write(folder, '[storage]\npath = "data/news.db"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/config.toml"))
    assert config.storage.path == str(folder / "data" / "news.db")
    # The heartbeat file follows the database.
    assert config.heartbeat_path == folder / "data" / "news.db.heartbeat"


def test_absolute_home_and_memory_storage_paths_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for written, expected in (
        (str(tmp_path / "abs.db"), str(tmp_path / "abs.db")),
        ("~/bot/news.db", str(tmp_path / "home" / "bot" / "news.db")),
        (":memory:", ":memory:"),
    ):
        config = load_config(write(tmp_path, f'[storage]\npath = "{written}"\n'))
        assert config.storage.path == expected


def test_parse_config_without_a_file_keeps_the_path_relative_to_the_working_directory() -> None:
    assert parse_config({"storage": {"path": "news.db"}}).storage.path == "news.db"


def test_the_data_directory_in_the_environment_holds_relative_storage_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    config = load_config(write(tmp_path, '[storage]\npath = "news.db"\n'))
    assert config.storage.path == str(tmp_path / "data" / "news.db")
    absolute = load_config(write(tmp_path, f'[storage]\npath = "{tmp_path / "x.db"}"\n'))
    assert absolute.storage.path == str(tmp_path / "x.db")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_docker_image_finds_its_config_and_keeps_the_database_on_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instructions = dockerfile_instructions()
    env = dict(
        token.split("=", 1)
        for arguments in (a for i, a in instructions if i == "ENV")
        for token in shlex.split(arguments)
    )
    assert env["NEWSBOT_CONFIG"] == "/config/config.toml"
    assert ("COPY", "config.example.toml /config/config.toml") in instructions
    # Commands inside the container (docker exec ... newsbot health) need no --config.
    for instruction, arguments in instructions:
        if instruction in ("ENTRYPOINT", "HEALTHCHECK"):
            assert "--config" not in arguments
    # The example config the image ships, and a mounted one with the same
    # relative path, put the database on the /data volume.
    monkeypatch.setenv(DATA_DIR_ENV, env[DATA_DIR_ENV])
    config = load_config(ROOT / "config.example.toml")
    assert config.storage.path == "/data/newsbot.db"
    assert config.heartbeat_path == Path("/data/newsbot.db.heartbeat")
