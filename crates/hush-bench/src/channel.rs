//! `channel`: one post to N subscribers (decision 0038). Every subscriber
//! holds a fetch, `GET /v1/channels/{id}/posts?after=LATEST&wait_ms=30000`,
//! each on a TCP connection of its own; the owner files the channel and
//! posts one real sealed post (a ~1 KiB text content, sealed and signed by
//! `hush_proto::channel`); measured: from the post's send to each
//! subscriber having the answer (p50, p99, last), the server's CPU time
//! for the wake-up, and how much the server's data directory grew (the
//! post is stored once, whatever N).
//!
//! Baseline, in the same run on the same connections: every subscriber
//! pulls the post at once with a plain GET (no wait), the cost of "every
//! subscriber asks".
//!
//! Subscribers share accounts, at most 32 each (the server's default limit
//! of requests in progress per account), so the run holds against a server
//! with its quotas on too (`--server`); a server this run starts has them
//! off. With several `--server` nodes of a cluster the subscribers are
//! spread over them and the post goes through the first, so the wake-up
//! crosses the cluster bus.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hush_proto::channel::{ChannelSecret, Descriptor, Post, PostBody};
use hush_proto::{AccountKey, Body, Content, MessageId, PostMeta};
use hush_wire::Bytes;
use hush_wire::api::{
    ChannelPostRequest, ChannelPostResponse, ChannelPostsResponse, ChannelResponse,
    PutChannelRequest,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http1::Conn;
use crate::net;
use crate::proc::{ServerProc, self_cpu_seconds};
use crate::scenarios::Ctx;
use crate::stats::{Report, histogram, percentiles, round3};

/// Subscribers per account: the server's default connection slots.
const PER_ACCOUNT: usize = 32;
/// The post's text, in bytes.
const TEXT_BYTES: usize = 1024;
/// How long each fetch is held (the server's maximum).
const WAIT_MS: u64 = 30_000;
/// Connections opened at once.
const CONNECT_BATCH: usize = 256;

/// Runs the channel scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let n = ctx.pick(ctx.opts.subscribers, 10_000, 200);
    check_open_files(ctx, n)?;
    let target = ctx.hush("channel").await?;
    let server = target.server();
    let data_dir = (server.is_some() && ctx.opts.database.is_none())
        .then(|| ctx.scratch.path().join("channel"));
    let http = net::http_client(Duration::from_secs(60))?;
    let urls = target.urls.clone();
    let base = urls.first().cloned().context("no server")?;

    let accounts = n.div_ceil(PER_ACCOUNT).max(1);
    let prefix = ctx.prefix("ch");
    let mut registered = net::register_devices(&http, &urls, &prefix, 0, accounts + 1, 32).await?;
    let owner_dev = registered.pop().context("no owner")?;
    let owner = Owner::file(&http, &base, token(&owner_dev)?).await?;
    let before = latest(&http, &base, token(&owner_dev)?, &owner.id).await?;
    let tokens: Vec<String> = registered
        .iter()
        .map(|d| token(d).map(str::to_owned))
        .collect::<anyhow::Result<_>>()?;
    let addrs = urls
        .iter()
        .map(|u| addr_of(u))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let conns = connect_all(n, &addrs).await?;
    let hold_cpu = CpuSpan::start(server);
    let hold_start = Instant::now();
    let written = Arc::new(AtomicUsize::new(0));
    let path = format!(
        "/v1/channels/{}/posts?after={before}&wait_ms={WAIT_MS}",
        owner.id
    );
    let mut held: Vec<JoinHandle<anyhow::Result<Got>>> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let t = subscriber_token(&tokens, i);
            tokio::spawn(hold(conn, path.clone(), t, written.clone()))
        })
        .collect();
    wait_written(&written, n, &mut held).await?;
    settle(server, n).await;
    let hold_seconds = hold_start.elapsed().as_secs_f64();
    let hold_cpu = hold_cpu.seconds(server);
    let early = held.iter().filter(|h| h.is_finished()).count();

    // The post.
    let sealed = owner.seal(TEXT_BYTES)?;
    let size_before = data_dir.as_deref().map(dir_bytes);
    let wake_cpu = CpuSpan::start(server);
    let sent = Instant::now();
    let number = owner
        .post(&http, &base, token(&owner_dev)?, &sealed)
        .await?;
    let post_answered = sent.elapsed();
    let mut got = Vec::with_capacity(n);
    for h in held {
        got.push(h.await.context("a subscriber task")??);
    }
    let wake_cpu = wake_cpu.seconds(server);
    let size_after = data_dir.as_deref().map(dir_bytes);
    let wake = Phase::of(&got, sent, &sealed, number)?;
    owner.check_opens(&sealed)?;

    // Baseline: every subscriber pulls at once, on the same connections.
    let pull_path = format!("/v1/channels/{}/posts?after={before}", owner.id);
    let (go, gate) = watch::channel(false);
    let pulls: Vec<JoinHandle<anyhow::Result<Got>>> = got
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let t = subscriber_token(&tokens, i);
            tokio::spawn(pull(g.conn, pull_path.clone(), t, gate.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pull_cpu = CpuSpan::start(server);
    let pull_start = Instant::now();
    go.send_replace(true);
    let mut pulled = Vec::with_capacity(n);
    for h in pulls {
        pulled.push(h.await.context("a subscriber task")??);
    }
    let pull_cpu = pull_cpu.seconds(server);
    let pull = Phase::of(&pulled, pull_start, &sealed, number)?;
    drop(pulled);

    let mut r = Report::new("channel", wake.ok, wake.last_s, &wake.latency);
    ctx.common(&mut r, Some(&target));
    r.set("subscribers", json!(n));
    r.set("accounts", json!(accounts));
    r.set("lost", json!(n as u64 - wake.ok));
    r.set("duplicated", json!(wake.duplicated));
    r.set("all_delivered", json!(wake.ok == n as u64));
    r.set("last_ms", json!(round3(wake.last_s * 1000.0)));
    r.set("wakeup", wake.json(wake_cpu, n));
    r.set(
        "post",
        json!({
            "text_bytes": TEXT_BYTES,
            "sealed_bytes": sealed.len(),
            "number": number,
            "post_answered_ms": round3(post_answered.as_secs_f64() * 1000.0),
        }),
    );
    r.set(
        "hold",
        json!({
            "seconds": round3(hold_seconds),
            "server_cpu_seconds": hold_cpu.server,
            "generator_cpu_seconds": hold_cpu.generator,
            "answered_before_the_post": early,
            "note": "N held fetches arriving at once and parking: what re-arming after a post costs",
        }),
    );
    storage_fields(&mut r, size_before, size_after);
    r.baseline("every-subscriber-pulls", Some(pull.rate()));
    r.set("baseline_detail", pull.json(pull_cpu, n));
    r.set("baseline_lost", json!(n as u64 - pull.ok));
    r.set("open_file_limit", json!(ctx.nofile));
    r.set(
        "params",
        json!({"subscribers": n, "per_account": PER_ACCOUNT, "wait_ms": WAIT_MS,
               "servers": urls.len()}),
    );
    Ok(r.into_value())
}

/// N subscribers need N sockets here and N in the server (which inherits
/// this process's raised limit).
fn check_open_files(ctx: &Ctx, n: usize) -> anyhow::Result<()> {
    let budget = usize::try_from(ctx.nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(200);
    if n > budget {
        bail!(
            "{n} subscribers need {n} open files in this process and in the server, but the \
             open-file limit is {} (hard limit; this tool already raised the soft one): use \
             --subscribers {budget} or fewer",
            ctx.nofile
        );
    }
    Ok(())
}

fn token(d: &net::Device) -> anyhow::Result<&str> {
    d.token.as_deref().context("a Hush device has a token")
}

fn subscriber_token(tokens: &[String], i: usize) -> String {
    tokens
        .get(i / PER_ACCOUNT % tokens.len().max(1))
        .cloned()
        .unwrap_or_default()
}

fn addr_of(url: &str) -> anyhow::Result<SocketAddr> {
    url.strip_prefix("http://")
        .context("hush-bench speaks plain HTTP on loopback only")?
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("not an address: {url}"))
}

/// The channel as its owner's device holds it.
struct Owner {
    secret: ChannelSecret,
    key: AccountKey,
    epoch_key: [u8; 32],
    post_token: [u8; 32],
    /// The channel id in hex, as paths name it.
    id: String,
}

impl Owner {
    /// Makes a channel and files it on `base`.
    async fn file(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Self> {
        let mut rng = rand::rngs::OsRng;
        let secret = ChannelSecret::generate(&mut rng);
        let key = AccountKey::generate(&mut rng).context("owner key")?;
        let epoch_key = hush_proto::channel::new_key(&mut rng);
        let mut post_token = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut post_token);
        let channel_id = secret.channel_id();
        let id = channel_id.iter().map(|b| format!("{b:02x}")).collect();
        let descriptor = Descriptor::new(
            &channel_id,
            &key,
            "hush-bench",
            0,
            epoch_key,
            vec![key.public()],
        )
        .context("descriptor")?;
        let sealed = secret
            .seal_descriptor(&descriptor, &mut rng)
            .context("sealing the descriptor")?;
        let resp = http
            .put(format!("{base}/v1/channels/{id}"))
            .bearer_auth(token)
            .json(&PutChannelRequest {
                descriptor: Bytes(sealed),
                post_token: Bytes(post_token.to_vec()),
            })
            .send()
            .await?;
        if resp.status().as_u16() != 201 {
            bail!("filing the channel: {}", resp.status());
        }
        Ok(Self {
            secret,
            key,
            epoch_key,
            post_token,
            id,
        })
    }

    /// A post of a text content of `text_bytes`, sealed and signed.
    fn seal(&self, text_bytes: usize) -> anyhow::Result<Vec<u8>> {
        let mut rng = rand::rngs::OsRng;
        let content = Content {
            id: MessageId::generate(&mut rng),
            sent_at_ms: now_ms(),
            expire_timer_secs: None,
            body: Body::Text {
                text: "x".repeat(text_bytes),
                reply_to: None,
            },
            kt_checkpoint: None,
            meta: PostMeta::default(),
        };
        Post::seal(
            &self.secret.channel_id(),
            0,
            &self.epoch_key,
            &self.key,
            PostBody::Content(content.encode()),
            now_ms(),
            &mut rng,
        )
        .context("sealing the post")
    }

    /// Posts `sealed`; returns its number.
    async fn post(
        &self,
        http: &reqwest::Client,
        base: &str,
        token: &str,
        sealed: &[u8],
    ) -> anyhow::Result<u64> {
        let resp = http
            .post(format!("{base}/v1/channels/{}/posts", self.id))
            .bearer_auth(token)
            .json(&ChannelPostRequest {
                post_token: Bytes(self.post_token.to_vec()),
                post: Bytes(sealed.to_vec()),
            })
            .send()
            .await?;
        if resp.status().as_u16() != 200 {
            bail!("posting: {}", resp.status());
        }
        Ok(resp.json::<ChannelPostResponse>().await?.number)
    }

    /// What a subscriber does with the post: open it with the link's keys.
    fn check_opens(&self, sealed: &[u8]) -> anyhow::Result<()> {
        let post = Post::open(
            &self.secret.channel_id(),
            &self.epoch_key,
            &[self.key.public()],
            sealed,
        )
        .context("the post does not open")?;
        match post.body {
            PostBody::Content(_) => Ok(()),
            PostBody::Rotate { .. } => bail!("not a content post"),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn latest(http: &reqwest::Client, base: &str, token: &str, id: &str) -> anyhow::Result<u64> {
    let resp = http
        .get(format!("{base}/v1/channels/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    if resp.status().as_u16() != 200 {
        bail!("reading the channel: {}", resp.status());
    }
    Ok(resp.json::<ChannelResponse>().await?.latest)
}

/// One connection per subscriber, `CONNECT_BATCH` at a time, spread over
/// the servers and over source addresses.
async fn connect_all(n: usize, addrs: &[SocketAddr]) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let end = (i + CONNECT_BATCH).min(n);
        let batch = (i..end).map(|k| {
            let addr = addrs.get(k % addrs.len().max(1)).copied();
            async move { Conn::open(k, addr.context("no server")?).await }
        });
        conns.extend(futures_util::future::try_join_all(batch).await?);
        i = end;
    }
    Ok(conns)
}

/// What a subscriber got: when, the answer, and its connection back.
struct Got {
    conn: Conn,
    at: Instant,
    body: Vec<u8>,
    /// Held fetches that ended empty (their wait ran out) and were made again.
    again: u32,
}

/// Holds a fetch until it answers with a post (a fetch whose wait ran out
/// is made again, as a client would).
async fn hold(
    mut conn: Conn,
    path: String,
    token: String,
    written: Arc<AtomicUsize>,
) -> anyhow::Result<Got> {
    let mut again = 0;
    loop {
        conn.send_get(&path, &token).await?;
        if again == 0 {
            written.fetch_add(1, Ordering::Relaxed);
        }
        let (status, body) = conn.response().await?;
        let at = Instant::now();
        if status != 200 {
            bail!(
                "a held fetch answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let page: ChannelPostsResponse = serde_json::from_slice(&body)?;
        if page.posts.is_empty() {
            again += 1;
            continue;
        }
        return Ok(Got {
            conn,
            at,
            body,
            again,
        });
    }
}

/// A plain GET once `gate` opens.
async fn pull(
    mut conn: Conn,
    path: String,
    token: String,
    mut gate: watch::Receiver<bool>,
) -> anyhow::Result<Got> {
    gate.wait_for(|open| *open).await?;
    conn.send_get(&path, &token).await?;
    let (status, body) = conn.response().await?;
    let at = Instant::now();
    if status != 200 {
        bail!(
            "a pull answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(Got {
        conn,
        at,
        body,
        again: 0,
    })
}

/// Waits until every subscriber wrote its fetch; a subscriber that ended
/// before the post says why.
async fn wait_written(
    written: &AtomicUsize,
    n: usize,
    tasks: &mut Vec<JoinHandle<anyhow::Result<Got>>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while written.load(Ordering::Relaxed) < n {
        if let Some(done) = tasks.iter().position(JoinHandle::is_finished) {
            let ended = tasks.swap_remove(done).await;
            match ended {
                Ok(Err(e)) => return Err(e.context("a subscriber failed before the post")),
                Ok(Ok(_)) => bail!("a subscriber had an answer before the post"),
                Err(e) => return Err(e.into()),
            }
        }
        if Instant::now() > deadline {
            bail!("the subscribers did not all send their fetch within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until the server has taken every fetch in: its CPU idle for two
/// periods in a row (a server not started here: a fixed pause).
async fn settle(server: Option<&ServerProc>, n: usize) {
    let period = Duration::from_millis(250);
    let Some(server) = server else {
        tokio::time::sleep(Duration::from_secs(1) + period * (n / 2000) as u32).await;
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = server.cpu().unwrap_or(0.0);
    let mut quiet = 0;
    while quiet < 2 && Instant::now() < deadline {
        tokio::time::sleep(period).await;
        let now = server.cpu().unwrap_or(0.0);
        // Two ticks of 10 ms in 250 ms: idle but for timers.
        quiet = if now - last <= 0.02 { quiet + 1 } else { 0 };
        last = now;
    }
}

/// CPU time of the server and of this generator over a stretch.
struct CpuSpan {
    server: Option<f64>,
    me: Option<f64>,
}

struct CpuSeconds {
    server: Option<f64>,
    generator: Option<f64>,
}

impl CpuSpan {
    fn start(server: Option<&ServerProc>) -> Self {
        Self {
            server: server.and_then(ServerProc::cpu),
            me: self_cpu_seconds(),
        }
    }

    fn seconds(&self, server: Option<&ServerProc>) -> CpuSeconds {
        let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(round3(b - a)),
            _ => None,
        };
        CpuSeconds {
            server: diff(self.server, server.and_then(ServerProc::cpu)),
            generator: diff(self.me, self_cpu_seconds()),
        }
    }
}

/// Latencies of one phase and how many answers carried the post.
struct Phase {
    latency: hdrhistogram::Histogram<u64>,
    last_s: f64,
    ok: u64,
    duplicated: u64,
    again: u64,
}

impl Phase {
    /// `got` measured from `from`; an answer counts if it holds exactly the
    /// post `sealed` as number `number`.
    fn of(got: &[Got], from: Instant, sealed: &[u8], number: u64) -> anyhow::Result<Self> {
        let mut latency = histogram()?;
        let mut last = Duration::ZERO;
        let (mut ok, mut duplicated, mut again) = (0, 0, 0);
        for g in got {
            let took = g.at.saturating_duration_since(from);
            last = last.max(took);
            let _ = latency.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
            again += u64::from(g.again);
            let Ok(page) = serde_json::from_slice::<ChannelPostsResponse>(&g.body) else {
                continue;
            };
            let copies = page
                .posts
                .iter()
                .filter(|p| p.number == number && p.post.0 == sealed)
                .count();
            if copies >= 1 {
                ok += 1;
            }
            if copies > 1 {
                duplicated += 1;
            }
        }
        Ok(Self {
            latency,
            last_s: last.as_secs_f64(),
            ok,
            duplicated,
            again,
        })
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.last_s.max(1e-9)
    }

    fn json(&self, cpu: CpuSeconds, n: usize) -> Value {
        let (p50, p99, p999) = percentiles(&self.latency);
        let per = cpu.server.map(|s| round3(s * 1e6 / n.max(1) as f64));
        json!({
            "received": self.ok,
            "p50_ms": p50,
            "p99_ms": p99,
            "p999_ms": p999,
            "last_ms": round3(self.last_s * 1000.0),
            "server_cpu_seconds": cpu.server,
            "server_cpu_us_per_subscriber": per,
            "generator_cpu_seconds": cpu.generator,
            "fetches_made_again": self.again,
        })
    }
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn storage_fields(r: &mut Report, before: Option<u64>, after: Option<u64>) {
    let grew = before
        .zip(after)
        .map(|(b, a)| i128::from(a) - i128::from(b));
    r.set("data_dir_growth_bytes", json!(grew.map(|g| g as i64)));
    r.set("data_dir_bytes_after", json!(after));
    r.set(
        "data_dir_note",
        json!(match grew {
            Some(_) =>
                "the files of the server's data directory (SQLite and its WAL) just before \
                        the post and once every subscriber had it: SQLite grows by 4 KiB pages and \
                        reuses its WAL, so this bounds what the post cost rather than counting its \
                        bytes; it does not grow with the number of subscribers",
            None => "not measured: the server is not one this run started on SQLite",
        }),
    );
}
