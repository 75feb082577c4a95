"""Deep links into the bot (``t.me/<bot>?start=...``): building and reading
their payloads. Pure: no Telegram types, no I/O.

Telegram passes a ``?start=PAYLOAD`` link's payload as ``/start PAYLOAD``
(and a ``?startgroup=PAYLOAD`` link's in the group the user picks). A payload
is 1-64 characters of ``A-Za-z0-9_-``. Ours:

* ``sub-space-science``: follow these categories. Category ids are
  ``[a-z0-9_]`` (``bot.config``), so ``-`` separates them unambiguously.
* ``a-123``: show the stored article with id 123 (the Share button's link).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import segno

from bot.i18n import Translator, translator

MAX_PAYLOAD_LENGTH = 64
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CATEGORY_ID = re.compile(r"[a-z0-9_]{1,32}")
SUBSCRIBE_PREFIX = "sub-"
ARTICLE_PREFIX = "a-"
# The QR code: module size in pixels and the quiet zone in modules (the 4
# the QR standard asks for); "M" error correction survives a smudged print.
QR_SCALE = 8
QR_BORDER = 4
QR_ERROR = "m"
# What a channel link asks Telegram to grant when the bot is added: cards
# can only be posted by an administrator with "Post messages".
CHANNEL_RIGHTS = "post_messages"


@dataclass(frozen=True, slots=True)
class FollowPayload:
    category_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArticlePayload:
    article_id: int


@dataclass(frozen=True, slots=True)
class BadPayload:
    """Not a payload of ours: a mistyped or truncated link."""

    payload: str


StartPayload = FollowPayload | ArticlePayload | BadPayload


def parse_start_payload(payload: str) -> StartPayload:
    """What a ``/start PAYLOAD`` asks for. Never raises; category ids are
    only checked for shape here (whether they exist is the caller's call)."""
    if not _PAYLOAD.fullmatch(payload):
        return BadPayload(payload)
    if payload.startswith(SUBSCRIBE_PREFIX):
        ids = payload[len(SUBSCRIBE_PREFIX) :].split("-")
        if not all(_CATEGORY_ID.fullmatch(i) for i in ids):
            return BadPayload(payload)
        return FollowPayload(tuple(dict.fromkeys(ids)))
    if payload.startswith(ARTICLE_PREFIX):
        number = payload[len(ARTICLE_PREFIX) :]
        # Digits only (int() would take "+1", "1_0" and Unicode digits too).
        if number.isascii() and number.isdigit() and len(number) <= 18:
            return ArticlePayload(int(number))
    return BadPayload(payload)


def follow_payload(category_ids: Sequence[str]) -> str | None:
    """``sub-space-science``, or None when it would exceed the 64 characters
    Telegram allows (too many categories for one link)."""
    payload = SUBSCRIBE_PREFIX + "-".join(category_ids)
    return payload if len(payload) <= MAX_PAYLOAD_LENGTH else None


def article_payload(article_id: int) -> str:
    return f"{ARTICLE_PREFIX}{article_id}"


def bot_link(username: str) -> str:
    return f"https://t.me/{username}"


def start_link(username: str, payload: str) -> str:
    """Opens a private chat with the bot and sends ``/start payload``."""
    return f"{bot_link(username)}?start={payload}"


def group_link(username: str, payload: str) -> str:
    """Lets the user pick a group to add the bot to; ``/start payload`` is
    then sent there on the user's behalf."""
    return f"{bot_link(username)}?startgroup={payload}"


def channel_link(username: str) -> str:
    """Lets the user pick a channel to add the bot to as an administrator
    with the rights asked for. Telegram sends nothing into a channel, so a
    channel is then subscribed with ``/subscribe @channel ...``."""
    return f"{bot_link(username)}?startchannel&admin={CHANNEL_RIGHTS}"


def article_link(username: str, article_id: int) -> str:
    return start_link(username, article_payload(article_id))


def follow_qr_png(link: str) -> bytes:
    """The QR code of ``link`` as a PNG."""
    out = io.BytesIO()
    segno.make(link, error=QR_ERROR).save(out, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return out.getvalue()


def follow_button_html(link: str, t: Translator | None = None) -> str:
    """A "Follow on Telegram" button for a web page (plain HTML, inline
    styles so that it needs no stylesheet), labelled in ``t``'s language."""
    href = html.escape(link, quote=True)
    label = html.escape((t or translator(None)).gettext("Follow on Telegram"), quote=False)
    return (
        f'<a href="{href}" target="_blank" rel="noopener" '
        'style="display:inline-block;padding:8px 16px;border-radius:6px;'
        'background:#2aabee;color:#fff;font:600 15px sans-serif;text-decoration:none">'
        f"{label}</a>"
    )
