"""Who may change which chat's subscriptions, verified against Telegram.

- a private chat: its own user;
- a group or supergroup: its administrators (checked with getChatMember), and
  anonymous admins posting as the group itself;
- a channel: its administrators, and only if the bot is an administrator that
  can post there; commands posted inside the channel come from its admins.

Answers are cached for a minute: long enough to absorb a burst of button
presses, short enough that a demoted admin loses access quickly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from telegram import (
    Bot,
    Chat,
    ChatFullInfo,
    ChatMember,
    ChatMemberAdministrator,
    ChatMemberRestricted,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.i18n import N_, Translator, translator

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
_ADMIN = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


def bot_may_post(member: ChatMember, chat_type: str) -> bool:
    """Does the bot's membership let it post cards in a chat of this type?
    In a channel only an administrator with "Post messages" may; in a group
    a member may unless restricted from sending messages."""
    if member.status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
        return False
    if chat_type == ChatType.CHANNEL:
        if member.status == ChatMemberStatus.OWNER:
            return True
        return isinstance(member, ChatMemberAdministrator) and bool(member.can_post_messages)
    if isinstance(member, ChatMemberRestricted):
        return member.is_member and member.can_send_messages
    return True


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    # Plain text for the user when not allowed: English with {named}
    # placeholders filled from ``params`` (see ``explained``).
    reason: str = ""
    params: Mapping[str, object] = field(default_factory=dict)

    def explained(self, t: Translator | None = None) -> str:
        """The reason in the language of ``t`` (default English)."""
        text = (t or translator(None)).gettext(self.reason) if self.reason else ""
        return text.format(**self.params) if self.params else text


class PermissionChecker:
    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._cache: dict[tuple[int, int], tuple[float, ChatMember]] = {}

    async def member(self, chat_id: int, user_id: int) -> ChatMember:
        key = (chat_id, user_id)
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        member = await self._bot.get_chat_member(chat_id, user_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), member)
        return member

    async def bot_can_delete(self, chat_id: int) -> bool:
        """May the bot delete other people's messages in ``chat_id``?"""
        try:
            me = await self.member(chat_id, self._bot.id)
        except TelegramError as error:
            log.info("permissions: cannot check my rights in %s: %s", chat_id, error)
            return False
        if me.status == ChatMemberStatus.OWNER:
            return True
        return isinstance(me, ChatMemberAdministrator) and me.can_delete_messages

    def forget(self, chat_id: int) -> None:
        for key in [k for k in self._cache if k[0] == chat_id]:
            del self._cache[key]

    async def can_manage(
        self, chat: Chat | ChatFullInfo, user_id: int | None, sender_chat_id: int | None = None
    ) -> Verdict:
        """May this user (or sender chat) change ``chat``'s subscriptions?"""
        if chat.type == ChatType.PRIVATE:
            return Verdict(user_id == chat.id, N_("You can only change your own subscriptions."))
        if chat.type == ChatType.CHANNEL:
            return await self.can_manage_channel(chat, user_id, sender_chat_id)
        if sender_chat_id == chat.id:
            return Verdict(True)  # an anonymous admin speaks as the group itself
        if user_id is None:
            return Verdict(False, N_("Only this group's admins can change its subscriptions."))
        try:
            member = await self.member(chat.id, user_id)
        except TelegramError as error:
            log.warning("permissions: getChatMember(%s, %s) failed: %s", chat.id, user_id, error)
            return Verdict(False, N_("I couldn't check your admin rights here; please try again."))
        if member.status in _ADMIN:
            return Verdict(True)
        return Verdict(False, N_("Only this group's admins can change its subscriptions."))

    async def can_manage_channel(
        self, channel: Chat | ChatFullInfo, user_id: int | None, sender_chat_id: int | None = None
    ) -> Verdict:
        name = f"@{channel.username}" if channel.username else (channel.title or str(channel.id))
        named = {"name": name}
        only_admins = N_("Only admins of {name} can change its subscriptions.")
        if sender_chat_id != channel.id:
            if user_id is None:
                return Verdict(False, only_admins, named)
            try:
                member = await self.member(channel.id, user_id)
            except (BadRequest, Forbidden):
                return Verdict(
                    False,
                    N_(
                        "I can't see the admins of {name}. Add me to the channel as an "
                        "administrator with the right to post messages, then try again."
                    ),
                    named,
                )
            except TelegramError as error:
                log.warning("permissions: channel check failed: %s", error)
                return Verdict(False, N_("Telegram didn't answer; please try again."))
            if member.status not in _ADMIN:
                return Verdict(False, only_admins, named)
        try:
            me = await self.member(channel.id, self._bot.id)
        except TelegramError:
            me = None
        if me is None or me.status not in _ADMIN:
            return Verdict(
                False,
                N_(
                    "I'm not an administrator of {name}. Add me as an administrator with the "
                    "right to post messages, then try again."
                ),
                named,
            )
        if isinstance(me, ChatMemberAdministrator) and not me.can_post_messages:
            return Verdict(
                False,
                N_(
                    "I'm an administrator of {name} but can't post messages there. "
                    'Give me the "Post messages" right, then try again.'
                ),
                named,
            )
        return Verdict(True)
