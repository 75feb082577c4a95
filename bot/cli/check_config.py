"""``newsbot check-config``: validate and summarise the configuration."""

from __future__ import annotations

import argparse

from bot.config import Config
from bot.i18n import translator


def check_config(args: argparse.Namespace, config: Config) -> int:
    # The operator's console is English; plurals still come from the catalog
    # rules ("1 feed", "2 feeds").
    ngettext = translator(None).ngettext
    categories = ngettext("{count} category", "{count} categories", len(config.categories))
    feeds_in_all = ngettext("{count} feed", "{count} feeds", len(config.feeds))
    print(
        f"configuration OK: {categories.format(count=len(config.categories))}, "
        f"{feeds_in_all.format(count=len(config.feeds))}"
    )
    print(f"  database: {config.storage.path}")
    print(f"  polling every {config.polling.interval:g}s")
    print(f"  telegram token: {'set' if config.token else 'NOT SET (needed for run)'}")
    for category in config.categories:
        feeds = sum(1 for f in config.feeds if category.id in f.categories)
        rules = len(category.aliases) + len(category.keywords)
        feed_count = ngettext("{count} feed", "{count} feeds", feeds).format(count=feeds)
        rule_count = ngettext("{count} rule", "{count} rules", rules).format(count=rules)
        print(f"  - {category.id}: {category.title} ({feed_count}, {rule_count})")
    for warning in config.warnings():
        print(f"  warning: {warning}")
    return 0
