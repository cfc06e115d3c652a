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

/// Bytes of the database's pages in use (not free), with everything
/// committed so far (the log included), and the data directory's bytes once
/// the log is checkpointed into the database file and truncated.
fn measure(dir: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(dir.join("hush.db")).unwrap();
    let pragma = |name: &str| -> u64 {
        conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };
    let used = pragma("page_size") * (pragma("page_count") - pragma("freelist_count"));
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint did not complete");
    drop(conn);
    let files: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    (used, files)
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
    let dir_one = one.1 - before.1;
    let dir_forty = forty.1 - one.1;
    println!(
        "a {PAYLOAD}-byte message: pages in use grew by {used_one} bytes for 1 device, \
         {used_forty} for {DEVICES} ({:.2}x); the checkpointed data directory by {dir_one} \
         and {dir_forty} ({:.2}x); {DEVICES} copies would be {} bytes",
        used_forty as f64 / used_one as f64,
        dir_forty as f64 / dir_one.max(1) as f64,
        DEVICES * PAYLOAD,
    );
    // About one payload (a few freed pages may be reused), and less than
    // two: 40 copies would be 40 times it.
    for grew in [used_one, used_forty, dir_forty] {
        assert!(
            (PAYLOAD as u64 * 9 / 10..2 * PAYLOAD as u64).contains(&grew),
            "grew by {grew} bytes"
        );
    }
    // 40 devices cost what one does, plus their queue entries.
    assert!(
        used_forty < used_one + DEVICES as u64 * 1024,
        "{used_forty} against {used_one}"
    );
}
