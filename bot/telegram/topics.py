"""Forum topics: which topic a command was sent in, and how to name it.

In a supergroup with topics, a category's cards go to the topic it was
subscribed in; General has no usable thread id, so it is ``Topic(None)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from telegram import Chat, ChatFullInfo, Message

from bot.config import CategoryConfig
from bot.render import escape
from bot.storage.chats import SubscribedTopic, Topic


def topic_of(message: Message | None, chat: Chat | ChatFullInfo) -> Topic | None:
    """The topic ``message`` was sent in, if ``chat`` is a forum; None
    elsewhere (a subscription then stays where it is)."""
    if not chat.is_forum or message is None or message.chat.id != chat.id:
        return None
    if not message.is_topic_message or not message.message_thread_id:
        return Topic(None)
    # A message in a topic that replies to nothing else "replies" to the
    # service message that opened the topic, which carries its name.
    opened = message.reply_to_message
    created = opened.forum_topic_created if opened is not None else None
    return Topic(message.message_thread_id, created.name if created else None)


def topic_label(topic: Topic) -> str:
    """HTML: where a category's cards go in a forum."""
    if topic.thread_id is None:
        return "General"
    if topic.name:
        return f"topic “{escape(topic.name)}”"
    return f"topic {topic.thread_id}"


def subscriptions_by_topic(
    categories: Sequence[CategoryConfig], subscribed: Sequence[SubscribedTopic]
) -> str:
    """HTML: "Space (topic “Launches”), Science (General)", in config order."""
    where = {s.category_id: s.topic for s in subscribed}
    return ", ".join(
        f"{escape(c.title)} ({topic_label(where[c.id])})" for c in categories if c.id in where
    )
