//! Schema migrations: a database written by an earlier release opens with
//! this code, on SQLite and on PostgreSQL, and keeps everything it held.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;
use store_common::*;

#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        register(&store, "alice", 1).await;
        store
            .enqueue(&[DeviceKey::new("alice", 1)], envelope(b"kept"), None)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let got = store
        .fetch(&DeviceKey::new("alice", 1), 0, 10)
        .await
        .unwrap();
    assert_eq!(got[0].payload, b"kept");
    // Numbers handed out before the restart are never handed out again
    // (a device ignores numbers at or below the last it processed).
    let seq = store
        .enqueue(&[DeviceKey::new("alice", 1)], envelope(b"after"), None)
        .await
        .unwrap()[0];
    assert!(seq > got[0].seq);
}

/// Writes, with the version-1 schema and plain SQL as the releases before
/// versioned migrations did, an account with a device, a queued envelope
/// and a group. `exec` runs one SQL batch.
const V1_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO envelopes (username, device_id, seq, payload, relay_tag, received_at_ms, expires_at_ms)
    VALUES ('olde', 1, 7, X'C0FFEE', NULL, 5000, 99999999999999);
INSERT INTO groups (group_id, epoch) VALUES (X'6C6567616379', 5);";

/// What a version-1 database must still hold once opened with this code,
/// and how its group (stored without a commit token) takes its first one.
async fn finds_version_1_data(store: &dyn Store) {
    let acct = store.account("olde").await.unwrap().unwrap();
    assert_eq!(acct.account_key, vec![1, 1]);
    assert_eq!(acct.devices[0].certificate, vec![2, 2]);
    let auth = store.authenticate(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, DeviceKey::new("olde", 1));
    let dev = DeviceKey::new("olde", 1);
    let queued = store.fetch(&dev, 0, 10).await.unwrap();
    assert_eq!(
        (queued[0].seq, queued[0].payload.clone()),
        (7, vec![0xc0, 0xff, 0xee])
    );
    assert_eq!(store.group_epoch(b"legacy").await.unwrap(), Some(5));
    // New envelopes get numbers after the old ones.
    let seq = store
        .enqueue(std::slice::from_ref(&dev), envelope(b"new"), None)
        .await
        .unwrap()[0];
    assert!(seq > 7);
    // The legacy group: a claim behind it loses; the first token-bearing
    // claim not behind it sets the hash; then tokens rule.
    let behind = store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 4, 4, 5),
        )
        .await;
    assert!(matches!(
        behind,
        Err(StoreError::EpochConflict { current: 5 })
    ));
    store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 6, 6, 7),
        )
        .await
        .unwrap();
    let stranger = store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 7, 9, 9),
        )
        .await;
    assert!(matches!(stranger, Err(StoreError::CommitRefused)));
    store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 7, 7, 8),
        )
        .await
        .unwrap();
    assert_eq!(store.group_epoch(b"legacy").await.unwrap(), Some(8));
}

#[tokio::test]
async fn sqlite_opens_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(hush_server::store::sqlite_migrate::SCHEMA_V1)
            .unwrap();
        conn.execute_batch(V1_DATA).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0, "the releases before migrations set no version");
    }
    let store = SqliteStore::open(&path).unwrap();
    finds_version_1_data(&store).await;
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, hush_server::store::sqlite_migrate::LATEST);
    // A second open migrates nothing and finds the same data.
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.group_epoch(b"legacy").await.unwrap(), Some(8));
    // A database from a newer release is refused, not damaged.
    conn.pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_version_1_database() {
    use sqlx::Executor;
    let Some((schema, _fresh)) = postgres().await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    // Empty the schema again, then lay out version 1 by hand.
    let options = schema.connect_options();
    let pool = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    pool.execute(
        "DROP TABLE IF EXISTS schema_version, groups, envelopes, payloads, key_packages, devices, \
         profiles, reports, server_secrets, leases, accounts, invite_requests, invite_links, \
         channel_posts, channels CASCADE",
    )
    .await
    .unwrap();
    pool.execute(hush_server::store::postgres_migrate::SCHEMA_V1)
        .await
        .unwrap();
    pool.execute(V1_DATA.replace("X'", "'\\x").as_str())
        .await
        .unwrap();
    // Two nodes start at once on it: the migration runs once.
    let (a, b) = tokio::join!(
        PostgresStore::connect_with(options.clone()),
        PostgresStore::connect_with(options.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, hush_server::store::postgres_migrate::LATEST);
    finds_version_1_data(&a).await;
    assert_eq!(b.group_epoch(b"legacy").await.unwrap(), Some(8));
}

// ------------------------------------------------ version 3 (a payload per row)

/// A sealed body as version 3 stored it: the same bytes in every recipient
/// row of one send.
const SEALED_BODY: [u8; 40] = [0x5e; 40];

fn blob(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// A sealed header as version 3 stored it in `relay_tag`.
fn header(n: u8) -> Vec<u8> {
    vec![n; hush_proto::sealed::HEADER_LEN]
}

/// What a database of the previous release (schema version 3) held, as it
/// wrote it: envelopes of both kinds from before sealing (the bare MLS
/// message with no tag, or with a 32-byte franking tag), one sealed send
/// to three devices (the body copied into each row), and an envelope past
/// its expiry.
fn v3_data() -> String {
    let token = |n: u8| blob(&[n; 32]);
    let row = |user: &str, dev: u32, seq: u64, payload: &[u8], tag: Option<Vec<u8>>, exp: u64| {
        format!(
            "INSERT INTO envelopes (username, device_id, seq, payload, relay_tag, received_at_ms, \
             expires_at_ms) VALUES ('{user}', {dev}, {seq}, {}, {}, 5000, {exp});\n",
            blob(payload),
            tag.map_or("NULL".into(), |t| blob(&t)),
        )
    };
    let far = 99_999_999_999_999;
    let mut sql = format!(
        "INSERT INTO accounts (username, account_key, state, created_at_ms) \
             VALUES ('olde', X'0101', 0, 1000), ('anna', X'0404', 0, 1000);\n\
         INSERT INTO devices (username, device_id, certificate, token_hash, next_seq) VALUES \
             ('olde', 1, X'0202', {}, 1025), ('olde', 2, X'0202', {}, 1025), \
             ('anna', 1, X'0505', {}, 1025);\n",
        token(3),
        token(6),
        token(9)
    );
    sql += &row("olde", 1, 7, b"bare mls, no tag", None, far);
    sql += &row("olde", 1, 8, b"bare mls, tag", Some(vec![0x7a; 32]), far);
    sql += &row("olde", 1, 9, &SEALED_BODY, Some(header(1)), far);
    sql += &row("olde", 2, 3, &SEALED_BODY, Some(header(2)), far);
    sql += &row("anna", 1, 4, &SEALED_BODY, Some(header(3)), far);
    sql += &row("anna", 1, 5, b"expired", None, 6000);
    sql
}

/// The rest of what a version-3 database held besides queues: KeyPackages
/// (an ordinary one and a last-resort one), a profile, an abuse report, a
/// server secret and key-transparency data (a tree record and a signed
/// root).
fn v3_records() -> String {
    format!(
        "INSERT INTO key_packages (username, device_id, suite, last_resort, data) VALUES \
             ('olde', 1, 1, FALSE, X'4B5031'), ('olde', 1, 1, TRUE, X'4B504C52');\n\
         INSERT INTO profiles (username, blob) VALUES ('olde', X'50524F46');\n\
         INSERT INTO reports (reporter, sender, commitment, content, reason, received_at_ms, \
             filed_at_ms, status) VALUES ('anna', 'olde', {}, X'434F4E54', 'spam', 5000, 6000, 'open');\n\
         INSERT INTO server_secrets (name, value) VALUES ('franking', {});\n\
         INSERT INTO kt_records (key, data) VALUES (X'01AA', X'0102');\n\
         INSERT INTO kt_roots (epoch, root_hash, signature, published_at_ms) \
             VALUES (3, {}, X'5349', 4000);\n",
        blob(&[0xcc; 32]),
        blob(&[0x5c; 32]),
        blob(&[0x72; 32]),
    )
}

/// Every record of [`v3_records`] is there after the upgrade, and works.
async fn finds_version_3_records(store: &dyn Store) {
    let o1 = DeviceKey::new("olde", 1);
    assert_eq!(store.key_package_counts(&o1).await.unwrap(), vec![(1, 1)]);
    assert_eq!(
        store.claim_key_packages("olde", 1).await.unwrap(),
        vec![(1, b"KP1".to_vec())]
    );
    // Then the last-resort one, which stays.
    for _ in 0..2 {
        assert_eq!(
            store.claim_key_packages("olde", 1).await.unwrap(),
            vec![(1, b"KPLR".to_vec())]
        );
    }
    assert_eq!(store.profile("olde").await.unwrap(), Some(b"PROF".to_vec()));
    let reports = store.list_reports(false).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0].report;
    assert_eq!((r.reporter.as_str(), r.sender.as_str()), ("anna", "olde"));
    assert_eq!(
        (r.commitment, r.content.clone()),
        ([0xcc; 32], b"CONT".to_vec())
    );
    assert_eq!(
        (r.reason.as_str(), r.received_at_ms, r.filed_at_ms),
        ("spam", 5000, 6000)
    );
    assert_eq!(reports[0].status, "open");
    store
        .resolve_report(reports[0].id, "dismissed")
        .await
        .unwrap();
    assert!(store.list_reports(false).await.unwrap().is_empty());
    assert_eq!(
        store.server_secret("franking", vec![0; 32]).await.unwrap(),
        vec![0x5c; 32]
    );
    let kt = store.kt_records(&[vec![0x01, 0xaa]]).await.unwrap();
    assert_eq!(
        (kt[0].key.clone(), kt[0].data.clone()),
        (vec![1, 0xaa], vec![1, 2])
    );
    let root = store.kt_latest_root().await.unwrap().unwrap();
    assert_eq!((root.epoch, root.root_hash), (3, [0x72; 32]));
    assert_eq!(
        (root.signature.clone(), root.published_at_ms),
        (b"SI".to_vec(), 4000)
    );
}

fn stored(seq: u64, payload: &[u8], tag: Option<Vec<u8>>) -> StoredEnvelope {
    StoredEnvelope {
        seq,
        payload: payload.to_vec(),
        relay_tag: tag,
        received_at_ms: 5000,
    }
}

/// Every envelope of the version-3 database is delivered as it was
/// written, each row now a payload of its own; acknowledgements, expiry and
/// a device's removal free them; new sends store their payload once.
async fn finds_version_3_queues(store: &dyn Store) {
    let (o1, o2, a1) = (
        DeviceKey::new("olde", 1),
        DeviceKey::new("olde", 2),
        DeviceKey::new("anna", 1),
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.payloads), (6, 6));
    assert_eq!(
        store.fetch(&o1, 0, 10).await.unwrap(),
        vec![
            stored(7, b"bare mls, no tag", None),
            stored(8, b"bare mls, tag", Some(vec![0x7a; 32])),
            stored(9, &SEALED_BODY, Some(header(1))),
        ]
    );
    assert_eq!(
        store.fetch(&o2, 0, 10).await.unwrap(),
        vec![stored(3, &SEALED_BODY, Some(header(2)))]
    );
    // Delivered as before the migration: the bare message as it is (with
    // its tag beside it), the sealed one as one sealed envelope.
    // As a device connection sends them (the delivery state machine).
    let mut conn = hush_server::delivery::Connection::new(0, std::time::Instant::now());
    assert!(conn.poll_fetch().is_some());
    conn.handle_fetched(store.fetch(&o1, 0, 10).await.unwrap());
    let frame = conn.poll_transmit().expect("the envelopes frame");
    let hush_wire::ws::ServerFrame::Envelopes(frames) =
        hush_wire::ws::ServerFrame::decode(&frame).unwrap()
    else {
        panic!("expected an envelopes frame");
    };
    assert_eq!(frames[0].payload, b"bare mls, no tag");
    assert_eq!(frames[0].relay_tag, None);
    assert_eq!(frames[1].payload, b"bare mls, tag");
    assert_eq!(frames[1].relay_tag, Some([0x7a; 32]));
    assert_eq!(
        frames[2].payload,
        hush_proto::sealed::sealed_envelope(&header(1), &SEALED_BODY)
    );
    assert_eq!(
        store.queue_bytes(&[o1.clone(), a1.clone()]).await.unwrap(),
        vec![16 + 13 + 40, 40 + 7]
    );
    // Expiry takes the expired row and its payload.
    assert_eq!(store.expire(7000).await.unwrap(), 1);
    assert_eq!(store.stats().await.unwrap().payloads, 5);
    // Acknowledgements free what they delivered.
    assert_eq!(store.ack(&o1, &[7, 8, 9]).await.unwrap(), 3);
    assert!(store.fetch(&o1, 0, 10).await.unwrap().is_empty());
    assert_eq!(store.ack(&o2, &[3]).await.unwrap(), 1);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.payloads), (1, 1));
    // New sends after the old numbers, their payload stored once.
    let seqs = store
        .enqueue(
            &[o1.clone(), o2.clone(), a1.clone()],
            envelope(b"new"),
            None,
        )
        .await
        .unwrap();
    assert!(seqs[0] > 9 && seqs[1] > 3 && seqs[2] > 5, "{seqs:?}");
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.payloads), (4, 2));
    // A removed device takes its queue with it: the old payload only it
    // referenced goes, the new one stays for the others.
    store.remove_device(&a1).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.payloads), (2, 1));
    store.ack(&o1, &[seqs[0]]).await.unwrap();
    store.ack(&o2, &[seqs[1]]).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.queued_envelopes, stats.payloads, stats.payload_bytes),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn sqlite_opens_a_version_3_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        hush_server::store::sqlite_migrate::migrate_to(&conn, 3).unwrap();
        conn.execute_batch(&(v3_data() + &v3_records())).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 3);
    }
    let store = SqliteStore::open(&path).unwrap();
    finds_version_3_records(&store).await;
    finds_version_3_queues(&store).await;
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, hush_server::store::sqlite_migrate::LATEST);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'envelopes%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !tables.iter().any(|t| t.contains("v3")),
        "the old table is gone: {tables:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_version_3_database() {
    use sqlx::Executor;
    let Some((schema, fresh)) = postgres().await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    drop(fresh);
    // Empty the schema again, then lay out version 3 as that release did.
    let options = schema.connect_options();
    let pool = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    pool.execute(format!("DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}", schema.name).as_str())
        .await
        .unwrap();
    hush_server::store::postgres_migrate::migrate_to(&pool, 3)
        .await
        .unwrap();
    pool.execute((v3_data() + &v3_records()).replace("X'", "'\\x").as_str())
        .await
        .unwrap();
    // Two nodes start at once on it: the migration runs once.
    let (a, b) = tokio::join!(
        PostgresStore::connect_with(options.clone()),
        PostgresStore::connect_with(options.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, hush_server::store::postgres_migrate::LATEST);
    finds_version_3_records(&a).await;
    finds_version_3_queues(&a).await;
    assert_eq!(b.stats().await.unwrap().payloads, 0);
}
