//! `backlog`: a real client comes back to a backlog of messages waiting for
//! its device (10,000 by default) and syncs it: every envelope received,
//! decrypted, stored in the encrypted local store and acknowledged. Next to
//! it, in the same run, bare mls-rs decrypting as many messages with no
//! storage and no network.
//!
//! The sender fills the queue first (not measured); the measured part is one
//! `Client::sync` of the recipient, reopened from its store as after a
//! restart. This process hosts the client and the server runs in its own, so
//! this process's CPU time during the sync is the client's.

use std::time::Instant;

use anyhow::{Context as _, bail};
use hush_client::{Client, Event, Target};
use serde_json::{Value, json};

use crate::proc::self_cpu_seconds;
use crate::scenarios::Ctx;
use crate::stats::{Report, histogram, round3};

const PASSPHRASE: &str = "hush-bench passphrase";
/// The goal: the whole backlog synced within this many seconds.
const TARGET_SECONDS: f64 = 5.0;

/// Runs the backlog scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let messages = ctx.pick(ctx.opts.messages, 10_000, 300);
    let target = ctx.hush("backlog").await?;
    let url = target.urls.first().cloned().context("no server")?;
    let dir = ctx.scratch.path().join("backlog-clients");
    let prefix = ctx.prefix("k");
    let text = "x".repeat(ctx.opts.size.max(1));

    let register = |name: String| {
        let dir = dir.join(&name);
        let url = url.clone();
        async move {
            Client::register(&dir, PASSPHRASE, &url, &name, None)
                .await
                .with_context(|| format!("registering {name}"))
        }
    };
    let mut alice = register(format!("{prefix}a")).await?;
    let bob = register(format!("{prefix}b")).await?;
    let bob_name = bob.username().to_owned();
    let bob_dir = dir.join(&bob_name);
    drop(bob);
    let to_bob = Target::User(bob_name);

    let fill_start = Instant::now();
    for _ in 0..messages {
        alice.send_text(&to_bob, &text).await?;
    }
    let fill_seconds = fill_start.elapsed().as_secs_f64();

    let mut bob = Client::open(&bob_dir, PASSPHRASE)?;
    let written0 = bob.state_bytes_written();
    let cpu0 = self_cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    let events = bob.sync(std::time::Duration::ZERO, |_| {}).await?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = self_cpu_seconds().unwrap_or(0.0) - cpu0;
    let state_bytes = bob.state_bytes_written() - written0;
    let received = events
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count() as u64;
    let stored = bob
        .history(&Target::User(alice.username().to_owned()))?
        .len() as u64;
    if stored < messages {
        bail!("{} of {messages} messages stored after the sync", stored);
    }
    drop(bob);
    let mut bob = Client::open(&bob_dir, PASSPHRASE)?;
    let again = bob.sync(std::time::Duration::ZERO, |_| {}).await?;
    let duplicated = again
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count() as u64
        + received.saturating_sub(messages);

    let bare_us = crate::e2e::bare_round_trip_us(ctx.opts.size.max(1), messages.min(2000))?;
    let lat = histogram()?;
    let mut r = Report::new("backlog", messages, seconds, &lat);
    ctx.common(&mut r, Some(&target));
    r.set("lost", json!(messages.saturating_sub(stored)));
    r.set("duplicated", json!(duplicated));
    r.set("target_seconds", json!(TARGET_SECONDS));
    r.set("target_met", json!(seconds <= TARGET_SECONDS));
    r.set("fill_seconds", json!(round3(fill_seconds)));
    r.set(
        "client_cpu_us_per_msg",
        json!((cpu / messages.max(1) as f64 * 1e6).round()),
    );
    r.set(
        "state_bytes_written_per_msg",
        json!((state_bytes as f64 / messages.max(1) as f64).round()),
    );
    r.set("bare_mls_rs_us_per_msg", json!(round3(bare_us)));
    r.baseline("bare-mls-rs", Some(1e6 / bare_us.max(1e-9)));
    r.set(
        "baseline_note",
        json!("bare mls-rs encrypt + serialize + parse + decrypt of one application message, two members, no storage, no network (both sides; the backlog's client only decrypts)"),
    );
    r.set(
        "params",
        json!({"messages": messages, "size": ctx.opts.size}),
    );
    Ok(r.into_value())
}
