//! The operator's commands on the real `hush-server` binary: `migrate`
//! (with the copy of a SQLite file taken first), the refusal of a database
//! newer than the server on both backends, `admin backup` of a server that
//! is taking sends, and JSON logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::pg::PgSchema;
use common::*;
use hush_server::store::postgres_migrate;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::sqlite_migrate::{self, LATEST};
use hush_server::store::{DeviceKey, Store};

const BIN: &str = env!("CARGO_BIN_EXE_hush-server");

/// An account, a device and one queued envelope, as the release with
/// schema version 3 wrote them.
const V3_ROWS: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO envelopes (username, device_id, seq, payload, relay_tag, received_at_ms, expires_at_ms)
    VALUES ('olde', 1, 7, X'C0FFEE', NULL, 5000, 99999999999999);";

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A `hush-server` process, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hush<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A SQLite file at `path` laid out as schema version 3 with [`V3_ROWS`].
fn version_3_file(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    sqlite_migrate::migrate_to(&conn, 3).unwrap();
    conn.execute_batch(V3_ROWS).unwrap();
}

fn user_version(path: &Path) -> u32 {
    let conn = rusqlite::Connection::open(path).unwrap();
    sqlite_migrate::version(&conn).unwrap()
}

/// The copies of `hush.db` taken before migrations, in `dir`.
fn backups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.contains("-backup-") && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .collect()
}

#[tokio::test]
async fn migrate_copies_a_version_3_sqlite_file_then_upgrades_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hush.db");
    version_3_file(&db);
    let data = dir.path().to_str().unwrap();

    let out = hush(&["--data-dir", data, "migrate", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(
        (report["from"].as_u64(), report["to"].as_u64()),
        (Some(3), Some(u64::from(LATEST)))
    );
    let copy = PathBuf::from(report["backup"].as_str().unwrap());
    assert_eq!(backups(dir.path()), vec![copy.clone()]);
    // The copy is the database as it was: version 3, with its envelope.
    assert_eq!(user_version(&copy), 3);
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let payload: Vec<u8> = conn
        .query_row("SELECT payload FROM envelopes WHERE seq = 7", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(payload, [0xc0, 0xff, 0xee]);
    drop(conn);
    // The database itself is upgraded and keeps its data.
    assert_eq!(user_version(&db), LATEST);
    {
        let store = SqliteStore::open(&db).unwrap();
        let queued = store
            .fetch(&DeviceKey::new("olde", 1), 0, 10)
            .await
            .unwrap();
        assert_eq!(queued[0].payload, [0xc0, 0xff, 0xee]);
    }
    // Again: nothing to do, no second copy.
    let out = hush(&["--data-dir", data, "migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("schema version {LATEST}: up to date")),
        "{text}"
    );
    assert_eq!(backups(dir.path()).len(), 1);
}

#[test]
fn migrate_creates_a_fresh_database_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = hush(&["--data-dir", data.to_str().unwrap(), "migrate", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["from"], 0);
    assert_eq!(report["to"], LATEST);
    assert!(report["backup"].is_null());
    assert!(backups(&data).is_empty());
}

#[tokio::test]
async fn a_server_start_copies_an_old_sqlite_file_before_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hush.db");
    version_3_file(&db);
    let store = SqliteStore::open(&db).unwrap();
    let copies = backups(dir.path());
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(user_version(&copies[0]), 3);
    assert_eq!(user_version(&db), LATEST);
    assert!(store.account("olde").await.unwrap().is_some());
}

/// Starting a server on `args` fails with a message naming a newer schema
/// (it must exit, not serve), and so does `migrate`.
fn refused_as_newer(args: &[&str]) {
    let addr = free_addr().to_string();
    let mut with_listen = args.to_vec();
    with_listen.extend(["--listen", &addr]);
    let mut child = Server(
        Command::new(BIN)
            .args(&with_listen)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not refuse to start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("newer than this hush-server knows"), "{err}");
    let mut migrate = args.to_vec();
    migrate.push("migrate");
    let out = hush(&migrate[..]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("newer than this hush-server knows"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_sqlite_database_newer_than_the_server_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hush.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        sqlite_migrate::migrate_to(&conn, LATEST).unwrap();
        // The account row only (version 4 keeps envelopes elsewhere).
        conn.execute_batch(V3_ROWS.lines().next().unwrap()).unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    refused_as_newer(&["--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(user_version(&db), LATEST + 1);
    assert!(backups(dir.path()).is_empty(), "no copy of a refused file");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let accounts: i64 = conn
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accounts, 1);
    drop(conn);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_and_a_newer_database_refused() {
    let Ok(url) = std::env::var("HUSH_TEST_POSTGRES_URL") else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping the PostgreSQL half");
        return;
    };
    let schema = PgSchema::create(&url).await;
    let pool = sqlx::PgPool::connect_with(schema.connect_options())
        .await
        .unwrap();
    postgres_migrate::migrate_to(&pool, 3).await.unwrap();
    sqlx::Executor::execute(&pool, V3_ROWS.replace("X'", "'\\x").as_str())
        .await
        .unwrap();
    let node = schema.node_url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = hush(&["--data-dir", data, "--database", &node, "migrate", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["backend"], "postgres");
    assert_eq!(
        (report["from"].as_i64(), report["to"].as_i64()),
        (Some(3), Some(postgres_migrate::LATEST))
    );
    assert_eq!(
        postgres_migrate::version(&pool).await.unwrap(),
        postgres_migrate::LATEST
    );
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT p.body FROM envelopes e JOIN payloads p ON p.id = e.payload_id WHERE e.seq = 7",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or_else(|e| panic!("the envelope after the upgrade: {e}"));
    assert_eq!(payload, [0xc0, 0xff, 0xee]);

    // A database from a newer release: refused by a start and by migrate.
    sqlx::query("UPDATE schema_version SET version = $1")
        .bind(postgres_migrate::LATEST + 1)
        .execute(&pool)
        .await
        .unwrap();
    refused_as_newer(&["--data-dir", data, "--database", &node]);
    assert_eq!(
        postgres_migrate::version(&pool).await.unwrap(),
        postgres_migrate::LATEST + 1
    );
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(accounts, 1);
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} never became healthy");
}

/// Sends numbered messages from `token` to bob's device 1 until `stop`,
/// counting in `acked` those the server acknowledged.
fn sender(
    http: reqwest::Client,
    base: String,
    token: String,
    next: Arc<AtomicU32>,
    acked: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let resp = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(&token)
                .json(&send_request(&[("bob", 1)], &n.to_be_bytes()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "send {n}");
            acked.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Every envelope in `device`'s queue, page after page.
async fn all_queued(
    store: &dyn Store,
    device: &DeviceKey,
) -> Vec<hush_server::store::StoredEnvelope> {
    let mut all: Vec<hush_server::store::StoredEnvelope> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = store.fetch(device, after, 1000).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_backup_copies_a_running_server_under_sends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let _server = Server(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &addr.to_string()])
            .args(["--rate-limit-ip", "0", "--rate-limit-account", "0"])
            .args(["--max-account-connections", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(&http, &base).await;
    let alice = register_at(&http, &base, "alice", 1).await;
    let bob = register_at(&http, &base, "bob", 2).await;

    let next = Arc::new(AtomicU32::new(0));
    let acked = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let token = alice.devices[0].token.clone();
            sender(
                http.clone(),
                base.clone(),
                token,
                Arc::clone(&next),
                Arc::clone(&acked),
                Arc::clone(&stop),
            )
        })
        .collect();
    while acked.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dest = dir.path().join("copy.db");
    let acked_before = acked.load(Ordering::Relaxed);
    let args: Vec<String> = ["--data-dir", data.to_str().unwrap(), "admin", "backup"]
        .iter()
        .map(|a| a.to_string())
        .chain([dest.to_str().unwrap().to_owned()])
        .collect();
    let argv = args.clone();
    let out = tokio::task::spawn_blocking(move || hush(&argv[..]))
        .await
        .unwrap();
    let acked_after = acked.load(Ordering::Relaxed);
    assert!(out.status.success(), "{}", stderr(&out));
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        acked_after > acked_before,
        "the sends went on during the copy"
    );

    // The copy opens, holds both accounts and a snapshot of bob's queue:
    // everything acknowledged before the copy began, each message once.
    let copy = SqliteStore::open(&dest).unwrap();
    for name in ["alice", "bob"] {
        assert!(copy.account(name).await.unwrap().is_some(), "{name}");
    }
    let queued = all_queued(&copy, &DeviceKey::new("bob", 1)).await;
    let mut numbers: Vec<u32> = queued
        .iter()
        .map(|e| u32::from_be_bytes(open_stored(&bob.devices[0], e)[..4].try_into().unwrap()))
        .collect();
    let n = numbers.len() as u32;
    eprintln!(
        "the copy holds {n}: {acked_before} acknowledged before it began, {acked_after} when it ended"
    );
    assert!(
        (acked_before..=acked_after + 4).contains(&n),
        "{n} queued in the copy, {acked_before} acknowledged before it, {acked_after} after"
    );
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len() as u32, n, "no message twice");
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // An existing file is never overwritten.
    let size = std::fs::metadata(&dest).unwrap().len();
    let out = hush(&args[..]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), size);
    // The server still takes sends.
    let resp = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(&alice.devices[0].token)
        .json(&send_request(&[("bob", 1)], b"after"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn admin_backup_of_postgresql_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy");
    let out = hush(&[
        "--database",
        "postgres://hush@127.0.0.1:1/hush",
        "admin",
        "backup",
        dest.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    assert!(!dest.exists());
}

#[test]
fn admin_backup_without_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    let out = hush(&[
        "--data-dir",
        dir.path().join("none").to_str().unwrap(),
        "admin",
        "backup",
        dest.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!dest.exists());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = Server(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &addr.to_string()])
            .env("HUSH_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = std::io::BufRead::lines(std::io::BufReader::new(server.0.stderr.take().unwrap()));
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v["message"] == "listening" {
            assert_eq!(v["level"], "INFO");
            assert_eq!(v["addr"], addr.to_string());
            return;
        }
        seen.push(v);
        assert!(seen.len() < 50, "no `listening` line in {seen:?}");
    }
    panic!("the server's log ended without `listening`: {seen:?}");
}

#[test]
fn an_unknown_log_format_is_a_clear_error() {
    let out = hush(&["--log-format", "xml", "admin", "stats"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("xml") && err.contains("json"), "{err}");
}
