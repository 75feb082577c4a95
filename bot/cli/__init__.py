"""The ``newsbot`` command line: ``bot.cli.main`` parses the arguments and
runs the command, one module per subject does the work (``serve``: the bot
and one polling round; ``articles``; ``feeds``; ``health``; ``db``;
``check_config``)."""
