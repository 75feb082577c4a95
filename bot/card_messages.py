"""A card as Telegram messages: the Bot API calls that send a card and edit
it, with the fallbacks that keep a card arriving when Telegram refuses part
of it (the photo, the HTML, the buttons).

The sender (``bot.deliver``) and the edit sender (``bot.edit_delivery``)
call these; so does ``/follow``'s preview of a card. They raise whatever
Telegram answered beyond the fallbacks; what that means for the card is
the caller's decision.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.delivery_errors import rejects_buttons, rejects_markup, rejects_photo
from bot.edits import CardKind
from bot.render import CAPTION_LIMIT, Card
from bot.text import cut_html

log = logging.getLogger(__name__)

SendMessage = Callable[..., Awaitable[Message]]
SendPhoto = Callable[..., Awaitable[Message]]
EditMessage = Callable[..., Awaitable[Message | bool]]


def keyboard(card: Card) -> InlineKeyboardMarkup | None:
    if not card.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, url=b.url) for b in card.buttons]])


def preview(card: Card) -> LinkPreviewOptions:
    if not card.link_preview:
        return LinkPreviewOptions(is_disabled=True)
    return LinkPreviewOptions(
        is_disabled=False,
        url=card.preview_url,
        prefer_large_media=True,
        show_above_text=card.preview_above_text,
    )


async def send_card(
    send_message: SendMessage,
    chat_id: int,
    card: Card,
    thread_id: int | None = None,
    *,
    send_photo: SendPhoto | None = None,
) -> Message:
    """Send a card as HTML (into forum topic ``thread_id``; None: General,
    sent without a thread id since Telegram refuses General's): as a photo
    with the card as its caption when the card has a photo and
    ``send_photo`` is given, else as text. If Telegram cannot use the photo
    (it could not fetch the image, or refused the caption or buttons), the
    text card goes instead. If Telegram rejects the markup, send the same
    card as plain text with its buttons; if it rejects the buttons, as
    plain text with the article's link written out, so a card never
    arrives without a way to the story."""
    options: dict[str, Any] = {"disable_notification": True} if card.silent else {}
    if thread_id is not None:
        options["message_thread_id"] = thread_id
    if options:
        send_message = functools.partial(send_message, **options)
    if card.photo_url and send_photo is not None:
        try:
            return await send_photo(
                chat_id=chat_id,
                photo=card.photo_url,
                caption=card.caption,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(card),
                **options,
            )
        except BadRequest as error:
            if not (rejects_photo(error) or rejects_markup(error) or rejects_buttons(error)):
                raise
            log.info("deliver: chat %s got no photo card (%s); sending text", chat_id, error)
    try:
        return await send_message(
            chat_id=chat_id,
            text=card.html,
            parse_mode=ParseMode.HTML,
            link_preview_options=preview(card),
            reply_markup=keyboard(card),
        )
    except BadRequest as error:
        if not rejects_buttons(error) and not rejects_markup(error):
            raise
        log.warning("deliver: chat %s rejected a card (%s); sending plain text", chat_id, error)
        markup = None if rejects_buttons(error) else keyboard(card)
    try:
        return await send_message(
            chat_id=chat_id,
            text=card.plain,
            parse_mode=None,
            link_preview_options=preview(card),
            reply_markup=markup,
        )
    except BadRequest as error:
        if markup is None or not rejects_buttons(error):
            raise
        return await send_message(
            chat_id=chat_id, text=card.plain, parse_mode=None, link_preview_options=preview(card)
        )


async def edit_card(
    edit: EditMessage, kind: CardKind, chat_id: int, message_id: int, card: Card
) -> None:
    """Make sent card ``message_id`` show ``card``: its text, or its caption
    for a photo card (``edit`` is editMessageText or editMessageCaption to
    match). Rejected markup or buttons fall back as in ``send_card``."""
    content = "caption" if kind == "photo" else "text"
    # A photo card's caption is the card cut to Telegram's caption limit,
    # whatever the chat's photo option says now.
    shown = card.html
    if kind == "photo":
        shown = card.caption or cut_html(card.html, CAPTION_LIMIT)
    # A caption has no link preview of its own: the photo is the preview.
    extra: dict[str, Any] = {} if kind == "photo" else {"link_preview_options": preview(card)}
    try:
        await edit(
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(card),
            **{content: shown},
            **extra,
        )
        return
    except BadRequest as error:
        if not rejects_buttons(error) and not rejects_markup(error):
            raise
        log.warning("deliver: chat %s rejected an edited card (%s); plain text", chat_id, error)
        markup = None if rejects_buttons(error) else keyboard(card)
    await edit(
        chat_id=chat_id,
        message_id=message_id,
        parse_mode=None,
        reply_markup=markup,
        **{content: card.plain},
        **extra,
    )
