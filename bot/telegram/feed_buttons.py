"""The callback data of the operators' feed buttons. Pure.

Telegram gives a button at most 64 bytes, and anyone can send any bytes as
the data of a press, so every value is written short and read back strictly:
what does not parse exactly is ``None`` (an old or forged button). Long
things (a discovered feed's URL, an OPML document) stay on the server behind
a ``token``; the data only names them.

    fd:pg:<page>            a page of /feeds
    fd:f:<id>               a feed's details
    fd:chk|pau|res:<id>     check now, pause, resume
    fd:rm:<id>              ask to confirm removing; fd:rmy:<id> removes
    fd:pick:<token>:<n>     the n-th of several discovered feeds
    fd:add:<token>          add the discovered feed
    fd:cat:<token>:<cat>    add it in this category
    fd:imp:<token>          import the OPML document
    fd:no:<token>           cancel
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CALLBACK_DATA = 64  # bytes, Telegram's limit
PREFIX = "fd:"
PATTERN = r"^fd:"  # for the CallbackQueryHandler

FEED_ACTIONS = frozenset({"f", "chk", "pau", "res", "rm", "rmy"})
TOKEN_ACTIONS = frozenset({"add", "imp", "no"})
_NUMBER = r"(0|[1-9][0-9]{0,8})"
_TOKEN = r"([A-Za-z0-9_-]{8,16})"
_CATEGORY = r"([a-z0-9][a-z0-9_]{0,31})"
_PAGE = re.compile(rf"fd:pg:{_NUMBER}")
_FEED = re.compile(rf"fd:(f|chk|pau|res|rm|rmy):{_NUMBER}")
_TOKEN_ONLY = re.compile(rf"fd:(add|imp|no):{_TOKEN}")
_PICK = re.compile(rf"fd:pick:{_TOKEN}:{_NUMBER}")
_CAT = re.compile(rf"fd:cat:{_TOKEN}:{_CATEGORY}")


@dataclass(frozen=True, slots=True)
class FeedButton:
    action: str  # "pg", one of FEED_ACTIONS, "pick", "cat", or one of TOKEN_ACTIONS
    number: int = 0  # the page, the feed id, or the pick
    token: str = ""
    category: str = ""


def _checked(data: str) -> str:
    if len(data.encode()) > MAX_CALLBACK_DATA or parse_button(data) is None:
        raise ValueError(f"not valid feed button data: {data!r}")
    return data


def page_data(page: int) -> str:
    return _checked(f"fd:pg:{page}")


def feed_data(action: str, feed_id: int) -> str:
    return _checked(f"fd:{action}:{feed_id}")


def token_data(action: str, token: str) -> str:
    return _checked(f"fd:{action}:{token}")


def pick_data(token: str, number: int) -> str:
    return _checked(f"fd:pick:{token}:{number}")


def category_data(token: str, category_id: str) -> str:
    return _checked(f"fd:cat:{token}:{category_id}")


def parse_button(data: str) -> FeedButton | None:
    if len(data.encode()) > MAX_CALLBACK_DATA:
        return None
    if match := _PAGE.fullmatch(data):
        return FeedButton("pg", number=int(match[1]))
    if match := _FEED.fullmatch(data):
        return FeedButton(match[1], number=int(match[2]))
    if match := _TOKEN_ONLY.fullmatch(data):
        return FeedButton(match[1], token=match[2])
    if match := _PICK.fullmatch(data):
        return FeedButton("pick", number=int(match[2]), token=match[1])
    if match := _CAT.fullmatch(data):
        return FeedButton("cat", token=match[1], category=match[2])
    return None
