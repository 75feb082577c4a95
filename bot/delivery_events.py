"""What the sender reports as it goes, for whoever counts (``bot.metrics``).

The sender calls these with plain values; the default does nothing, so the
sender needs no metrics library and tests need no registry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

# Why a card did not reach its chat, in few enough words to be a label.
FailureReason = Literal["rejected", "attempts_exhausted", "too_old"]


class DeliveryEvents:
    def card_sent(self, queued_at: datetime, sent_at: datetime) -> None:
        """Telegram accepted a card queued at ``queued_at``."""

    def told_to_wait(self) -> None:
        """Telegram answered 429 (flood control)."""

    def card_failed(self, reason: FailureReason) -> None:
        """A card was given up on."""
