"""The Telegram side: application factory, handlers, permissions."""
