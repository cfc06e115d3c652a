//! Cluster nodes as real `hush-server` processes on one PostgreSQL and one
//! NATS: attachments in S3, a node killed under load, a NATS outage, and a
//! node that refuses to start without its services.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); each test skips with a notice when they are unset and fails when
//! they are set and the service does not answer. The NATS outage test runs
//! its own `nats-server` on a free port and never touches the shared one;
//! the S3 test runs its own `moto_server` (an S3 emulator) the same way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::*;
use common::pg::{PgSchema, env, unique};
use common::register_at;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_in_an_s3_bucket_are_served_by_every_node() {
    use hush_wire::api::{CreateAttachmentRequest, CreateAttachmentResponse};
    let Some(env) = env() else { return };
    let Some(moto) = moto_server() else { return };
    let _serial = SERIAL.lock().await;
    let s3_port = free_port();
    let _s3 = Proc(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("HUSH_TEST_MOTO_SERVER is set but moto_server does not start"),
    );
    wait_port(s3_port).await;
    let http = reqwest::Client::new();
    let s3 = format!("http://127.0.0.1:{s3_port}");
    let r = http.put(format!("{s3}/hush-att")).send().await.unwrap();
    assert_eq!(r.status(), 200, "creating the bucket");

    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join(format!("n{i}")))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", &pg.node_url()])
            .args(["--nats", &env.nats, "--nats-subject-prefix", &prefix])
            .args(["--attachments", "s3://hush-att/cluster-files"])
            .args(["--rate-limit-ip", "0", "--rate-limit-account", "0"])
            .env("AWS_ENDPOINT", &s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        nodes.push((Proc(child), base));
    }
    for (_, b) in &nodes {
        wait_health(&http, b, 200).await;
    }
    let (a, b) = (&nodes[0].1, &nodes[1].1);
    let alice = register_at(&http, a, "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&http, b, "bob", 2).await.devices[0]
        .token
        .clone();
    // Over 2 MiB, so that one upload is stored as several parts.
    let data: Vec<u8> = (0..2_600_000u32).map(|i| (i % 253) as u8).collect();
    let created: CreateAttachmentResponse = http
        .post(format!("{a}/v1/attachments"))
        .bearer_auth(&alice)
        .json(&CreateAttachmentRequest {
            size: data.len() as u64,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/v1/attachments/{}", created.id);
    for (node, range) in [(a, 0..10_000), (b, 10_000..data.len())] {
        let r = http
            .patch(format!("{node}{path}"))
            .bearer_auth(&alice)
            .header("upload-offset", range.start.to_string())
            .body(data[range].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    for node in [a, b] {
        let got = http
            .get(format!("{node}{path}"))
            .bearer_auth(&bob)
            .header("range", "bytes=9000-10999")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 206);
        assert_eq!(got.bytes().await.unwrap().as_ref(), &data[9000..11000]);
    }
    let whole = http
        .get(format!("{b}{path}"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &data[..]);
    // The parts are objects in the bucket, under the prefix.
    let listing = http
        .get(format!(
            "{s3}/hush-att?list-type=2&prefix=cluster-files/blobs/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("cluster-files/blobs/{}/part-", created.id)),
        "{listing}"
    );
    // The second upload was stored 1 MiB at a time as it arrived.
    assert!(
        listing.contains(&format!(
            "cluster-files/blobs/{}/part-{:020}",
            created.id,
            10_000 + (1 << 20)
        )),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_and_duplicates_nothing() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("shared-blobs");
    let mut procs = Vec::new();
    let mut bases = Vec::new();
    for i in 0..3 {
        let (p, base) = start_node(
            &pg,
            &env.nats,
            &prefix,
            &blobs,
            &dir.path().join(format!("n{i}")),
        );
        procs.push(Some(p));
        bases.push(base);
    }
    let http = reqwest::Client::new();
    for b in &bases {
        wait_health(&http, b, 200).await;
    }
    // Receivers start on the victim (node 0) and move to node 1, then 2.
    let receivers = ["rx-a", "rx-b", "rx-c"];
    let mut rx_tokens = Vec::new();
    for (i, r) in receivers.iter().enumerate() {
        rx_tokens.push(
            register_at(&http, &bases[0], r, 10 + i as u64)
                .await
                .devices[0]
                .token
                .clone(),
        );
    }
    let mut tx_tokens = Vec::new();
    for i in 0..3 {
        let name = format!("tx-{i}");
        tx_tokens.push(
            register_at(&http, &bases[1], &name, 20 + i).await.devices[0]
                .token
                .clone(),
        );
    }
    let acked = Arc::new(tokio::sync::Mutex::new(HashSet::<Vec<u8>>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut rx_tasks = Vec::new();
    for t in &rx_tokens {
        rx_tasks.push(tokio::spawn(receive_all(
            bases.clone(),
            t.clone(),
            acked.clone(),
            done.clone(),
        )));
    }
    // Three senders, one per node, each sending to all three receivers.
    let per_sender = 120;
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tx_tasks = Vec::new();
    for (i, token) in tx_tokens.iter().enumerate() {
        let (http, token, bases, acked, sent) = (
            http.clone(),
            token.clone(),
            bases.clone(),
            acked.clone(),
            sent.clone(),
        );
        tx_tasks.push(tokio::spawn(async move {
            let mut node = i;
            for m in 0..per_sender {
                for attempt in 0.. {
                    let payload = format!("from {i} #{m} try {attempt}").into_bytes();
                    let req = message(&[("rx-a", 1), ("rx-b", 1), ("rx-c", 1)], &payload);
                    let r = http
                        .post(format!("{}/v1/messages", bases[node % 3]))
                        .bearer_auth(&token)
                        .json(&req)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            acked.lock().await.insert(payload.clone());
                            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        // The node died under this request: whether it was
                        // stored is unknown, so it is not counted as acked.
                        // The client retries through another node; the
                        // retry is told apart here by its payload (a real
                        // client dedupes the pair by message id).
                        _ => node += 1,
                    }
                }
            }
        }));
    }
    // Kill node 0 with SIGKILL a third of the way through.
    while sent.load(std::sync::atomic::Ordering::Relaxed) < per_sender {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut victim = procs[0].take().unwrap();
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    for t in tx_tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let acked_now = acked.lock().await.clone();
    assert_eq!(acked_now.len(), 3 * per_sender);
    for (i, t) in rx_tasks.into_iter().enumerate() {
        let (got, arrivals) = t.await.unwrap();
        for p in &acked_now {
            let seqs = got.get(p).unwrap_or_else(|| {
                panic!("receiver {i} never got {:?}", String::from_utf8_lossy(p))
            });
            assert_eq!(seqs.len(), 1, "stored twice for receiver {i}: {seqs:?}");
        }
        for (p, seqs) in &got {
            assert_eq!(
                seqs.len(),
                1,
                "{:?} under two seqs",
                String::from_utf8_lossy(p)
            );
        }
        eprintln!(
            "receiver {i}: {} messages, {} arrivals ({} redelivered after a lost ack)",
            got.len(),
            arrivals,
            arrivals - got.len()
        );
    }
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_delays_delivery_but_loses_nothing() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let nats = start_nats(port);
    wait_port(port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let c = three_nodes(&env, &url).await;
    let [a, b, _] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &b.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let mut bob_ws = connected(b.addr, &bob).await;
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"before")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"before");

    drop(nats);
    wait_health(&c.http, &a.url(), 503).await;
    wait_health(&c.http, &b.url(), 503).await;
    // Sends still succeed: PostgreSQL has them.
    let mut want = Vec::new();
    for i in 0..20 {
        let body = format!("during {i}").into_bytes();
        let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], &body)).await;
        assert_eq!(r.status(), 200);
        want.push(body);
    }
    let nats = start_nats(port);
    wait_port(port).await;
    wait_health(&c.http, &a.url(), 200).await;
    wait_health(&c.http, &b.url(), 200).await;
    // Late but complete, in order, on the connection that stayed open.
    for w in &want {
        assert_eq!(&envelope(&mut bob_ws).await.payload, w);
    }
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"after")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"after");
    drop(nats);
}

#[tokio::test]
async fn a_node_refuses_to_start_without_its_cluster_services() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A cluster shares PostgreSQL, not a node's own SQLite file.
    let err = run(&["--nats", "nats://127.0.0.1:4222"]);
    assert!(err.contains("postgres://"), "{err}");
    let err = run(&["--nats", "http://127.0.0.1:4222"]);
    assert!(err.contains("nats://"), "{err}");
    let err = run(&["--nats", "nats://127.0.0.1:4222,127.0.0.1:4223"]);
    assert!(err.contains("comma-separated"), "{err}");
    // NATS that does not answer: the node says so instead of serving alone.
    if let Some(env) = env() {
        let pg = PgSchema::create(&env.pg).await;
        let err = run(&[
            "--database",
            &pg.node_url(),
            "--nats",
            &format!(
                "nats://127.0.0.1:{},nats://127.0.0.1:{}",
                free_port(),
                free_port()
            ),
        ]);
        assert!(err.contains("cannot connect to NATS"), "{err}");
    }
}

/// The command that starts a node on `pg` without `--nats` (serving the
/// database alone), its data in `data`, on `port`.
fn alone_node(pg: &PgSchema, data: &std::path::Path, port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--database", &pg.node_url(), "--drain-delay", "0s"])
        .env("RUST_LOG", "off");
    c
}

/// A cluster node on `pg`, started and answering its health check.
async fn cluster_node(env: &common::pg::Env, pg: &PgSchema, dir: &std::path::Path) -> Proc {
    let (node, base) = start_node(
        pg,
        &env.nats,
        &unique("t"),
        &dir.join("blobs"),
        &dir.join("n0"),
    );
    wait_health(&reqwest::Client::new(), &base, 200).await;
    node
}

/// A node without `--nats` would number envelopes in memory beside cluster
/// nodes that number them in their writes (decision 0044): it refuses to
/// start while they hold the queues, and says what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_nats_refuses_to_start_beside_cluster_nodes() {
    let Some(env) = env() else { return };
    let pg = PgSchema::create(&env.pg).await;
    let dir = tempfile::tempdir().unwrap();
    let _node = cluster_node(&env, &pg, dir.path()).await;
    let out = alone_node(&pg, &dir.path().join("alone"), free_port())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a node alone started beside a cluster"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give this one --nats too"), "{err}");
}

/// Growing from one node to a cluster: the node alone, stopped with
/// SIGTERM, gives the queues back, so the first cluster node starts at once
/// instead of waiting for its claim to lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_stopped_with_sigterm_hands_the_queues_on_at_once() {
    let Some(env) = env() else { return };
    let pg = PgSchema::create(&env.pg).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut alone = alone_node(&pg, &dir.path().join("alone"), port)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_health(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        200,
    )
    .await;
    let term = Command::new("kill")
        .args(["-TERM", &alone.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        alone.wait().unwrap().success(),
        "the node alone stopped cleanly"
    );
    let started = std::time::Instant::now();
    let _node = cluster_node(&env, &pg, dir.path()).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the cluster node waited {:?} for the queues",
        started.elapsed()
    );
}
