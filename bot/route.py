"""Which chats get an article. Pure.

``route`` takes an article's categories, the subscriptions to any of them and
what storage knows of each subscribed chat, and returns the chats that get
the article: each at most once, however many of its categories match, and
only chats that can receive cards now (not blocked, not kicked, not paused
with ``/pause``), and only chats whose keyword filters (``bot.filters``)
let it through. This is the
one place that decides fan-out; storage only writes what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.chat_settings import ChatSettings
from bot.filters import ArticleText, ChatFilter, passes, terms_for


@dataclass(frozen=True, slots=True)
class Subscription:
    chat_id: int
    category_id: str
    thread_id: int | None = None  # the forum topic its cards go to; None: General


@dataclass(frozen=True, slots=True)
class ChatRouting:
    """What routing needs to know of a chat."""

    chat_id: int
    active: bool  # False: blocked, kicked or gone
    filters: tuple[ChatFilter, ...] = ()
    # The chat's settings (None: the defaults). Paused: nothing is queued,
    # and nothing waits to be replayed on /resume.
    settings: ChatSettings | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    chat_id: int
    category_id: str  # the first of the chat's categories that carries the article
    thread_id: int | None = None  # that category's topic


def route(
    categories: Sequence[str],
    subscriptions: Iterable[Subscription],
    chats: Mapping[int, ChatRouting],
    text: ArticleText | None = None,
) -> list[Delivery]:
    """The deliveries of an article in ``categories`` (in the configuration's
    order), one per chat, ordered by chat id, each to the topic of the
    category it goes in. A chat with filters gets the
    article in the first of its categories whose terms ``text`` passes; an
    article whose text is not given passes no wanted term."""
    text = text if text is not None else ArticleText()
    rank = {category: position for position, category in enumerate(categories)}
    chosen: dict[int, Subscription] = {}
    for subscription in subscriptions:
        position = rank.get(subscription.category_id)
        if position is None:
            continue
        chat = chats.get(subscription.chat_id)
        if chat is None or not chat.active:
            continue
        if chat.settings is not None and chat.settings.paused:
            continue
        current = chosen.get(subscription.chat_id)
        if current is not None and position >= rank[current.category_id]:
            continue
        if chat.filters and not passes(terms_for(chat.filters, subscription.category_id), text):
            continue
        chosen[subscription.chat_id] = subscription
    return [
        Delivery(chat_id, chosen[chat_id].category_id, chosen[chat_id].thread_id)
        for chat_id in sorted(chosen)
    ]
