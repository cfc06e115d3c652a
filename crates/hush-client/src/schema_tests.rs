//! Every earlier schema version opens, with its data, after migration.

use std::path::Path;

use rand::RngCore;
use rusqlite::Connection;
use zeroize::Zeroizing;

use super::*;
use crate::local::{DATABASE, LocalStore, write_keyfile};

/// A store as the release before schema versions wrote it: the
/// version-1 tables, `user_version` 0, and data in them.
/// A store as the release of schema `version` wrote it: version 1 with
/// its rows, the migrations up to `version`, then `sql`.
fn write_store_at(dir: &Path, version: u32, sql: &str) {
    let db_key = write_v1_store(dir, "pw");
    let mut conn = Connection::open(dir.join(DATABASE)).unwrap();
    let hex_key = Zeroizing::new(format!("x'{}'", hex::encode(*db_key)));
    conn.pragma_update(None, "key", &*hex_key).unwrap();
    let tx = conn.transaction().unwrap();
    for m in &MIGRATIONS[..version as usize - 1] {
        tx.execute_batch(m).unwrap();
    }
    tx.execute_batch(sql).unwrap();
    tx.pragma_update(None, "user_version", version).unwrap();
    tx.commit().unwrap();
}

fn write_v1_store(dir: &Path, passphrase: &str) -> Zeroizing<[u8; 32]> {
    let mut db_key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *db_key);
    let keyfile = LocalStore::wrap(&db_key, passphrase).unwrap();
    let conn = Connection::open(dir.join(DATABASE)).unwrap();
    let hex_key = Zeroizing::new(format!("x'{}'", hex::encode(*db_key)));
    conn.pragma_update(None, "key", &*hex_key).unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute_batch(
        "INSERT INTO meta (key, value) VALUES ('username', X'616c696365');
         INSERT INTO kt_roots VALUES (7, X'01', X'02');
         INSERT INTO mls_state VALUES (X'0a', X'0b');
         INSERT INTO contacts (username, account_key, first_seen, verified)
             VALUES ('bob', X'b0b0', 1, 1), ('carol', X'ca01', 2, 0);
         INSERT INTO conversations (group_id, kind, peer, name, active, created_at)
             VALUES (X'aa', 'direct', 'bob', NULL, 1, 10),
                    (X'bb', 'group', NULL, 'family', 0, 11);
         INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
             body, sent_at, received_at, status)
             VALUES ('m1', 1, 'bob', 1, 0, 'text', 'hello', 5, 6, 'received');
         INSERT INTO outbox (request, message_id) VALUES ('{}', 'm1');",
    )
    .unwrap();
    assert_eq!(
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))
            .unwrap(),
        0
    );
    drop(conn);
    write_keyfile(dir, &keyfile).unwrap();
    db_key
}

#[test]
fn a_version_1_store_opens_with_everything_in_it_after_migration() {
    let dir = tempfile::tempdir().unwrap();
    write_v1_store(dir.path(), "pw");
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(s.meta_str("username").unwrap().as_deref(), Some("alice"));
    assert_eq!(s.mls_entries().unwrap().len(), 1);
    let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM kt_roots WHERE epoch = 7"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM conversations"), 2);
    assert_eq!(count("SELECT COUNT(*) FROM outbox"), 1);
    let body: String = c
        .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(body, "hello");
    // Groups left before the upgrade are remembered, epoch unknown.
    assert_eq!(
        count("SELECT COUNT(*) FROM known_groups WHERE max_epoch IS NULL"),
        2
    );
    // The key a contact was verified with is the one recorded then.
    let vk: Option<Vec<u8>> = c
        .query_row(
            "SELECT verified_key FROM contacts WHERE username = 'bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(vk, Some(vec![0xb0, 0xb0]));
    let vk: Option<Vec<u8>> = c
        .query_row(
            "SELECT verified_key FROM contacts WHERE username = 'carol'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(vk, None);
    drop(s);
    // Opening again applies nothing twice.
    LocalStore::open(dir.path(), "pw").unwrap();
}

/// A store as the previous release (version 2) wrote it, with a group
/// and messages in it: the messages stay, and receipts can be recorded
/// for them after the upgrade.
#[test]
fn a_version_2_store_with_messages_opens_and_takes_receipts() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        2,
        "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
             body, sent_at, received_at, status)
             VALUES ('m2', 2, 'alice', 1, 1, 'text', 'to the family', 7, 7, 'delivered');",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let row: (String, String, Option<i64>) = c
        .query_row(
            "SELECT body, status, recipients FROM messages WHERE id = 'm2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("to the family".into(), "delivered".into(), None));
    c.execute(
        "INSERT INTO receipts (message_id, member, delivered_at) VALUES ('m2', 'bob', 8)",
        [],
    )
    .unwrap();
    // A receipt row cannot name a message that does not exist, and goes
    // with its message.
    assert!(
        c.execute(
            "INSERT INTO receipts (message_id, member, delivered_at) VALUES ('nope', 'bob', 8)",
            [],
        )
        .is_err()
    );
    c.execute("DELETE FROM messages WHERE id = 'm2'", [])
        .unwrap();
    let left: i64 = c
        .query_row("SELECT COUNT(*) FROM receipts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// A store as the previous release (version 3) wrote it: after the
/// upgrade this device is the first row of its account's devices, and
/// the messages stay.
#[test]
fn a_version_3_store_opens_with_this_device_listed() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        3,
        "INSERT INTO meta (key, value) VALUES ('device_id', CAST('3' AS BLOB)),
                 ('certificate', X'c0ffee');",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let row: (i64, Vec<u8>, Option<String>, bool) = c
        .query_row(
            "SELECT device_id, certificate, name, removed FROM account_devices",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, (3, vec![0xc0, 0xff, 0xee], None, false));
    let pending: i64 = c
        .query_row("SELECT COUNT(*) FROM pending_links", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);
    let body: String = c
        .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(body, "hello");
}

/// A store as the previous release (version 4) wrote it, with a second
/// device, a blocked contact and a message: all of it stays, and synced
/// settings can be recorded after the upgrade.
#[test]
fn a_version_4_store_opens_with_its_devices_and_contacts() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        4,
        "INSERT INTO account_devices (device_id, certificate, name, last_seen, removed)
             VALUES (1, X'c0ffee', 'phone', NULL, 0), (2, X'beef', 'laptop', 9, 0);
         UPDATE contacts SET blocked = 1 WHERE username = 'carol';",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let names: Vec<String> = c
        .prepare("SELECT name FROM account_devices ORDER BY device_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["phone", "laptop"]);
    let blocked: bool = c
        .query_row(
            "SELECT blocked FROM contacts WHERE username = 'carol'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(blocked);
    let body: String = c
        .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(body, "hello");
    let held: i64 = c
        .query_row("SELECT COUNT(*) FROM sync_fields", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 0);
    c.execute(
        "INSERT INTO sync_fields (field, at_ms, device, value) VALUES ('presence', 5, 2, X'00')",
        [],
    )
    .unwrap();
    drop(s);
    // Opening again applies nothing twice and keeps what was synced.
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let held: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM sync_fields", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 1);
}

/// A store as the previous release (version 5) wrote it, with messages
/// in two conversations: they stay, and the new indexes serve the
/// paged read and the unread count.
#[test]
fn a_version_5_store_opens_with_its_messages_indexed() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        5,
        "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
             body, sent_at, received_at, status)
             VALUES ('m2', 1, 'bob', 1, 0, 'text', 'again', 9, 9, 'received'),
                    ('m3', 2, 'alice', 1, 1, 'text', 'to the family', 7, 7, 'sent');",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let page: Vec<String> = c
        .prepare(
            "SELECT id FROM messages WHERE conversation = 1 AND (sent_at, id) < (100, '') \
             ORDER BY sent_at DESC, id DESC LIMIT 5",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(page, ["m2", "m1"]);
    let unread: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE conversation = 1 AND status = 'received'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unread, 2);
    let plan = |sql: &str| -> String {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    };
    let p = plan(
        "SELECT id FROM messages WHERE conversation = 1 AND (sent_at, id) < (100, '') \
         ORDER BY sent_at DESC, id DESC LIMIT 5",
    );
    assert!(
        p.contains("messages_by_time") && !p.contains("TEMP B-TREE"),
        "{p}"
    );
    let p = plan("SELECT COUNT(*) FROM messages WHERE conversation = 1 AND status = 'received'");
    assert!(p.contains("messages_unread"), "{p}");
    drop(s);
    LocalStore::open(dir.path(), "pw").unwrap();
}

/// A store as the previous release (version 6) wrote it: its
/// conversations stay, and the table of successors (decision 0031)
/// comes empty and takes a move of one of them.
#[test]
fn a_version_6_store_opens_with_a_table_of_successors() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(dir.path(), 6, "");
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM conversations"), 2);
    assert_eq!(count("SELECT COUNT(*) FROM successors"), 0);
    c.execute_batch(
        "INSERT INTO successors (old_group_id, new_group_id, conversation, epoch, done)
             VALUES (X'aa', X'cc', 1, 3, 1);
         UPDATE conversations SET group_id = X'cc' WHERE id = 1;",
    )
    .unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM successors s JOIN conversations c ON c.id = s.conversation"),
        1
    );
    drop(s);
    LocalStore::open(dir.path(), "pw").unwrap();
}

/// A store as version 7 wrote it: its messages take reactions, which go
/// with the message when it is deleted, and are in the full-text index,
/// which they leave the same way.
#[test]
fn a_version_7_store_opens_and_its_messages_take_reactions() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(dir.path(), 7, "");
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    c.execute_batch(
        "INSERT INTO reactions (message_id, member, emoji, sent_at) VALUES ('m1', 'bob', 'x', 1);
         INSERT INTO pins (message_id, pinned, member, sent_at) VALUES ('m1', 1, 'bob', 1);
         UPDATE messages SET poll = '{}' WHERE id = 'm1';
         INSERT INTO votes (message_id, member, options, sent_at) VALUES ('m1', 'bob', '[0]', 1);",
    )
    .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM reactions"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE mentions_me = 0"),
        1
    );
    // The full-text index holds what was stored before it existed.
    let found = "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH '\"hello\"'";
    assert_eq!(count(found), 1);
    c.execute_batch("DELETE FROM outbox; DELETE FROM messages WHERE id = 'm1';")
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM reactions"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM pins"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM votes"), 0);
    assert_eq!(count(found), 0);
    drop(s);
    LocalStore::open(dir.path(), "pw").unwrap();
}

/// A store as version 8 wrote it: everything in it stays (contacts,
/// conversations, messages, their reactions and full-text index), and the
/// channel tables come empty, take a channel with its keys and posts, and
/// forget them with it.
#[test]
fn a_version_8_store_opens_with_its_data_and_takes_channels() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        8,
        "INSERT INTO reactions (message_id, member, emoji, sent_at) VALUES ('m1', 'bob', 'x', 1);
         INSERT INTO sync_fields (field, at_ms, device, value) VALUES ('presence', 3, 1, X'01');",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(s.meta_str("username").unwrap().as_deref(), Some("alice"));
    assert_eq!(count("SELECT COUNT(*) FROM kt_roots WHERE epoch = 7"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM contacts"), 2);
    assert_eq!(count("SELECT COUNT(*) FROM conversations"), 2);
    assert_eq!(count("SELECT COUNT(*) FROM outbox"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM reactions"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM sync_fields"), 1);
    let found = "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH '\"hello\"'";
    assert_eq!(count(found), 1);
    assert_eq!(count("SELECT COUNT(*) FROM channels"), 0);
    c.execute_batch(
        "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, joined_at)
             VALUES ('news', X'01', X'02', X'03', X'04', 0, 1);
         INSERT INTO channel_keys (channel, epoch, key) VALUES (1, 0, X'05');
         INSERT INTO channel_posts (channel, post_id, number, epoch, signer, content,
             sent_at, received_at) VALUES (1, X'06', 1, 0, X'03', X'07', 1, 2);",
    )
    .unwrap();
    // A second channel of the same local name is refused, as for groups.
    assert!(
        c.execute_batch(
            "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, joined_at)
                 VALUES ('news', X'11', X'02', X'03', X'04', 0, 1);"
        )
        .is_err()
    );
    c.execute_batch("DELETE FROM channels WHERE name = 'news';")
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM channel_keys"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM channel_posts"), 0);
    drop(s);
    LocalStore::open(dir.path(), "pw").unwrap();
}

/// A store as version 9 wrote it, with a channel: everything stays, and
/// its conversations start unmuted and take a mute.
#[test]
fn a_version_9_store_opens_with_its_channels_and_takes_mutes() {
    let dir = tempfile::tempdir().unwrap();
    write_store_at(
        dir.path(),
        9,
        "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, joined_at)
             VALUES ('news', X'01', X'02', X'03', X'04', 0, 1);
         INSERT INTO channel_keys (channel, epoch, key) VALUES (1, 0, X'05');",
    );
    let s = LocalStore::open(dir.path(), "pw").unwrap();
    let c = &s.conn;
    let version: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM channels"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM channel_keys"), 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE body = 'hello'"),
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM conversations WHERE muted_until IS NULL"),
        2
    );
    c.execute(
        "UPDATE conversations SET muted_until = 99 WHERE peer = 'bob'",
        [],
    )
    .unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM conversations WHERE muted_until = 99"),
        1
    );
}

#[test]
fn a_store_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::create(dir.path(), "pw").unwrap();
    s.conn
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(s);
    let err = LocalStore::open(dir.path(), "pw").unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}
