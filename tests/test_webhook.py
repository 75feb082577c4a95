"""Webhook mode: ``newsbot run`` as a process registers its webhook with the
secret token and answers updates posted to its listener; a wrong secret is
refused; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.fake_telegram import FakeTelegram

SECRET = "s3cret-Token_for-webhooks"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_update(url: str, update: dict[str, object], secret: str) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_webhook_mode_registers_answers_and_stops_on_sigterm(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    port = free_port()
    # Telegram calls the https URL; a TLS proxy in front forwards plain HTTP.
    hook = "https://news.example/telegram-hook"
    listener = f"http://127.0.0.1:{port}/telegram-hook"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[telegram]
base_url = "{fake_telegram.base_url}"
webhook_url = "{hook}"
webhook_listen = "127.0.0.1"
webhook_port = {port}
webhook_secret = "{SECRET}"

[storage]
path = "{tmp_path / "hook.db"}"

[polling]
interval = 600
parse_workers = 1

[[categories]]
id = "space"
title = "Space"
"""
    )
    env = {**os.environ, "NEWSBOT_TOKEN": fake_telegram.token}
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        registered = fake_telegram.wait_for("setWebhook", timeout=30)
        assert registered.params["url"] == hook
        assert registered.params["secret_token"] == SECRET

        update = fake_telegram.message(77, "/subscribe space")
        deadline = time.monotonic() + 15
        while True:  # the listener may come up just after setWebhook
            try:
                assert post_update(listener, update, "wrong-secret") == 403
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert fake_telegram.calls("sendMessage") == []
        assert post_update(listener, update, SECRET) == 200
        reply = fake_telegram.wait_for("sendMessage", chat_id=77, timeout=15)
        assert "Subscribed to Space" in reply.params["text"]
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            output, _ = bot.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            bot.kill()
            output, _ = bot.communicate()
    log = output.decode(errors="replace")
    assert bot.returncode == 0, log
    assert fake_telegram.token not in log
    assert "Traceback" not in log
