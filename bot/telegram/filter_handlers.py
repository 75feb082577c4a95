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
from bot.render import escape
from bot.telegram.args import Problem, split_target
from bot.telegram.filter_args import AddFilters, ClearFilters, ListFilters, parse_filter
from bot.telegram.handlers import _chat_name, _target_chat, reply, services

SHOWN_TERM = 70  # characters of a refused argument echoed back

EXAMPLE = '<code>/filter space +mars +"space station" -rumor*</code>'
RULE = (
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
    name: str,
) -> str:
    titles = {c.id: c.title for c in categories}
    groups: dict[str | None, list[Term]] = {}
    for chat_filter in filters:
        if only is None or chat_filter.category_id in (None, only.id):
            groups.setdefault(chat_filter.category_id, []).append(chat_filter.term)
    if not groups:
        scope = f" for {escape(only.title)}" if only else ""
        return (
            f"{name} has no filters{scope}: every card of its categories arrives. "
            f"Add some: {EXAMPLE}"
        )
    count = sum(len(terms) for terms in groups.values())
    lines = [f"<b>Filters of {name}</b> ({count} of {MAX_TERMS})"]
    if None in groups:
        lines.append(f"All categories: {_terms(groups[None])}")
    for category_id, terms in groups.items():
        if category_id is not None:
            title = titles.get(category_id, category_id)
            lines.append(f"{escape(title)}: {_terms(terms)}")
    lines += ["", escape(RULE), "<code>/filter clear</code> removes them."]
    return "\n".join(lines)


def _refusals(refused: Sequence[RefusedTerm]) -> list[str]:
    return [f"Refused {_shown(r.text)}: {escape(r.reason)}." for r in refused]


async def filter_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/filter [@channel] [category] +word -word +"exact phrase" | clear [category]"""
    bot = services(context)
    message = update.effective_message
    if message is None:
        return
    # The raw text, not context.args: a quoted phrase holds spaces.
    parts = (message.text or "").split(maxsplit=1)
    arguments = split_arguments(parts[1] if len(parts) > 1 else "")
    if isinstance(arguments, RefusedTerm):
        await reply(update, context, " ".join(_refusals([arguments])))
        return
    _, rest = split_target(arguments)
    categories = bot.runtime.news.categories
    command = parse_filter(rest, categories)
    if isinstance(command, Problem):
        await reply(update, context, escape(command.message))
        return
    target = await _target_chat(
        update, context, arguments, changing=not isinstance(command, ListFilters)
    )
    if target is None:
        return
    chat, _ = target
    here = update.effective_chat
    remote = here is None or chat.id != here.id
    name = escape(_chat_name(chat)) if remote else "this chat"
    chats = bot.runtime.storage.chats
    if isinstance(command, ListFilters):
        filters = await chats.chat_filters(chat.id)
        text = _listing(filters, categories, command.category, name)
        await reply(update, context, text[:1].upper() + text[1:])
        return
    scope = f" for {escape(command.category.title)}" if command.category else ""
    if isinstance(command, ClearFilters):
        removed = await chats.clear_filters(
            chat.id, command.category.id if command.category else None
        )
        if removed:
            noun = "filter" if removed == 1 else "filters"
            await reply(update, context, f"Removed {removed} {noun} of {name}{scope}.")
        else:
            await reply(update, context, f"No filters of {name}{scope} to remove.")
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
        where = scope or " for every category"
        if outcome.added:
            lines.append(f"Filters of {name}{where}: added {_terms(outcome.added)}.")
        if outcome.already:
            lines.append(f"Already there: {_terms(outcome.already)}.")
        if outcome.over_limit:
            lines.append(
                f"Not added, {name} has {MAX_TERMS} terms already (the most a chat "
                f"may have): {_terms(outcome.over_limit)}. "
                "<code>/filter clear</code> makes room."
            )
    lines += _refusals(command.refused)
    if command.refused and not command.terms:
        lines.append(f"Example: {EXAMPLE}")
    await reply(update, context, "\n".join(lines))
