"""The operators' feed commands: /addfeed, /removefeed, /feeds, /feed,
/export, and OPML documents sent to the bot. Thin: check the operator, call
``bot.feed_admin`` (the services the CLI uses), reply.

Only the users listed in ``[telegram] admins`` may use them, checked on every
command and on every button press (a forwarded keyboard gives nobody else a
way in); anyone else gets a short refusal. What a button stands for when it
is too long for its 64 bytes (discovered feeds, an OPML document) waits in
this process's memory behind a random token for ``PENDING_SECONDS``: a press
after that, after a restart, or with forged data gets "expired".
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.discover import FoundFeed
from bot.errors import NewsbotError
from bot.feed_admin import FeedAdmin, FeedLine, FeedPage, feed_state
from bot.i18n import N_, Translator
from bot.models import FeedHealth
from bot.opml import MAX_OPML_BYTES, OpmlDocument, parse_opml
from bot.render import escape
from bot.telegram.feed_buttons import (
    FeedButton,
    category_data,
    feed_data,
    page_data,
    parse_button,
    pick_data,
    token_data,
)
from bot.telegram.handlers import NO_PREVIEW, BotServices, _is_stand_in, reply, services
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word

log = logging.getLogger(__name__)

PAGE_SIZE = 8
PENDING_SECONDS = 30 * 60.0
MAX_PENDING = 200
SHOWN_IMPORTS = 15  # feeds listed one by one in an OPML preview
OPML_SUFFIXES = (".opml", ".xml")
EXPORT_NAME = "newsbot-feeds.opml"

OPERATOR_COMMANDS: list[tuple[str, str]] = [
    ("addfeed", N_("Add a feed or a site: /addfeed URL [category …]")),
    ("removefeed", N_("Stop polling a feed added at runtime: /removefeed ID|URL")),
    ("feeds", N_("Every feed and its state, page by page")),
    ("feed", N_("One feed, with Check now, Pause/Resume, Remove: /feed ID")),
    ("export", N_("All feeds as an OPML file (send one back to import it)")),
]


# -- who may, and in which language -----------------------------------------


def _is_operator(bot: BotServices, update: Update) -> bool:
    user = update.effective_user
    message = update.effective_message
    if user is None or (message is not None and _is_stand_in(message)):
        return False
    return user.id in bot.runtime.config.telegram.admins


async def _operators_only(
    update: Update, context: ContextTypes.DEFAULT_TYPE
) -> tuple[BotServices, Translator] | None:
    """The services and the chat's translator for an operator; None (after
    a short refusal) for anyone else."""
    bot = services(context)
    tr = await chat_translator(update, context)
    if not _is_operator(bot, update):
        await _refuse(update, context, tr)
        return None
    return bot, tr


async def operator_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    """The lines /help adds for an operator (none for anyone else)."""
    bot = services(context)
    if not _is_operator(bot, update):
        return []
    _ = (await chat_translator(update, context)).gettext
    return [
        "",
        "<b>" + escape(_("For operators")) + "</b>",
        *(f"/{name} — {escape(_(text))}" for name, text in OPERATOR_COMMANDS),
        escape(_("Send me an OPML file to import its feeds.")),
    ]


async def _refuse(update: Update, context: ContextTypes.DEFAULT_TYPE, tr: Translator) -> None:
    await reply(update, context, escape(tr.gettext("This command is for the bot's operators.")))


def _admin(bot: BotServices) -> FeedAdmin:
    return FeedAdmin.for_runtime(bot.runtime)


# -- what waits behind a token -----------------------------------------------


@dataclass
class Pending:
    user_id: int
    created: float  # time.monotonic()
    found: tuple[FoundFeed, ...] = ()
    chosen: int | None = None  # index into found, once known
    categories: tuple[str, ...] = ()  # given with /addfeed
    document: OpmlDocument | None = None
    file_name: str = ""


@dataclass
class PendingStore:
    entries: dict[str, Pending] = field(default_factory=dict)

    def put(self, pending: Pending) -> str:
        self._forget_old()
        while len(self.entries) >= MAX_PENDING:
            del self.entries[next(iter(self.entries))]
        token = secrets.token_urlsafe(9)  # 12 characters
        self.entries[token] = pending
        return token

    def get(self, token: str) -> Pending | None:
        self._forget_old()
        return self.entries.get(token)

    def drop(self, token: str) -> None:
        self.entries.pop(token, None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for token in [t for t, p in self.entries.items() if now - p.created > PENDING_SECONDS]:
            del self.entries[token]


def _pending(context: ContextTypes.DEFAULT_TYPE) -> PendingStore:
    store = context.bot_data.get("feed_pending")
    if not isinstance(store, PendingStore):
        store = PendingStore()
        context.bot_data["feed_pending"] = store
    return store


# -- texts -------------------------------------------------------------------


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


def _category_titles(bot: BotServices, category_ids: tuple[str, ...]) -> str:
    titles = {c.id: c.title for c in bot.runtime.config.categories}
    return ", ".join(escape(titles.get(c, c)) for c in category_ids)


def _page_text(tr: Translator, page: FeedPage) -> str:
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


def _page_markup(tr: Translator, page: FeedPage) -> InlineKeyboardMarkup | None:
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


def _details_text(bot: BotServices, tr: Translator, line: FeedLine, note: str = "") -> str:
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
            _category_titles(bot, feed.categories) or escape(_("none (tags and keywords only)"))
            if value is None
            else escape(value)
        )
        lines.append(f"{escape(label)}: {shown}")
    if feed.last_error:
        lines.append(escape(_("Last error")) + ": " + escape(cut_at_word(feed.last_error, 300)))
    return "\n".join(part for part in lines if part)


def _details_markup(tr: Translator, feed: FeedHealth) -> InlineKeyboardMarkup:
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


def _found_text(bot: BotServices, tr: Translator, pending: Pending, found: FoundFeed) -> str:
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
                categories=_category_titles(bot, found.suggested_categories)
            )
        )
    if pending.categories:
        lines.append(
            escape(_("It will be added in: {categories}")).format(
                categories=_category_titles(bot, pending.categories)
            )
        )
    elif found.suggested_categories:
        lines.append(escape(_("Its articles go where their tags say.")))
    else:
        lines.append(escape(_("Its tags match no category: pick one for its articles.")))
    return "\n".join(lines)


def _found_markup(
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


def _choice_text(tr: Translator, url: str, found: tuple[FoundFeed, ...]) -> str:
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


def _choice_markup(
    tr: Translator, token: str, found: tuple[FoundFeed, ...]
) -> InlineKeyboardMarkup:
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


# -- commands ----------------------------------------------------------------


async def addfeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addfeed URL [category …]: discover, show, then Add / Cancel."""
    bot = services(context)
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if not _is_operator(bot, update):
        await _refuse(update, context, tr)
        return
    args = list(context.args or [])
    if not args:
        await reply(update, context, escape(_("Usage: /addfeed URL [category …]")))
        return
    admin = _admin(bot)
    url = args[0]
    try:
        categories = admin.checked_categories(args[1:])
        listed = await admin.listed(url)
        if listed is None:
            discovery = await admin.discover(url)
    except NewsbotError as error:
        await reply(update, context, escape(cut_at_word(str(error), 1500)))
        return
    if listed is None and len(discovery.found) == 1:
        listed = discovery.listed.get(discovery.found[0].url)
    if listed is not None:
        await reply(
            update,
            context,
            escape(_("That feed is already listed as feed {id}.").format(id=listed.id)),
            InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("Show it"), callback_data=feed_data("f", listed.id))]]
            ),
        )
        return
    user = update.effective_user
    assert user is not None  # an operator
    pending = Pending(user.id, time.monotonic(), found=discovery.found, categories=categories)
    token = _pending(context).put(pending)
    if len(discovery.found) > 1:
        await reply(
            update,
            context,
            _choice_text(tr, url, discovery.found),
            _choice_markup(tr, token, discovery.found),
        )
        return
    pending.chosen = 0
    found = discovery.found[0]
    await reply(
        update,
        context,
        _found_text(bot, tr, pending, found),
        _found_markup(bot, tr, token, pending, found),
    )


async def removefeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/removefeed ID|URL"""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    args = list(context.args or [])
    if len(args) != 1:
        await reply(update, context, escape(tr.gettext("Usage: /removefeed ID|URL")))
        return
    try:
        feed = await _admin(bot).remove(args[0])
    except NewsbotError as error:
        await reply(update, context, escape(str(error)))
        return
    await reply(update, context, _removed_text(tr, feed))


def _removed_text(tr: Translator, feed: FeedHealth) -> str:
    return escape(
        tr.gettext(
            "Removed feed {id} ({name}): no longer polled; its {articles} stored articles are kept."
        ).format(
            id=feed.id,
            name=cut_at_word(feed.name or feed.title or feed.url, 150),
            articles=feed.articles,
        )
    )


async def feeds_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feeds: the first page of feeds."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    page = await _admin(bot).page(0, PAGE_SIZE)
    await reply(update, context, _page_text(tr, page), _page_markup(tr, page))


async def feed_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feed ID|URL: one feed's details and its buttons."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    args = list(context.args or [])
    if len(args) != 1:
        await reply(update, context, escape(tr.gettext("Usage: /feed ID (see /feeds)")))
        return
    try:
        line = await _admin(bot).details(args[0])
    except NewsbotError as error:
        await reply(update, context, escape(str(error)))
        return
    await reply(update, context, _details_text(bot, tr, line), _details_markup(tr, line.feed))


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export: every listed feed as an OPML 2.0 document."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    message = update.effective_message
    if message is None:
        return
    data = await _admin(bot).export()
    count = sum(1 for f in await bot.runtime.storage.feeds.all_feeds() if f.configured)
    await message.reply_document(
        InputFile(data, filename=EXPORT_NAME),
        caption=escape(
            tr.ngettext(
                "{n} feed as OPML 2.0. Send it to a bot to import it.",
                "{n} feeds as OPML 2.0. Send it to a bot to import it.",
                count,
            ).format(n=count)
        ),
        do_quote=False,
    )


async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An OPML file sent by an operator: a preview, and an Import button."""
    bot = services(context)
    message = update.effective_message
    if message is None or message.document is None:
        return
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if not _is_operator(bot, update):
        # In a group, documents are the members' business; in private, say why not.
        if message.chat.type == ChatType.PRIVATE:
            await reply(update, context, escape(_("I only import feed lists from my operators.")))
        return
    sent = message.document
    name = sent.file_name or ""
    if not name.lower().endswith(OPML_SUFFIXES):
        await reply(
            update, context, escape(_("Send an OPML file (.opml or .xml) to import feeds."))
        )
        return
    if sent.file_size is None or sent.file_size > MAX_OPML_BYTES:
        await reply(
            update,
            context,
            escape(
                _("That file is too big: feed lists are at most {limit} MB.").format(
                    limit=MAX_OPML_BYTES // (1024 * 1024)
                )
            ),
        )
        return
    try:
        file = await sent.get_file()
        data = bytes(await file.download_as_bytearray())
        opml = parse_opml(data)
        plan = await _admin(bot).plan_import(opml, None)
    except (TelegramError, NewsbotError) as error:
        log.info("feeds: OPML document %r refused: %s", name, error)
        reason = str(error) if isinstance(error, NewsbotError) else _("I couldn't download it.")
        await reply(
            update,
            context,
            escape(_("I can't import {name}: {reason}").format(name=name, reason=reason)),
        )
        return
    user = update.effective_user
    assert user is not None
    token = _pending(context).put(Pending(user.id, time.monotonic(), document=opml, file_name=name))
    lines = [
        "<b>"
        + escape(cut_at_word(name, 100))
        + "</b>: "
        + escape(
            _("{total} feeds, {present} already present, {new} to add").format(
                total=plan.total, present=len(plan.present), new=len(plan.new)
            )
        )
    ]
    if plan.skipped:
        lines.append(escape(_("{n} skipped (not http(s) URLs)").format(n=plan.skipped)))
    for planned in plan.new[:SHOWN_IMPORTS]:
        categories = _category_titles(bot, planned.categories) or escape(
            _("no category (tags and keywords only)")
        )
        lines.append(f"• {escape(cut_at_word(planned.url, 150))} — {categories}")
    if len(plan.new) > SHOWN_IMPORTS:
        lines.append(escape(_("… and {n} more").format(n=len(plan.new) - SHOWN_IMPORTS)))
    if plan.unmatched:
        lines.append(
            escape(_("Folders matching no category: {names}")).format(
                names=", ".join(escape(cut_at_word(n, 40)) for n in plan.unmatched[:10])
            )
        )
    rows = []
    if plan.new:
        rows.append(InlineKeyboardButton(_("Import"), callback_data=token_data("imp", token)))
    rows.append(InlineKeyboardButton(_("Cancel"), callback_data=token_data("no", token)))
    await reply(update, context, "\n".join(lines), InlineKeyboardMarkup([rows]))


# -- buttons -----------------------------------------------------------------


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every ``fd:`` button. The data is never trusted and the operator is
    checked again on every press."""
    query = update.callback_query
    if query is None:
        return
    bot = services(context)
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if query.from_user.id not in bot.runtime.config.telegram.admins:
        await query.answer(_("Only the bot's operators can use these buttons."))
        return
    pressed = parse_button(query.data or "")
    if pressed is None:
        await query.answer(_("This button has expired."))
        return
    admin = _admin(bot)
    try:
        if pressed.action == "pg":
            await query.answer()
            page = await admin.page(pressed.number, PAGE_SIZE)
            await _edit(query.message, _page_text(tr, page), _page_markup(tr, page))
        elif pressed.action in ("f", "chk", "pau", "res", "rm", "rmy"):
            await _feed_button(bot, tr, query, admin, pressed)
        else:
            await _token_button(bot, tr, context, query, admin, pressed)
    except NewsbotError as error:
        await query.answer(cut_at_word(str(error), 200), show_alert=True)


async def _feed_button(
    bot: BotServices,
    tr: Translator,
    query: CallbackQuery,
    admin: FeedAdmin,
    pressed: FeedButton,
) -> None:
    _ = tr.gettext
    wanted = str(pressed.number)
    note = ""
    # A feed that is gone is said so before the press is answered otherwise.
    current = await admin.find(wanted)
    if pressed.action == "rm":
        feed = (await admin.details(wanted)).feed
        await query.answer()
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        _("Yes, remove it"), callback_data=feed_data("rmy", feed.id)
                    ),
                    InlineKeyboardButton(_("Keep it"), callback_data=feed_data("f", feed.id)),
                ]
            ]
        )
        text = escape(
            _("Remove feed {id} ({name})? It is no longer polled; its articles are kept.").format(
                id=feed.id, name=cut_at_word(feed.name or feed.title or feed.url, 150)
            )
        )
        await _edit(query.message, text, markup)
        return
    if pressed.action == "rmy":
        feed = await admin.remove(wanted)
        await query.answer(_("Removed."))
        await _edit(query.message, _removed_text(tr, feed), None)
        return
    if pressed.action == "chk":
        if not current.configured:
            await query.answer(_("This feed was removed; nothing to check."), show_alert=True)
            return
        await query.answer(_("Checking…"))
        feed, outcome = await admin.check(wanted)
        if outcome is None:
            note = _("It is being fetched right now; try again in a moment.")
        elif outcome.status == "failed":
            note = _("Check failed: {error}").format(error=outcome.error or "")
        elif outcome.status == "new":
            note = tr.ngettext(
                "Checked: {n} new article.", "Checked: {n} new articles.", outcome.new_articles
            ).format(n=outcome.new_articles)
        else:
            note = _("Checked: nothing new.")
    elif pressed.action == "pau":
        await admin.pause(wanted)
        await query.answer(_("Paused."))
        note = _("Paused: not polled until resumed.")
    elif pressed.action == "res":
        await admin.resume(wanted)
        await query.answer(_("Resumed."))
        note = _("Resumed: polled at the next tick.")
    else:
        await query.answer()
    line = await admin.details(wanted)
    await _edit(query.message, _details_text(bot, tr, line, note), _details_markup(tr, line.feed))


async def _token_button(
    bot: BotServices,
    tr: Translator,
    context: ContextTypes.DEFAULT_TYPE,
    query: CallbackQuery,
    admin: FeedAdmin,
    pressed: FeedButton,
) -> None:
    _ = tr.gettext
    store = _pending(context)
    pending = store.get(pressed.token)
    if pending is None:
        await query.answer(_("This button has expired. Send the command again."))
        return
    if pressed.action == "no":
        store.drop(pressed.token)
        await query.answer()
        await _edit(query.message, escape(_("Cancelled.")), None)
        return
    if pressed.action == "imp":
        if pending.document is None:
            await query.answer(_("This button has expired."))
            return
        plan = await admin.plan_import(pending.document, None)
        added = await admin.apply_import(plan)
        store.drop(pressed.token)
        await query.answer()
        text = tr.ngettext(
            "Imported {n} feed from {name}: polled at the next tick.",
            "Imported {n} feeds from {name}: polled at the next tick.",
            added,
        ).format(n=added, name=pending.file_name)
        await _edit(query.message, escape(text), None)
        return
    if pressed.action == "pick":
        if not 0 <= pressed.number < len(pending.found):
            await query.answer(_("This button has expired."))
            return
        pending.chosen = pressed.number
        found = pending.found[pressed.number]
        await query.answer()
        listed = await admin.listed(found.url)
        if listed is not None:
            store.drop(pressed.token)
            text = _("That feed is already listed as feed {id}.").format(id=listed.id)
            await _edit(query.message, escape(text), None)
            return
        await _edit(
            query.message,
            _found_text(bot, tr, pending, found),
            _found_markup(bot, tr, pressed.token, pending, found),
        )
        return
    # "add" or "cat"
    if pending.chosen is None or not pending.found:
        await query.answer(_("This button has expired."))
        return
    found = pending.found[pending.chosen]
    categories = pending.categories
    if pressed.action == "cat":
        categories = admin.checked_categories([pressed.category])
    outcome = await admin.add(found.url, categories)
    store.drop(pressed.token)
    await query.answer()
    feed = outcome.feed
    if not outcome.created:
        text = _("That feed is already listed as feed {id}.").format(id=feed.id)
    else:
        text = _("Added feed {id} ({name}): polled at the next tick.").format(
            id=feed.id, name=found.title
        )
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("Show it"), callback_data=feed_data("f", feed.id))]]
    )
    await _edit(query.message, escape(text), markup)


async def _edit(message: object, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit the message the button was on (an inaccessible one cannot be)."""
    if not isinstance(message, Message):
        return
    try:
        await message.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise
