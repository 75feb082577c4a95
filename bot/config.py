"""Configuration: one TOML file validated by pydantic models.

``load_config`` is the entry point (``parse_config`` validates data that
comes from elsewhere). Every problem (missing file, TOML
syntax, unknown keys, bad values, cross-references between feeds and
categories) becomes one ``ConfigError`` whose message names the key, so the CLI
can print it and exit with code 2 instead of showing a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "NEWSBOT_TOKEN"
# Where a relative [storage] path lives instead of the config file's folder
# (the Docker image sets /data, its volume, while the config sits in /config).
DATA_DIR_ENV = "NEWSBOT_DATA_DIR"
MIN_SANE_INTERVAL = 60.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CATEGORY_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``"90"``, ``"10m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError("expected seconds as a number or a duration like '10m'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # TOML integers are unbounded in tomllib: 10**400
            raise ValueError("duration is far too large") from None
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if not text:
            raise ValueError("empty duration")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
                pos = match.end()
            if pos != len(text) or pos == 0:
                raise ValueError(
                    f"invalid duration {value!r}: use seconds or units like '45s', '10m', '1h30m'"
                ) from None
    else:
        raise ValueError("expected seconds as a number or a duration like '10m'")
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    # .port raises for "abc" or 99999; unchecked, the fetcher would fail on
    # every poll with an error from deep inside the socket layer.
    _ = parts.port
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramConfig(_Model):
    token: str = ""
    base_url: str | None = None
    base_file_url: str | None = None
    # Webhook mode is used when webhook_url is set; long polling otherwise.
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: str | None = None
    # Telegram user ids allowed to use operator commands (/health).
    admins: list[int] = Field(default_factory=list)
    # The zone of chats that chose none (/timezone): IANA name or UTC+H:MM.
    default_timezone: str = "UTC"
    # The language of groups, channels and private chats whose user's
    # Telegram language the bot does not speak, until they pick one (/language).
    default_language: str = "en"

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from bot.timezones import parse_timezone

        return parse_timezone(value)

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        from bot.i18n import SUPPORTED_LANGUAGES, supported_language

        found = supported_language(value)
        if found is None or found != value.strip().casefold():
            raise ValueError(
                f"unknown language {value!r}; the bot speaks {', '.join(SUPPORTED_LANGUAGES)}"
            )
        return found

    @field_validator("base_url", "base_file_url", "webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _check_http_url(value)

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str | None) -> str | None:
        # Telegram refuses plain-http webhooks; the listener itself may speak
        # plain HTTP behind a TLS-terminating proxy.
        if value is not None and not value.startswith("https://"):
            raise ValueError("Telegram only calls https:// webhook URLs")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        # Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and -.
        if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ValueError("webhook_secret must be 1-256 characters of A-Z a-z 0-9 _ -")
        return value or None


class StorageConfig(_Model):
    # SQLite, the embedded default: one file, one process.
    path: str = "newsbot.db"
    # PostgreSQL instead, for several processes on several machines:
    # "postgresql://user@host:5432/newsbot" (the password from the
    # NEWSBOT_DATABASE_PASSWORD environment variable, or in the URL).
    url: str | None = None
    # Connections each process keeps open to PostgreSQL.
    pool_size: int = Field(default=10, ge=1, le=200)
    # Sent, failed and dropped cards are kept this long, then pruned.
    keep_deliveries: Duration = 30 * 86400.0
    # Articles older than this (by publication time) are pruned; kept
    # forever when unset.
    keep_articles: Duration | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "only postgresql:// URLs are supported (SQLite is [storage] path), "
                f"got a {parts.scheme or 'schemeless'} URL"
            )
        if not parts.hostname:
            raise ValueError("the PostgreSQL URL names no host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the PostgreSQL URL has an invalid port") from None
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        # SQLite reads an empty name as "a private temporary database": the
        # bot would run and then lose every article and subscription.
        if not value.strip():
            raise ValueError("storage path must not be empty")
        # SQLite does not expand "~": it would create a folder named "~".
        return value if value == ":memory:" else str(Path(value).expanduser())

    def relative_to(self, base_dir: Path) -> StorageConfig:
        """This configuration with a relative path made absolute under ``base_dir``."""
        if self.path == ":memory:" or Path(self.path).is_absolute():
            return self
        return self.model_copy(update={"path": str(base_dir / self.path)})


class PollingConfig(_Model):
    interval: Duration = 600.0
    # Upper bound for any computed next check (Cache-Control, ttl, backoff).
    max_interval: Duration = 86400.0
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 20.0
    total_timeout: Duration = 60.0
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    concurrency: int = Field(default=16, ge=1, le=512)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    # Worker processes for feed parsing; 0 means one per CPU this process may
    # use (its affinity and cgroup CPU quota), at most max_parse_workers.
    parse_workers: int = Field(default=0, ge=0, le=64)
    # Each worker costs about 45 MB of memory: two keep a polling round
    # within about 150 MB, and parsing is rarely what a round waits for.
    max_parse_workers: int = Field(default=2, ge=1, le=64)
    # A parse that takes longer is given up on, so one pathological body
    # cannot stall the round (feedparser's time grows with the square of an
    # entry's tag count: 20,000 <category> elements take about 17 s).
    parse_timeout: Duration = 30.0
    user_agent: str = "newsbot/0.1 (+https://github.com/newsbot/newsbot; Telegram news bot)"


class SecurityConfig(_Model):
    # Feeds added at runtime (CLI, OPML import) are fetched only from public
    # addresses; true lets them reach loopback, private and link-local
    # networks too (a bot whose operator alone adds feeds, on a LAN).
    allow_private_addresses: bool = False


class DeliveryConfig(_Model):
    # Telegram allows about 30 messages/s per bot, 1/s per chat, 20/min per
    # group or channel; we pace slightly below so the limit is never hit.
    messages_per_second: float = Field(default=29.0, gt=0, le=30)
    private_chat_interval: Duration = 1.0
    group_chat_interval: Duration = 3.05
    max_attempts: int = Field(default=8, ge=1, le=100)
    # Pending cards older than this are dropped instead of sent late.
    max_age: Duration = 7 * 86400.0
    # At most this many new articles of one feed per round become cards: a
    # feed that suddenly lists hundreds of "new" items must not flood chats.
    max_new_per_feed: int = Field(default=20, ge=1, le=1000)
    # A sent card follows corrections of its story's title or summary for
    # this long after it was sent.
    edit_window: Duration = 48 * 3600.0
    # At most this many instant cards per chat in any hour; the rest of that
    # hour arrives as one "N more stories" message (bot/digest.py).
    max_cards_per_hour: int = Field(default=30, ge=1, le=10_000)


class AlertsConfig(_Model):
    """Private messages to the operators ([telegram] admins) about the bot's health."""

    # False: none of this section's messages (handler errors are still reported).
    enabled: bool = True
    # A feed failing this many times in a row is reported, once until it recovers.
    failures: int = Field(default=5, ge=1, le=10_000)
    # "HH:MM" (UTC): a daily summary at that time; unset, none.
    daily_report: str | None = None

    @field_validator("daily_report")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f'not a time of day "HH:MM" (UTC): {value!r}')
        return f"{int(match[1]):02d}:{match[2]}"


class MetricsConfig(_Model):
    """An HTTP endpoint with /metrics (Prometheus) and /healthz, per process."""

    # "host:port" ("[::1]:9308" for IPv6; port 0: any free one); unset, no endpoint.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        host, _, port = value.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f'not "host:port": {value!r}')
        return value

    @property
    def address(self) -> tuple[str, int]:
        assert self.listen is not None
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


class WebSubConfig(_Model):
    """Real-time push (WebSub, https://www.w3.org/TR/websub/) for feeds that
    name a hub: the hub calls the bot back when the feed changes."""

    # False: every feed is polled, hubs or not.
    enabled: bool = True
    # Where the callback listener accepts the hubs' verification requests
    # and pushes ("host:port"); the reverse proxy in front of the webhook
    # forwards /websub/ here. PTB's webhook server takes no routes of its own.
    listen: str = "0.0.0.0:8444"
    # The public base of the callbacks, "<base>/<subscription id>"; unset,
    # the origin of [telegram] webhook_url + "/websub". Without either (a
    # bot on long polling with no public URL), nothing is subscribed.
    callback_url: str | None = None
    # Asked of the hub; the hub decides (its answer is what renewal follows).
    lease: Duration = 10 * 86400.0
    # Subscribed feeds are still polled this often, in case a push is lost.
    fallback_interval: Duration = 3600.0
    # A pushed body larger than this is refused (413) before it is read whole.
    max_body_bytes: int = Field(default=5_000_000, ge=1024)

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        host, _, port = value.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f'not "host:port": {value!r}')
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value).rstrip("/")

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


class CategoryConfig(_Model):
    id: str
    title: str
    description: str = ""
    # Entry tags (<category>, Atom term, dc:subject) that place an article here.
    aliases: list[str] = Field(default_factory=list)
    # Whole words or phrases matched against title and summary.
    keywords: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _CATEGORY_ID.fullmatch(value):
            raise ValueError(
                "category id must be 1-32 characters of a-z, 0-9 and _, starting with a letter "
                f"or digit (it becomes a hashtag and a command argument), got {value!r}"
            )
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("category title must not be empty")
        return value


# A header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the fetcher sets itself: conditional GET, the bounded decompression
# (it decodes gzip and deflate only), the connection, and auth (``auth``).
_MANAGED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "accept-encoding",
        "if-none-match",
        "if-modified-since",
        "proxy-authorization",
    }
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FeedAuthConfig(_Model):
    """HTTP basic auth; the password comes from the environment, never the file."""

    username: str
    password_env: str

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not value or ":" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("auth username must be non-empty, without ':' or control characters")
        return value

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"not an environment variable name: {value!r}")
        if value not in os.environ:
            # Named, never shown: the value is the secret.
            raise ValueError(f"environment variable {value} is not set (it holds the password)")
        return value

    def password(self) -> str:
        return os.environ.get(self.password_env, "")


class FeedConfig(_Model):
    url: str
    categories: list[str] = Field(default_factory=list)
    # Source name shown on cards; defaults to the feed's own title.
    name: str | None = None
    interval: Duration | None = None
    # At most this many new articles per round become cards; unset, the
    # [delivery] max_new_per_feed.
    max_new_per_round: int | None = Field(default=None, ge=1, le=1000)
    # Extra request headers (User-Agent, Cookie, Referer, ...).
    headers: dict[str, str] = Field(default_factory=dict)
    auth: FeedAuthConfig | None = None
    # "http://[user:password@]host:port": this feed goes through that proxy.
    proxy: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        # Errors name the header, never its value (a Cookie is a secret).
        value = {name: text.strip() for name, text in value.items()}
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"not a header name: {name!r}")
            if name.lower() in _MANAGED_HEADERS:
                raise ValueError(f"header {name} is set by the bot itself")
            if any(c in text for c in "\r\n\0") or not text.isascii():
                raise ValueError(f"header {name}: the value must be one line of ASCII")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL may carry a password: the scheme alone is named.
            raise ValueError(
                f"proxy must be an http:// or https:// URL with a host "
                f"(got {parts.scheme or 'no'} scheme)"
            )
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("proxy has an invalid port") from None
        return value

    @model_validator(mode="after")
    def _one_authorization(self) -> FeedConfig:
        if self.auth is not None and any(n.lower() == "authorization" for n in self.headers):
            raise ValueError("set either auth or an Authorization header, not both")
        return self


class Config(_Model):
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    websub: WebSubConfig = Field(default_factory=WebSubConfig)
    categories: list[CategoryConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        seen: dict[str, int] = {}
        for index, category in enumerate(self.categories):
            if category.id in seen:
                raise _KeyedError(
                    f"categories[{index}].id",
                    f"duplicate category id {category.id!r} (also categories[{seen[category.id]}])",
                )
            seen[category.id] = index
        urls: dict[str, int] = {}
        for index, feed in enumerate(self.feeds):
            if feed.url in urls:
                raise _KeyedError(
                    f"feeds[{index}].url",
                    f"duplicate feed URL {feed.url!r} (also feeds[{urls[feed.url]}])",
                )
            urls[feed.url] = index
            for position, category_id in enumerate(feed.categories):
                if category_id not in seen:
                    known = ", ".join(seen) or "none defined"
                    raise _KeyedError(
                        f"feeds[{index}].categories[{position}]",
                        f"unknown category id {category_id!r} (known: {known})",
                    )
        return self

    def category(self, category_id: str) -> CategoryConfig | None:
        return next((c for c in self.categories if c.id == category_id), None)

    @property
    def poll_tick(self) -> float:
        """How often the scheduler looks for due feeds: half the shortest
        interval, between 1 and 30 seconds."""
        shortest = min([self.polling.interval] + [f.interval for f in self.feeds if f.interval])
        return min(max(shortest / 2, 1.0), 30.0)

    @property
    def websub_callback_base(self) -> str | None:
        """Where hubs call back (``<base>/<subscription id>``), or None when
        push is off: switched off, or no public URL to be called at."""
        if not self.websub.enabled:
            return None
        if self.websub.callback_url:
            return self.websub.callback_url
        if self.telegram.webhook_url:
            parts = urlsplit(self.telegram.webhook_url)
            return f"{parts.scheme}://{parts.netloc}/websub"
        return None

    @property
    def heartbeat_path(self) -> Path:
        """Touched after every scheduler tick; the Docker HEALTHCHECK reads its age."""
        return Path(self.storage.path + ".heartbeat")

    @property
    def token(self) -> str:
        return os.environ.get(TOKEN_ENV) or self.telegram.token

    def warnings(self) -> list[str]:
        """Things that work but are probably not what the operator wants."""
        notes = []
        if self.polling.interval < MIN_SANE_INTERVAL:
            notes.append(
                f"polling.interval is {self.polling.interval:g}s: fine for local testing, "
                "but real feeds should be polled every few minutes at most"
            )
        for index, feed in enumerate(self.feeds):
            if feed.interval is not None and feed.interval < MIN_SANE_INTERVAL:
                notes.append(f"feeds[{index}].interval is {feed.interval:g}s (short)")
        if not self.feeds:
            notes.append("no [[feeds]] configured: nothing will be polled")
        return notes


class _KeyedError(ValueError):
    """A cross-reference error that knows which key it is about."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A quoted TOML key may hold anything, a newline too; the error
            # must stay one printable line.
            out += ("." if out else "") + (part if _BARE_KEY.fullmatch(part) else repr(part))
    return out or "(top level)"


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        ctx_error = item.get("ctx", {}).get("error")
        if isinstance(ctx_error, _KeyedError):
            lines.append(f"{ctx_error.key}: {ctx_error.message}")
            continue
        key = _format_location(tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return f"{path}: " + "; ".join(lines)


def parse_config(
    data: dict[str, Any], source: Path | str = "<config>", *, base_dir: Path | None = None
) -> Config:
    """Validate ``data``; a relative ``[storage] path`` is taken relative to
    ``base_dir``, or to the working directory when there is none."""
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(Path(source), error)) from None
    if base_dir is None:
        return config
    # A relative path resolves against the config file's folder, not the
    # working directory: started from elsewhere (cron, systemd, a shell in
    # another folder) the bot must not silently open an empty database.
    return config.model_copy(update={"storage": config.storage.relative_to(base_dir)})


def _storage_base_dir(config_path: Path) -> Path:
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        return Path(os.path.abspath(Path(data_dir).expanduser()))
    # abspath, not resolve(): a symlinked config keeps the folder it was named in.
    return Path(os.path.abspath(config_path)).parent


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path`` or raise ``ConfigError``.

    A relative ``[storage] path`` resolves against ``$NEWSBOT_DATA_DIR`` when
    that is set, otherwise against the folder of the file."""
    config_path = Path(path)
    try:
        raw = config_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{config_path}: file not found (copy config.example.toml to start)"
        ) from None
    except OSError as error:
        raise ConfigError(f"{config_path}: cannot read: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{config_path}: not UTF-8 text (byte {error.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message carries "(at line N, column M)".
        raise ConfigError(f"{config_path}: TOML syntax error: {error}") from None
    config = parse_config(data, config_path, base_dir=_storage_base_dir(config_path))
    for warning in config.warnings():
        log.warning("config: %s", warning)
    return config
