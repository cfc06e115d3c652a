//! A copy of the server's database, taken after a realistic session (1:1
//! chats, a group, messages waiting for offline devices, a report), links no
//! envelope to its sender and no envelope to a group; and it holds exactly the
//! tables and columns `docs/what-the-server-knows.md` lists.
//!
//! The attack is the one a database thief runs: take the franking key from
//! `server_secrets`, read the commitment out of each stored MLS message, and
//! recompute the relay tag for every candidate sender; search every stored
//! cell for the group ids the server has seen and the raw files for the
//! franking commitments of delivered messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::user;
use hush_client::{Client, Event, Target};
use hush_testkit::TestServer;
use hush_testkit::hush_server::franking::relay_tag;
use rusqlite::types::Value;

const USERS: [&str; 3] = ["alice", "bob", "carol"];

async fn received(c: &mut Client) -> Vec<String> {
    c.sync(Duration::ZERO, |_| {})
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.id),
            _ => None,
        })
        .collect()
}

/// Every cell of every table of the copied database.
type Dump = BTreeMap<String, Vec<BTreeMap<String, Value>>>;

fn read_dump(path: &Path) -> Dump {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut dump = Dump::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let rows = stmt
            .query_map([], |r| {
                let mut row = BTreeMap::new();
                for (i, n) in names.iter().enumerate() {
                    row.insert(n.clone(), r.get::<_, Value>(i)?);
                }
                Ok(row)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info(\"{table}\")"))
            .unwrap()
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // An empty table still lists its columns.
        let mut rows = rows;
        if rows.is_empty() {
            rows.push(columns.into_iter().map(|c| (c, Value::Null)).collect());
        }
        dump.insert(table, rows);
    }
    dump
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Blob(b) => b.clone(),
        Value::Text(t) => t.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The tables and columns the document lists: a `### \`table\`` heading (or
/// a line starting with `` `table`: ``) followed by a table whose first cells
/// name columns in backticks.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/what-the-server-knows.md"),
    )
    .unwrap();
    let ticked =
        |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let names = ticked(h);
            current = (names.len() == 1).then(|| names[0].clone());
        } else if line.starts_with('`') && line.contains("`:") {
            current = ticked(line).first().cloned();
        } else if line.starts_with("## ") {
            current = None;
        } else if let (Some(table), Some(first)) = (&current, line.strip_prefix('|')) {
            let cell = first.split('|').next().unwrap_or("");
            for column in ticked(cell) {
                out.entry(table.clone()).or_default().insert(column);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_links_no_envelope_to_its_sender_or_its_group() {
    let mut server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let carol = user(&server, root.path(), "carol").await;

    // 1:1 both ways; alice does not read bob's answer (it stays queued).
    alice
        .send_text(&Target::User("bob".into()), "hello bob")
        .await
        .unwrap();
    let bobs = received(&mut bob).await;
    assert_eq!(bobs.len(), 1);
    bob.send_text(&Target::User("alice".into()), "hi alice, queued")
        .await
        .unwrap();
    // A group; carol never comes online, so its Welcome and messages wait.
    alice
        .create_group("book club", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    received(&mut bob).await;
    alice
        .send_text(&Target::Group("book club".into()), "first chapter")
        .await
        .unwrap();
    bob.send_text(&Target::Group("book club".into()), "loved it")
        .await
        .unwrap();
    let more = received(&mut bob).await;
    alice
        .send_text(&Target::User("carol".into()), "are you there?")
        .await
        .unwrap();
    // Bob reports alice's first message.
    bob.report(&bobs[0], "spam").await.unwrap();
    // A commit in the group: the server orders it by the group id it claims
    // (the one place the server keeps group ids).
    alice
        .group_rename("book club", "reading club")
        .await
        .unwrap();

    // Commitments of the messages bob received (their envelopes are gone).
    let mut delivered: Vec<(Vec<u8>, bool)> = Vec::new();
    for (i, id) in bobs.iter().chain(&more).enumerate() {
        let r = bob.report_request(id, "").unwrap();
        delivered.push((r.commitment.0, i == 0));
    }
    assert!(delivered.len() >= 2);

    // The thief's copy.
    server.shutdown().await;
    let copy = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    for name in ["hush.db", "hush.db-wal", "hush.db-shm"] {
        let from = server.data_dir().join(name);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(name)).unwrap();
            raw.extend(std::fs::read(&from).unwrap());
        }
    }
    let dump = read_dump(&copy.path().join("hush.db"));

    let int = |v: &Value| match v {
        Value::Integer(i) => *i,
        _ => panic!("not an integer: {v:?}"),
    };
    // A send's payload is stored once; its envelopes reference it.
    let payloads: BTreeMap<i64, Vec<u8>> = dump["payloads"]
        .iter()
        .filter(|r| r["id"] != Value::Null)
        .map(|r| (int(&r["id"]), bytes(&r["body"])))
        .collect();
    let envelopes: Vec<&BTreeMap<String, Value>> = dump["envelopes"]
        .iter()
        .filter(|r| r["payload_id"] != Value::Null)
        .collect();
    let referenced: BTreeSet<i64> = envelopes.iter().map(|r| int(&r["payload_id"])).collect();
    assert_eq!(
        referenced,
        payloads.keys().copied().collect(),
        "every stored payload is waited for, and every envelope's payload is stored"
    );
    let queued_for: BTreeSet<String> = envelopes
        .iter()
        .map(|r| String::from_utf8(bytes(&r["username"])).unwrap())
        .collect();
    assert!(
        queued_for.contains("alice") && queued_for.contains("carol"),
        "the session left nothing queued: {queued_for:?}"
    );

    // 1. Recompute relay tags for every candidate sender.
    let key: [u8; 32] = dump["server_secrets"]
        .iter()
        .find(|r| bytes(&r["name"]) == b"franking")
        .map(|r| bytes(&r["value"]).try_into().unwrap())
        .expect("the franking key is in the dump");
    let mut linked = Vec::new();
    let mut readable = 0;
    for row in &envelopes {
        let payload = payloads[&int(&row["payload_id"])].clone();
        let stored_tag = bytes(&row["header"]);
        let recipient = String::from_utf8(bytes(&row["username"])).unwrap();
        let at = match row["received_at_ms"] {
            Value::Integer(t) => t as u64,
            _ => panic!("received_at_ms"),
        };
        let mut commitments: Vec<[u8; 32]> = delivered
            .iter()
            .map(|(c, _)| c.as_slice().try_into().unwrap())
            .collect();
        if let Ok(hush_proto::Framing::Application {
            commitment: Some(c),
        }) = hush_proto::read_framing(&payload)
        {
            commitments.push(c.0);
        }
        for c in &commitments {
            for sender in USERS {
                let tag = relay_tag(&key, c, sender, &recipient, at);
                if contains(&stored_tag, &tag) || contains(&payload, &tag) {
                    linked.push(format!("{sender} -> {recipient} at {at}"));
                }
            }
        }
        readable += usize::from(hush_proto::peek_message(&payload).is_ok());
    }
    assert!(linked.is_empty(), "the dump names senders: {linked:?}");
    assert_eq!(readable, 0, "envelopes hold readable MLS messages");

    // 2. Group ids (the server has seen them in commit claims) appear in no
    //    stored cell but `groups.group_id`.
    let group_ids: Vec<Vec<u8>> = dump["groups"]
        .iter()
        .map(|r| bytes(&r["group_id"]))
        .filter(|g| !g.is_empty())
        .collect();
    assert!(!group_ids.is_empty(), "the group's commit claimed no epoch");
    for (table, rows) in &dump {
        for row in rows {
            for (column, value) in row {
                if table == "groups" && column == "group_id" {
                    continue;
                }
                let cell = bytes(value);
                for g in &group_ids {
                    assert!(!contains(&cell, g), "a group id in {table}.{column}");
                }
            }
        }
    }

    // 3. Commitments of delivered messages appear nowhere in the files, not
    //    even in freed pages or the log, except the reported one (filed in
    //    `reports`).
    for (c, reported) in &delivered {
        assert_eq!(
            contains(&raw, c),
            *reported,
            "commitment found in the files: {}",
            if *reported {
                "missing report"
            } else {
                "leaked"
            }
        );
    }

    // 4. The document lists exactly the tables and columns there are.
    let documented = documented();
    let actual: BTreeMap<String, BTreeSet<String>> = dump
        .iter()
        .map(|(t, rows)| (t.clone(), rows[0].keys().cloned().collect()))
        .collect();
    assert_eq!(
        actual, documented,
        "docs/what-the-server-knows.md does not list the stored tables and columns"
    );
    drop((alice, carol));
}
