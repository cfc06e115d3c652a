//! The `durable` scenario's baselines: NATS JetStream with file storage, the
//! same publishers, windows, sizes and counts, once with `sync_interval:
//! always` (fsync before the acknowledgement, which is what a Hush
//! acknowledgement means) and once with its default (fsync every 2 minutes).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::load::Load;
use crate::proc;
use crate::scenarios::Ctx;
use crate::stats::{histogram, now_us, payload, percentiles};

/// One baseline's outcome.
#[derive(Debug)]
pub struct Baseline {
    /// `jetstream-sync-always`, `jetstream-default` or `jetstream-external`.
    pub name: String,
    /// Which server ran it.
    pub server: String,
    /// The figures, or why it did not run.
    pub result: Result<Figures, String>,
}

/// What a JetStream run measured.
#[derive(Debug)]
pub struct Figures {
    /// Acknowledged publishes per second.
    pub publish_rate: f64,
    /// Seconds of publishing.
    pub publish_seconds: f64,
    /// Publishes acknowledged.
    pub acked: u64,
    /// Messages read back by the consumers.
    pub drained: u64,
    /// Messages read back per second.
    pub drain_rate: f64,
    /// Publish-to-acknowledgement latency.
    pub p50_ms: f64,
    /// Publish-to-acknowledgement latency.
    pub p99_ms: f64,
}

/// Runs every JetStream baseline that can run here.
pub async fn baselines(ctx: &Ctx, pairs: usize, load: &Load) -> Vec<Baseline> {
    let mut out = Vec::new();
    match proc::find_nats_server(ctx.opts.nats_server_bin.as_deref()) {
        Ok((program, version)) => {
            for (name, sync) in [
                ("jetstream-sync-always", true),
                ("jetstream-default", false),
            ] {
                let dir = ctx.scratch.path().join(name);
                let result = async {
                    std::fs::create_dir_all(&dir)?;
                    let server = proc::start_nats(&program, &dir, sync, &ctx.pinning).await?;
                    let url = format!("nats://{}", server.addr);
                    let r = run(&url, pairs, load).await;
                    drop(server);
                    r
                }
                .await
                .map_err(|e| format!("{e:#}"));
                out.push(Baseline {
                    name: name.to_owned(),
                    server: format!("{} {version} started by hush-bench", program.display()),
                    result,
                });
            }
        }
        Err(why) => {
            for name in ["jetstream-sync-always", "jetstream-default"] {
                out.push(Baseline {
                    name: name.to_owned(),
                    server: String::new(),
                    result: Err(why.clone()),
                });
            }
        }
    }
    if let Some(url) = &ctx.opts.nats {
        out.push(Baseline {
            name: "jetstream-external".to_owned(),
            server: format!("{url} (its own configuration)"),
            result: run(url, pairs, load).await.map_err(|e| format!("{e:#}")),
        });
    }
    out
}

async fn run(url: &str, pairs: usize, load: &Load) -> anyhow::Result<Figures> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let js = jetstream::new(client);
    let name = format!("HUSHBENCH{}", now_us());
    let prefix = format!("hushbench.{}", now_us());
    let _ = js.delete_stream(&name).await;
    let st = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the stream: {e}"))?;

    // Publish: publisher i to subject i with `window` acks outstanding.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..pairs {
        let js = js.clone();
        let subject = format!("{prefix}.{i}");
        let load = load.clone();
        let n = pairs as u64;
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            let mut pending = VecDeque::new();
            let mut acked = 0u64;
            let mut k = i as u64;
            let deadline = Instant::now() + Duration::from_secs_f64(load.max_seconds);
            loop {
                while pending.len() < load.window.max(1)
                    && k < load.messages
                    && Instant::now() < deadline
                {
                    let at = now_us();
                    let ack = js
                        .publish(subject.clone(), payload(k, at, load.size).into())
                        .await
                        .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
                    pending.push_back((at, ack));
                    k += n;
                }
                let Some((at, ack)) = pending.pop_front() else {
                    break;
                };
                ack.await.map_err(|e| anyhow::anyhow!("publish ack: {e}"))?;
                acked += 1;
                let _ = hist.record(now_us().saturating_sub(at).max(1));
            }
            anyhow::Ok((acked, hist))
        }));
    }
    let mut acked = Vec::new();
    let mut hist = histogram()?;
    for t in tasks {
        let (a, h) = t.await??;
        acked.push(a);
        hist.add(&h)?;
    }
    let publish_seconds = start.elapsed().as_secs_f64();
    let total: u64 = acked.iter().sum();

    // Drain: one consumer per subject, as each Hush recipient drains its queue.
    let drain_start = Instant::now();
    let mut tasks = Vec::new();
    for (i, expected) in acked.iter().copied().enumerate() {
        let st = st.clone();
        let subject = format!("{prefix}.{i}");
        tasks.push(tokio::spawn(async move {
            let c = st
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(format!("c{i}")),
                    filter_subject: subject,
                    ack_policy: consumer::AckPolicy::All,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("consumer: {e}"))?;
            let mut got = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while got < expected && Instant::now() < deadline {
                let mut batch = c
                    .fetch()
                    .max_messages(256)
                    .messages()
                    .await
                    .map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
                let mut last = None;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| anyhow::anyhow!("message: {e}"))?;
                    got += 1;
                    last = Some(m);
                }
                if let Some(m) = last {
                    m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                }
            }
            anyhow::Ok(got)
        }));
    }
    let mut drained = 0;
    for t in tasks {
        drained += t.await??;
    }
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    let (p50, p99, _) = percentiles(&hist);
    Ok(Figures {
        publish_rate: total as f64 / publish_seconds.max(1e-9),
        publish_seconds,
        acked: total,
        drained,
        drain_rate: drained as f64 / drain_seconds.max(1e-9),
        p50_ms: p50,
        p99_ms: p99,
    })
}
