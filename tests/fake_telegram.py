"""A fake Telegram Bot API server for tests, reachable by python-telegram-bot.

It is a real HTTP server on 127.0.0.1 (stdlib ``ThreadingHTTPServer`` in a
background thread, so it never competes with the test's event loop), speaking
the Bot API's JSON: ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": N, "description": "...", "parameters": {...}}``. Point PTB at it::

    with FakeTelegram() as tg:                  # or the ``fake_telegram`` fixture
        app = tg.application_builder().build()  # token, base_url, base_file_url set
        tg.push_update(tg.message(5, "/start"))
        ...
        call = await tg.wait_for_async("sendMessage", chat_id=5)

What it models, because these are the behaviours a bot gets wrong:

* getUpdates long polling with Telegram's offset confirmation, ``limit``,
  remembered ``allowed_updates`` and 409 conflicts (webhook set, or a second
  poller); the wait is capped at ``long_poll_cap`` seconds so that tests stay fast;
* sendMessage / editMessageText validation: HTML parse mode through the strict
  checker of :mod:`tests.telegram_html` (Markdown modes pass unchecked), the 4096
  UTF-16 limit, inline keyboard callback_data of 1..64 bytes, "message is not
  modified";
* edits of the bot's messages (editMessageText, editMessageCaption for photos)
  answering as Telegram does for a message that was deleted ("message to edit
  not found", see :meth:`FakeTelegram.delete_message`), is a user's ("message
  can't be edited"), is of the other kind ("there is no text in the message to
  edit") or has an impossible id (MESSAGE_ID_INVALID), and refused like a send
  once the bot lost its rights; :meth:`FakeTelegram.edited_messages` records them;
* chats and memberships that follow the pushed updates: after a
  ``my_chat_member`` update saying the user blocked the bot, sendMessage to that
  chat answers 403 "bot was blocked by the user", after a migration the old
  group id answers 400 with ``migrate_to_chat_id``, and so on;
* inline mode: :meth:`FakeTelegram.inline_query` builds the update and
  answerInlineQuery checks what Telegram checks (at most 50 results, unique
  result ids of 1..64 bytes, ``next_offset`` of at most 64 bytes, each message
  text as sendMessage would); :meth:`FakeTelegram.post_inline_result` posts a
  result into a chat the way a user's pick does;
* sendPhoto with an uploaded file (kept as :class:`UploadedFile`) or a URL,
  its caption of at most 1024 characters checked like a message text; a URL
  Telegram cannot fetch (:meth:`FakeTelegram.refuse_photo_url`) answers 400
  "failed to get HTTP URL content";
* documents: sendDocument (an upload, or a known ``file_id``), users sending
  documents (:meth:`FakeTelegram.document_message`), getFile and the file
  download under ``/file/bot<token>/<file_path>`` (recorded as the pseudo
  method ``downloadFile``), with Telegram's 20 MB download limit;
* scripted failures (:meth:`FakeTelegram.fail_next`), an "unreachable" switch
  and, optionally, Telegram's flood limits.

Every request is recorded as a :class:`Call`; tests wait for the calls they expect
(:meth:`FakeTelegram.wait_for_async`) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.parser
import email.policy
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.telegram_html import (
    MAX_MESSAGE_LENGTH,
    TelegramHTMLError,
    parse_telegram_html,
    utf16_length,
)

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.ext import ApplicationBuilder

__all__ = [
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_USERNAME",
    "DEFAULT_USER_ID",
    "ApiError",
    "Call",
    "FakeTelegram",
    "FloodLimits",
    "Hang",
    "UploadedFile",
    "chat_member_json",
    "fake_telegram",
]

DEFAULT_BOT_ID = 4242
DEFAULT_BOT_USERNAME = "newsbot_test_bot"
DEFAULT_USER_ID = 1001
SUPERGROUP_ID_BOUND = -1_000_000_000_000  # ids of supergroups and channels are -100xxxxxxxxxx
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files

ChatType = Literal["private", "group", "supergroup", "channel"]
MemberStatus = Literal["creator", "administrator", "member", "restricted", "left", "kicked"]
JSON = dict[str, Any]

# ---------------------------------------------------------------------------
# Errors and faults
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiError:
    """An error answer in the Bot API's shape. The class methods build the ones
    Telegram really sends, with its exact descriptions."""

    error_code: int
    description: str
    parameters: Mapping[str, Any] | None = None

    def to_json(self) -> JSON:
        payload: JSON = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            payload["parameters"] = dict(self.parameters)
        return payload

    @classmethod
    def retry_after(cls, seconds: int) -> ApiError:
        return cls(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})

    @classmethod
    def blocked_by_user(cls) -> ApiError:
        return cls(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def user_deactivated(cls) -> ApiError:
        return cls(403, "Forbidden: user is deactivated")

    @classmethod
    def kicked_from_group(cls) -> ApiError:
        return cls(403, "Forbidden: bot was kicked from the group chat")

    @classmethod
    def kicked_from_supergroup(cls) -> ApiError:
        return cls(403, "Forbidden: bot was kicked from the supergroup chat")

    @classmethod
    def not_channel_member(cls) -> ApiError:
        return cls(403, "Forbidden: bot is not a member of the channel chat")

    @classmethod
    def migrated(cls, new_chat_id: int) -> ApiError:
        return cls(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            {"migrate_to_chat_id": new_chat_id},
        )

    @classmethod
    def chat_not_found(cls) -> ApiError:
        return cls(400, "Bad Request: chat not found")

    @classmethod
    def cant_parse_entities(
        cls, reason: str = 'Unsupported start tag "p" at byte offset 0'
    ) -> ApiError:
        return cls(400, f"Bad Request: can't parse entities: {reason}")

    @classmethod
    def message_too_long(cls) -> ApiError:
        return cls(400, "Bad Request: message is too long")

    @classmethod
    def server_error(cls) -> ApiError:
        return cls(500, "Internal Server Error")

    @classmethod
    def bad_gateway(cls) -> ApiError:
        return cls(502, "Bad Gateway")


@dataclass(frozen=True)
class Hang:
    """Answer only after ``seconds`` (to provoke client timeouts), then with
    ``then`` or, if None, the normal answer. Stopping the server cuts it short."""

    seconds: float
    then: ApiError | None = None


Fault = ApiError | Hang


class _Refused(Exception):
    """Raised inside method handlers to answer with an ApiError."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.description)
        self.error = error


def _bad_request(description: str, **parameters: Any) -> _Refused:
    return _Refused(ApiError(400, f"Bad Request: {description}", parameters or None))


@dataclass
class _FaultRule:
    method: str  # lower case, or "*"
    fault: Fault
    chat_id: int | str | None
    remaining: int | None  # None: until clear_failures()


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's (undocumented, approximate) flood limits. Only successful sends
    count toward the windows; each refusal adds to ``FakeTelegram.flood_429_count``."""

    per_bot_per_second: int = 30
    """sendMessage calls over all chats within any sliding 1 s window."""
    private_chat_interval: float = 1.0
    """Minimum seconds between two messages to the same private chat ..."""
    tolerance: float = 0.05
    """... minus this much, for scheduling jitter on our side."""
    group_per_minute: int = 20
    """Messages to one group, supergroup or channel within any sliding 60 s window."""
    methods: frozenset[str] = frozenset(
        {
            "sendMessage",
            "sendPhoto",
            "sendDocument",
            "sendMediaGroup",
            "copyMessage",
            "forwardMessage",
            # Edits count against the same budgets.
            "editMessageText",
            "editMessageCaption",
        }
    )


# ---------------------------------------------------------------------------
# Recorded calls
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request as the server understood it. ``params`` are decoded to the
    Bot API's types (ints, bools, dicts), whatever the wire encoding was."""

    method: str
    params: dict[str, Any]
    time: float
    """``time.monotonic()`` when the request arrived."""
    status: int | None = None
    """HTTP status of the answer; None while it is still pending (long poll, hang)."""
    response: JSON | None = None
    """The JSON body answered."""

    @property
    def chat_id(self) -> int | str | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int | str) else None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return None if self.response is None else self.response.get("result")


def _same_chat(a: object, b: object) -> bool:
    return a == b or (a is not None and b is not None and str(a) == str(b))


# ---------------------------------------------------------------------------
# Request decoding
# ---------------------------------------------------------------------------

# PTB sends form fields, and JSON-encodes every value that is not already a str
# (telegram/request/_requestparameter.py: ``json_value``). So "123" may be the int
# 123 (chat_id) or the text "123": a field's type decides, not its look.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_query_id",
        "next_offset",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "language_code",
        "description",
        "short_description",
        "name",
        "title",
        "query",
        "emoji",
        "custom_title",
        "photo",
        "document",
        "video",
        "audio",
        "voice",
        "animation",
        "sticker",
        "thumbnail",
        "certificate",
        "file_id",
        "message_effect_id",
        "business_connection_id",
        "address",
        "question",
        "explanation",
        "invite_link",
        "payload",
        "currency",
    }
)


def _decode_field(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id "@channelname"


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            fields[name] = _decode_field(name, data.decode(part.get_content_charset() or "utf-8"))
    return fields


def _decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params = {k: _decode_field(k, v) for k, v in parse_qsl(query, keep_blank_values=True)}
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return params
    if media_type == "application/json":
        decoded = json.loads(body)
        if not isinstance(decoded, dict):
            raise _bad_request("JSON object expected")
        params.update(decoded)
    elif media_type == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:  # application/x-www-form-urlencoded, or no type at all
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        params.update({k: _decode_field(k, v) for k, v in pairs})
    return params


# ---------------------------------------------------------------------------
# Bot API objects
# ---------------------------------------------------------------------------

_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
_RESTRICTED_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
    "can_edit_tag",
)
_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
# Update types Telegram leaves out unless allowed_updates names them.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z][A-Za-z0-9_]{2,31})?(?![\w@/])")
_BOT_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def chat_member_json(
    user: JSON, status: str, *, chat_type: str = "supergroup", **fields: Any
) -> JSON:
    """A ChatMember object with every field PTB requires for ``status``; ``fields``
    override (e.g. ``can_post_messages=False``)."""
    if status not in _STATUSES:
        raise ValueError(f"unknown chat member status {status!r}")
    member: JSON = {"user": user, "status": status}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(can_be_edited=False, is_anonymous=False)
        member.update(dict.fromkeys(_ADMIN_RIGHTS, False))
        member["can_manage_chat"] = True
        if chat_type == "channel":
            member.update(can_post_messages=True, can_edit_messages=False)
        else:
            member["can_pin_messages"] = False
    elif status == "restricted":
        member.update(is_member=True, until_date=0)
        member.update(dict.fromkeys(_RESTRICTED_RIGHTS, False))
    elif status == "kicked":
        member["until_date"] = 0
    member.update(fields)
    return member


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG (from its IHDR chunk); Telegram refuses
    what is not an image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        if data[:3] == b"\xff\xd8\xff":  # JPEG: the size is deeper; any will do
            return 320, 320
        raise _bad_request("IMAGE_PROCESS_FAILED")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _default_chat_type(chat_id: int) -> ChatType:
    if chat_id > 0:
        return "private"
    return "supergroup" if chat_id <= SUPERGROUP_ID_BOUND else "group"


def _command_entities(text: str) -> list[JSON]:
    entities = []
    for match in _COMMAND.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": utf16_length(text[: match.start()]),
                "length": utf16_length(match.group()),
            }
        )
    return entities


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # rebinding the same port after go_offline()

    def __init__(self, address: tuple[str, int], fake: FakeTelegram) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() would resolve our own name (getfqdn): skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a bot killed mid-request, a timeout) is
        # what fault tests provoke, not a failure of the fake.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Cut keep-alive connections too: closing the listening socket alone
        would leave clients happily talking to their old handler threads."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from Telegram
    # Headers and body leave in separate writes; with Nagle's algorithm on, the
    # client's delayed ACK then costs ~40 ms per request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.fake._dispatch(self.path, self.headers.get("Content-Type", ""), body)
        if answer is None:
            self.close_connection = True
            return
        status, content_type, payload = answer
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (timeout) or we were taken offline
            self.close_connection = True


def _in_event_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class FakeTelegram:
    """A fake Bot API server. Thread-safe; start with ``start()`` / ``with`` /
    ``async with`` or use the ``fake_telegram`` fixture."""

    def __init__(
        self,
        *,
        bot_id: int = DEFAULT_BOT_ID,
        username: str = DEFAULT_BOT_USERNAME,
        first_name: str = "Newsbot Test",
        token: str | None = None,
        long_poll_cap: float = 1.0,
        strict_html: bool = True,
        strict_chats: bool = False,
        unknown_member: str = "member",
        flood_limits: FloodLimits | None = None,
    ) -> None:
        """
        Args:
            long_poll_cap: getUpdates waits at most this long, whatever ``timeout``
                the client asks for, so that stopping a poller is quick.
            strict_html: validate HTML with the checker's strict rules (else Telegram's).
            strict_chats: unknown chat ids answer "chat not found" instead of being
                created on first use (positive: private, -100…: supergroup, else group).
            unknown_member: what getChatMember says for a member never configured:
                a status ("member", "left", ...) or "chat_not_found" for a 400.
            flood_limits: enforce flood limits from the start (see :meth:`enable_flood_limits`).
        """
        self.bot_id = bot_id
        self.username = username
        self.token = token or f"{bot_id}:AAFakeTokenForTests_{username}"
        self.long_poll_cap = long_poll_cap
        self.strict_html = strict_html
        self.strict_chats = strict_chats
        self.unknown_member = unknown_member
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # calls recorded, updates queued
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._offline_mode: Literal["refuse", "502"] | None = None
        # Set to wake sleeping handlers (hangs) when the server stops or goes offline.
        self._wake = threading.Event()

        self._calls: list[Call] = []
        self._faults: list[_FaultRule] = []
        self.flood_limits = flood_limits
        self.flood_429_count = 0
        self.offline_hits = 0
        self.unknown_methods: list[str] = []
        # Exceptions inside the fake; the fixture fails the test if any are left.
        self.internal_errors: list[str] = []
        self._flood_all: deque[float] = deque()
        self._flood_private: dict[int | str, float] = {}
        self._flood_groups: defaultdict[int | str, deque[float]] = defaultdict(deque)

        self._updates: list[JSON] = []
        self._last_update_id = 0  # the last one built
        self._last_pushed_id = 0
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self.webhook: JSON | None = None
        self._commands: dict[tuple[str, str], list[JSON]] = {}

        self._chats: dict[int, JSON] = {}
        self._users: dict[int, JSON] = {bot_id: self._bot_as_sender()}
        self._members: dict[tuple[int, int], JSON] = {}
        self._migrated: dict[int, int] = {}
        self._message_ids: defaultdict[int, int] = defaultdict(int)
        self._messages: dict[tuple[int, int], JSON] = {}
        # Forum topics: chat id -> thread id -> {"name", "closed", "deleted"}.
        self._topics: dict[int, dict[int, JSON]] = {}
        # Messages users (and channel admins) posted, as opposed to the bot's own.
        self._user_messages: set[tuple[int, int]] = set()
        self._inline_messages: dict[str, JSON] = {}
        # file_id -> (the Document's JSON, its bytes); file_path -> file_id.
        self._files: dict[str, tuple[JSON, bytes]] = {}
        self._file_paths: dict[str, str] = {}
        # Photo URLs Telegram's servers could not fetch (sendPhoto answers 400).
        self._unfetchable_photos: set[str] = set()
        self._callback_ids: set[str] = set()
        self._next_callback_id = 1
        self._inline_query_ids: set[str] = set()
        self._answered_inline_queries: set[str] = set()
        self._next_inline_query_id = 1

    # -- lifecycle --------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeTelegram is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token and method."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeTelegram:
        with self._lock:
            if self._server is None and self._offline_mode is None:
                self._serve()
        return self

    def stop(self) -> None:
        with self._lock:
            self._offline_mode = None
            server, self._server = self._server, None
            self._wake_everyone()
        if server is not None:
            self._shutdown(server)

    def _serve(self) -> None:
        server = _HTTPServer(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits for this loop to notice
            name=f"fake-telegram-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _shutdown(self, server: _HTTPServer) -> None:
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _wake_everyone(self) -> None:
        self._wake.set()
        self._wake = threading.Event()
        self._changed.notify_all()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeTelegram:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def go_offline(self, mode: Literal["refuse", "502"] = "refuse") -> None:
        """Make the API unreachable: ``"refuse"`` closes the listening socket and
        open connections (clients see connection errors), ``"502"`` keeps
        listening but answers every request with an HTML 502 page, as a proxy in
        front of a sick Telegram does. Requests are not recorded meanwhile
        (``offline_hits`` counts them)."""
        with self._lock:
            self._offline_mode = mode
            server = self._server if mode == "refuse" else None
            if server is not None:
                self._server = None
            self._wake_everyone()
        if server is not None:
            self._shutdown(server)

    def go_online(self) -> None:
        """Undo :meth:`go_offline`; the server comes back on the same port."""
        with self._lock:
            self._offline_mode = None
            if self._server is None and self._port:
                self._serve()

    # -- PTB helpers ------------------------------------------------------------

    def application_builder(self) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
        """``Application.builder()`` with token and URLs of this server set."""
        from telegram.ext import Application

        return (
            Application.builder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    def make_bot(self) -> Bot:
        """A ``telegram.Bot`` talking to this server (use ``async with bot:``)."""
        from telegram import Bot

        return Bot(self.token, base_url=self.base_url, base_file_url=self.base_file_url)

    # -- recorded calls ---------------------------------------------------------

    def calls(self, method: str | None = None, chat_id: int | str | None = None) -> list[Call]:
        """Recorded calls, oldest first, optionally only of ``method`` (any case)
        and/or to ``chat_id``."""
        with self._lock:
            return [c for c in self._calls if self._call_matches(c, method, chat_id)]

    def sent_messages(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Parameters of the sendMessage calls that succeeded (``calls("sendMessage")``
        has the refused ones too)."""
        return [c.params for c in self.calls("sendMessage", chat_id) if c.ok]

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        """The ``text`` parameter (HTML source, if any) of each successful sendMessage."""
        return [str(p.get("text", "")) for p in self.sent_messages(chat_id)]

    def edited_messages(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Parameters of the editMessageText and editMessageCaption calls that
        succeeded, oldest first."""
        with self._lock:
            return [
                c.params
                for c in self._calls
                if c.ok
                and c.method in ("editMessageText", "editMessageCaption")
                and (chat_id is None or _same_chat(c.chat_id, chat_id))
            ]

    def message_content(self, chat_id: int, message_id: int) -> str | None:
        """What a message of the bot shows now (its text, or a photo's caption);
        None once deleted."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                return None
            return str(message.get("text", message.get("caption", "")))

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """A user (or an admin) deleted the message: edits of it are refused."""
        with self._lock:
            self._messages.pop((chat_id, message_id), None)
            self._user_messages.discard((chat_id, message_id))

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @staticmethod
    def _call_matches(call: Call, method: str | None, chat_id: int | str | None) -> bool:
        if method is not None and call.method.lower() != method.lower():
            return False
        return chat_id is None or _same_chat(call.params.get("chat_id"), chat_id)

    def _find(
        self,
        match: str | Callable[[Call], bool],
        chat_id: int | str | None,
        answered: bool,
    ) -> list[Call]:
        found = []
        for call in self._calls:
            if answered and call.status is None:
                continue
            if isinstance(match, str):
                if not self._call_matches(call, match, chat_id):
                    continue
            elif not (self._call_matches(call, None, chat_id) and match(call)):
                continue
            found.append(call)
        return found

    def _timeout_message(
        self, match: str | Callable[[Call], bool], chat_id: Any, count: int, timeout: float
    ) -> str:
        what = match if isinstance(match, str) else getattr(match, "__name__", "matching call")
        where = f" to chat {chat_id}" if chat_id is not None else ""
        seen: dict[str, int] = {}
        for call in self._calls:
            key = call.method + (f"(chat {call.chat_id})" if call.chat_id is not None else "")
            seen[key] = seen.get(key, 0) + 1
        summary = ", ".join(f"{k}×{n}" if n > 1 else k for k, n in seen.items()) or "none"
        return f"no {count}× {what}{where} within {timeout} s; calls so far: {summary}"

    def wait_for(
        self,
        match: str | Callable[[Call], bool],
        timeout: float = 5.0,
        *,
        chat_id: int | str | None = None,
        count: int = 1,
        answered: bool = True,
    ) -> Call:
        """Block until ``count`` calls match (a method name, or a predicate on
        :class:`Call`) and return the ``count``-th. By default only answered calls
        count, so ``call.response`` is there. For sync tests; in async tests use
        :meth:`wait_for_async` (this would block the loop PTB runs on)."""
        if _in_event_loop_thread():
            raise RuntimeError("wait_for() would block the event loop: use await wait_for_async()")
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._find(match, chat_id, answered)
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_message(match, chat_id, count, timeout))
                self._changed.wait(remaining)

    async def wait_for_async(
        self,
        match: str | Callable[[Call], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - our deadline gives a readable failure
        *,
        chat_id: int | str | None = None,
        count: int = 1,
        answered: bool = True,
    ) -> Call:
        """:meth:`wait_for` for async tests: polls every 10 ms without blocking the loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self._find(match, chat_id, answered)
                if len(found) >= count:
                    return found[count - 1]
                if time.monotonic() >= deadline:
                    raise AssertionError(self._timeout_message(match, chat_id, count, timeout))
            await asyncio.sleep(0.01)

    # -- fault injection --------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: Fault,
        *,
        chat_id: int | str | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" for any) — only those
        to ``chat_id`` if given — with ``error`` (an :class:`ApiError` or a
        :class:`Hang`). ``times=None``: until :meth:`clear_failures`. Rules are
        tried in the order they were added."""
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._faults.append(_FaultRule(method.lower(), error, chat_id, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, params: Mapping[str, Any]) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.method not in ("*", method.lower()):
                    continue
                if rule.chat_id is not None and not _same_chat(params.get("chat_id"), rule.chat_id):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._faults.remove(rule)
                return rule.fault
        return None

    # -- flood limits -----------------------------------------------------------

    def enable_flood_limits(self, limits: FloodLimits | None = None) -> None:
        with self._lock:
            self.flood_limits = limits or FloodLimits()

    def disable_flood_limits(self) -> None:
        with self._lock:
            self.flood_limits = None

    def _check_flood(self, method: str, chat: JSON) -> None:
        limits = self.flood_limits
        if limits is None or method not in limits.methods:
            return
        now = time.monotonic()
        chat_id = chat["id"]
        wait = 0.0
        everyone = self._flood_all
        while everyone and everyone[0] <= now - 1.0:
            everyone.popleft()
        if len(everyone) >= limits.per_bot_per_second:
            wait = everyone[0] + 1.0 - now
        if chat["type"] == "private":
            last = self._flood_private.get(chat_id)
            if last is not None and now - last < limits.private_chat_interval - limits.tolerance:
                wait = max(wait, last + limits.private_chat_interval - now)
        else:
            recent = self._flood_groups[chat_id]
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= limits.group_per_minute:
                wait = max(wait, recent[0] + 60.0 - now)
        if wait > 0:
            self.flood_429_count += 1
            raise _Refused(ApiError.retry_after(max(1, math.ceil(wait))))
        everyone.append(now)
        if chat["type"] == "private":
            self._flood_private[chat_id] = now
        else:
            self._flood_groups[chat_id].append(now)

    # -- chats, users, members --------------------------------------------------

    def add_chat(
        self,
        chat_id: int,
        chat_type: ChatType | None = None,
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        is_forum: bool | None = None,
    ) -> JSON:
        """Register (or update) a chat; returns its Chat object. ``is_forum``:
        a supergroup with topics."""
        chat_type = chat_type or _default_chat_type(chat_id)
        with self._lock:
            # Keep what an earlier registration said unless told otherwise.
            chat = dict(self._chats.get(chat_id) or {})
            if chat.get("type") != chat_type:
                chat = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = first_name or chat.get("first_name") or f"User{chat_id}"
            else:
                chat["title"] = title or chat.get("title") or f"{chat_type.capitalize()} {chat_id}"
            if username:
                chat["username"] = username
            if is_forum is not None:
                if is_forum and chat_type != "supergroup":
                    raise ValueError("only supergroups have topics")
                if is_forum:
                    chat["is_forum"] = True
                else:
                    chat.pop("is_forum", None)
            self._chats[chat_id] = chat
            return dict(chat)

    # -- forum topics -----------------------------------------------------------

    def create_topic(self, chat_id: int, name: str) -> int:
        """A new topic in forum ``chat_id``; returns its message_thread_id (as
        in Telegram, the id of the service message that created it)."""
        with self._lock:
            if not self._chats.get(chat_id, {}).get("is_forum"):
                raise ValueError(f"chat {chat_id} is not a forum")
            thread_id = self._next_message_id(chat_id)
            if thread_id == 1:
                # Thread 1 is General, which is no topic of its own.
                thread_id = self._next_message_id(chat_id)
            self._topics.setdefault(chat_id, {})[thread_id] = {
                "name": name,
                "closed": False,
                "deleted": False,
            }
            return thread_id

    def close_topic(self, chat_id: int, thread_id: int) -> None:
        with self._lock:
            self._topics[chat_id][thread_id]["closed"] = True

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        with self._lock:
            self._topics[chat_id][thread_id]["deleted"] = True

    def _topic_created(self, chat: JSON, thread_id: int) -> JSON:
        """The service message that opened a topic: Telegram puts it in
        ``reply_to_message`` of every message in the topic that replies to
        nothing else."""
        topic = self._topics[chat["id"]][thread_id]
        return {
            "message_id": thread_id,
            "date": int(time.time()),
            "chat": dict(chat),
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "forum_topic_created": {"name": topic["name"], "icon_color": 7322096},
        }

    def _check_thread(self, chat: JSON, thread_id: Any) -> None:
        """Sending into a topic: General has no usable thread id (1 is
        refused), a deleted or unknown topic is not found, a closed one is
        closed."""
        if not chat.get("is_forum"):
            return  # elsewhere a thread id names a reply thread; nothing to check here
        if not isinstance(thread_id, int):
            raise _bad_request("message thread not found")
        topic = self._topics.get(chat["id"], {}).get(thread_id)
        if topic is None or topic["deleted"]:
            raise _bad_request("message thread not found")
        if topic["closed"]:
            raise _bad_request("TOPIC_CLOSED")

    def user(
        self,
        user_id: int,
        *,
        username: str | None = None,
        first_name: str | None = None,
        language_code: str | None = None,
    ) -> JSON:
        """Register (or update) a user; returns its User object.
        ``language_code``: the IETF tag of the user's Telegram language ("en"
        unless set; "" removes it, as for users whose client sends none)."""
        with self._lock:
            user = self._users.get(user_id) or {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or f"User{user_id}",
                "language_code": "en",
            }
            if username:
                user["username"] = username
            if first_name:
                user["first_name"] = first_name
            if language_code == "":
                user.pop("language_code", None)
            elif language_code is not None:
                user["language_code"] = language_code
            self._users[user_id] = user
            return dict(user)

    def set_member(
        self, chat_id: int, user_id: int, status: MemberStatus | str, **fields: Any
    ) -> JSON:
        """Configure what getChatMember answers for (chat_id, user_id). For the
        bot's own id this also decides whether sends to the chat are allowed."""
        with self._lock:
            chat = self._chats.get(chat_id) or self.add_chat(chat_id)
            user = self._users.get(user_id) or self.user(user_id)
            member = chat_member_json(user, status, chat_type=chat["type"], **fields)
            self._members[(chat_id, user_id)] = member
            return member

    def chat(self, chat_id: int) -> JSON | None:
        with self._lock:
            chat = self._chats.get(chat_id)
            return None if chat is None else dict(chat)

    def _resolve_chat(self, value: Any) -> JSON:
        """The chat a ``chat_id`` parameter names, as Telegram would resolve it."""
        if value is None or value == "":
            raise _bad_request("chat_id is empty")
        if isinstance(value, str):
            if value.startswith("@"):
                for chat in self._chats.values():
                    if chat.get("username", "").lower() == value[1:].lower():
                        return chat
                raise _Refused(ApiError.chat_not_found())
            try:
                value = int(value)
            except ValueError:
                raise _Refused(ApiError.chat_not_found()) from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Refused(ApiError.chat_not_found())
        if value in self._migrated:
            raise _Refused(ApiError.migrated(self._migrated[value]))
        known = self._chats.get(value)
        if known is not None:
            return known
        if self.strict_chats:
            raise _Refused(ApiError.chat_not_found())
        return self.add_chat(value)

    def _bot_status(self, chat_id: int) -> JSON | None:
        return self._members.get((chat_id, self.bot_id))

    def _check_can_send(self, chat: JSON) -> None:
        """Refuse sends the way Telegram does once the bot was blocked, removed,
        or lacks rights; chats without a configured bot membership are open."""
        member = self._bot_status(chat["id"])
        if member is None:
            return
        status, kind = member["status"], chat["type"]
        if kind == "private":
            if status == "kicked":
                raise _Refused(ApiError.blocked_by_user())
            return
        if status == "kicked":
            raise _Refused(ApiError(403, f"Forbidden: bot was kicked from the {kind} chat"))
        if status == "left":
            raise _Refused(ApiError(403, f"Forbidden: bot is not a member of the {kind} chat"))
        if kind == "channel" and not (
            status == "creator" or (status == "administrator" and member.get("can_post_messages"))
        ):
            raise _bad_request("need administrator rights in the channel chat")
        if status == "restricted" and not member.get("can_send_messages"):
            raise _bad_request("not enough rights to send text messages to the chat")

    def _bot_as_sender(self) -> JSON:
        # Messages carry the short User object; getMe's capability flags are not in it.
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    def _next_message_id(self, chat_id: int) -> int:
        with self._lock:
            self._message_ids[chat_id] += 1
            return self._message_ids[chat_id]

    # -- update builders --------------------------------------------------------

    def _next_update_id(self) -> int:
        with self._lock:
            self._last_update_id += 1
            return self._last_update_id

    def _chat_for_update(
        self,
        chat_id: int,
        chat_type: ChatType | None,
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
    ) -> JSON:
        kind = chat_type or _default_chat_type(chat_id)
        if kind == "private":
            # A private chat is the user: same id, name and username.
            user = self.user(chat_id, username=username, first_name=first_name)
            return self.add_chat(
                chat_id, kind, username=user.get("username"), first_name=user["first_name"]
            )
        return self.add_chat(chat_id, kind, title=title, username=username)

    def message(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: ChatType | None = None,
        username: str | None = None,
        first_name: str | None = None,
        title: str | None = None,
        entities: list[JSON] | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """An update with a text message from a user. ``chat_type`` defaults from
        the id (positive: private); the sender defaults to the chat's user in a
        private chat, else :data:`DEFAULT_USER_ID`. ``/commands`` (also
        ``/cmd@botname``) get their ``bot_command`` entities. ``thread_id``:
        sent in that topic of a forum (see ``create_topic``)."""
        if chat_type == "channel":
            raise ValueError("channels have channel_post updates, see channel_post()")
        kind = chat_type or _default_chat_type(chat_id)
        if kind == "private":
            chat = self._chat_for_update(chat_id, kind, username=username, first_name=first_name)
            sender = self.user(user_id if user_id is not None else chat_id)
        else:
            chat = self._chat_for_update(chat_id, kind, title=title)
            sender = self.user(
                user_id if user_id is not None else DEFAULT_USER_ID,
                username=username,
                first_name=first_name,
            )
        msg: JSON = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        found = entities if entities is not None else _command_entities(text)
        if found:
            msg["entities"] = found
        if thread_id is not None:
            with self._lock:
                msg["message_thread_id"] = thread_id
                msg["is_topic_message"] = True
                msg["reply_to_message"] = self._topic_created(chat, thread_id)
        return {"update_id": self._next_update_id(), "message": msg}

    def channel_post(
        self,
        chat_id: int,
        text: str,
        *,
        title: str | None = None,
        username: str | None = None,
        author_signature: str | None = None,
    ) -> JSON:
        """An update with a post in a channel: no ``from``, ``sender_chat`` is the channel."""
        chat = self.add_chat(chat_id, "channel", title=title, username=username)
        post: JSON = {
            "message_id": self._next_message_id(chat_id),
            "sender_chat": chat,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if author_signature:
            post["author_signature"] = author_signature
        found = _command_entities(text)
        if found:
            post["entities"] = found
        return {"update_id": self._next_update_id(), "channel_post": post}

    def forwarded(
        self,
        chat_id: int,
        *,
        from_channel: int | None = None,
        from_user: int | None = None,
        from_hidden_user: str | None = None,
        from_chat: int | None = None,
        text: str = "A forwarded post",
        user_id: int | None = None,
    ) -> JSON:
        """A message forwarded into ``chat_id``, with Telegram's ``forward_origin``
        for exactly one origin: a channel post (``from_channel``, the channel as
        registered, e.g. by :meth:`add_chat`), a user, a user who hides their
        account (only a name), or an anonymous group admin (``from_chat``)."""
        given = [v for v in (from_channel, from_user, from_hidden_user, from_chat) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of from_channel, from_user, from_hidden_user, from_chat"
            )
        date = int(time.time()) - 3600
        origin: JSON
        if from_channel is not None:
            channel = self.add_chat(from_channel, "channel")
            origin = {
                "type": "channel",
                "date": date,
                "chat": channel,
                "message_id": self._next_message_id(from_channel),
            }
        elif from_user is not None:
            origin = {"type": "user", "date": date, "sender_user": self.user(from_user)}
        elif from_hidden_user is not None:
            origin = {"type": "hidden_user", "date": date, "sender_user_name": from_hidden_user}
        else:
            assert from_chat is not None
            origin = {"type": "chat", "date": date, "sender_chat": self.add_chat(from_chat)}
        # Telegram keeps the original's text and entities, commands included.
        update = self.message(chat_id, text, user_id=user_id)
        update["message"]["forward_origin"] = origin
        return update

    def add_file(
        self, data: bytes, file_name: str, mime_type: str = "application/octet-stream"
    ) -> JSON:
        """A file Telegram keeps: its Document JSON (``file_id`` for getFile)."""
        with self._lock:
            number = len(self._files) + 1
            file_id = f"doc-{number}-{len(data)}"
            document: JSON = {
                "file_id": file_id,
                "file_unique_id": f"u{number}",
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": len(data),
            }
            self._files[file_id] = (document, data)
            self._file_paths[f"documents/file_{number}"] = file_id
        return copy.deepcopy(document)

    def document_message(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        *,
        mime_type: str = "application/xml",
        user_id: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
    ) -> JSON:
        """A user sends a document; ``file_size`` overrides what Telegram
        tells (a file over the limits without sending its bytes)."""
        update = self.message(chat_id, "", user_id=user_id)
        message = update["message"]
        del message["text"]
        document = self.add_file(data, file_name, mime_type)
        if file_size is not None:
            document["file_size"] = file_size
            with self._lock:
                self._files[document["file_id"]][0]["file_size"] = file_size
        message["document"] = document
        if caption is not None:
            message["caption"] = caption
        return update

    def callback_query(
        self,
        chat_id: int,
        user_id: int,
        data: str,
        *,
        message_id: int | None = None,
        message_text: str = "…",
        chat_type: ChatType | None = None,
        query_id: str | None = None,
    ) -> JSON:
        """An update with a button press. The ``message`` the button was on is the
        stored one with ``message_id`` (e.g. one the bot sent), else a new bot
        message with ``message_text`` that editMessageText can then edit."""
        chat = self._chat_for_update(chat_id, chat_type)
        with self._lock:
            stored = self._messages.get((chat_id, message_id)) if message_id is not None else None
            if stored is None:
                stored = self._store_message(
                    chat,
                    message_text,
                    [],
                    None,
                    message_id=message_id or self._next_message_id(chat_id),
                )
            if query_id is None:
                query_id = f"{self.bot_id}{self._next_callback_id:08d}"
                self._next_callback_id += 1
        query: JSON = {
            "id": query_id,
            "from": self.user(user_id),
            "message": copy.deepcopy(stored),
            "chat_instance": str(abs(hash((chat_id, self.bot_id)))),
            "data": data,
        }
        return {"update_id": self._next_update_id(), "callback_query": query}

    def inline_query(
        self,
        user_id: int,
        query: str,
        *,
        offset: str = "",
        chat_type: str | None = "sender",
        query_id: str | None = None,
    ) -> JSON:
        """An update with an inline query (``@bot query`` typed by ``user_id``);
        ``offset`` is the ``next_offset`` of the answer being scrolled past."""
        with self._lock:
            if query_id is None:
                query_id = f"{self.bot_id}{self._next_inline_query_id:010d}"
                self._next_inline_query_id += 1
        body: JSON = {"id": query_id, "from": self.user(user_id), "query": query, "offset": offset}
        if chat_type is not None:
            body["chat_type"] = chat_type
        return {"update_id": self._next_update_id(), "inline_query": body}

    def post_inline_result(self, answer: Call, result_id: str, chat_id: int) -> JSON:
        """Post the result ``result_id`` of a recorded answerInlineQuery into
        ``chat_id``, as Telegram does when the user picks it: a message "via"
        the bot with the result's text, entities and keyboard. Returns it."""
        results = answer.params.get("results") or []
        (result,) = [r for r in results if r.get("id") == result_id]
        content = result["input_message_content"]
        with self._lock:
            chat = self._resolve_chat(chat_id)
            text, entities = self._text_and_entities({**content, "text": content["message_text"]})
            markup = self._check_reply_markup(result.get("reply_markup"))
            message = self._store_message(chat, text, entities, markup)
            message["via_bot"] = self._bot_as_sender()
            if "link_preview_options" in content:
                message["link_preview_options"] = content["link_preview_options"]
            return copy.deepcopy(message)

    def my_chat_member(
        self,
        chat_id: int,
        chat_type: ChatType,
        old_status: MemberStatus | str,
        new_status: MemberStatus | str,
        *,
        user_id: int | None = None,
        can_post_messages: bool | None = None,
        title: str | None = None,
        username: str | None = None,
    ) -> JSON:
        """An update saying the bot's membership changed (added, promoted, removed,
        blocked: in a private chat, "kicked" means the user blocked the bot).
        Pushing it makes the fake act on the new status."""
        chat = self._chat_for_update(chat_id, chat_type, title=title, username=username)
        actor_id = (
            user_id
            if user_id is not None
            else (chat_id if chat_type == "private" else DEFAULT_USER_ID)
        )
        rights = (
            {}
            if can_post_messages is None or new_status != "administrator"
            else {"can_post_messages": can_post_messages}
        )
        change: JSON = {
            "chat": chat,
            "from": self.user(actor_id),
            "date": int(time.time()),
            "old_chat_member": chat_member_json(
                self._bot_as_sender(), old_status, chat_type=chat_type
            ),
            "new_chat_member": chat_member_json(
                self._bot_as_sender(), new_status, chat_type=chat_type, **rights
            ),
        }
        return {"update_id": self._next_update_id(), "my_chat_member": change}

    def migrate(
        self,
        chat_id: int,
        new_chat_id: int,
        *,
        title: str | None = None,
        user_id: int = DEFAULT_USER_ID,
    ) -> JSON:
        """The service message a group posts when it becomes a supergroup. Pushing
        it makes sends to the old id answer 400 with ``migrate_to_chat_id``."""
        chat = self.add_chat(chat_id, "group", title=title)
        msg: JSON = {
            "message_id": self._next_message_id(chat_id),
            "from": self.user(user_id),
            "chat": chat,
            "date": int(time.time()),
            "migrate_to_chat_id": new_chat_id,
        }
        return {"update_id": self._next_update_id(), "message": msg}

    def migrate_from(
        self,
        new_chat_id: int,
        old_chat_id: int,
        *,
        title: str | None = None,
        user_id: int = DEFAULT_USER_ID,
    ) -> JSON:
        """The matching first message in the new supergroup (``migrate_from_chat_id``)."""
        chat = self.add_chat(new_chat_id, "supergroup", title=title)
        msg: JSON = {
            "message_id": self._next_message_id(new_chat_id),
            "from": self.user(user_id),
            "chat": chat,
            "date": int(time.time()),
            "migrate_from_chat_id": old_chat_id,
        }
        return {"update_id": self._next_update_id(), "message": msg}

    def push_update(self, update: JSON) -> JSON:
        """Queue an update for getUpdates and apply what it tells Telegram (bot
        membership, migrations, chats). Updates without ``update_id`` get one."""
        with self._lock:
            if "update_id" not in update:
                update["update_id"] = self._next_update_id()
            if update["update_id"] <= self._last_pushed_id:
                # The client's offset may already be past it: it would be lost silently.
                raise ValueError(
                    f"update_id {update['update_id']} is not above the last pushed one "
                    f"({self._last_pushed_id}); push updates in the order they were built"
                )
            self._last_pushed_id = update["update_id"]
            self._last_update_id = max(self._last_update_id, update["update_id"])
            self._absorb(update)
            self._updates.append(update)
            self._changed.notify_all()
        return update

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._updates)

    def _absorb(self, update: JSON) -> None:
        for kind, body in update.items():
            if not isinstance(body, dict):
                continue
            chat = body.get("chat")
            if isinstance(chat, dict) and "id" in chat and "type" in chat:
                self._chats.setdefault(chat["id"], dict(chat))
            if kind == "my_chat_member":
                member = copy.deepcopy(body["new_chat_member"])
                self._members[(body["chat"]["id"], self.bot_id)] = member
            elif kind == "message" and "migrate_to_chat_id" in body:
                old_id, new_id = body["chat"]["id"], body["migrate_to_chat_id"]
                self._migrated[old_id] = new_id
                if new_id not in self._chats:
                    self.add_chat(new_id, "supergroup", title=body["chat"].get("title"))
                bot_member = self._members.get((old_id, self.bot_id))
                if bot_member is not None:
                    self._members[(new_id, self.bot_id)] = bot_member
            elif kind == "callback_query":
                self._callback_ids.add(str(body["id"]))
            elif kind == "inline_query":
                self._inline_query_ids.add(str(body["id"]))
            if kind in ("message", "channel_post") and isinstance(body.get("message_id"), int):
                # Kept so that deleteMessage can find it (and refuse to edit it).
                key = (body["chat"]["id"], body["message_id"])
                self._messages.setdefault(key, copy.deepcopy(body))
                self._user_messages.add(key)

    # -- dispatch ---------------------------------------------------------------

    _PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z0-9_]+)/?$")
    _FILE_PATH = re.compile(r"^/file/bot(?P<token>[^/]+)/(?P<path>.+)$")

    def _dispatch(
        self, raw_path: str, content_type: str, body: bytes
    ) -> tuple[int, str, bytes] | None:
        """Answer one HTTP request: (status, content type, body), or None to drop the
        connection unanswered. Runs in a handler thread."""
        with self._lock:
            offline = self._offline_mode
            if offline is not None:
                self.offline_hits += 1
        if offline == "refuse":
            # A keep-alive connection accepted just before going offline.
            return None
        if offline is not None:
            page = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"
            return 502, "text/html", page
        url = urlsplit(raw_path)
        file_match = self._FILE_PATH.match(url.path)
        if file_match is not None:
            # PTB quotes the URL (the token's ":" too).
            return self._download(unquote(file_match["token"]), unquote(file_match["path"]))
        path_match = self._PATH.match(url.path)
        if path_match is None:
            return self._json(ApiError(404, "Not Found").to_json(), 404)
        if path_match["token"] != self.token:
            return self._json(ApiError(401, "Unauthorized").to_json(), 401)
        requested = path_match["method"]
        method = _CANONICAL.get(requested.lower(), requested)
        try:
            params = _decode_params(url.query, content_type, body)
        except (_Refused, ValueError, UnicodeDecodeError):
            return self._json(ApiError(400, "Bad Request: can't parse request body").to_json(), 400)

        call = Call(method, params, time.monotonic())
        with self._lock:
            self._calls.append(call)
            self._changed.notify_all()
            wake = self._wake

        status, payload = self._answer(method, params, wake)
        with self._lock:
            call.status, call.response = status, payload
            self._changed.notify_all()
        return self._json(payload, status)

    def _answer(
        self, method: str, params: dict[str, Any], wake: threading.Event
    ) -> tuple[int, JSON]:
        fault = self._take_fault(method, params)
        if isinstance(fault, Hang):
            wake.wait(fault.seconds)
            fault = fault.then
        if fault is not None:
            return fault.error_code, fault.to_json()
        handler = _HANDLERS.get(method)
        try:
            if handler is None:
                with self._lock:
                    self.unknown_methods.append(method)
                result: Any = True
            else:
                result = handler(self, params)
        except _Refused as refused:
            return refused.error.error_code, refused.error.to_json()
        except Exception as exc:  # a bug here, or parameters we cannot handle
            with self._lock:
                self.internal_errors.append(f"{method}: {exc!r}")
            error = ApiError(500, f"Internal Server Error: fake Telegram failed: {exc!r}")
            return error.error_code, error.to_json()
        return 200, {"ok": True, "result": result}

    @staticmethod
    def _json(payload: JSON, status: int) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(payload, ensure_ascii=False).encode("utf-8")

    # -- methods ----------------------------------------------------------------

    def _get_me(self, params: JSON) -> JSON:
        return dict(self.bot_user)

    def _get_updates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        deadline = time.monotonic() + min(timeout, self.long_poll_cap)
        with self._changed:
            if self.webhook is not None:
                raise _Refused(
                    ApiError(
                        409,
                        "Conflict: can't use getUpdates method while webhook is active; "
                        "use deleteWebhook to delete the webhook first",
                    )
                )
            allowed = params.get("allowed_updates")
            if isinstance(allowed, list):  # Telegram remembers it for later calls
                self._allowed_updates = [str(a) for a in allowed]
            self._poll_generation += 1
            generation = self._poll_generation
            self._confirm(offset)
            while True:
                batch = self._deliverable(limit)
                if batch or self._server is None or self._offline_mode is not None:
                    return batch
                if self._poll_generation != generation:
                    raise _Refused(
                        ApiError(
                            409,
                            "Conflict: terminated by other getUpdates request; "
                            "make sure that only one bot instance is running",
                        )
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:  # "the last -offset updates"; earlier ones are forgotten
            self._updates = self._updates[offset:]

    def _deliverable(self, limit: int) -> list[JSON]:
        allowed = set(self._allowed_updates)
        kept = []
        for update in self._updates:
            kind = next((k for k in update if k != "update_id"), "")
            if (allowed and kind not in allowed) or (not allowed and kind in _OPT_IN_UPDATES):
                continue  # Telegram never creates updates the bot did not ask for
            kept.append(update)
        self._updates = kept
        return [copy.deepcopy(u) for u in kept[:limit]]

    def _set_webhook(self, params: JSON) -> bool:
        url = str(params.get("url") or "")
        with self._changed:
            if not url:
                self.webhook = None
                return True
            if not url.lower().startswith("https://"):
                raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
            self.webhook = dict(params)
            if params.get("drop_pending_updates"):
                self._updates.clear()
            self._changed.notify_all()  # a waiting getUpdates must now give up
        return True

    def _delete_webhook(self, params: JSON) -> bool:
        with self._lock:
            self.webhook = None
            if params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _get_webhook_info(self, params: JSON) -> JSON:
        with self._lock:
            info: JSON = {
                "url": (self.webhook or {}).get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
            if self.webhook and self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
            return info

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_NAME.fullmatch(
                str(command.get("command", ""))
            ):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self._commands[self._commands_key(params)] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return True

    def _get_my_commands(self, params: JSON) -> list[JSON]:
        with self._lock:
            return list(self._commands.get(self._commands_key(params), []))

    def _delete_my_commands(self, params: JSON) -> bool:
        with self._lock:
            self._commands.pop(self._commands_key(params), None)
        return True

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The commands set for ``scope`` (default scope if None) and language."""
        return self._get_my_commands({"scope": scope, "language_code": language_code})

    def _text_and_entities(self, params: JSON) -> tuple[str, list[JSON]]:
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _bad_request("message text is empty")
        parse_mode = params.get("parse_mode")
        entities: list[JSON] = []
        if parse_mode:
            mode = str(parse_mode).lower()
            if mode == "html":
                try:
                    text, entities = parse_telegram_html(text, strict=self.strict_html)
                except TelegramHTMLError as exc:
                    description = exc.message[:1].lower() + exc.message[1:]
                    raise _bad_request(description) from None
            elif mode not in ("markdown", "markdownv2"):  # accepted unchecked
                raise _bad_request("unsupported parse_mode")
        elif isinstance(params.get("entities"), list):
            entities = params["entities"]
        if not text.strip():
            raise _bad_request("message text is empty")
        if utf16_length(text) > MAX_MESSAGE_LENGTH:
            raise _Refused(ApiError.message_too_long())
        return text, entities

    @staticmethod
    def _check_reply_markup(markup: Any) -> JSON | None:
        """Validate a reply_markup; returns it if it is an inline keyboard (the only
        kind Telegram echoes back in the Message)."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return None
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise _bad_request(
                'can\'t parse inline keyboard button: field "inline_keyboard" must be an Array of Arrays'
            )
        if sum(len(row) for row in keyboard) > 100:
            raise _bad_request("reply markup is too long")
        for row in keyboard:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad_request("can't parse inline keyboard button: Text is not a string")
                actions = [a for a in _BUTTON_ACTIONS if a in button]
                if len(actions) != 1:
                    raise _bad_request(
                        "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if "callback_data" in button and not (
                    isinstance(data, str) and 1 <= len(data.encode("utf-8")) <= 64
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
                url = button.get("url")
                if "url" in button and not (
                    isinstance(url, str) and re.match(r"(?i)(https?|tg)://\S", url)
                ):
                    raise _bad_request(
                        f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                    )
        return markup

    def _store_message(
        self,
        chat: JSON,
        text: str,
        entities: list[JSON],
        reply_markup: JSON | None,
        *,
        message_id: int | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        message: JSON = {
            "message_id": message_id
            if message_id is not None
            else self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": dict(chat),
            "text": text,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = dict(chat)  # channel posts are signed by the channel
        else:
            message["from"] = self._bot_as_sender()
        if entities:
            message["entities"] = entities
        if reply_markup is not None:
            message["reply_markup"] = reply_markup
        if thread_id is not None and chat.get("is_forum"):
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        with self._lock:
            self._messages[(chat["id"], message["message_id"])] = message
        return message

    def _send_message(self, params: JSON) -> JSON:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            self._check_can_send(chat)
            thread_id = params.get("message_thread_id")
            if thread_id is not None:
                self._check_thread(chat, thread_id)
            text, entities = self._text_and_entities(params)
            markup = self._check_reply_markup(params.get("reply_markup"))
            self._check_flood("sendMessage", chat)
            message = self._store_message(chat, text, entities, markup, thread_id=thread_id)
            return copy.deepcopy(message)

    def _message_to_edit(self, params: JSON) -> tuple[JSON, bool]:
        """The stored message an edit targets, and whether it is an inline message."""
        if params.get("inline_message_id"):
            # Messages sent via inline mode are not ours to look up: accept any id.
            return self._inline_messages.setdefault(str(params["inline_message_id"]), {}), True
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad_request("message identifier is not specified")
        if message_id <= 0:
            raise _bad_request("MESSAGE_ID_INVALID")
        # A bot that was blocked, removed or restricted cannot edit either.
        self._check_can_send(chat)
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise _bad_request("message to edit not found")
        if (chat["id"], message_id) in self._user_messages:
            raise _bad_request("message can't be edited")
        return message, False

    def _edit_message_text(self, params: JSON) -> JSON | bool:
        with self._lock:
            message, inline = self._message_to_edit(params)
            if not inline and "photo" in message:
                raise _bad_request("there is no text in the message to edit")
            text, entities = self._text_and_entities(params)
            markup = self._check_reply_markup(params.get("reply_markup"))
            if (
                message.get("text") == text
                and message.get("entities", []) == entities
                and message.get("reply_markup") == markup
            ):
                raise _bad_request(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            if not inline:
                self._check_flood("editMessageText", message["chat"])
            message["text"] = text
            message["edit_date"] = int(time.time())
            if entities:
                message["entities"] = entities
            else:
                message.pop("entities", None)
            if markup is not None:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            return True if inline else copy.deepcopy(message)

    def _edit_message_caption(self, params: JSON) -> JSON | bool:
        with self._lock:
            message, inline = self._message_to_edit(params)
            if not inline and "photo" not in message:
                raise _bad_request("there is no caption in the message to edit")
            caption, entities = "", []
            if params.get("caption"):
                caption, entities = self._text_and_entities({**params, "text": params["caption"]})
                if utf16_length(caption) > 1024:
                    raise _bad_request("message caption is too long")
            markup = self._check_reply_markup(params.get("reply_markup"))
            if (
                message.get("caption", "") == caption
                and message.get("caption_entities", []) == entities
                and message.get("reply_markup") == markup
            ):
                raise _bad_request(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            if not inline:
                self._check_flood("editMessageCaption", message["chat"])
            for key, value in (("caption", caption), ("caption_entities", entities)):
                if value:
                    message[key] = value
                else:
                    message.pop(key, None)
            if markup is not None:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            message["edit_date"] = int(time.time())
            return True if inline else copy.deepcopy(message)

    def _edit_message_reply_markup(self, params: JSON) -> JSON | bool:
        with self._lock:
            message, inline = self._message_to_edit(params)
            markup = self._check_reply_markup(params.get("reply_markup"))
            if message.get("reply_markup") == markup:
                raise _bad_request(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            if markup is None:
                message.pop("reply_markup", None)
            else:
                message["reply_markup"] = markup
            message["edit_date"] = int(time.time())
            return True if inline else copy.deepcopy(message)

    def _delete_message(self, params: JSON) -> bool:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            message_id = params.get("message_id")
            if not isinstance(message_id, int):
                raise _bad_request("message identifier is not specified")
            key = (chat["id"], message_id)
            if key not in self._messages:
                raise _bad_request("message to delete not found")
            # Bots may delete incoming messages in private chats; elsewhere only
            # as an administrator with the "Delete messages" right.
            if key in self._user_messages and chat["type"] != "private":
                member = self._bot_status(chat["id"]) or {}
                allowed = member.get("status") == "creator" or (
                    member.get("status") == "administrator" and member.get("can_delete_messages")
                )
                if not allowed:
                    raise _bad_request("message can't be deleted")
            del self._messages[key]
            self._user_messages.discard(key)
        return True

    def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        with self._lock:
            if query_id not in self._callback_ids:
                raise _bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
        if len(str(params.get("text") or "")) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        return True

    def _answer_inline_query(self, params: JSON) -> bool:
        query_id = str(params.get("inline_query_id") or "")
        with self._lock:
            if query_id not in self._inline_query_ids or query_id in self._answered_inline_queries:
                raise _bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
        results = params.get("results")
        if not isinstance(results, list):
            raise _bad_request("can't parse inline query results JSON object")
        if len(results) > 50:
            raise _bad_request("RESULTS_TOO_MUCH")
        if len(str(params.get("next_offset") or "").encode("utf-8")) > 64:
            raise _bad_request("NEXT_OFFSET_INVALID")
        cache_time = params.get("cache_time", 300)
        if not isinstance(cache_time, int) or cache_time < 0:
            raise _bad_request("CACHE_TIME_INVALID")
        seen: set[str] = set()
        for result in results:
            if not isinstance(result, dict) or not isinstance(result.get("type"), str):
                raise _bad_request("can't parse inline query result")
            result_id = result.get("id")
            if not isinstance(result_id, str) or not 1 <= len(result_id.encode("utf-8")) <= 64:
                raise _bad_request("RESULT_ID_INVALID")
            if result_id in seen:
                raise _bad_request("RESULT_ID_DUPLICATE")
            seen.add(result_id)
            self._check_reply_markup(result.get("reply_markup"))
            if result["type"] == "article":
                if not str(result.get("title") or "").strip():
                    raise _bad_request("RESULT_TITLE_EMPTY")
                content = result.get("input_message_content")
                if not isinstance(content, dict) or "message_text" not in content:
                    raise _bad_request("MESSAGE_EMPTY")
                self._text_and_entities({**content, "text": content["message_text"]})
                thumbnail = result.get("thumbnail_url")
                if thumbnail is not None and not re.match(r"(?i)https?://\S", str(thumbnail)):
                    raise _bad_request("THUMBNAIL_URL_INVALID")
        with self._lock:
            self._answered_inline_queries.add(query_id)
        return True

    def refuse_photo_url(self, url: str) -> None:
        """From now on, sendPhoto with ``url`` fails as when Telegram cannot
        download the image (a dead link, a site that blocks it)."""
        with self._lock:
            self._unfetchable_photos.add(url)

    def _send_photo(self, params: JSON) -> JSON:
        photo = params.get("photo")
        if isinstance(photo, UploadedFile):
            if not photo.data:
                raise _bad_request("file must be non-empty")
            width, height = _image_size(photo.data)
            unique = f"upload{len(photo.data)}"
        elif isinstance(photo, str) and photo:
            width, height, unique = 320, 320, f"remote{abs(hash(photo))}"
        else:
            raise _bad_request("there is no photo in the request")
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            self._check_can_send(chat)
            thread_id = params.get("message_thread_id")
            if thread_id is not None:
                self._check_thread(chat, thread_id)
            if isinstance(photo, str) and photo in self._unfetchable_photos:
                raise _bad_request("failed to get HTTP URL content")
            caption, entities = "", []
            if params.get("caption"):
                caption, entities = self._text_and_entities({**params, "text": params["caption"]})
                if utf16_length(caption) > 1024:
                    raise _bad_request("message caption is too long")
            markup = self._check_reply_markup(params.get("reply_markup"))
            self._check_flood("sendPhoto", chat)
            message = self._store_message(chat, caption, entities, markup, thread_id=thread_id)
            del message["text"]
            message.pop("entities", None)
            if caption:
                message["caption"] = caption
            if entities:
                message["caption_entities"] = entities
            message["photo"] = [
                {
                    "file_id": f"photo-{chat['id']}-{message['message_id']}",
                    "file_unique_id": unique,
                    "width": width,
                    "height": height,
                }
            ]
            return copy.deepcopy(message)

    def _send_document(self, params: JSON) -> JSON:
        upload = params.get("document")
        if isinstance(upload, UploadedFile):
            if not upload.data:
                raise _bad_request("file must be non-empty")
            document = self.add_file(upload.data, upload.filename, upload.content_type)
        elif isinstance(upload, str) and upload in self._files:
            document = copy.deepcopy(self._files[upload][0])
        else:
            raise _bad_request("there is no document in the request")
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            self._check_can_send(chat)
            caption, entities = "", []
            if params.get("caption"):
                caption, entities = self._text_and_entities({**params, "text": params["caption"]})
                if utf16_length(caption) > 1024:
                    raise _bad_request("message caption is too long")
            markup = self._check_reply_markup(params.get("reply_markup"))
            self._check_flood("sendDocument", chat)
            message = self._store_message(chat, caption, entities, markup)
            del message["text"]
            message.pop("entities", None)
            if caption:
                message["caption"] = caption
            if entities:
                message["caption_entities"] = entities
            message["document"] = document
            return copy.deepcopy(message)

    def _get_file(self, params: JSON) -> JSON:
        with self._lock:
            known = self._files.get(str(params.get("file_id", "")))
            if known is None:
                raise _bad_request("invalid file_id")
            document, data = known
            if len(data) > MAX_DOWNLOAD_BYTES or document["file_size"] > MAX_DOWNLOAD_BYTES:
                raise _bad_request("file is too big")
            path = next(p for p, f in self._file_paths.items() if f == document["file_id"])
            return {
                "file_id": document["file_id"],
                "file_unique_id": document["file_unique_id"],
                "file_size": len(data),
                "file_path": path,
            }

    def _download(self, token: str, path: str) -> tuple[int, str, bytes]:
        call = Call("downloadFile", {"file_path": path}, time.monotonic())
        with self._lock:
            self._calls.append(call)
            file_id = self._file_paths.get(path) if token == self.token else None
            data = self._files[file_id][1] if file_id is not None else None
            call.status = 200 if data is not None else 404
            self._changed.notify_all()
        if data is None:
            return 404, "text/plain", b"Not Found"
        return 200, "application/octet-stream", data

    def _get_chat(self, params: JSON) -> JSON:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            full = dict(chat)
        # ChatFullInfo fields PTB requires.
        full.setdefault("accent_color_id", 0)
        full.setdefault("max_reaction_count", 11)
        full.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return full

    def _get_chat_member(self, params: JSON) -> JSON:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            user_id = params.get("user_id")
            if not isinstance(user_id, int):
                raise _bad_request("invalid user_id specified")
            member = self._members.get((chat["id"], user_id))
            if member is not None:
                return copy.deepcopy(member)
            if self.unknown_member == "chat_not_found":
                raise _Refused(ApiError.chat_not_found())
            user = self._users.get(user_id) or self.user(user_id)
            return chat_member_json(user, self.unknown_member, chat_type=chat["type"])

    def _get_chat_administrators(self, params: JSON) -> list[JSON]:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            if chat["type"] == "private":
                raise _bad_request("there are no administrators in the private chat")
            return [
                copy.deepcopy(member)
                for (chat_id, _), member in self._members.items()
                if chat_id == chat["id"] and member["status"] in ("creator", "administrator")
            ]

    def _leave_chat(self, params: JSON) -> bool:
        with self._lock:
            chat = self._resolve_chat(params.get("chat_id"))
            if chat["type"] == "private":
                raise _bad_request("chat member status can't be changed in private chats")
            self._members[(chat["id"], self.bot_id)] = chat_member_json(
                self._bot_as_sender(), "left", chat_type=chat["type"]
            )
        return True


_HANDLERS: dict[str, Callable[[FakeTelegram, JSON], Any]] = {
    "getMe": FakeTelegram._get_me,
    "getUpdates": FakeTelegram._get_updates,
    "setWebhook": FakeTelegram._set_webhook,
    "deleteWebhook": FakeTelegram._delete_webhook,
    "getWebhookInfo": FakeTelegram._get_webhook_info,
    "setMyCommands": FakeTelegram._set_my_commands,
    "getMyCommands": FakeTelegram._get_my_commands,
    "deleteMyCommands": FakeTelegram._delete_my_commands,
    "sendMessage": FakeTelegram._send_message,
    "editMessageText": FakeTelegram._edit_message_text,
    "editMessageCaption": FakeTelegram._edit_message_caption,
    "editMessageReplyMarkup": FakeTelegram._edit_message_reply_markup,
    "deleteMessage": FakeTelegram._delete_message,
    "answerCallbackQuery": FakeTelegram._answer_callback_query,
    "answerInlineQuery": FakeTelegram._answer_inline_query,
    "sendPhoto": FakeTelegram._send_photo,
    "sendDocument": FakeTelegram._send_document,
    "getFile": FakeTelegram._get_file,
    "getChat": FakeTelegram._get_chat,
    "getChatMember": FakeTelegram._get_chat_member,
    "getChatAdministrators": FakeTelegram._get_chat_administrators,
    "leaveChat": FakeTelegram._leave_chat,
}
# Telegram accepts method names in any case; calls are recorded under the usual spelling.
_CANONICAL = {name.lower(): name for name in _HANDLERS}


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A started :class:`FakeTelegram`, stopped after the test. Fails the test if
    the fake itself raised while answering (see ``internal_errors``)."""
    with FakeTelegram() as server:
        yield server
    assert not server.internal_errors, f"fake Telegram failed: {server.internal_errors}"
