"""All SQL lives in this package."""

from bot.storage.storage import Chat, PendingDelivery, Storage, StoreOutcome, SuspendedChat

__all__ = ["Chat", "PendingDelivery", "Storage", "StoreOutcome", "SuspendedChat"]
