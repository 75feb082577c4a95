"""Cards that follow the story: when a sent card is edited. Pure.

A feed that corrects the title or summary of a story already sent (see
``bot.decide``: *changed*) asks for every sent card of that story to be
edited, within ``[delivery] edit_window`` after the card was sent. The rules:

- An article's cards are edited at most once per ``EDIT_INTERVAL``. The
  first correction since the last edit opens the interval and the edit goes
  out when it closes, showing the text as it is then: a feed correcting a
  headline three times in a minute yields one edit with the latest text.
- A correction that arrives while an edit waits (or is under way) does not
  move it: the waiting edit shows the newer text, or, if it was already on
  its way, one more edit follows an interval later.
- The window is counted from when the card was sent: a correction after it
  is ignored, and an edit never falls due after it (one that would is
  brought forward to the window's end, unless the card was edited less than
  an interval before; then the correction is not shown).
- An edit that could not be made in time (the sender was down) is dropped
  once the window is over by more than an interval.

Edits are claimed and paced like cards (``bot.edit_delivery``) and never send a
new card: they change the message each card already is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

# At most one edit per article in this time, which is also how long an edit
# waits for further corrections.
EDIT_INTERVAL = timedelta(minutes=10)

CardKind = Literal["text", "photo"]
CARD_KINDS: tuple[CardKind, ...] = ("text", "photo")

# Telegram's words for an edit that can never succeed: the message was
# deleted, or is too old, or is not one this bot can edit. Dropped quietly.
_MESSAGE_GONE = (
    "message to edit not found",
    "message can't be edited",
    "message_id_invalid",
    "there is no text in the message to edit",
    "there is no caption in the message to edit",
)
# The message already shows this text: the edit is done.
_NOT_MODIFIED = "message is not modified"


def edit_due(
    *,
    changed_at: datetime,
    sent_at: datetime,
    edit_window: timedelta,
    waiting_due: datetime | None,
    last_edited_at: datetime | None,
) -> datetime | None:
    """When the card sent at ``sent_at`` is to be edited for a correction
    made at ``changed_at``; None: not at all. ``waiting_due``: the edit
    already waiting for the card, which takes the correction along."""
    window_end = sent_at + edit_window
    if changed_at > window_end:
        return None
    if waiting_due is not None:
        return waiting_due
    due = min(changed_at + EDIT_INTERVAL, window_end)
    if last_edited_at is not None:
        due = max(due, last_edited_at + EDIT_INTERVAL)
    return due if due <= window_end else None


def next_edit_after(
    edited_at: datetime, sent_at: datetime, edit_window: timedelta
) -> datetime | None:
    """When to edit again for a correction that came while an edit was on
    its way; None: the window is over by then."""
    due = edited_at + EDIT_INTERVAL
    return due if due <= sent_at + edit_window else None


def edit_too_late(sent_at: datetime, now: datetime, edit_window: timedelta) -> bool:
    """An edit still waiting this long after its card was sent is not made:
    the window is over (by more than an interval, since an edit may fall
    due at the window's very end)."""
    return now > sent_at + edit_window + EDIT_INTERVAL


def message_gone(reason: str) -> bool:
    """Telegram refused the edit because the message cannot be edited at all
    (deleted, too old, not of the kind the edit was for)."""
    text = reason.lower()
    return any(words in text for words in _MESSAGE_GONE)


def not_modified(reason: str) -> bool:
    """Telegram refused the edit because the message already shows that text."""
    return _NOT_MODIFIED in reason.lower()


def edit_retry_delay(attempts: int) -> timedelta:
    """How long an edit that failed ``attempts`` times (network, 5xx) waits."""
    return timedelta(seconds=min(2.0 ** max(attempts, 1), 600.0))
