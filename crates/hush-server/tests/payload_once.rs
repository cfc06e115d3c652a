//! A 256 KiB message sent to 40 devices is stored once (issue 14): the
//! database grows by about one payload, not by 40 copies of it (before
//! version 4 of the schema, the data directory grew by 16.6 MB). Measured
//! on a real server over its real SQLite database: the pages in use, and
//! the data directory's files once the log is checkpointed, against the
//! same message to one device in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use hush_server::app::Settings;
use hush_server::ratelimit::{Rate, StrictRates};

const PAYLOAD: usize = 256 * 1024;
const DEVICES: usize = 40;

/// The data directory's bytes (database, log and shared memory files).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Bytes of the database's pages in use (not free), with everything
/// committed so far (the log included); the data directory's bytes as they
/// are; and once the log is checkpointed into the database file and
/// truncated.
fn measure(dir: &Path) -> (u64, u64, u64) {
    let conn = rusqlite::Connection::open(dir.join("hush.db")).unwrap();
    let pragma = |name: &str| -> u64 {
        conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let used = pragma("page_size") * (pragma("page_count") - pragma("freelist_count"));
    let as_is = dir_bytes(dir);
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint did not complete");
    drop(conn);
    (used, as_is, dir_bytes(dir))
}

/// The same send as the previous release stored it, for comparison in the
/// same run: a version-3 database (built by that release's migrations, with
/// the server's settings) given the sealed body, 16 bytes longer than the
/// message, in each of 40 recipient rows. What [`measure`] reports.
fn version_3_growth() -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("hush.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    hush_server::store::sqlite_migrate::migrate_to(&conn, 3).unwrap();
    let body = vec![0x5eu8; PAYLOAD + 16];
    let header = vec![0x11u8; hush_proto::sealed::HEADER_LEN];
    conn.execute(
        "INSERT INTO accounts (username, account_key, state, created_at_ms) \
         VALUES ('m', X'00', 0, 0)",
        [],
    )
    .unwrap();
    for d in 1..=DEVICES as i64 {
        conn.execute(
            "INSERT INTO devices (username, device_id, certificate, token_hash) \
             VALUES ('m', ?1, X'00', ?2)",
            rusqlite::params![d, vec![d as u8; 32]],
        )
        .unwrap();
    }
    let before = measure(dir.path());
    conn.execute_batch("BEGIN").unwrap();
    for d in 1..=DEVICES as i64 {
        conn.execute(
            "INSERT INTO envelopes (username, device_id, seq, payload, relay_tag, \
             received_at_ms, expires_at_ms) VALUES ('m', ?1, 1, ?2, ?3, 1, 2)",
            rusqlite::params![d, body, header],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    let after = measure(dir.path());
    (after.0 - before.0, after.1 - before.2, after.2 - before.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_kib_message_to_40_devices_is_stored_once() {
    let lifted = Rate {
        per_second: 1000.0,
        burst: 1000.0,
    };
    let s = TestServer::with_settings(Settings {
        strict: StrictRates {
            costly_per_ip: lifted,
            signed_per_account: lifted,
            ..StrictRates::default()
        },
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    // 40 devices: 4 accounts of 10 devices each.
    let names: Vec<String> = (0..4).map(|i| format!("member{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let seed = 100 * (i as u64 + 1);
        let mut user = s.register(name, seed).await;
        for d in 2..=10 {
            s.add_device(&mut user, d, seed + u64::from(d)).await;
        }
    }
    let all: Vec<(&str, u32)> = names
        .iter()
        .flat_map(|n| (1..=10).map(move |d| (n.as_str(), d)))
        .collect();
    assert_eq!(all.len(), DEVICES);
    let token = &alice.devices[0].token;
    let message: Vec<u8> = (0..PAYLOAD).map(|i| (i * 31 % 251) as u8).collect();
    let dir = s.data_dir();

    // The baseline of the same run: the message to one device.
    let before = measure(dir);
    let resp = s.send(token, &all[..1], &message).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let one = measure(dir);
    // The same message to all 40.
    let resp = s.send(token, &all, &message).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let forty = measure(dir);

    let stats = s.state.store.stats().await.unwrap();
    assert_eq!(stats.queued_envelopes, 1 + DEVICES as u64);
    assert_eq!(stats.payloads, 2, "one payload per send");
    // Each payload is the sealed message: its length plus 16 bytes.
    assert_eq!(stats.payload_bytes, 2 * (PAYLOAD as u64 + 16));

    let used_one = one.0 - before.0;
    let used_forty = forty.0 - one.0;
    // Each measure starts from a truncated log (the one before
    // checkpointed it).
    let (log_one, log_forty) = (one.1 - before.2, forty.1 - one.2);
    let (dir_one, dir_forty) = (one.2 - before.2, forty.2 - one.2);
    let old = version_3_growth();
    println!(
        "version 3 (a copy per recipient row): pages in use grew by {} bytes, the data \
         directory by {} before the checkpoint and {} after it",
        old.0, old.1, old.2
    );
    println!(
        "a {PAYLOAD}-byte message: pages in use grew by {used_one} bytes for 1 device, \
         {used_forty} for {DEVICES} ({:.2}x); the data directory by {log_one} and \
         {log_forty} ({:.2}x) before the checkpoint (the log), by {dir_one} and {dir_forty} \
         ({:.2}x) after it; {DEVICES} copies of the payload alone would be {} bytes",
        used_forty as f64 / used_one as f64,
        log_forty as f64 / log_one as f64,
        dir_forty as f64 / dir_one.max(1) as f64,
        DEVICES * PAYLOAD,
    );
    // About one payload (a few freed pages may be reused), and less than
    // two: 40 copies would be 40 times it.
    for grew in [used_one, used_forty, log_forty, dir_forty] {
        assert!(
            (PAYLOAD as u64 * 9 / 10..2 * PAYLOAD as u64).contains(&grew),
            "grew by {grew} bytes"
        );
    }
    // The previous release's layout of the same send takes 40 payloads.
    assert!(old.0 > DEVICES as u64 * PAYLOAD as u64, "{old:?}");
    // 40 devices cost what one does, plus their queue entries.
    assert!(
        used_forty < used_one + DEVICES as u64 * 1024,
        "{used_forty} against {used_one}"
    );
}
