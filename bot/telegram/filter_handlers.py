"""``/filter``: a chat's keyword filters. Thin: parse, check who may, store, reply.

The chat is found and checked exactly as for ``/subscribe`` (here, or a
channel named from a private chat by a verified admin); listing is open to
anyone who may see the chat's subscriptions.
"""

from __future__ import annotations

from collections.abc import Sequence

from telegram import Update
from telegram.ext import ContextTypes

from bot.config import CategoryConfig
from bot.filters import MAX_TERMS, ChatFilter, RefusedTerm, Term, split_arguments
from bot.i18n import N_, Translator
from bot.render import escape
from bot.telegram.args import Problem, split_target
from bot.telegram.filter_args import AddFilters, ClearFilters, ListFilters, parse_filter
from bot.telegram.handlers import _chat_name, _target_chat, reply, services
from bot.telegram.translation import chat_translator

SHOWN_TERM = 70  # characters of a refused argument echoed back

EXAMPLE = '<code>/filter space +mars +"space station" -rumor*</code>'
RULE = N_(
    "A card arrives when it has one of the + words (if there are any) and none "
    "of the − words, in its title, summary or tags."
)


def _shown(text: str) -> str:
    return escape(text if len(text) <= SHOWN_TERM else text[:SHOWN_TERM] + "…")


def _terms(terms: Sequence[Term]) -> str:
    return " ".join(_shown(t.signed) for t in terms)


def _listing(
    filters: Sequence[ChatFilter],
    categories: Sequence[CategoryConfig],
    only: CategoryConfig | None,
    name: str | None,
    t: Translator,
) -> str:
    """``name``: the chat's (escaped) name, None for the chat asking."""
    _ = t.gettext
    titles = {c.id: c.title for c in categories}
    groups: dict[str | None, list[Term]] = {}
    for chat_filter in filters:
        if only is None or chat_filter.category_id in (None, only.id):
            groups.setdefault(chat_filter.category_id, []).append(chat_filter.term)
    if not groups:
        if only and name is None:
            text = _(
                "This chat has no filters for {category}: every card of its categories "
                "arrives. Add some: {example}"
            )
        elif only:
            text = _(
                "{chat} has no filters for {category}: every card of its categories "
                "arrives. Add some: {example}"
            )
        elif name is None:
            text = _(
                "This chat has no filters: every card of its categories arrives. "
                "Add some: {example}"
            )
        else:
            text = _(
                "{chat} has no filters: every card of its categories arrives. Add some: {example}"
            )
        return text.format(chat=name, category=escape(only.title) if only else "", example=EXAMPLE)
    count = sum(len(terms) for terms in groups.values())
    heading = (
        _("<b>Filters of this chat</b> ({count} of {limit})")
        if name is None
        else _("<b>Filters of {chat}</b> ({count} of {limit})")
    )
    lines = [heading.format(chat=name, count=count, limit=MAX_TERMS)]
    if None in groups:
        lines.append(_("All categories: {terms}").format(terms=_terms(groups[None])))
    for category_id, terms in groups.items():
        if category_id is not None:
            title = titles.get(category_id, category_id)
            lines.append(f"{escape(title)}: {_terms(terms)}")
    lines += ["", escape(_(RULE)), _("<code>/filter clear</code> removes them.")]
    return "\n".join(lines)


def _refusals(refused: Sequence[RefusedTerm], t: Translator) -> list[str]:
    return [
        t.gettext("Refused {term}: {reason}.").format(
            term=_shown(r.text), reason=escape(r.explained(t))
        )
        for r in refused
    ]


async def filter_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/filter [@channel] [category] +word -word +"exact phrase" | clear [category]"""
    bot = services(context)
    message = update.effective_message
    if message is None:
        return
    t = await chat_translator(update, context)
    _ = t.gettext
    # The raw text, not context.args: a quoted phrase holds spaces.
    parts = (message.text or "").split(maxsplit=1)
    arguments = split_arguments(parts[1] if len(parts) > 1 else "")
    if isinstance(arguments, RefusedTerm):
        await reply(update, context, " ".join(_refusals([arguments], t)))
        return
    rest = split_target(arguments)[1]
    categories = bot.runtime.news.categories
    command = parse_filter(rest, categories)
    if isinstance(command, Problem):
        await reply(update, context, escape(command.text(t)))
        return
    target = await _target_chat(
        update, context, arguments, changing=not isinstance(command, ListFilters)
    )
    if target is None:
        return
    chat = target[0]
    here = update.effective_chat
    remote = here is None or chat.id != here.id
    name = escape(_chat_name(chat)) if remote else None
    chats = bot.runtime.storage.chats
    if isinstance(command, ListFilters):
        filters = await chats.chat_filters(chat.id)
        await reply(update, context, _listing(filters, categories, command.category, name, t))
        return
    where = {
        "chat": name,
        "category": escape(command.category.title) if command.category else "",
    }
    if isinstance(command, ClearFilters):
        removed = await chats.clear_filters(
            chat.id, command.category.id if command.category else None
        )
        if removed:
            text = _removed(t, removed, name is None, command.category is not None)
        elif name is None:
            text = (
                _("No filters of this chat for {category} to remove.")
                if command.category
                else _("No filters of this chat to remove.")
            )
        else:
            text = (
                _("No filters of {chat} for {category} to remove.")
                if command.category
                else _("No filters of {chat} to remove.")
            )
        await reply(update, context, text.format(count=removed, **where))
        return
    assert isinstance(command, AddFilters)
    lines = []
    if command.terms:
        outcome = await chats.add_filters(
            chat.id,
            command.category.id if command.category else None,
            command.terms,
            bot.runtime.clock.now(),
        )
        if outcome.added:
            if name is None:
                text = (
                    _("Filters of this chat for {category}: added {terms}.")
                    if command.category
                    else _("Filters of this chat for every category: added {terms}.")
                )
            else:
                text = (
                    _("Filters of {chat} for {category}: added {terms}.")
                    if command.category
                    else _("Filters of {chat} for every category: added {terms}.")
                )
            lines.append(text.format(terms=_terms(outcome.added), **where))
        if outcome.already:
            lines.append(_("Already there: {terms}.").format(terms=_terms(outcome.already)))
        if outcome.over_limit:
            text = (
                _(
                    "Not added, this chat has {limit} terms already (the most a chat may "
                    "have): {terms}. <code>/filter clear</code> makes room."
                )
                if name is None
                else _(
                    "Not added, {chat} has {limit} terms already (the most a chat may "
                    "have): {terms}. <code>/filter clear</code> makes room."
                )
            )
            lines.append(text.format(limit=MAX_TERMS, terms=_terms(outcome.over_limit), **where))
    lines += _refusals(command.refused, t)
    if command.refused and not command.terms:
        lines.append(_("Example: {example}").format(example=EXAMPLE))
    await reply(update, context, "\n".join(lines))


def _removed(t: Translator, count: int, here: bool, scoped: bool) -> str:
    """ "Removed 2 filters of this chat for Space." as a template."""
    if here and scoped:
        return t.ngettext(
            "Removed {count} filter of this chat for {category}.",
            "Removed {count} filters of this chat for {category}.",
            count,
        )
    if here:
        return t.ngettext(
            "Removed {count} filter of this chat.", "Removed {count} filters of this chat.", count
        )
    if scoped:
        return t.ngettext(
            "Removed {count} filter of {chat} for {category}.",
            "Removed {count} filters of {chat} for {category}.",
            count,
        )
    return t.ngettext(
        "Removed {count} filter of {chat}.", "Removed {count} filters of {chat}.", count
    )
