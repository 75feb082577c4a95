"""What the rest of newsbot may ask of storage, entity by entity.

The pipeline, the sender, the services and the handlers depend on these
protocols only, never on a backend; ``bot.storage.open_storage`` picks the
implementations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.chat_settings import ChatSettings
from bot.config import FeedConfig
from bot.edits import CardKind
from bot.filters import ChatFilter, Term
from bot.models import Article, FeedForUpdate, FeedHealth, NewArticle, UnchangedFetch
from bot.websub import FeedHub, HubSubscription, Mode

if TYPE_CHECKING:
    from bot.digest import HeldCard
    from bot.storage.articles import StoreOutcome
    from bot.storage.chats import Chat, FiltersAdded, SubscribedTopic, SuspendedChat, Topic
    from bot.storage.edits import CardEdit
    from bot.storage.outbox import DigestToSend, HeldSummary, PendingDelivery


class FeedStore(Protocol):
    async def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None: ...

    async def due_feeds(self, now: datetime, limit: int = ...) -> list[FeedForUpdate]: ...

    async def claim_due_feeds(
        self, now: datetime, worker: str, lease_seconds: float, limit: int = ...
    ) -> list[FeedForUpdate]: ...

    async def claim_feed(
        self, feed_id: int, now: datetime, worker: str, lease_seconds: float
    ) -> FeedForUpdate | None: ...

    async def feed_for_update(self, feed_id: int) -> FeedForUpdate | None: ...

    async def release_feeds(self, feed_ids: Sequence[int], worker: str) -> None: ...

    async def release_feeds_of_others(self, worker: str) -> int: ...

    async def next_due_time(self) -> datetime | None: ...

    async def known_items(self, feed_id: int) -> dict[str, str]: ...

    async def record_unchanged(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check: datetime,
        etag: str | None,
        last_modified: str | None,
        fetch_url: str | None,
    ) -> None: ...

    async def record_unchanged_fetches(self, fetches: Sequence[UnchangedFetch]) -> None: ...

    async def record_failure(
        self, feed_id: int, *, now: datetime, error: str, next_check: datetime, disable: bool = ...
    ) -> None: ...

    async def feed_health(self) -> list[FeedHealth]: ...

    async def disabled_feeds(self) -> list[FeedHealth]: ...

    async def all_feeds(self) -> list[FeedHealth]: ...

    async def resume_feed(self, feed_id: int, now: datetime) -> bool: ...

    async def add_runtime_feeds(
        self, feeds: Sequence[tuple[str, Sequence[str]]], now: datetime
    ) -> list[int]: ...

    async def remove_runtime_feed(self, feed_id: int) -> bool: ...

    async def pause_feed(self, feed_id: int) -> bool: ...


class ArticleStore(Protocol):
    async def store_articles(
        self,
        feed: FeedForUpdate,
        articles: Sequence[NewArticle],
        *,
        now: datetime,
        next_check: datetime,
        feed_title: str,
        site_url: str | None,
        body_hash: str,
        etag: str | None,
        last_modified: str | None,
        fetch_url: str | None,
        deliver_limit: int = ...,
        items: Mapping[str, str] | None = ...,
        edit_window: float = ...,
        pushed: bool = ...,
    ) -> StoreOutcome: ...

    async def latest_articles(
        self, category_id: str | None, limit: int, offset: int = ...
    ) -> list[Article]: ...

    async def article(self, article_id: int) -> Article | None: ...

    async def category_counts(self, since: datetime) -> dict[str, int]: ...

    async def feed_counts(self, since: datetime) -> dict[int, int]: ...

    async def prune_articles(self, published_before: datetime, batch: int) -> int: ...

    async def article_count(self) -> int: ...


class SearchIndex(Protocol):
    async def search_articles(
        self, text: str, limit: int, offset: int = ..., category_id: str | None = ...
    ) -> list[Article]: ...


class ChatStore(Protocol):
    async def upsert_chat(
        self,
        chat_id: int,
        chat_type: str,
        title: str | None,
        username: str | None,
        now: datetime,
        *,
        reactivate: bool = ...,
    ) -> None: ...

    async def get_chat(self, chat_id: int) -> Chat | None: ...

    async def subscribe(
        self,
        chat_id: int,
        category_ids: Iterable[str],
        now: datetime,
        *,
        topic: Topic | None = ...,
    ) -> list[str]: ...

    async def chat_settings(self, chat_id: int) -> ChatSettings: ...

    async def settings_of_chats(self, chat_ids: Iterable[int]) -> dict[int, ChatSettings]: ...

    async def chats_with_settings(self) -> dict[int, ChatSettings]: ...

    async def chats_in_digest_mode(self) -> dict[int, ChatSettings]: ...

    async def update_chat_settings(
        self, chat_id: int, changes: Mapping[str, Any], now: datetime
    ) -> ChatSettings: ...

    async def subscription_topics(self, chat_id: int) -> list[SubscribedTopic]: ...

    async def topic_gone(self, chat_id: int, thread_id: int) -> list[str]: ...

    async def unsubscribe(self, chat_id: int, category_ids: Iterable[str] | None) -> list[str]: ...

    async def subscriptions(self, chat_id: int) -> list[str]: ...

    async def chat_filters(self, chat_id: int) -> list[ChatFilter]: ...

    async def add_filters(
        self,
        chat_id: int,
        category_id: str | None,
        terms: Sequence[Term],
        now: datetime,
        *,
        limit: int = ...,
    ) -> FiltersAdded: ...

    async def clear_filters(self, chat_id: int, category_id: str | None) -> int: ...

    async def deactivate_chat(self, chat_id: int, reason: str, now: datetime) -> int: ...

    async def migrate_chat(self, old_id: int, new_id: int, now: datetime) -> None: ...

    async def suspend_chat(self, chat_id: int, reason: str, now: datetime) -> None: ...

    async def resume_chat(self, chat_id: int, now: datetime) -> bool: ...

    async def pause_chat(self, chat_id: int, until: datetime) -> None: ...

    async def suspended_chats(self) -> list[SuspendedChat]: ...


class Outbox(Protocol):
    async def claim_deliveries(
        self,
        now: datetime,
        limit: int,
        *,
        worker: str,
        lease_seconds: float,
        exclude_chats: Iterable[int] = ...,
    ) -> list[PendingDelivery]: ...

    async def has_pending_deliveries(self) -> bool: ...

    async def mark_sent(self, delivery_id: int, message_id: int, now: datetime) -> None: ...

    async def mark_retry(
        self, delivery_id: int, next_attempt: datetime, error: str, *, count_attempt: bool = ...
    ) -> None: ...

    async def mark_failed(self, delivery_id: int, error: str) -> None: ...

    async def mark_dropped(self, delivery_id: int, reason: str) -> None: ...

    async def release_deliveries(self, delivery_ids: Sequence[int], worker: str) -> None: ...

    async def take_over_claims(self, worker: str) -> int: ...

    async def drop_stale_deliveries(self, older_than: datetime) -> int: ...

    async def prune_finished(self, older_than: datetime, batch: int = ...) -> int: ...

    async def delivery_counts(self) -> dict[str, int]: ...

    async def pending_count(self) -> int: ...

    async def next_delivery_time(self) -> datetime | None: ...

    async def hold_cards(
        self, chat_id: int, held_for: str, until: datetime | None, worker: str
    ) -> int: ...

    async def recent_card_times(
        self, chat_ids: Iterable[int], since: datetime
    ) -> dict[int, list[datetime]]: ...

    async def held_summaries(self) -> list[HeldSummary]: ...

    async def held_cards(self, chat_id: int) -> list[HeldCard]: ...

    async def last_digest_times(self, chat_ids: Iterable[int]) -> dict[int, datetime]: ...

    async def mark_digest_time(self, chat_id: int, slot: datetime, now: datetime) -> None: ...

    async def gather_digest(
        self,
        chat_id: int,
        kind: str,
        card_ids: Sequence[int],
        thread_id: int | None,
        slot: datetime | None,
        now: datetime,
    ) -> int: ...

    async def release_held(self, chat_id: int, card_ids: Sequence[int]) -> int: ...

    async def digest_to_send(self, digest_id: int) -> DigestToSend: ...

    async def mark_digest_sent(self, digest_id: int, message_id: int, now: datetime) -> int: ...


class CardEditQueue(Protocol):
    async def claim_edits(
        self,
        now: datetime,
        limit: int,
        *,
        worker: str,
        lease_seconds: float,
        exclude_chats: Iterable[int] = ...,
    ) -> list[CardEdit]: ...

    async def record_card_kind(self, delivery_id: int, kind: CardKind) -> None: ...

    async def mark_edited(
        self, edit: CardEdit, now: datetime, next_due: datetime | None
    ) -> None: ...

    async def retry_edit(self, edit_id: int, due: datetime, *, count_attempt: bool) -> None: ...

    async def drop_edit(self, edit_id: int, refused: str | None = ...) -> None: ...

    async def release_edits(self, edit_ids: Sequence[int], worker: str) -> None: ...

    async def take_over_edit_claims(self, worker: str) -> int: ...

    async def next_edit_time(self) -> datetime | None: ...

    async def waiting_edits(self) -> int: ...


class StateStore(Protocol):
    async def get_state(self, key: str) -> str | None: ...

    async def set_state_if_absent(self, key: str, value: str, now: datetime) -> str: ...

    async def remember_search(self, query: str, now: datetime) -> int: ...

    async def recall_search(self, key: int) -> str | None: ...


class WebSubStore(Protocol):
    async def note_hub(
        self,
        feed_id: int,
        hub_url: str,
        topic_url: str,
        *,
        secret: str,
        trusted: bool,
        now: datetime,
    ) -> bool: ...

    async def forget_hub(self, feed_id: int, now: datetime) -> bool: ...

    async def unwant_unpolled(self, now: datetime) -> int: ...

    async def claim_due(
        self, now: datetime, lease_seconds: float, limit: int = ...
    ) -> list[HubSubscription]: ...

    async def mark_requested(
        self, subscription_id: int, mode: Mode, verify_by: datetime
    ) -> None: ...

    async def mark_request_failed(
        self, subscription_id: int, mode: Mode, error: str, retry_at: datetime
    ) -> None: ...

    async def subscription(self, subscription_id: int) -> HubSubscription | None: ...

    async def subscriptions(self) -> list[HubSubscription]: ...

    async def confirm_subscribe(
        self,
        subscription_id: int,
        topic_url: str,
        *,
        lease_seconds: int,
        expires_at: datetime,
        renew_at: datetime,
    ) -> bool: ...

    async def confirm_unsubscribe(self, subscription_id: int, topic_url: str) -> bool: ...

    async def record_denied(
        self, subscription_id: int, topic_url: str, reason: str, retry_at: datetime
    ) -> bool: ...

    async def delete(self, subscription_id: int) -> None: ...

    async def feeds_with_hubs(self, now: datetime) -> dict[int, FeedHub]: ...
