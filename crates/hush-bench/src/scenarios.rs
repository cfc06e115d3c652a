//! The server scenarios: relay, durable, fanout, idle and crash, each run
//! against Hush and, where there is one, its baseline in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::Opts;
use crate::load::{Load, Sent, drive};
use crate::net::{self, Device, ReceiverStats, Recipients, Sender, System};
use crate::proc::{self, Pinning, ServerProc};
use crate::stats::{Deliveries, Report, percentiles, round3};

/// What every scenario shares: options, pinning, scratch space.
#[derive(Debug)]
pub struct Ctx {
    /// Command-line options.
    pub opts: Opts,
    /// What is pinned where.
    pub pinning: Pinning,
    /// Temporary data (databases, logs); removed at the end.
    pub scratch: tempfile::TempDir,
    /// The open-file limit after raising it.
    pub nofile: u64,
}

/// Hush servers for a run: started here (one, pinned) or given with --server.
pub(crate) struct HushTarget {
    pub(crate) urls: Vec<String>,
    proc: Option<ServerProc>,
}

impl HushTarget {
    fn rss(&self) -> Option<u64> {
        self.proc.as_ref().and_then(ServerProc::rss)
    }

    /// The server process this run started, if it started one.
    pub(crate) fn server(&self) -> Option<&ServerProc> {
        self.proc.as_ref()
    }
}

impl Ctx {
    pub(crate) async fn hush(&self, name: &str) -> anyhow::Result<HushTarget> {
        if !self.opts.server.is_empty() {
            return Ok(HushTarget {
                urls: self
                    .opts
                    .server
                    .iter()
                    .map(|s| s.trim_end_matches('/').to_owned())
                    .collect(),
                proc: None,
            });
        }
        let dir = self.scratch.path().join(name);
        let p = proc::start_hush(
            self.opts.server_bin.as_deref(),
            self.opts.embedded_server,
            &dir,
            self.opts.database.as_deref(),
            &self.pinning,
        )
        .await?;
        Ok(HushTarget {
            urls: vec![format!("http://{}", p.addr)],
            proc: Some(p),
        })
    }

    pub(crate) fn common(&self, r: &mut Report, target: Option<&HushTarget>) {
        r.set("pinning", self.pinning.json());
        r.set("quick", json!(self.opts.quick));
        r.set("machine_shared", json!(true));
        if let Some(t) = target {
            r.set("server_rss_bytes", json!(t.rss()));
            r.set(
                "server",
                json!(match &t.proc {
                    Some(p) => p.kind.clone(),
                    None => format!("given: {}", t.urls.join(", ")),
                }),
            );
        } else {
            r.set("server_rss_bytes", Value::Null);
        }
    }

    pub(crate) fn prefix(&self, what: &str) -> String {
        // Unique per run so that a shared --server can be reused.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 100_000_000);
        format!("b{what}{t}x")
    }

    pub(crate) fn pick<T: Copy>(&self, given: Option<T>, full: T, quick: T) -> T {
        given.unwrap_or(if self.opts.quick { quick } else { full })
    }
}

/// Devices for `count` recipients plus `senders` senders on `system`.
async fn devices(
    ctx: &Ctx,
    system: &System,
    what: &str,
    count: usize,
) -> anyhow::Result<Vec<Device>> {
    match system {
        System::Hush(urls) => {
            let http = net::http_client(Duration::from_secs(60))?;
            net::register_devices(&http, urls, &ctx.prefix(what), 0, count, 32).await
        }
        System::Raw(addr) => Ok(net::raw_devices(*addr, 0, count)),
    }
}

/// Receivers for `recipients`, started and ready.
struct Receivers {
    deliveries: Arc<Deliveries>,
    stats: Arc<ReceiverStats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Receivers {
    async fn start(
        recipients: &[Device],
        per_message: u32,
        reconnect: bool,
        deliveries: Option<Arc<Deliveries>>,
    ) -> anyhow::Result<Self> {
        let deliveries = match deliveries {
            Some(d) => d,
            None => Arc::new(Deliveries::new(per_message)?),
        };
        let stats = Arc::new(ReceiverStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let mut readies = Vec::new();
        // Connect in batches so that the server's accept queue keeps up.
        for chunk in recipients.chunks(256) {
            let mut batch = Vec::new();
            for d in chunk {
                let ready = Arc::new(Notify::new());
                let wait = ready.clone();
                tasks.push(tokio::spawn(net::receive(
                    d.clone(),
                    deliveries.clone(),
                    stats.clone(),
                    ready,
                    stop.clone(),
                    reconnect,
                )));
                batch.push(wait);
            }
            for w in &batch {
                tokio::time::timeout(Duration::from_secs(60), w.notified())
                    .await
                    .context("a receiver did not connect within 60 s")?;
            }
            readies.extend(batch);
        }
        // Fail early if a receiver died while connecting.
        for t in &tasks {
            if t.is_finished() {
                bail!("a receiver ended while connecting");
            }
        }
        Ok(Self {
            deliveries,
            stats,
            stop,
            tasks,
        })
    }

    /// Waits until `expected` messages reached every recipient, giving up
    /// when nothing more arrived for `stall` (or after two minutes).
    async fn wait_complete(&self, expected: u64, stall: Duration) -> bool {
        let give_up = Instant::now() + Duration::from_secs(120);
        let mut last = (self.deliveries.delivered(), Instant::now());
        while self.deliveries.complete() < expected {
            let now = Instant::now();
            let delivered = self.deliveries.delivered();
            if delivered != last.0 {
                last = (delivered, now);
            }
            if now > give_up || now.duration_since(last.1) > stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            match tokio::time::timeout(Duration::from_secs(5), t).await {
                Ok(Ok(Ok(()))) | Err(_) => {}
                Ok(Ok(Err(e))) => return Err(e.context("a receiver failed")),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// One online run: `senders` senders, each message to `group` recipients.
struct OnlineRun {
    /// CPU of the server and the generator while sending and delivering.
    cpu: Value,
    sent: Sent,
    summary: crate::stats::Summary,
    seconds: f64,
    all_delivered: bool,
}

async fn online(
    ctx: &Ctx,
    server: Option<&ServerProc>,
    system: &System,
    what: &str,
    senders: usize,
    group: usize,
    load: &Load,
) -> anyhow::Result<OnlineRun> {
    // 1:1 (group 1): each sender has a recipient of its own ([`partner`]).
    // Group: one group of `group` devices that every sender sends to.
    let recipients_n = if group == 1 { senders } else { group };
    let all = devices(ctx, system, what, senders + recipients_n).await?;
    let (send_devs, recv_devs) = all.split_at(senders);
    let http = net::http_client(Duration::from_secs(60))?;
    let mut snd = Vec::new();
    for d in send_devs {
        snd.push(Sender::new(d, &http, ctx.opts.send_over).await?);
    }
    let receivers = Receivers::start(
        recv_devs,
        u32::try_from(group).unwrap_or(u32::MAX),
        false,
        None,
    )
    .await?;
    let targets: Arc<dyn Fn(u64) -> Arc<Recipients> + Send + Sync> = if group == 1 {
        let per: Vec<Arc<Recipients>> = (0..recv_devs.len())
            .filter_map(|i| recv_devs.get(partner(i, recv_devs.len())))
            .map(|d| Arc::new(Recipients::new(std::slice::from_ref(d))))
            .collect();
        let n = per.len().max(1) as u64;
        Arc::new(move |k| {
            per.get((k % n) as usize)
                .cloned()
                .unwrap_or_else(|| Arc::new(Recipients::new(&[])))
        })
    } else {
        let all = Arc::new(Recipients::new(recv_devs));
        Arc::new(move |_| all.clone())
    };
    let start = Instant::now();
    let start_us = crate::stats::now_us();
    let meter = CpuMeter::start(server);
    let sent = drive(&snd, targets, load).await?;
    let all_delivered = receivers
        .wait_complete(sent.acked, Duration::from_secs(10))
        .await;
    let cpu = meter.json(server);
    let summary = receivers.deliveries.summary();
    // From the first send to the last delivery.
    let seconds = if all_delivered {
        (summary.last_us.saturating_sub(start_us) as f64 / 1e6).max(sent.seconds)
    } else {
        start.elapsed().as_secs_f64()
    };
    receivers.stop().await?;
    Ok(OnlineRun {
        cpu,
        sent,
        summary,
        seconds,
        all_delivered,
    })
}

/// CPU use of the server and of this generator over a stretch of a run, in
/// percent of one CPU: shows which side was the bottleneck.
struct CpuMeter {
    at: Instant,
    server: Option<f64>,
    me: Option<f64>,
}

impl CpuMeter {
    fn start(server: Option<&ServerProc>) -> Self {
        Self {
            at: Instant::now(),
            server: server.and_then(ServerProc::cpu),
            me: proc::self_cpu_seconds(),
        }
    }

    fn json(&self, server: Option<&ServerProc>) -> Value {
        let secs = self.at.elapsed().as_secs_f64().max(1e-9);
        let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(round3((b - a) / secs * 100.0)),
            _ => None,
        };
        json!({
            "server_cpu_percent": pct(self.server, server.and_then(ServerProc::cpu)),
            "generator_cpu_percent": pct(self.me, proc::self_cpu_seconds()),
        })
    }
}

fn online_fields(r: &mut Report, run: &OnlineRun) {
    r.set("acked", json!(run.sent.acked));
    r.set("send_failed", json!(run.sent.failed));
    r.set("first_error", json!(run.sent.first_error));
    r.set(
        "lost",
        json!(run.sent.acked.saturating_sub(run.summary.complete)),
    );
    r.set("duplicated", json!(run.summary.duplicated));
    r.set("all_delivered", json!(run.all_delivered));
    r.set("deliveries", json!(run.summary.delivered));
    let (a50, a99, _) = percentiles(&run.sent.ack_latency);
    r.set("ack_p50_ms", json!(a50));
    r.set("ack_p99_ms", json!(a99));
}

fn baseline_fields(r: &mut Report, name: &str, run: &OnlineRun, last: bool) {
    let rate = run.summary.complete as f64 / run.seconds.max(1e-9);
    r.baseline(name, Some(rate));
    let (p50, p99, p999) = percentiles(if last {
        &run.summary.last
    } else {
        &run.summary.all
    });
    r.set(
        "baseline_detail",
        json!({
            "messages": run.summary.complete,
            "seconds": round3(run.seconds),
            "p50_ms": p50, "p99_ms": p99, "p999_ms": p999,
            "lost": run.sent.acked.saturating_sub(run.summary.complete),
            "duplicated": run.summary.duplicated,
            "send_failed": run.sent.failed,
        }),
    );
}

/// The recipient of sender `i` of `n` in a 1:1 run: recipient `i` for
/// half the pairs, the neighbour's for the other half (pairs 2 and 3 of
/// every 4 swap). Devices are spread round-robin over the servers, and with
/// a number of pairs that the number of servers divides, sender `i` and
/// recipient `i` share a server; with two servers, the swap puts half the
/// pairs across nodes, as a load balancer placing devices at random does.
fn partner(i: usize, n: usize) -> usize {
    let p = i ^ ((i >> 1) & 1);
    if p < n { p } else { i }
}

/// `relay`: N online pairs, one message size.
pub async fn relay(ctx: &Ctx) -> anyhow::Result<Value> {
    let pairs = ctx.pick(ctx.opts.pairs, 32, 4);
    let load = Load {
        rate: ctx.opts.rate,
        window: ctx.pick(ctx.opts.window, 8, 4),
        messages: ctx.pick(ctx.opts.messages, 100_000, 2_000),
        max_seconds: ctx.pick(ctx.opts.max_seconds, 60.0, 8.0),
        size: ctx.opts.size,
        first_id: 0,
    };
    let target = ctx.hush("relay").await?;
    let run = online(
        ctx,
        target.proc.as_ref(),
        &System::Hush(target.urls.clone()),
        "r",
        pairs,
        1,
        &load,
    )
    .await?;
    let mut r = Report::new("relay", run.summary.complete, run.seconds, &run.summary.all);
    ctx.common(&mut r, Some(&target));
    online_fields(&mut r, &run);
    r.set("cpu", run.cpu.clone());
    drop(target);
    let raw = proc::start_raw_relay(&ctx.pinning, ctx.scratch.path().join("raw.log")).await?;
    let raw_run = online(
        ctx,
        Some(&raw),
        &System::Raw(raw.addr),
        "r",
        pairs,
        1,
        &load,
    )
    .await?;
    r.set("baseline_cpu", raw_run.cpu.clone());
    r.set("baseline_server_rss_bytes", json!(raw.rss()));
    baseline_fields(&mut r, "raw-relay", &raw_run, false);
    r.set(
        "params",
        json!({"pairs": pairs, "size": load.size, "window": load.window,
               "rate": load.rate, "messages": load.messages}),
    );
    Ok(r.into_value())
}

/// `fanout`: one sender, a group of N devices, a set rate.
pub async fn fanout(ctx: &Ctx) -> anyhow::Result<Value> {
    let group = ctx.pick(ctx.opts.devices, 1000, 100);
    let rate = ctx.opts.rate.unwrap_or(100.0);
    let secs = ctx.pick(ctx.opts.max_seconds, 10.0, 3.0);
    let load = Load {
        rate: Some(rate),
        window: 1,
        messages: ctx.opts.messages.unwrap_or((rate * secs).ceil() as u64),
        max_seconds: secs + 1.0,
        size: ctx.opts.size,
        first_id: 0,
    };
    let target = ctx.hush("fanout").await?;
    let run = online(
        ctx,
        target.proc.as_ref(),
        &System::Hush(target.urls.clone()),
        "f",
        1,
        group,
        &load,
    )
    .await?;
    // Latency of the last recipient of each message.
    let mut r = Report::new(
        "fanout",
        run.summary.complete,
        run.seconds,
        &run.summary.last,
    );
    ctx.common(&mut r, Some(&target));
    online_fields(&mut r, &run);
    let (p50, p99, p999) = percentiles(&run.summary.all);
    r.set(
        "any_recipient",
        json!({"p50_ms": p50, "p99_ms": p99, "p999_ms": p999}),
    );
    r.set("incomplete", json!(run.summary.incomplete));
    r.set("cpu", run.cpu.clone());
    drop(target);
    let raw = proc::start_raw_relay(&ctx.pinning, ctx.scratch.path().join("raw.log")).await?;
    let raw_run = online(
        ctx,
        Some(&raw),
        &System::Raw(raw.addr),
        "f",
        1,
        group,
        &load,
    )
    .await?;
    r.set("baseline_cpu", raw_run.cpu.clone());
    baseline_fields(&mut r, "raw-relay", &raw_run, true);
    r.set(
        "params",
        json!({"group": group, "size": load.size, "rate": rate, "messages": load.messages}),
    );
    Ok(r.into_value())
}

/// `durable`: recipients offline while senders send (acks mean durable),
/// then they connect and drain.
pub async fn durable(ctx: &Ctx) -> anyhow::Result<Value> {
    let pairs = ctx.pick(ctx.opts.pairs, 32, 4);
    let load = Load {
        rate: ctx.opts.rate,
        window: ctx.pick(ctx.opts.window, 8, 4),
        messages: ctx.pick(ctx.opts.messages, 100_000, 2_000),
        max_seconds: ctx.pick(ctx.opts.max_seconds, 60.0, 8.0),
        size: ctx.opts.size,
        first_id: 0,
    };
    let target = ctx.hush("durable").await?;
    let system = System::Hush(target.urls.clone());
    let all = devices(ctx, &system, "d", 2 * pairs).await?;
    let (send_devs, recv_devs) = all.split_at(pairs);
    let http = net::http_client(Duration::from_secs(60))?;
    let mut snd = Vec::new();
    for d in send_devs {
        snd.push(Sender::new(d, &http, ctx.opts.send_over).await?);
    }
    let per: Vec<Arc<Recipients>> = recv_devs
        .iter()
        .map(|d| Arc::new(Recipients::new(std::slice::from_ref(d))))
        .collect();
    let n = per.len().max(1) as u64;
    let targets: Arc<dyn Fn(u64) -> Arc<Recipients> + Send + Sync> = Arc::new(move |k| {
        per.get((k % n) as usize)
            .cloned()
            .unwrap_or_else(|| Arc::new(Recipients::new(&[])))
    });
    let cpu = CpuMeter::start(target.proc.as_ref());
    let sent = drive(&snd, targets, &load).await?;
    let cpu = cpu.json(target.proc.as_ref());
    let rss_queued = target.rss();
    let drain_start = Instant::now();
    let receivers = Receivers::start(recv_devs, 1, false, None).await?;
    let all_delivered = receivers
        .wait_complete(sent.acked, Duration::from_secs(10))
        .await;
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    let summary = receivers.deliveries.summary();
    receivers.stop().await?;

    let mut r = Report::new("durable", sent.acked, sent.seconds, &sent.ack_latency);
    ctx.common(&mut r, Some(&target));
    r.set("server_rss_bytes", json!(rss_queued));
    r.set("acked", json!(sent.acked));
    r.set("send_failed", json!(sent.failed));
    r.set("first_error", json!(sent.first_error));
    r.set("delivered", json!(summary.complete));
    r.set("lost", json!(sent.acked.saturating_sub(summary.complete)));
    r.set("duplicated", json!(summary.duplicated));
    r.set("all_delivered", json!(all_delivered));
    r.set("latency", json!("send to durable acknowledgement"));
    r.set("cpu", cpu);
    r.set("drain_seconds", json!(round3(drain_seconds)));
    r.set(
        "drain_msgs_per_sec",
        json!((summary.complete as f64 / drain_seconds.max(1e-9)).round()),
    );
    drop(target);

    let js = crate::nats::baselines(ctx, pairs, &load).await;
    let primary = js
        .iter()
        .find(|b| b.name == "jetstream-sync-always" && b.result.is_ok());
    r.baseline(
        "jetstream-sync-always",
        primary.and_then(|b| b.result.as_ref().ok().map(|x| x.publish_rate)),
    );
    let mut ran = Vec::new();
    let mut detail = serde_json::Map::new();
    for b in &js {
        match &b.result {
            Ok(x) => {
                ran.push(json!(b.name));
                detail.insert(
                    b.name.clone(),
                    json!({
                        "msgs_per_sec": x.publish_rate.round(),
                        "ratio": round3(r.rate() / x.publish_rate.max(1e-9)),
                        "seconds": round3(x.publish_seconds),
                        "acked": x.acked,
                        "drained": x.drained,
                        "drain_msgs_per_sec": x.drain_rate.round(),
                        "p50_ms": x.p50_ms, "p99_ms": x.p99_ms,
                        "server": b.server,
                    }),
                );
            }
            Err(e) => {
                detail.insert(b.name.clone(), json!({"error": e}));
            }
        }
    }
    r.set("baselines_ran", json!(ran));
    r.set("baselines", Value::Object(detail));
    r.set(
        "params",
        json!({"pairs": pairs, "size": load.size, "window": load.window, "messages": load.messages}),
    );
    Ok(r.into_value())
}

/// `idle`: N authenticated, subscribed connections; server RSS per
/// connection and idle CPU.
pub async fn idle(ctx: &Ctx) -> anyhow::Result<Value> {
    let n = ctx.pick(ctx.opts.devices, 10_000, 300);
    // This process holds one socket per connection, and so does the server
    // (which inherits the same limit).
    let budget = usize::try_from(ctx.nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(200);
    if n > budget {
        bail!(
            "{n} connections need {n} open files in this process and in the server, but the \
             open-file limit is {} (hard limit; this tool already raised the soft one): use \
             --devices {budget} or fewer",
            ctx.nofile
        );
    }
    let target = ctx.hush("idle").await?;
    let Some(server) = target.proc.as_ref() else {
        bail!("idle measures the server's memory: let hush-bench start the server (no --server)");
    };
    let system = System::Hush(target.urls.clone());
    let devs = devices(ctx, &system, "i", n).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss().unwrap_or(0);
    let start = Instant::now();
    let receivers = Receivers::start(&devs, 1, false, None).await?;
    let connect_seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = server.rss().unwrap_or(0);
    let window = ctx.pick(ctx.opts.max_seconds, 10.0, 2.0);
    let cpu0 = server.cpu().unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let cpu1 = server.cpu().unwrap_or(0.0);
    let rss_end = server.rss().unwrap_or(0);
    let per_conn = rss_after.saturating_sub(rss_before) as f64 / n as f64;
    let mut r = Report::new("idle", 0, window, &crate::stats::histogram()?);
    ctx.common(&mut r, Some(&target));
    r.set("server_rss_bytes", json!(rss_end));
    r.set("connections", json!(n));
    r.set("connect_seconds", json!(round3(connect_seconds)));
    r.set("server_rss_before_bytes", json!(rss_before));
    r.set("rss_per_connection_bytes", json!(per_conn.round()));
    r.set(
        "idle_cpu_percent",
        json!(round3((cpu1 - cpu0) / window * 100.0)),
    );
    r.set("open_file_limit", json!(ctx.nofile));
    r.set("lost", json!(0));
    r.set("duplicated", json!(0));
    r.set(
        "note",
        json!("one generator process and one server process each hold at most the open-file limit of sockets"),
    );
    receivers.stop().await?;
    Ok(r.into_value())
}

/// `crash`: send under load, `kill -9` the server every few seconds, restart
/// it on the same data, and count acknowledged messages that never arrive and
/// messages stored twice.
pub async fn crash(ctx: &Ctx) -> anyhow::Result<Value> {
    if !ctx.opts.server.is_empty() {
        bail!("crash kills the server: let hush-bench start it (no --server)");
    }
    let kills = ctx.pick(ctx.opts.kills, 100, 3);
    let every = ctx.pick(ctx.opts.kill_every, 2.0, 1.0);
    let pairs = ctx.pick(ctx.opts.pairs, 8, 2);
    let mut target = ctx.hush("crash").await?;
    let system = System::Hush(target.urls.clone());
    let all = devices(ctx, &system, "c", 2 * pairs).await?;
    let (send_devs, recv_devs) = all.split_at(pairs);
    let deliveries = Arc::new(Deliveries::new(1)?);
    let receivers = Receivers::start(recv_devs, 1, true, Some(deliveries.clone())).await?;
    let http = net::http_client(Duration::from_secs(5))?;
    let mut snd = Vec::new();
    for d in send_devs {
        snd.push(Sender::new(d, &http, ctx.opts.send_over).await?);
    }
    let per: Vec<Arc<Recipients>> = recv_devs
        .iter()
        .map(|d| Arc::new(Recipients::new(std::slice::from_ref(d))))
        .collect();
    let n = per.len().max(1) as u64;
    let targets: Arc<dyn Fn(u64) -> Arc<Recipients> + Send + Sync> = Arc::new(move |k| {
        per.get((k % n) as usize)
            .cloned()
            .unwrap_or_else(|| Arc::new(Recipients::new(&[])))
    });
    // Rounds of sending: each round sends for `every` seconds, then the
    // server dies mid-round and comes back.
    let start = Instant::now();
    let mut acked_ids: Vec<u64> = Vec::new();
    let mut failed = 0u64;
    let mut acked = 0u64;
    let mut restarts = 0u64;
    let mut next_id = 0u64;
    let rate = ctx
        .opts
        .rate
        .unwrap_or(if ctx.opts.quick { 500.0 } else { 1000.0 });
    for _ in 0..kills {
        let per_round = (rate * every * 2.0).ceil() as u64;
        let load = Load {
            rate: Some(rate),
            window: 1,
            messages: per_round,
            max_seconds: every * 2.0,
            size: ctx.opts.size,
            first_id: next_id,
        };
        next_id += per_round;
        let snd2 = snd.clone();
        let t2 = targets.clone();
        let sending = tokio::spawn(async move { drive(&snd2, t2, &load).await });
        tokio::time::sleep(Duration::from_secs_f64(every)).await;
        if let Some(p) = target.proc.as_mut() {
            p.kill().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            p.restart().await?;
            restarts += 1;
        }
        let sent = sending.await??;
        acked += sent.acked;
        failed += sent.failed;
        acked_ids.extend(sent.acked_ids);
    }
    // Everything acknowledged must arrive after the last restart.
    let acked_set: std::collections::HashSet<u64> = acked_ids.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lost = deliveries.missing(&acked_set);
    while lost > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lost = deliveries.missing(&acked_set);
    }
    let all_delivered = lost == 0;
    let summary = deliveries.summary();
    let seconds = start.elapsed().as_secs_f64();
    let redelivered = receivers.stats.redelivered.load(Ordering::Relaxed);
    let reconnects = receivers.stats.reconnects.load(Ordering::Relaxed);
    let mut r = Report::new("crash", summary.complete, seconds, &summary.all);
    ctx.common(&mut r, Some(&target));
    receivers.stop().await?;
    r.set("kills", json!(restarts));
    r.set("kill_every_seconds", json!(every));
    r.set("acked", json!(acked));
    r.set("send_failed", json!(failed));
    // A message whose send failed may or may not have been stored: it is
    // neither lost nor acknowledged. Deliveries of ids beyond the acked set
    // are those.
    r.set("lost", json!(lost));
    r.set("acked_unique", json!(acked_set.len()));
    r.set("delivered", json!(summary.complete));
    r.set("duplicated", json!(summary.duplicated));
    r.set("redelivered_same_seq", json!(redelivered));
    r.set("reconnects", json!(reconnects));
    r.set("all_delivered", json!(all_delivered));
    Ok(r.into_value())
}

#[cfg(test)]
mod tests {
    use super::partner;

    #[test]
    fn partners_are_one_each_and_half_cross_two_servers() {
        for n in 0..40 {
            let mut seen: Vec<usize> = (0..n).map(|i| partner(i, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "a permutation of {n}");
        }
        // 32 pairs on two servers: sender i on i % 2, recipient j on j % 2.
        let across = (0..32).filter(|&i| partner(i, 32) % 2 != i % 2).count();
        assert_eq!(across, 16);
    }
}
