"""Webhook serving: where PTB's webhook server listens, and the secret
Telegram sends with every update."""

from __future__ import annotations

import secrets
from typing import Any

from telegram import Update

from bot.clock import Clock
from bot.config import Config, TelegramConfig
from bot.logs import register_secret
from bot.storage import open_storage

# The state key of the generated webhook secret.
WEBHOOK_SECRET_KEY = "webhook_secret"


async def webhook_secret(config: Config, clock: Clock) -> str:
    """The secret Telegram sends with every update, so the listener can
    refuse updates from anyone else: without it, whoever finds the path
    could post an update "from" a real admin and change subscriptions.

    The configured one, else one generated once and kept in the database,
    so every restart and every process registers the same secret.
    """
    secret = config.telegram.webhook_secret
    if secret is None:
        storage = await open_storage(config.storage)
        # token_urlsafe: A-Z a-z 0-9 _ - only, as Telegram requires; 32
        # bytes make 43 characters (Telegram allows 1-256). Redacted before
        # it is stored, in case a statement's parameters are ever logged.
        candidate = secrets.token_urlsafe(32)
        register_secret(candidate)
        try:
            secret = await storage.state.set_state_if_absent(
                WEBHOOK_SECRET_KEY, candidate, clock.now()
            )
        finally:
            await storage.close()
    register_secret(secret)  # PTB logs setWebhook's parameters at DEBUG
    return secret


def webhook_options(telegram: TelegramConfig, secret: str) -> dict[str, Any]:
    """The arguments of PTB's ``run_webhook`` and ``Updater.start_webhook``:
    listen on ``[telegram] webhook_listen``/``webhook_port`` at the last path
    segment of ``webhook_url``, the URL registered with setWebhook."""
    assert telegram.webhook_url is not None
    path = telegram.webhook_url.rstrip("/").rsplit("/", 1)[-1] or "telegram"
    return {
        "listen": telegram.webhook_listen,
        "port": telegram.webhook_port,
        "url_path": path,
        "webhook_url": telegram.webhook_url,
        "secret_token": secret,
        "allowed_updates": Update.ALL_TYPES,
    }
