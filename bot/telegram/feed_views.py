"""How the operators' feed commands and buttons look: the texts and
keyboards of /feeds pages, a feed's details, discovered feeds and the choice
among several, and the edit that shows them in place of the message a
button was on. Apart from that edit, pure: the handlers fetch, these render.
"""

from __future__ import annotations

from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.discover import FoundFeed
from bot.feed_admin import FeedLine, FeedPage, feed_state
from bot.i18n import N_, Translator
from bot.models import FeedHealth
from bot.render import escape
from bot.telegram.feed_buttons import category_data, feed_data, page_data, pick_data, token_data
from bot.telegram.feed_pending import Pending
from bot.telegram.handlers import NO_PREVIEW, BotServices
from bot.text import cut_at_word

PAGE_SIZE = 8  # feeds on one page of /feeds


def _when(tr: Translator, when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else tr.gettext("never")


def _next_check(tr: Translator, feed: FeedHealth) -> str:
    """When it is polled next: a paused or disabled feed is not, whatever
    time its row still holds."""
    if feed.paused or feed.disabled or not feed.configured:
        return tr.gettext("not polled")
    return _when(tr, feed.next_check_at)


def _state(tr: Translator, feed: FeedHealth) -> str:
    names = {
        "ok": N_("ok"),
        "new": N_("new"),
        "failing": N_("failing"),
        "disabled": N_("disabled"),
        "paused": N_("paused"),
        "removed": N_("removed"),
    }
    return tr.gettext(names[feed_state(feed)])


def _origin(tr: Translator, feed: FeedHealth) -> str:
    return tr.gettext(N_("runtime")) if feed.origin == "runtime" else tr.gettext(N_("config"))


def _name(feed: FeedHealth) -> str:
    return escape(cut_at_word(feed.name or feed.title or feed.url, 80))


def category_titles(bot: BotServices, category_ids: tuple[str, ...]) -> str:
    titles = {c.id: c.title for c in bot.runtime.config.categories}
    return ", ".join(escape(titles.get(c, c)) for c in category_ids)


def page_text(tr: Translator, page: FeedPage) -> str:
    _ = tr.gettext
    if not page.total:
        return escape(_("No feeds yet. Add one: /addfeed URL"))
    lines = [
        "<b>"
        + escape(_("Feeds {first}–{last} of {total}")).format(
            first=page.number * PAGE_SIZE + 1,
            last=page.number * PAGE_SIZE + len(page.lines),
            total=page.total,
        )
        + "</b>"
    ]
    for line in page.lines:
        feed = line.feed
        lines.append(f"<b>{feed.id}</b> {_name(feed)} — {escape(_state(tr, feed))}")
        lines.append(
            "    "
            + escape(
                _(
                    "last ok {last_ok} · {errors} errors · next {next} · {week} this week · {origin}"
                ).format(
                    last_ok=_when(tr, feed.last_success_at),
                    errors=feed.error_count,
                    next=_next_check(tr, feed),
                    week=line.week_articles,
                    origin=_origin(tr, feed),
                )
            )
        )
    lines.append(escape(_("Details: /feed ID")))
    return "\n".join(lines)


def page_markup(tr: Translator, page: FeedPage) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    ids = [
        InlineKeyboardButton(str(line.feed.id), callback_data=feed_data("f", line.feed.id))
        for line in page.lines
    ]
    rows += [ids[i : i + 4] for i in range(0, len(ids), 4)]
    paging = []
    if page.number > 0:
        paging.append(
            InlineKeyboardButton(
                "‹ " + tr.gettext("Prev"), callback_data=page_data(page.number - 1)
            )
        )
    if page.number + 1 < page.pages:
        paging.append(
            InlineKeyboardButton(
                tr.gettext("Next") + " ›", callback_data=page_data(page.number + 1)
            )
        )
    if paging:
        rows.append(paging)
    return InlineKeyboardMarkup(rows) if rows else None


def details_text(bot: BotServices, tr: Translator, line: FeedLine, note: str = "") -> str:
    _ = tr.gettext
    feed = line.feed
    lines = [f"{escape(note)}\n" if note else "", f"<b>{feed.id}</b> {_name(feed)}"]
    lines.append(escape(cut_at_word(feed.url, 300)))
    facts = [
        (_("State"), _state(tr, feed)),
        (_("Origin"), _origin(tr, feed)),
        (_("Categories"), None),
        (_("Last success"), _when(tr, feed.last_success_at)),
        (_("Errors in a row"), str(feed.error_count)),
        (_("Next check"), _next_check(tr, feed)),
        (_("Articles this week"), str(line.week_articles)),
        (_("Articles stored"), str(feed.articles)),
    ]
    for label, value in facts:
        shown = (
            category_titles(bot, feed.categories) or escape(_("none (tags and keywords only)"))
            if value is None
            else escape(value)
        )
        lines.append(f"{escape(label)}: {shown}")
    if feed.last_error:
        lines.append(escape(_("Last error")) + ": " + escape(cut_at_word(feed.last_error, 300)))
    return "\n".join(part for part in lines if part)


def details_markup(tr: Translator, feed: FeedHealth) -> InlineKeyboardMarkup:
    _ = tr.gettext
    row = []
    if feed.configured:
        row.append(InlineKeyboardButton(_("Check now"), callback_data=feed_data("chk", feed.id)))
        if feed.paused or feed.disabled:
            row.append(InlineKeyboardButton(_("Resume"), callback_data=feed_data("res", feed.id)))
        else:
            row.append(InlineKeyboardButton(_("Pause"), callback_data=feed_data("pau", feed.id)))
        if feed.origin == "runtime":
            row.append(InlineKeyboardButton(_("Remove"), callback_data=feed_data("rm", feed.id)))
    rows = [row] if row else []
    rows.append([InlineKeyboardButton("‹ " + _("All feeds"), callback_data=page_data(0))])
    return InlineKeyboardMarkup(rows)


def found_text(bot: BotServices, tr: Translator, pending: Pending, found: FoundFeed) -> str:
    _ = tr.gettext
    lines = [
        "<b>" + escape(cut_at_word(found.title, 150)) + "</b>",
        escape(cut_at_word(found.url, 300)),
        escape(tr.ngettext("{n} item", "{n} items", found.items).format(n=found.items)),
    ]
    if found.newest:
        lines.append(escape(_("Newest:")))
        lines += [f"• {escape(headline)}" for headline in found.newest]
    if found.suggested_categories:
        lines.append(
            escape(_("Its own tags map to: {categories}")).format(
                categories=category_titles(bot, found.suggested_categories)
            )
        )
    if pending.categories:
        lines.append(
            escape(_("It will be added in: {categories}")).format(
                categories=category_titles(bot, pending.categories)
            )
        )
    elif found.suggested_categories:
        lines.append(escape(_("Its articles go where their tags say.")))
    else:
        lines.append(escape(_("Its tags match no category: pick one for its articles.")))
    return "\n".join(lines)


def found_markup(
    bot: BotServices, tr: Translator, token: str, pending: Pending, found: FoundFeed
) -> InlineKeyboardMarkup:
    _ = tr.gettext
    cancel = InlineKeyboardButton(_("Cancel"), callback_data=token_data("no", token))
    if pending.categories or found.suggested_categories:
        add = InlineKeyboardButton(_("Add"), callback_data=token_data("add", token))
        return InlineKeyboardMarkup([[add, cancel]])
    buttons = [
        InlineKeyboardButton(c.title, callback_data=category_data(token, c.id))
        for c in bot.runtime.config.categories
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return InlineKeyboardMarkup([*rows, [cancel]])


def choice_text(tr: Translator, url: str, found: tuple[FoundFeed, ...]) -> str:
    lines = [escape(tr.gettext("{n} feeds at {url}; which one?").format(n=len(found), url=url))]
    for number, candidate in enumerate(found, 1):
        lines.append(
            f"{number}. <b>{escape(cut_at_word(candidate.title, 100))}</b> "
            + escape(
                tr.ngettext("({n} item)", "({n} items)", candidate.items).format(n=candidate.items)
            )
            + "\n    "
            + escape(cut_at_word(candidate.url, 200))
        )
    return "\n".join(lines)


def choice_markup(tr: Translator, token: str, found: tuple[FoundFeed, ...]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                f"{number}. {cut_at_word(candidate.title, 40)}",
                callback_data=pick_data(token, number - 1),
            )
        ]
        for number, candidate in enumerate(found, 1)
    ]
    rows.append([InlineKeyboardButton(tr.gettext("Cancel"), callback_data=token_data("no", token))])
    return InlineKeyboardMarkup(rows)


def removed_text(tr: Translator, feed: FeedHealth) -> str:
    return escape(
        tr.gettext(
            "Removed feed {id} ({name}): no longer polled; its {articles} stored articles are kept."
        ).format(
            id=feed.id,
            name=cut_at_word(feed.name or feed.title or feed.url, 150),
            articles=feed.articles,
        )
    )


async def edit_in_place(message: object, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit the message the button was on (an inaccessible one cannot be)."""
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise
