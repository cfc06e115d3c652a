//! The local store's schema and its versioned migrations (see
//! [`crate::local`] for the store itself).

use rusqlite::Connection;

use crate::error::ClientError;

/// Version 1: the schema as the first release wrote it (kept verbatim: a
/// store without a `user_version` is a version-1 store).
pub(crate) const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_roots (
    epoch     INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mls_state (
    key   BLOB PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    username     TEXT PRIMARY KEY,
    account_key  BLOB NOT NULL,
    first_seen   INTEGER NOT NULL,
    verified     INTEGER NOT NULL DEFAULT 0,
    key_changed  INTEGER NOT NULL DEFAULT 0,
    blocked      INTEGER NOT NULL DEFAULT 0,
    profile_key  BLOB,
    display_name TEXT
);
CREATE TABLE IF NOT EXISTS conversations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id       BLOB NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    peer           TEXT,
    name           TEXT,
    disappear_secs INTEGER,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_peer ON conversations(peer);
CREATE TABLE IF NOT EXISTS messages (
    rowid           INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    conversation    INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender          TEXT NOT NULL,
    sender_device   INTEGER NOT NULL,
    outgoing        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT,
    reply_to        TEXT,
    attachment      TEXT,
    sent_at         INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    expires_at      INTEGER,
    status          TEXT NOT NULL,
    edited          INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    franking        TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation, rowid);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    rowid      INTEGER PRIMARY KEY AUTOINCREMENT,
    request    TEXT NOT NULL,
    message_id TEXT
);
"#;

/// Every schema change after version 1, in order: `MIGRATIONS[i]` takes a
/// store from version `i + 2 - 1` to `i + 2`. Applied at open, each in its
/// own transaction together with the new `user_version`.
const MIGRATIONS: &[&str] = &[
    // Version 2: the groups this device has ever been in, with the newest
    // epoch it saw (NULL: unknown, for groups left before this version), so
    // a replayed or overwriting Welcome is refused; and the account key a
    // contact was verified with, so a later key does not inherit it.
    r#"
CREATE TABLE known_groups (
    group_id   BLOB PRIMARY KEY,
    max_epoch  INTEGER,
    first_seen INTEGER NOT NULL
);
INSERT OR IGNORE INTO known_groups (group_id, max_epoch, first_seen)
    SELECT group_id, NULL, created_at FROM conversations;
ALTER TABLE contacts ADD COLUMN verified_key BLOB;
UPDATE contacts SET verified_key = account_key WHERE verified = 1;
"#,
    // Version 3: receipts to the sender (decision 0017). Who received and
    // who read each of this account's messages, one row per member, and how
    // many other members a group message was sent to (NULL: a 1:1 message,
    // or one sent before this version or from another device).
    r#"
CREATE TABLE receipts (
    message_id   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member       TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    read_at      INTEGER,
    PRIMARY KEY (message_id, member)
) WITHOUT ROWID;
ALTER TABLE messages ADD COLUMN recipients INTEGER;
"#,
    // Version 4: this account's devices as this device knows them (decision
    // 0023): every certificate it has seen under the account key, the name
    // the user gave it, when a message from it last arrived here, and
    // whether it was removed; and the links this device approved that have
    // not answered yet, with their keys. The device itself is its first row.
    r#"
CREATE TABLE account_devices (
    device_id   INTEGER PRIMARY KEY,
    certificate BLOB NOT NULL,
    name        TEXT,
    last_seen   INTEGER,
    removed     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO account_devices (device_id, certificate)
    SELECT CAST(CAST(d.value AS TEXT) AS INTEGER), c.value FROM meta d, meta c
    WHERE d.key = 'device_id' AND c.key = 'certificate';
CREATE TABLE pending_links (
    device_id   INTEGER PRIMARY KEY,
    to_new      BLOB NOT NULL,
    to_existing BLOB NOT NULL,
    wanted      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    ready       BLOB
);
"#,
    // Version 5: this account's devices kept the same (decision 0025): per
    // synced setting (a contact's block or verification mark, the profile
    // key, the presence setting, a device's name), the logical clock of its
    // newest change and the value it set.
    r#"
CREATE TABLE sync_fields (
    field  TEXT PRIMARY KEY,
    at_ms  INTEGER NOT NULL,
    device INTEGER NOT NULL,
    value  BLOB
) WITHOUT ROWID;
"#,
    // Version 6: history read a page at a time (`Client::history_page`) in
    // its order, and unread counts without reading the history.
    r#"
CREATE INDEX messages_by_time ON messages(conversation, sent_at, id);
CREATE INDEX messages_unread ON messages(conversation) WHERE status = 'received';
"#,
    // Version 7: conversations moved from the legacy suite 65100 to X-Wing
    // (decision 0031). The successor a commit in the old group announced
    // (`done` 0: its Welcome not followed yet, `epoch` the old group's
    // epoch after the announcing commit), or the successor the row now
    // points to (`done` 1: the old group's late messages still land in the
    // conversation).
    r#"
CREATE TABLE successors (
    old_group_id BLOB PRIMARY KEY,
    new_group_id BLOB NOT NULL,
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    epoch        INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX successors_by_new ON successors(new_group_id);
"#,
    // Version 8: message features (decision 0039). Each member's newest
    // reaction to a message (`emoji` NULL: taken back; kept so that an
    // older reaction arriving late does not come back); pins; polls and
    // votes; whom a message mentions and whether it was forwarded; the
    // full-text index of the messages' text.
    r#"
CREATE TABLE reactions (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member     TEXT NOT NULL,
    emoji      TEXT,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (message_id, member)
) WITHOUT ROWID;
-- Whether a message is pinned, by whom, as of which change (the newest
-- by the sender's clock wins; an unpin stays as a row).
CREATE TABLE pins (
    message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    pinned     INTEGER NOT NULL,
    member     TEXT NOT NULL,
    sent_at    INTEGER NOT NULL
) WITHOUT ROWID;
-- A poll's options (JSON, with the message: the question is its body),
-- and each member's newest vote (JSON positions; empty: taken back).
ALTER TABLE messages ADD COLUMN poll TEXT;
CREATE TABLE votes (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member     TEXT NOT NULL,
    options    TEXT NOT NULL,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (message_id, member)
) WITHOUT ROWID;
-- The accounts a message mentions (JSON array, NULL for none), and
-- whether this account is one of them (for unread mentions).
ALTER TABLE messages ADD COLUMN mentions TEXT;
ALTER TABLE messages ADD COLUMN mentions_me INTEGER NOT NULL DEFAULT 0;
-- Forwarded from another conversation.
ALTER TABLE messages ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_unread_mentions ON messages(conversation)
    WHERE status = 'received' AND mentions_me = 1;
-- The full-text index of the messages' text (`crate::search`), kept by
-- triggers; filled from the messages already stored.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
-- Every row is indexed, a NULL text as no words (FTS5 counts the rows).
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
"#,
    // Version 9: channels (decision 0038). Per channel followed: the
    // link's secret and owner key, the newest descriptor that verified,
    // the newest post number read, and (on the owner's device) the owner
    // key's seed and the post token; the key of each epoch held; the
    // posts taken in, by post id (a post delivered again is not shown
    // again).
    r#"
CREATE TABLE channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    channel_id  BLOB NOT NULL UNIQUE,
    secret      BLOB NOT NULL,
    owner       BLOB NOT NULL,
    descriptor  BLOB NOT NULL,
    epoch       INTEGER NOT NULL,
    read_up_to  INTEGER NOT NULL DEFAULT 0,
    owner_seed  BLOB,
    post_token  BLOB,
    joined_at   INTEGER NOT NULL
);
CREATE TABLE channel_keys (
    channel INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    key     BLOB NOT NULL,
    PRIMARY KEY (channel, epoch)
) WITHOUT ROWID;
CREATE TABLE channel_posts (
    channel     INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    post_id     BLOB NOT NULL,
    number      INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    signer      BLOB NOT NULL,
    content     BLOB NOT NULL,
    sent_at     INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (channel, post_id)
) WITHOUT ROWID;
CREATE INDEX channel_posts_by_number ON channel_posts(channel, number);
"#,
    // Version 10: a conversation muted until a time (ms since the Unix
    // epoch; the largest integer for "until unmuted"), NULL when not.
    r#"
ALTER TABLE conversations ADD COLUMN muted_until INTEGER;
"#,
];

/// The schema version this code writes.
pub(crate) const SCHEMA_VERSION: u32 = 1 + MIGRATIONS.len() as u32;

/// Brings the schema to [`SCHEMA_VERSION`]. A store from a newer release is
/// refused rather than misread.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), ClientError> {
    let mut version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        // A new store, or one written before versions were recorded: both
        // are version 1 once its tables exist.
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", 1)?;
        tx.commit()?;
        version = 1;
    }
    if version > SCHEMA_VERSION {
        return Err(ClientError::Store(format!(
            "the local store has schema version {version}, newer than this hush \
             understands ({SCHEMA_VERSION}); upgrade hush"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as u32 + 2)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
