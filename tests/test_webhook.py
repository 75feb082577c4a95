"""Webhook mode: ``newsbot run`` as a process registers its webhook with the
secret token and answers updates posted to its listener; a wrong secret is
refused; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

from tests.fake_telegram import FakeTelegram

SECRET = "s3cret-Token_for-webhooks"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_update(url: str, update: dict[str, object], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers)
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

# No hub callbacks: a fixed port that parallel runs would contend for.
[websub]
enabled = false

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


def start_webhook_bot(config: Path, token: str) -> subprocess.Popen[bytes]:
    # At DEBUG, where PTB logs every request's parameters (setWebhook's secret
    # too). Into a file, not a pipe: nobody reads a pipe while the bot runs,
    # and once its buffer is full the bot blocks on its next log line.
    log = config.with_suffix(f".{time.monotonic_ns()}.log")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "--log-level", "DEBUG", "run"],
            env={**os.environ, "NEWSBOT_TOKEN": token},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    _LOGS[process.pid] = log
    return process


_LOGS: dict[int, Path] = {}


def stop(bot: subprocess.Popen[bytes]) -> str:
    bot.send_signal(signal.SIGTERM)
    try:
        bot.wait(timeout=30)
    except subprocess.TimeoutExpired:
        bot.kill()
        bot.wait()
    log = _LOGS.pop(bot.pid).read_text(errors="replace")
    assert bot.returncode == 0, log
    return log


def post_until_listening(url: str, update: dict[str, object], secret: str | None) -> int:
    deadline = time.monotonic() + 15
    while True:  # the listener may come up just after setWebhook
        try:
            return post_update(url, update, secret)
        except (ConnectionError, urllib.error.URLError):
            assert time.monotonic() < deadline
            time.sleep(0.1)


def subscriptions(db: Path) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(db)) as connection:
        return list(connection.execute("SELECT chat_id, category_id FROM subscriptions"))


def test_webhook_without_a_configured_secret_refuses_forged_updates(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    port = free_port()
    listener = f"http://127.0.0.1:{port}/telegram-hook"
    db = tmp_path / "hook.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[telegram]
base_url = "{fake_telegram.base_url}"
webhook_url = "https://news.example/telegram-hook"
webhook_listen = "127.0.0.1"
webhook_port = {port}

# No hub callbacks: a fixed port that parallel runs would contend for.
[websub]
enabled = false

[storage]
path = "{db}"

[polling]
interval = 600
parse_workers = 1

[[categories]]
id = "space"
title = "Space"
"""
    )
    # A forged update: a group admin's user id, sent by someone who found the path.
    update = fake_telegram.message(-1001, "/subscribe space", user_id=77, chat_type="supergroup")
    bot = start_webhook_bot(config, fake_telegram.token)
    try:
        registered = fake_telegram.wait_for("setWebhook", timeout=30)
        secret = registered.params.get("secret_token")
        assert isinstance(secret, str) and re.fullmatch(r"[A-Za-z0-9_-]{32,256}", secret)
        assert post_until_listening(listener, update, None) == 403
        assert post_update(listener, update, "wrong-secret") == 403
        assert post_update(listener, update, secret.swapcase()) == 403
        assert fake_telegram.calls("sendMessage") == []
        assert fake_telegram.calls("getChatMember") == []
        assert subscriptions(db) == []
    finally:
        log = stop(bot)
    assert secret not in log
    assert " ERROR " not in log, log

    # The secret is kept: a restart (or a second process) registers the same one.
    fake_telegram.clear_calls()
    bot = start_webhook_bot(config, fake_telegram.token)
    try:
        again = fake_telegram.wait_for("setWebhook", timeout=30)
        assert again.params.get("secret_token") == secret
        private = fake_telegram.message(77, "/subscribe space")
        assert post_until_listening(listener, private, "forged") == 403
        assert post_update(listener, private, secret) == 200
        reply = fake_telegram.wait_for("sendMessage", chat_id=77, timeout=15)
        assert "Subscribed to Space" in reply.params["text"]
        assert subscriptions(db) == [(77, "space")]
    finally:
        log = stop(bot)
    assert secret not in log
    assert " ERROR " not in log, log
