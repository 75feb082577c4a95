"""newsbot: a Telegram news bot that polls feeds and delivers headline cards by category."""

__version__ = "0.1.0"
