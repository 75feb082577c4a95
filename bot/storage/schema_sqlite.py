"""The SQLite schema and its migrations, keyed on ``PRAGMA user_version``.

Each entry of ``MIGRATIONS`` moves the schema from version N to N+1; a new
database runs all of them. Never edit a released migration: append one. The
PostgreSQL schema (``schema_postgres``) describes the same tables.

Times are integer seconds since the epoch (UTC) so they sort and compare.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3

import aiosqlite

from bot.errors import StorageError
from bot.storage.db import SqliteDatabase, uncancellable

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 0 -> 1: the whole initial schema.
    """
    CREATE TABLE feeds (
        id               INTEGER PRIMARY KEY,
        url              TEXT NOT NULL UNIQUE,      -- as configured: the identity
        fetch_url        TEXT NOT NULL,             -- after permanent redirects
        name             TEXT,                      -- operator's display name
        title            TEXT,                      -- the feed's own title
        site_url         TEXT,
        categories       TEXT NOT NULL DEFAULT '',  -- configured ids, space-separated
        interval         REAL,                      -- per-feed override, seconds
        configured       INTEGER NOT NULL DEFAULT 1,
        etag             TEXT,
        last_modified    TEXT,
        body_hash        TEXT,
        next_check_at    INTEGER NOT NULL DEFAULT 0,
        last_checked_at  INTEGER,
        last_success_at  INTEGER,
        error_count      INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        disabled         INTEGER NOT NULL DEFAULT 0,
        ever_fetched     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX feeds_due ON feeds(next_check_at) WHERE configured AND NOT disabled;

    CREATE TABLE articles (
        id             INTEGER PRIMARY KEY,
        feed_id        INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        entry_key      TEXT NOT NULL,
        url            TEXT NOT NULL,
        title          TEXT NOT NULL,
        summary        TEXT NOT NULL,
        author         TEXT,
        image_url      TEXT,
        categories     TEXT NOT NULL DEFAULT '',   -- ids, space-separated, for display
        published_at   INTEGER NOT NULL,
        first_seen_at  INTEGER NOT NULL,
        UNIQUE (feed_id, entry_key)
    );
    CREATE INDEX articles_published ON articles(published_at DESC, id DESC);
    CREATE INDEX articles_url ON articles(url);

    -- One row per article and category; published_at is copied so "latest in
    -- a category" is one index range scan.
    CREATE TABLE article_categories (
        category_id   TEXT NOT NULL,
        published_at  INTEGER NOT NULL,
        article_id    INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (category_id, published_at, article_id)
    ) WITHOUT ROWID;
    CREATE INDEX article_categories_article ON article_categories(article_id);

    -- Full-text index over title and summary, kept in sync by triggers, so an
    -- insert and its index entry commit together.
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, summary, content='articles', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, summary) VALUES (new.id, new.title, new.summary);
    END;
    CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, summary)
        VALUES ('delete', old.id, old.title, old.summary);
    END;
    CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, summary ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, summary)
        VALUES ('delete', old.id, old.title, old.summary);
        INSERT INTO articles_fts(rowid, title, summary) VALUES (new.id, new.title, new.summary);
    END;

    CREATE TABLE chats (
        id             INTEGER PRIMARY KEY,        -- Telegram chat id
        type           TEXT NOT NULL,              -- private, group, supergroup, channel
        title          TEXT,
        username       TEXT,
        active         INTEGER NOT NULL DEFAULT 1, -- 0: blocked, kicked or gone
        inactive_reason TEXT,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL
    );
    CREATE INDEX chats_username ON chats(username COLLATE NOCASE);

    CREATE TABLE subscriptions (
        chat_id      INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE ON UPDATE CASCADE,
        category_id  TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (chat_id, category_id)
    ) WITHOUT ROWID;
    CREATE INDEX subscriptions_category ON subscriptions(category_id, chat_id);

    -- The outbox: one row per article and chat. UNIQUE makes "never the same
    -- article twice in one chat" a property of the schema.
    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        article_id       INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        chat_id          INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE ON UPDATE CASCADE,
        status           TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        message_id       INTEGER,
        error            TEXT,
        created_at       INTEGER NOT NULL,
        sent_at          INTEGER,
        UNIQUE (chat_id, article_id)
    );
    CREATE INDEX deliveries_pending ON deliveries(chat_id, id) WHERE status = 'pending';
    """,
    # 1 -> 2: per-chat delivery state, stories carried by several feeds,
    # small shared values, and search queries kept for paging buttons.
    """
    -- Set when the bot lost the right to post (not an admin any more, a
    -- closed topic): the chat's cards wait, neither sent nor failed, until
    -- Telegram says the right is back.
    ALTER TABLE chats ADD COLUMN suspended_reason TEXT;
    -- Telegram asked this chat's sends to wait (429 with retry_after).
    ALTER TABLE chats ADD COLUMN paused_until INTEGER NOT NULL DEFAULT 0;

    -- An entry of another feed that is a story already stored (same link):
    -- its key is known from then on, and the story gained that feed's categories.
    CREATE TABLE article_aliases (
        feed_id     INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        entry_key   TEXT NOT NULL,
        article_id  INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        PRIMARY KEY (feed_id, entry_key)
    ) WITHOUT ROWID;
    CREATE INDEX article_aliases_article ON article_aliases(article_id);

    -- Small named values the bot keeps across restarts (the webhook secret).
    CREATE TABLE state (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- A search query behind a "More" button: callback data holds 64 bytes,
    -- a query up to 256 characters, so the button carries this row's id.
    CREATE TABLE search_queries (
        id          INTEGER PRIMARY KEY,
        query       TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    """,
    # 2 -> 3: queues claimed with leases, so that several senders and pollers
    # (on PostgreSQL) never take the same row, and an expired lease returns
    # the row of a sender that died; the time a stored article was last
    # corrected by its feed.
    """
    ALTER TABLE feeds ADD COLUMN claimed_by TEXT;
    ALTER TABLE feeds ADD COLUMN claim_expires_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN claim_expires_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE articles ADD COLUMN changed_at INTEGER;
    -- Retention prunes finished rows by age without reading the whole outbox.
    CREATE INDEX deliveries_finished ON deliveries(created_at) WHERE status != 'pending';
    """,
    # 3 -> 4: a claim walks the pending cards in id order; without this it
    # would walk every finished card kept for keep_deliveries as well.
    """
    CREATE INDEX deliveries_pending_by_id ON deliveries(id) WHERE status = 'pending';
    """,
    # 4 -> 5: keyword filters: the entry's own tags kept on the article (filters and
    # a filtered /latest look at them), and each chat's terms.
    """
    ALTER TABLE articles ADD COLUMN tags TEXT NOT NULL DEFAULT '';  -- one per line
    CREATE TABLE chat_filters (
        id           INTEGER PRIMARY KEY,
        chat_id      INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE ON UPDATE CASCADE,
        category_id  TEXT,                  -- NULL: every category of the chat
        term         TEXT NOT NULL,         -- as written, without its sign
        include      INTEGER NOT NULL,      -- 1: +term, 0: -term
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX chat_filters_chat ON chat_filters(chat_id, id);
    """,
    # 5 -> 6: forum topics: a category's cards go to the topic it was subscribed in
    # (NULL: General, which takes no thread id), and each card remembers it.
    """
    ALTER TABLE subscriptions ADD COLUMN thread_id INTEGER;
    ALTER TABLE subscriptions ADD COLUMN topic_name TEXT;
    ALTER TABLE deliveries ADD COLUMN thread_id INTEGER;
    """,
    # 6 -> 7: feeds added at runtime (CLI, OPML import) live in the database only:
    # the config sync must leave them alone, and an operator may pause any
    # feed without removing it.
    """
    ALTER TABLE feeds ADD COLUMN origin TEXT NOT NULL DEFAULT 'config'
        CHECK (origin IN ('config', 'runtime'));
    ALTER TABLE feeds ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
    """,
    # 7 -> 8: the items of each feed's last parsed body, so that a body
    # which gained a few items is parsed for those items only (bot/items.py).
    """
    -- item_digest: the raw item's bytes within the body's frame; entry_key:
    -- the key its entry had. Replaced, in the transaction that stores the
    -- articles, by the items of each newly parsed body.
    CREATE TABLE feed_items (
        feed_id      INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
        item_digest  TEXT NOT NULL,
        entry_key    TEXT NOT NULL,
        PRIMARY KEY (feed_id, item_digest)
    ) WITHOUT ROWID;
    """,
    # 8 -> 9: what each chat chose (bot/chat_settings.py), one JSON object per
    # chat so that a new setting needs no schema change.
    """
    CREATE TABLE chat_settings (
        chat_id     INTEGER PRIMARY KEY
                    REFERENCES chats(id) ON DELETE CASCADE ON UPDATE CASCADE,
        settings    TEXT NOT NULL DEFAULT '{}',
        updated_at  INTEGER NOT NULL
    );
    """,
    # 9 -> 10: sent cards follow corrections of their story (bot/edits.py):
    # what kind of message each card is, and its queue of edits, claimed
    # with a lease like the cards themselves.
    """
    ALTER TABLE deliveries ADD COLUMN card_kind TEXT NOT NULL DEFAULT 'text'
        CHECK (card_kind IN ('text', 'photo'));
    -- Counts the corrections asked of the card: an edit done clears the
    -- queue only if no newer one came while it was under way.
    ALTER TABLE deliveries ADD COLUMN edit_generation INTEGER NOT NULL DEFAULT 0;
    -- When the card is to be edited; NULL: nothing to edit.
    ALTER TABLE deliveries ADD COLUMN edit_due_at INTEGER;
    ALTER TABLE deliveries ADD COLUMN edit_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN edit_claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN edit_claim_expires_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN edited_at INTEGER;
    -- Why Telegram will never edit this card (the message was deleted, or
    -- is too old): it is not tried again.
    ALTER TABLE deliveries ADD COLUMN edit_refused TEXT;
    CREATE INDEX deliveries_edits_due ON deliveries(edit_due_at) WHERE edit_due_at IS NOT NULL;
    -- A correction looks up the sent cards of its article.
    CREATE INDEX deliveries_sent_by_article ON deliveries(article_id) WHERE status = 'sent';
    """,
    # 10 -> 11: delivery shaped by each chat (bot/digest.py). A card held for a
    # digest, quiet hours or the burst cap stays 'pending' with held_for set
    # (not claimable); gathered into a digest it carries the digest's id and
    # is claimed and sent with the digest's other cards as one message.
    """
    ALTER TABLE deliveries ADD COLUMN held_for TEXT;      -- 'digest', 'quiet', 'cap'; NULL: not held
    ALTER TABLE deliveries ADD COLUMN held_until INTEGER; -- NULL: until the next digest time
    ALTER TABLE deliveries ADD COLUMN digest_id INTEGER;
    -- One row per digest gathered, and per digest time that found nothing
    -- held (slot_at: that time is done, nothing is sent for it).
    CREATE TABLE digests (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE ON UPDATE CASCADE,
        kind        TEXT NOT NULL,  -- 'digest', 'quiet', 'more'
        slot_at     INTEGER,        -- the digest time it is for; NULL for quiet and more
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX digests_chat_slot ON digests(chat_id, slot_at);
    CREATE INDEX deliveries_held ON deliveries(chat_id, id)
        WHERE status = 'pending' AND held_for IS NOT NULL;
    CREATE INDEX deliveries_digest ON deliveries(digest_id) WHERE digest_id IS NOT NULL;
    -- The burst cap counts a chat's cards sent in the last hour.
    CREATE INDEX deliveries_sent_by_chat ON deliveries(chat_id, sent_at) WHERE status = 'sent';
    """,
    # 11 -> 12: WebSub subscriptions (bot/storage/websub.py), one per feed
    # that names a hub. No foreign key to feeds: a removed feed must still be
    # unsubscribed at its hub.
    """
    CREATE TABLE websub_subscriptions (
        id               INTEGER PRIMARY KEY,
        feed_id          INTEGER NOT NULL UNIQUE,
        hub_url          TEXT NOT NULL,
        topic_url        TEXT NOT NULL,
        secret           TEXT NOT NULL,              -- hub.secret: pushes are signed with it
        trusted          INTEGER NOT NULL,           -- 1: the operator's feed
        wanted           INTEGER NOT NULL DEFAULT 1, -- 0: unsubscribe
        active           INTEGER NOT NULL DEFAULT 0, -- 1: the hub confirmed it
        pending_mode     TEXT CHECK (pending_mode IN ('subscribe', 'unsubscribe')),
        lease_seconds    INTEGER,
        expires_at       INTEGER,
        next_attempt_at  INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        created_at       INTEGER NOT NULL
    );
    CREATE INDEX websub_subscriptions_due ON websub_subscriptions(next_attempt_at);
    """,
    # 12 -> 13: prefix indexes for the search's last word ("spacex laun"). Without
    # them FTS5 answers "tes"* by merging the doclists of every word that
    # starts so (test, tests, testing...) in full before it returns one row:
    # 20-40 ms at a million articles for a common prefix. With them it reads
    # one doclist lazily, newest first, as it does for a whole word. Longer
    # prefixes name few words, which FTS5 merges cheaply. The index is rebuilt
    # from the articles (about two minutes at a million articles; the triggers
    # keep working, they name the table only).
    """
    DROP TABLE articles_fts;
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, summary, content='articles', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2', prefix='3 4 5 6'
    );
    INSERT INTO articles_fts(articles_fts) VALUES ('rebuild');
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def split_statements(script: str) -> list[str]:
    """The statements of a migration script, each complete (a trigger's body
    holds semicolons of its own). ``executescript`` cannot be used: it
    commits any open transaction before it starts."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise StorageError(f"storage: incomplete statement in a migration: {pending.strip()[:80]}")
    return statements


async def schema_version(connection: aiosqlite.Connection) -> int:
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(database: SqliteDatabase) -> int:
    """Bring the schema to the newest version in one write transaction;
    returns the version it was at.

    The version is read inside ``BEGIN IMMEDIATE``, so two processes
    opening a new database never both see version 0 and race into "table
    already exists": the second waits for the first, then finds nothing left
    to do. Foreign keys are off while migrating (a migration that rebuilds a
    table by CREATE-copy-DROP-RENAME would otherwise cascade-delete every row
    that references it, as SQLite's documentation warns), and
    ``foreign_key_check`` must come back empty before the commit. ``PRAGMA
    foreign_keys`` is a no-op inside a transaction, hence its place outside.
    """
    migrations = MIGRATIONS
    target = len(migrations)
    db = database.connection
    try:
        async with database.lock:
            # The version only ever grows: a database at this one needs
            # nothing, neither the write lock (a running bot may hold it)
            # nor the reference check, which reads every table.
            if await schema_version(db) == target:
                return target
            await db.execute("PRAGMA foreign_keys = OFF")
            await db.execute("BEGIN IMMEDIATE")
            try:
                version = await schema_version(db)
                if version > target:
                    raise StorageError(
                        f"storage: {database.path} has schema version {version}, newer than "
                        f"this newsbot ({target}); upgrade newsbot"
                    )
                for index in range(version, target):
                    for statement in split_statements(migrations[index]):
                        await db.execute(statement)
                async with db.execute("PRAGMA foreign_key_check") as cursor:
                    broken = list(await cursor.fetchall())
                if broken:
                    raise StorageError(
                        f"storage: migration would break {len(broken)} references "
                        f"(first: {tuple(broken[0])}); nothing was changed"
                    )
                if version < target:
                    await db.execute(f"PRAGMA user_version = {target}")
                await uncancellable(db.execute("COMMIT"))
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await uncancellable(db.execute("ROLLBACK"))
                raise
            finally:
                await db.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as error:
        raise StorageError(f"storage: migration failed: {error}") from None
    if version < target:
        log.info("storage: migrated %s to schema version %d", database.path, target)
    return version
