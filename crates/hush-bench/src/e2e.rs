//! `e2e`: real clients (`hush-client`: MLS through hush-proto, the encrypted
//! local store, the real transport) against a real server, 1:1 and in a
//! group; next to it, in the same run, the bare cost of an mls-rs
//! encrypt/decrypt round trip with no storage and no network.
//!
//! The generator process hosts every client and the server runs in its own
//! process, so this process's CPU time is the clients' CPU.
//!
//! Receivers are driven the way `hush chat` drives its client: syncs one
//! after the other, each listening for [`LISTEN`] after the queue is
//! drained, on the connection kept open between them (the server pushes
//! each message as it is stored). A message counts as arrived when its
//! `Event::Message` is emitted, that is once it is stored and acknowledged.
//! The sender sends one message at a time, waits until every recipient has
//! it, and takes in the receipts with one sync at the end (inside the
//! measured CPU).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use hush_client::{Client, ClientError, Event, Target};
use mls_rs::client_builder::{BaseConfig, WithCryptoProvider, WithIdentityProvider, WithMlsRules};
use mls_rs::group::ReceivedMessage;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
use mls_rs::{CipherSuiteProvider as _, CryptoProvider as _, ExtensionList, MlsMessage};
use mls_rs_crypto_awslc::AwsLcCryptoProvider;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::proc::{peak_rss_bytes, rss_bytes, self_cpu_seconds};
use crate::scenarios::Ctx;
use crate::stats::{Report, histogram, percentiles, round3};

const PASSPHRASE: &str = "hush-bench passphrase";

/// Runs the end-to-end scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let messages = ctx.pick(ctx.opts.messages, 200, 20);
    let group_size = ctx.pick(ctx.opts.devices, 100, 5).max(2);
    let group_messages: u64 = if ctx.opts.quick { 3 } else { 20 };
    let target = ctx.hush("e2e").await?;
    let url = target.urls.first().cloned().context("no server")?;
    let dir = ctx.scratch.path().join("e2e-clients");
    let prefix = ctx.prefix("e");
    let text = "x".repeat(ctx.opts.size.max(1));

    // 1:1. The first message sets up the chat (KeyPackage claim, commit,
    // welcome) and is not measured.
    let reg_start = Instant::now();
    let mut alice = register(&dir, &url, &format!("{prefix}a")).await?;
    let mut bob = register(&dir, &url, &format!("{prefix}b")).await?;
    let bob_name = bob.username().to_owned();
    let to_bob = Target::User(bob_name.clone());
    alice.send_text(&to_bob, "hello").await?;
    receive_one(&mut bob).await?;
    let cpu0 = self_cpu_seconds().unwrap_or(0.0);
    let (lat, _, tally) = converse(&mut alice, &to_bob, &text, messages, vec![&mut bob]).await?;
    let seconds = tally.seconds;
    let cpu = self_cpu_seconds().unwrap_or(0.0) - cpu0;
    let cpu_us_per_msg = cpu / messages.max(1) as f64 * 1e6;

    // Bare mls-rs, same payload size, same process, same run.
    let bare_us = bare_round_trip_us(ctx.opts.size.max(1), messages.max(200))?;

    let mut r = Report::new("e2e", messages, seconds, &lat);
    ctx.common(&mut r, Some(&target));
    r.set("lost", json!(tally.lost));
    r.set("duplicated", json!(tally.duplicated));
    r.set(
        "latency",
        json!("1:1, one message at a time: encrypt, store, send (durable), pushed to the listening recipient, decrypt, store, ack"),
    );
    r.set("client_cpu_us_per_msg", json!(cpu_us_per_msg.round()));
    r.set("bare_mls_rs_us_per_msg", json!(round3(bare_us)));
    r.baseline("bare-mls-rs", Some(1e6 / bare_us.max(1e-9)));
    r.set(
        "baseline_note",
        json!("bare mls-rs encrypt + serialize + parse + decrypt of one application message, two members, no storage, no network"),
    );

    // A group: creator plus members, everyone a real client.
    // Registered a few at a time: a big group has a thousand of them.
    let mut members: Vec<Client> = {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let (dir, url, prefix) = (&dir, &url, &prefix);
        futures_util::stream::iter(1..group_size)
            .map(|i| async move { register(dir, url, &format!("{prefix}g{i}")).await })
            .buffered(8)
            .try_collect()
            .await?
    };
    let register_seconds = reg_start.elapsed().as_secs_f64();
    progress(&format!(
        "{group_size} clients registered in {register_seconds:.1} s, generator at {} MB",
        self_rss_mb()
    ));
    let names: Vec<String> = members.iter().map(|m| m.username().to_owned()).collect();
    let group_start = Instant::now();
    let create_req0 = alice.transport().requests_made();
    alice.create_group("bench", &names).await?;
    let create_requests = alice.transport().requests_made() - create_req0;
    let create_seconds = group_start.elapsed().as_secs_f64();
    progress(&format!(
        "group of {group_size} created in {create_seconds:.1} s"
    ));
    // What joining costs: the generator's CPU and the joiners' HTTP
    // requests while every member syncs until it has joined.
    let join_cpu0 = self_cpu_seconds().unwrap_or(0.0);
    let join_req0: u64 = members.iter().map(|m| m.transport().requests_made()).sum();
    // Bytes of MLS state the members write (decisions 0018 and 0029).
    let state_bytes = |ms: &[Client]| ms.iter().map(Client::state_bytes_written).sum::<u64>();
    let state0 = state_bytes(&members);
    let join_start = Instant::now();
    let joined = std::sync::atomic::AtomicUsize::new(0);
    {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let joined = &joined;
        futures_util::stream::iter(members.iter_mut())
            .map(|m| async move {
                join(m, group_size).await?;
                let n = joined.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(100) {
                    progress(&format!(
                        "{n} joined after {:.1} s, generator at {} MB",
                        join_start.elapsed().as_secs_f64(),
                        self_rss_mb()
                    ));
                }
                anyhow::Ok(())
            })
            .buffer_unordered(JOINING_AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
    }
    let join_seconds = join_start.elapsed().as_secs_f64();
    let joiners = members.len().max(1) as f64;
    let join_cpu_ms = (self_cpu_seconds().unwrap_or(0.0) - join_cpu0) / joiners * 1e3;
    let join_requests = (members
        .iter()
        .map(|m| m.transport().requests_made())
        .sum::<u64>()
        - join_req0) as f64
        / joiners;
    let setup_seconds = group_start.elapsed().as_secs_f64();
    progress(&format!(
        "everyone joined {setup_seconds:.1} s after the start of the creation, generator at {} MB",
        self_rss_mb()
    ));
    let joined_rss_mb = self_rss_mb();
    let state_joined = state_bytes(&members);
    let group = Target::Group("bench".to_owned());
    // Settling: the creator takes in the joiners' self-updates, and one
    // message (not measured) reaches everyone, so that every member has
    // handled the commits queued before it.
    let settle_start = Instant::now();
    alice.sync(Duration::ZERO, |_| {}).await?;
    let recipients: Vec<&mut Client> = members.iter_mut().collect();
    converse(&mut alice, &group, &text, 1, recipients).await?;
    let settle_seconds = settle_start.elapsed().as_secs_f64();
    let state_settled = state_bytes(&members);
    progress(&format!(
        "the group settled in {settle_seconds:.1} s, generator at {} MB",
        self_rss_mb()
    ));
    let cpu0 = self_cpu_seconds().unwrap_or(0.0);
    let recipients: Vec<&mut Client> = members.iter_mut().collect();
    let (last, send, gtally) =
        converse(&mut alice, &group, &text, group_messages, recipients).await?;
    let gseconds = gtally.seconds;
    let gcpu = self_cpu_seconds().unwrap_or(0.0) - cpu0;
    let state_end = state_bytes(&members);
    let per_member = |d: u64| d / members.len().max(1) as u64;
    let deliveries = group_messages * (group_size as u64 - 1);
    let (l50, l99, _) = percentiles(&last);
    let (s50, s99, _) = percentiles(&send);
    r.set(
        "group",
        json!({
            "size": group_size,
            "messages": group_messages,
            "seconds": round3(gseconds),
            "listen_ms": LISTEN.as_millis() as u64,
            "msgs_per_sec": round3(group_messages as f64 / gseconds.max(1e-9)),
            "deliveries_per_sec": (deliveries as f64 / gseconds.max(1e-9)).round(),
            "send_p50_ms": s50, "send_p99_ms": s99,
            "last_recipient_p50_ms": l50, "last_recipient_p99_ms": l99,
            "client_cpu_us_per_delivery": (gcpu / deliveries.max(1) as f64 * 1e6).round(),
            "setup_seconds": round3(setup_seconds),
            "create_seconds": round3(create_seconds),
            "create_requests": create_requests,
            "join_seconds": round3(join_seconds),
            "join_client_cpu_ms_per_member": round3(join_cpu_ms),
            "join_requests_per_member": round3(join_requests),
            "settle_seconds": round3(settle_seconds),
            "state_bytes_per_member_join": per_member(state_joined - state0),
            "state_bytes_per_member_settle": per_member(state_settled - state_joined),
            "state_bytes_per_delivery": (state_end - state_settled) / deliveries.max(1),
            "generator_rss_mb_joined": joined_rss_mb,
            "generator_rss_mb_end": self_rss_mb(),
            "generator_peak_rss_mb": self_peak_rss_mb(),
            "lost": gtally.lost,
            "duplicated": gtally.duplicated,
            "sync_retries": SYNC_RETRIES.load(Ordering::Relaxed),
        }),
    );
    r.set("register_seconds", json!(round3(register_seconds)));
    r.set(
        "params",
        json!({"messages": messages, "size": ctx.opts.size, "group": group_size, "listen_ms": LISTEN.as_millis() as u64}),
    );
    Ok(r.into_value())
}

/// How many members sync towards their join at once. The generator's one
/// core does the work either way; a bound keeps the joins' transient memory
/// (the tree blob, the directory answer for every member, the state being
/// written) from being held by every member at the same time.
const JOINING_AT_ONCE: usize = 16;

/// Syncs `m` until it has joined the group.
async fn join(m: &mut Client, group_size: usize) -> anyhow::Result<()> {
    // A big group's joiners fetch and check its tree, and vet every
    // member with the key directory: allow for it.
    let limit = 60 + group_size as u64 / 2;
    let deadline = Instant::now() + Duration::from_secs(limit);
    // Seen through the callback: a sync that failed after the Welcome was
    // stored has emitted its `Joined`, and the one run again does not.
    let mut joined = false;
    loop {
        sync_retrying(m, Duration::ZERO, |e| {
            joined |= matches!(e, Event::Joined { .. });
        })
        .await?;
        if joined {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not join the group within {limit} s", m.username());
        }
    }
}

/// This process's resident memory in MB.
fn self_rss_mb() -> u64 {
    rss_bytes(std::process::id()).unwrap_or(0) >> 20
}

/// This process's peak resident memory in MB.
fn self_peak_rss_mb() -> u64 {
    peak_rss_bytes(std::process::id()).unwrap_or(0) >> 20
}

async fn register(dir: &std::path::Path, url: &str, name: &str) -> anyhow::Result<Client> {
    Client::register(&dir.join(name), PASSPHRASE, url, name, None)
        .await
        .with_context(|| format!("registering {name}"))
}

/// What a big group's run has done so far, on stderr (the JSON is on stdout).
fn progress(what: &str) {
    eprintln!("hush-bench e2e: {what}");
}

/// Syncs until one new message arrives.
async fn receive_one(c: &mut Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut got = false;
    loop {
        sync_retrying(c, Duration::ZERO, |e| got |= matches!(e, Event::Message(_))).await?;
        if got {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} got no message within 300 s", c.username());
        }
    }
}

/// How long each sync of a receiving client listens once its queue is
/// drained: `hush chat`'s wait between syncs.
const LISTEN: Duration = Duration::from_millis(800);

/// From how many recipients each group message's arrival is shown.
const PROGRESS_FROM: usize = 200;

/// How long the sender waits for a message to reach everyone.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(300);

/// Messages that did not arrive, arrivals beyond the first, and the
/// seconds from the first send until the last message reached everyone.
#[derive(Debug, Default)]
struct Tally {
    lost: u64,
    duplicated: u64,
    seconds: f64,
}

/// `sender` sends `count` messages to `to`, one at a time, each once the
/// previous one reached every one of `recipients`, who listen meanwhile as
/// `hush chat` does; then the sender syncs once to take in their receipts.
/// Returns the latency to the last recipient and the send latency (us),
/// and what was lost or duplicated.
async fn converse(
    sender: &mut Client,
    to: &Target,
    text: &str,
    count: u64,
    recipients: Vec<&mut Client>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Tally)> {
    let n = recipients.len();
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let listeners = futures_util::future::try_join_all(
        recipients
            .into_iter()
            .enumerate()
            .map(|(i, c)| listen(c, i, arrived.clone(), &stop)),
    );
    let sending = async {
        let sent = send_each(sender, to, text, count, n, &mut arrivals).await;
        stop.store(true, Ordering::Relaxed);
        let seconds = start.elapsed().as_secs_f64();
        let (last, send, ids) = sent?;
        sender.sync(Duration::ZERO, |_| {}).await?;
        anyhow::Ok((last, send, ids, seconds))
    };
    let (seen, (last, send, ids, seconds)) = tokio::try_join!(listeners, sending)?;
    let mut tally = Tally {
        seconds,
        ..Tally::default()
    };
    for per_recipient in &seen {
        for id in &ids {
            match per_recipient.get(id).copied().unwrap_or(0) {
                0 => tally.lost += 1,
                k => tally.duplicated += u64::from(k - 1),
            }
        }
    }
    Ok((last, send, tally))
}

/// The sending side of [`converse`]: the ids sent.
async fn send_each(
    sender: &mut Client,
    to: &Target,
    text: &str,
    count: u64,
    recipients: usize,
    arrivals: &mut mpsc::UnboundedReceiver<(usize, String)>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Vec<String>)> {
    let (mut last, mut send) = (histogram()?, histogram()?);
    let mut ids = Vec::new();
    // Before a big group's first message, every member takes in the
    // commits of the joins (self-updates), on the generator's one core:
    // allow for it.
    let limit = ARRIVAL_LIMIT + Duration::from_secs(3 * recipients as u64);
    let us = |t: Instant| {
        u64::try_from(t.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    };
    for _ in 0..count {
        let t = Instant::now();
        let m = sender.send_text(to, text).await?;
        let _ = send.record(us(t));
        let mut got = HashSet::new();
        while got.len() < recipients {
            match tokio::time::timeout(limit, arrivals.recv()).await {
                Ok(Some((who, id))) if id == m.id => {
                    got.insert(who);
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("every recipient stopped listening"),
                Err(_) => bail!(
                    "message {} reached {} of {recipients} within {} s",
                    m.id,
                    got.len(),
                    limit.as_secs()
                ),
            }
        }
        let _ = last.record(us(t));
        ids.push(m.id);
        if recipients >= PROGRESS_FROM {
            progress(&format!(
                "message {} of {count} reached all {recipients} in {:.1} s",
                ids.len(),
                t.elapsed().as_secs_f64()
            ));
        }
    }
    Ok((last, send, ids))
}

/// Runs `c`'s syncs as `hush chat` does until `stop`, reporting each
/// message's arrival; returns how often each message id arrived.
async fn listen(
    c: &mut Client,
    who: usize,
    arrived: mpsc::UnboundedSender<(usize, String)>,
    stop: &AtomicBool,
) -> anyhow::Result<HashMap<String, u32>> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        sync_retrying(c, LISTEN, |ev| {
            if let Event::Message(m) = ev {
                *seen.entry(m.id.clone()).or_default() += 1;
                let _ = arrived.send((who, m.id.clone()));
            }
        })
        .await?;
    }
    Ok(seen)
}

/// Syncs that failed on the network and were run again, over the run.
static SYNC_RETRIES: AtomicU64 = AtomicU64::new(0);

/// How often one sync is tried again after a network error.
const SYNC_TRIES: u32 = 5;

/// `c.sync(wait, on_event)`, run again after a network error (a dropped or
/// silent connection) up to [`SYNC_TRIES`] times, as `hush chat` runs its
/// next sync: what the failed one did not acknowledge is sent again, and
/// what it did is not handled twice. Counted in `sync_retries`.
async fn sync_retrying(
    c: &mut Client,
    wait: Duration,
    mut on_event: impl FnMut(&Event) + Send,
) -> anyhow::Result<Vec<Event>> {
    let mut tries = 0;
    loop {
        match c.sync(wait, &mut on_event).await {
            Err(ClientError::Network(e)) if tries + 1 < SYNC_TRIES => {
                tries += 1;
                let n = SYNC_RETRIES.fetch_add(1, Ordering::Relaxed) + 1;
                progress(&format!(
                    "{}: sync failed ({e}); trying again ({n} so far)",
                    c.username()
                ));
            }
            other => return Ok(other?),
        }
    }
}

type BareConfig = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<AwsLcCryptoProvider, WithMlsRules<DefaultMlsRules, BaseConfig>>,
>;

fn bare_client(name: &str) -> anyhow::Result<mls_rs::Client<BareConfig>> {
    let suite = hush_proto::Suite::Classical.cipher_suite();
    let crypto = AwsLcCryptoProvider::with_enabled_cipher_suites(vec![suite]);
    let (secret, public) = crypto
        .cipher_suite_provider(suite)
        .context("cipher suite")?
        .signature_key_generate()
        .map_err(|e| anyhow::anyhow!("signature key: {e:?}"))?;
    let identity = SigningIdentity::new(
        BasicCredential::new(name.as_bytes().to_vec()).into_credential(),
        public,
    );
    Ok(mls_rs::Client::builder()
        .mls_rules(
            DefaultMlsRules::new()
                .with_commit_options(CommitOptions::new().with_ratchet_tree_extension(true)),
        )
        .crypto_provider(crypto)
        .identity_provider(BasicIdentityProvider::new())
        .signing_identity(identity, secret, suite)
        .build())
}

/// Microseconds per bare mls-rs round trip of a `size`-byte message.
pub(crate) fn bare_round_trip_us(size: usize, rounds: u64) -> anyhow::Result<f64> {
    let alice = bare_client("alice")?;
    let bob = bare_client("bob")?;
    let kp = bob.generate_key_package_message(ExtensionList::new(), ExtensionList::new(), None)?;
    let mut a = alice.create_group(ExtensionList::new(), ExtensionList::new(), None)?;
    let out = a.commit_builder().add_member(kp)?.build()?;
    a.apply_pending_commit()?;
    let welcome = out.welcome_messages.first().context("no welcome")?;
    let (mut b, _) = bob.join_group(None, welcome, None)?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    for _ in 0..rounds {
        let m = a.encrypt_application_message(&payload, Vec::new())?;
        let m = MlsMessage::from_bytes(&m.to_bytes()?)?;
        match b.process_incoming_message(m)? {
            ReceivedMessage::ApplicationMessage(_) => {}
            other => bail!("bare mls-rs: expected an application message, got {other:?}"),
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / rounds.max(1) as f64)
}
