"""A small WebSub hub on 127.0.0.1 for the push tests.

Like the feed server it runs the stdlib ``ThreadingHTTPServer`` in a thread
of its own, so it never shares the test's event loop, and it talks to the
bot's callback listener over real sockets. What it does, as a hub does
(https://www.w3.org/TR/websub/):

- ``POST /hub`` with ``hub.mode=subscribe|unsubscribe``: answers 202, then
  verifies the intent with a GET to ``hub.callback`` carrying a random
  ``hub.challenge`` (from another thread, after answering, as most hubs
  do); the subscription counts only if the challenge came back.
- ``push(topic, body)``: POSTs ``body`` to every verified callback of the
  topic, signed with the subscriber's ``hub.secret`` (``X-Hub-Signature:
  sha256=...``), or unsigned, or wrongly signed, as the test asks.

Every request and every verification is recorded; ``wait_until`` blocks
until a condition on them holds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class HubRequest:
    mode: str
    topic: str
    callback: str
    secret: str | None
    lease_seconds: int | None


@dataclass(frozen=True)
class Verification:
    mode: str
    topic: str
    callback: str
    status: int
    echoed: bool  # the callback answered 2xx with the challenge


@dataclass
class Subscriber:
    callback: str
    secret: str | None
    lease_seconds: int


class WebSubHub:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._changed = threading.Condition()
        self.requests: list[HubRequest] = []
        self.verifications: list[Verification] = []
        self.subscribers: dict[str, list[Subscriber]] = {}
        # The lease the hub grants; None grants what was asked.
        self.lease_seconds: int | None = None
        # Answer subscription requests with this status instead of 202.
        self.refuse_with: int | None = None

    def start(self) -> WebSubHub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hub"

    # -- what the test asks --------------------------------------------

    def wait_until(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                assert left > 0, "the hub did not see what the test waited for"
                self._changed.wait(left)

    def verified(self, topic: str, mode: str = "subscribe") -> int:
        return sum(
            1 for v in self.verifications if v.topic == topic and v.mode == mode and v.echoed
        )

    def push(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        signature: str = "sha256",
    ) -> list[int]:
        """POST ``body`` to the topic's subscribers; ``signature``: an
        algorithm, "none" (unsigned) or "wrong" (signed with another secret).
        Returns the callbacks' statuses."""
        statuses = []
        for subscriber in list(self.subscribers.get(topic, [])):
            headers = {"Content-Type": content_type}
            if signature == "wrong":
                headers["X-Hub-Signature"] = sign("not-the-secret", body, "sha256")
            elif signature != "none":
                assert subscriber.secret is not None
                headers["X-Hub-Signature"] = sign(subscriber.secret, body, signature)
            statuses.append(post_to(subscriber.callback, body, headers))
        return statuses

    def verify(self, callback: str, mode: str, topic: str, lease: int = 3600) -> tuple[int, str]:
        """A verification GET as a hub sends it (also one nobody asked for)."""
        challenge = secrets.token_urlsafe(16)
        query = {
            "hub.mode": mode,
            "hub.topic": topic,
            "hub.challenge": challenge,
            "hub.lease_seconds": str(lease),
        }
        return _get(callback, query)

    # -- serving ---------------------------------------------------------

    def _handle(self, form: dict[str, str]) -> int:
        mode = form.get("hub.mode", "")
        topic = form.get("hub.topic", "")
        callback = form.get("hub.callback", "")
        lease = form.get("hub.lease_seconds")
        request = HubRequest(
            mode, topic, callback, form.get("hub.secret"), int(lease) if lease else None
        )
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            return 400
        if self.refuse_with is not None:
            return self.refuse_with
        threading.Thread(target=self._verify_intent, args=(request,), daemon=True).start()
        return 202

    def _verify_intent(self, request: HubRequest) -> None:
        time.sleep(0.01)  # after the 202, as a hub that verifies asynchronously
        granted = self.lease_seconds or request.lease_seconds or 86400
        challenge = secrets.token_urlsafe(16)
        query = {
            "hub.mode": request.mode,
            "hub.topic": request.topic,
            "hub.challenge": challenge,
        }
        if request.mode == "subscribe":
            query["hub.lease_seconds"] = str(granted)
        status, text = _get(request.callback, query)
        echoed = 200 <= status < 300 and text == challenge
        with self._changed:
            if echoed:
                subscribers = [
                    s
                    for s in self.subscribers.get(request.topic, [])
                    if s.callback != request.callback
                ]
                if request.mode == "subscribe":
                    subscribers.append(Subscriber(request.callback, request.secret, granted))
                self.subscribers[request.topic] = subscribers
            self.verifications.append(
                Verification(request.mode, request.topic, request.callback, status, echoed)
            )
            self._changed.notify_all()


def sign(secret: str, body: bytes, algorithm: str) -> str:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def _get(url: str, query: dict[str, str]) -> tuple[int, str]:
    separator = "&" if "?" in url else "?"
    target = url + separator + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(target, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def post_to(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _make_handler(hub: WebSubHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            status = hub._handle(form)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def websub_hub() -> Iterator[WebSubHub]:
    hub = WebSubHub().start()
    try:
        yield hub
    finally:
        hub.close()
