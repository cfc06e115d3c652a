//! hush-proto against bare mls-rs doing the same MLS operations, in one run.
//!
//! Every benchmark group has three entries:
//!
//! - `ours`: the [`hush_proto`] API, state persistence and franking included;
//!   the journalled state changes are drained after each call, as a client does.
//! - `bare`: mls-rs with the same crypto provider, ciphersuite, commit and
//!   encryption options, a `BasicCredential` and mls-rs's default in-memory
//!   storage, never written to.
//! - `bare+storage`: the same, calling `Group::write_to_storage` after every
//!   state change, as a client of bare mls-rs must to survive a restart.
//!
//! `message-batch` groups time one message of a batch of 50 as clients
//! handle a sync batch (decision 0018): `ours` seals with
//! `encrypt_in_batch`, opens with `process_in_batch` and writes each side's
//! state once per batch; `bare+storage` writes once per batch too.
//!
//! Messages cross the "wire" as bytes on both sides. Groups are built once per
//! (suite, size): a committer, one receiver that joined from the Welcome, and
//! throwaway members that are only leaves in the tree.
//!
//! After each Criterion group, the same entries also run interleaved and print
//! an `interleaved ...` line with medians and paired ratios (see
//! [`interleaved`]): on a shared machine these ratios are the ones to quote.
//!
//! Run with `cargo bench -p hush-proto --bench mls`.

// A bench is a test harness: a failed step must stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use hush_proto::crypto::HushCryptoProvider;
use hush_proto::{
    AccountKey, Body, Content, Conversation, ConversationInfo, Device, DeviceCertificate, DeviceId,
    DeviceSigningKey, Incoming, MessageId, Suite, Timestamp, Username,
};
use mls_rs::client_builder::{
    BaseConfig, PaddingMode, WithCryptoProvider, WithIdentityProvider, WithMlsRules,
};
use mls_rs::group::ReceivedMessage;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules, EncryptionOptions};
use mls_rs::time::MlsTime;
use mls_rs::{CipherSuiteProvider, Client, CryptoProvider, ExtensionList, Group, MlsMessage};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: Timestamp = Timestamp::from_millis(1_750_000_000_000);
const MESSAGE_LEN: usize = 100;

fn mls_now() -> MlsTime {
    MlsTime::from_duration_since_epoch(Duration::from_millis(NOW.as_millis()))
}

/// One MLS operation pair driven the same way for both implementations: the
/// committer/sender is "a", the receiver is "b".
trait Pair {
    /// "a" encrypts a 100-byte message and "b" opens it.
    fn round_trip(&mut self);
    /// `n` round trips as clients do them in a batch: "a" seals `n` messages
    /// and writes its state once, "b" opens them and writes its state once.
    fn round_trip_batch(&mut self, n: usize);
    /// "a" builds a self-update commit (kept pending); returns its bytes.
    fn create_commit(&mut self) -> Vec<u8>;
    /// "a" applies its pending commit.
    fn confirm_commit(&mut self);
    /// "b" processes the commit.
    fn process_commit(&mut self, commit: &[u8]);
}

// ---------------------------------------------------------------- hush-proto

struct Ours {
    alice: Device,
    bob: Device,
    a: Conversation,
    b: Conversation,
    rng: ChaCha20Rng,
    content: Content,
}

fn hush_device(name: &str, rng: &mut ChaCha20Rng) -> Device {
    let account = AccountKey::generate(rng).unwrap();
    let key = DeviceSigningKey::generate(rng).unwrap();
    let user = Username::new(name).unwrap();
    let cert =
        DeviceCertificate::issue(&account, &user, DeviceId(1), &key, NOW.as_millis()).unwrap();
    Device::new(cert, &key).unwrap()
}

impl Ours {
    /// A conversation of `n` devices where alice and bob take part.
    fn new(suite: Suite, n: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
        let alice = hush_device("alice", &mut rng);
        let bob = hush_device("bob", &mut rng);
        let mut key_packages = vec![bob.generate_key_package(suite, false, NOW).unwrap().message];
        for i in 2..n {
            let other = hush_device(&format!("member{i:04}"), &mut rng);
            key_packages.push(
                other
                    .generate_key_package(suite, false, NOW)
                    .unwrap()
                    .message,
            );
        }
        let (a, commit) = alice
            .create_conversation(suite, &ConversationInfo::group("bench"), &key_packages, NOW)
            .unwrap();
        let welcome = commit.and_then(|c| c.welcome).unwrap();
        let b = bob.join(&welcome, NOW).unwrap();
        assert_eq!(a.members().len(), n);
        assert_eq!(b.epoch(), a.epoch());
        alice.take_changes();
        bob.take_changes();
        let content = Content {
            id: MessageId::generate(&mut rng),
            sent_at_ms: NOW.as_millis(),
            expire_timer_secs: None,
            kt_checkpoint: None,
            meta: Default::default(),
            body: Body::Text {
                text: "x".repeat(MESSAGE_LEN),
                reply_to: None,
            },
        };
        Self {
            alice,
            bob,
            a,
            b,
            rng,
            content,
        }
    }
}

impl Pair for Ours {
    fn round_trip(&mut self) {
        let out = self.a.encrypt(&self.content, &mut self.rng).unwrap();
        black_box(self.alice.take_changes());
        match self.b.process(&out.message, NOW).unwrap() {
            Incoming::Message(m) => {
                black_box(m);
            }
            other => panic!("expected a message, got {other:?}"),
        }
        black_box(self.bob.take_changes());
    }

    fn round_trip_batch(&mut self, n: usize) {
        let sealed: Vec<_> = (0..n)
            .map(|_| {
                self.a
                    .encrypt_in_batch(&self.content, &mut self.rng)
                    .unwrap()
                    .message
            })
            .collect();
        self.a.flush().unwrap();
        black_box(self.alice.take_changes());
        for m in &sealed {
            match self.b.process_in_batch(m, NOW).unwrap() {
                Incoming::Message(m) => {
                    black_box(m);
                }
                other => panic!("expected a message, got {other:?}"),
            }
        }
        self.b.flush().unwrap();
        black_box(self.bob.take_changes());
    }

    fn create_commit(&mut self) -> Vec<u8> {
        let pending = self.a.self_update(NOW).unwrap();
        black_box(self.alice.take_changes());
        pending.commit
    }

    fn confirm_commit(&mut self) {
        black_box(self.a.confirm_commit().unwrap());
        black_box(self.alice.take_changes());
    }

    fn process_commit(&mut self, commit: &[u8]) {
        match self.b.process(commit, NOW).unwrap() {
            Incoming::Commit(c) => {
                black_box(c);
            }
            other => panic!("expected a commit, got {other:?}"),
        }
        black_box(self.bob.take_changes());
    }
}

// ---------------------------------------------------------------- bare mls-rs

type BareConfig = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<HushCryptoProvider, WithMlsRules<DefaultMlsRules, BaseConfig>>,
>;

/// The commit and encryption options of `hush_proto::device`.
fn bare_rules() -> DefaultMlsRules {
    DefaultMlsRules::new()
        .with_commit_options(
            CommitOptions::new()
                .with_path_required(true)
                .with_ratchet_tree_extension(true)
                .with_single_welcome_message(true),
        )
        .with_encryption_options(EncryptionOptions::new(true, PaddingMode::StepFunction))
}

/// The provider Hush configures (aws-lc, with X-Wing for 0x004D): the
/// comparison measures Hush's layers, not two crypto providers.
fn crypto() -> HushCryptoProvider {
    HushCryptoProvider
}

fn bare_client(suite: Suite, name: &str) -> Client<BareConfig> {
    let crypto = crypto();
    let (secret, public) = crypto
        .cipher_suite_provider(suite.cipher_suite())
        .unwrap()
        .signature_key_generate()
        .unwrap();
    let identity = SigningIdentity::new(
        BasicCredential::new(name.as_bytes().to_vec()).into_credential(),
        public,
    );
    Client::builder()
        .mls_rules(bare_rules())
        .crypto_provider(crypto)
        .identity_provider(BasicIdentityProvider::new())
        .signing_identity(identity, secret, suite.cipher_suite())
        .build()
}

struct Bare {
    a: Group<BareConfig>,
    b: Group<BareConfig>,
    /// Call `write_to_storage` after every state change.
    persist: bool,
    payload: Vec<u8>,
}

impl Bare {
    fn new(suite: Suite, n: usize) -> Self {
        let alice = bare_client(suite, "alice");
        let bob = bare_client(suite, "bob");
        let key_package = |client: &Client<BareConfig>| {
            client
                .generate_key_package_message(
                    ExtensionList::new(),
                    ExtensionList::new(),
                    Some(mls_now()),
                )
                .unwrap()
        };
        let mut a = alice
            .create_group(ExtensionList::new(), ExtensionList::new(), Some(mls_now()))
            .unwrap();
        let mut builder = a
            .commit_builder()
            .commit_time(mls_now())
            .add_member(key_package(&bob))
            .unwrap();
        for i in 2..n {
            let other = bare_client(suite, &format!("member{i:04}"));
            builder = builder.add_member(key_package(&other)).unwrap();
        }
        let out = builder.build().unwrap();
        a.apply_pending_commit().unwrap();
        let (b, _) = bob
            .join_group(None, &out.welcome_messages[0], Some(mls_now()))
            .unwrap();
        assert_eq!(a.roster().members_iter().count(), n);
        assert_eq!(b.current_epoch(), a.current_epoch());
        Self {
            a,
            b,
            persist: false,
            payload: vec![b'x'; MESSAGE_LEN],
        }
    }
}

impl Pair for Bare {
    fn round_trip(&mut self) {
        let message = self
            .a
            .encrypt_application_message(&self.payload, Vec::new())
            .unwrap();
        if self.persist {
            self.a.write_to_storage().unwrap();
        }
        let bytes = message.to_bytes().unwrap();
        let message = MlsMessage::from_bytes(&bytes).unwrap();
        match self
            .b
            .process_incoming_message_with_time(message, mls_now())
            .unwrap()
        {
            ReceivedMessage::ApplicationMessage(m) => {
                black_box(m);
            }
            other => panic!("expected a message, got {other:?}"),
        }
        if self.persist {
            self.b.write_to_storage().unwrap();
        }
    }

    fn round_trip_batch(&mut self, n: usize) {
        let persist = std::mem::replace(&mut self.persist, false);
        for _ in 0..n {
            self.round_trip();
        }
        self.persist = persist;
        if persist {
            self.a.write_to_storage().unwrap();
            self.b.write_to_storage().unwrap();
        }
    }

    fn create_commit(&mut self) -> Vec<u8> {
        let out = self
            .a
            .commit_builder()
            .commit_time(mls_now())
            .build()
            .unwrap();
        if self.persist {
            self.a.write_to_storage().unwrap();
        }
        out.commit_message().to_bytes().unwrap()
    }

    fn confirm_commit(&mut self) {
        black_box(self.a.apply_pending_commit().unwrap());
        if self.persist {
            self.a.write_to_storage().unwrap();
        }
    }

    fn process_commit(&mut self, commit: &[u8]) {
        let message = MlsMessage::from_bytes(commit).unwrap();
        match self
            .b
            .process_incoming_message_with_time(message, mls_now())
            .unwrap()
        {
            ReceivedMessage::Commit(c) => {
                black_box(c);
            }
            other => panic!("expected a commit, got {other:?}"),
        }
        if self.persist {
            self.b.write_to_storage().unwrap();
        }
    }
}

// ---------------------------------------------------------------- benchmarks

/// Times building plus applying a commit; the receiver processes it untimed,
/// so both members stay at the same epoch.
fn time_create(pair: &mut dyn Pair, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let commit = pair.create_commit();
        total += start.elapsed();
        pair.process_commit(&commit);
        let start = Instant::now();
        pair.confirm_commit();
        total += start.elapsed();
    }
    total
}

/// Times processing a commit; building and applying it are untimed.
fn time_process(pair: &mut dyn Pair, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let commit = pair.create_commit();
        let start = Instant::now();
        pair.process_commit(&commit);
        total += start.elapsed();
        pair.confirm_commit();
    }
    total
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    group.sample_size(10);
    if n >= 1000 {
        group
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5));
    } else {
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
}

/// One timed iteration of an operation on a pair.
type Op = fn(&mut dyn Pair) -> Duration;

fn op_round_trip(pair: &mut dyn Pair) -> Duration {
    let start = Instant::now();
    pair.round_trip();
    start.elapsed()
}

/// Messages per batch in the `message-batch` groups.
const BATCH: usize = 50;

/// Per message, `BATCH` round trips with one state write per side.
fn op_batch(pair: &mut dyn Pair) -> Duration {
    let start = Instant::now();
    pair.round_trip_batch(BATCH);
    start.elapsed() / BATCH as u32
}

fn op_create(pair: &mut dyn Pair) -> Duration {
    time_create(pair, 1)
}

fn op_process(pair: &mut dyn Pair) -> Duration {
    time_process(pair, 1)
}

/// The three entries of a group, run on the same two fixtures, then the same
/// three interleaved.
fn three_ways(c: &mut Criterion, name: String, n: usize, ours: &mut Ours, bare: &mut Bare, op: Op) {
    let mut group = c.benchmark_group(&name);
    configure(&mut group, n);
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| op(ours)).sum())
    });
    bare.persist = false;
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| op(bare)).sum())
    });
    bare.persist = true;
    group.bench_function("bare+storage", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| op(bare)).sum())
    });
    bare.persist = false;
    group.finish();

    interleaved(
        &name,
        &["ours", "bare", "bare+storage"],
        n,
        |which| match which {
            0 => op(ours),
            1 => {
                bare.persist = false;
                op(bare)
            }
            _ => {
                bare.persist = true;
                let t = op(bare);
                bare.persist = false;
                t
            }
        },
    );
}

/// Criterion measures one entry after the other, so load from other processes
/// on a shared machine can favour either side. This pass alternates the
/// entries iteration by iteration (rotating which goes first) and prints the
/// median time of each and the median of the per-round ratios to the second
/// entry (bare), with their interquartile range: both sides of a ratio ran
/// back to back, under the same load.
fn interleaved(name: &str, labels: &[&str], n: usize, mut run: impl FnMut(usize) -> Duration) {
    if !interleave_enabled(name) {
        return;
    }
    let (budget, min_rounds) = if n >= 1000 {
        (Duration::from_secs(10), 15)
    } else {
        (Duration::from_secs(3), 30)
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); labels.len()];
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < min_rounds || (start.elapsed() < budget && rounds < 100_000) {
        for k in 0..labels.len() {
            let which = (rounds + k) % labels.len();
            times[which].push(run(which).as_secs_f64());
        }
        rounds += 1;
    }
    let quartiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        [v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4]]
    };
    let mut entries = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let [_, median, _] = quartiles(times[i].clone());
        let mut entry = format!("{label} {:.1} us", median * 1e6);
        if i != 1 {
            let ratios = times[i].iter().zip(&times[1]).map(|(a, b)| a / b).collect();
            let [q1, q2, q3] = quartiles(ratios);
            entry.push_str(&format!(" ({q2:.2}x bare, IQR {q1:.2}-{q3:.2})"));
        }
        entries.push(entry);
    }
    println!(
        "interleaved {name}: {} | {rounds} rounds",
        entries.join(" | ")
    );
}

/// The interleaved pass runs under `cargo bench`, not under `--test`,
/// `--list` or `--profile-time`, and honours a plain substring filter or an
/// alternation of them.
fn interleave_enabled(name: &str) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--output-format",
        "--color",
        "--format",
        "--plotting-backend",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench")
        || args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"))
    {
        return false;
    }
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in &args {
        if skip_value {
            skip_value = false;
        } else if arg.starts_with('-') {
            skip_value = WITH_VALUE.contains(&arg.as_str());
        } else {
            filters.push(arg.as_str());
        }
    }
    // Criterion's filter is a regular expression; a plain alternation of
    // substrings (`key-package|message/`) is honoured here too.
    filters
        .iter()
        .all(|f| f.split('|').any(|alt| name.contains(alt)))
}

/// Group sizes to build: `HUSH_BENCH_SIZES=2,100` for a quicker run
/// (building a group of 1000 takes a while); all of 2, 100, 1000 by default.
fn sizes() -> Vec<usize> {
    std::env::var("HUSH_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![2, 100, 1000])
}

fn groups(c: &mut Criterion) {
    for suite in [Suite::Hybrid, Suite::Classical] {
        for n in sizes() {
            let mut ours = Ours::new(suite, n);
            let mut bare = Bare::new(suite, n);
            let s = suite.name();
            if n != 100 {
                let name = format!("message/{s}/{n}");
                three_ways(c, name, n, &mut ours, &mut bare, op_round_trip);
                let name = format!("message-batch/{s}/{n}");
                three_ways(c, name, n, &mut ours, &mut bare, op_batch);
            }
            let name = format!("commit-create/{s}/{n}");
            three_ways(c, name, n, &mut ours, &mut bare, op_create);
            let name = format!("commit-process/{s}/{n}");
            three_ways(c, name, n, &mut ours, &mut bare, op_process);
            // Both sides must still agree after everything above.
            assert_eq!(ours.a.epoch(), ours.b.epoch());
            assert_eq!(bare.a.current_epoch(), bare.b.current_epoch());
        }
    }
}

fn key_packages(c: &mut Criterion) {
    for suite in [Suite::Hybrid, Suite::Classical] {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let device = hush_device("alice", &mut rng);
        let client = bare_client(suite, "alice");
        let ours = || {
            black_box(device.generate_key_package(suite, false, NOW).unwrap());
            black_box(device.take_changes());
        };
        let bare = || {
            let message = client
                .generate_key_package_message(
                    ExtensionList::new(),
                    ExtensionList::new(),
                    Some(mls_now()),
                )
                .unwrap();
            black_box(message.to_bytes().unwrap());
        };
        let name = format!("key-package/{}", suite.name());
        let mut group = c.benchmark_group(&name);
        configure(&mut group, 2);
        group.bench_function("ours", |b| b.iter(ours));
        group.bench_function("bare", |b| b.iter(bare));
        group.finish();
        interleaved(&name, &["ours", "bare"], 2, |which| {
            let start = Instant::now();
            if which == 0 {
                ours()
            } else {
                bare()
            }
            start.elapsed()
        });
    }
}

/// Joining a two-device conversation from its Welcome, per suite; a fresh
/// Welcome per iteration, made outside the timing. `ours`: `Device::join`,
/// state written; `bare`: mls-rs `Client::join_group` with the same provider
/// (and `bare+storage`: then `write_to_storage`).
fn welcomes(c: &mut Criterion) {
    for suite in [Suite::Hybrid, Suite::Classical] {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let alice = hush_device("alice", &mut rng);
        let bob = hush_device("bob", &mut rng);
        let welcome = || {
            let kp = bob.generate_key_package(suite, false, NOW).unwrap().message;
            let (_, commit) = alice
                .create_conversation(suite, &ConversationInfo::group("bench"), &[kp], NOW)
                .unwrap();
            alice.take_changes();
            bob.take_changes();
            commit.and_then(|c| c.welcome).unwrap()
        };
        let ours = || {
            let w = welcome();
            let start = Instant::now();
            black_box(bob.join(&w, NOW).unwrap());
            black_box(bob.take_changes());
            start.elapsed()
        };
        let bare_alice = bare_client(suite, "alice");
        let bare_bob = bare_client(suite, "bob");
        let bare = |persist: bool| {
            let kp = bare_bob
                .generate_key_package_message(
                    ExtensionList::new(),
                    ExtensionList::new(),
                    Some(mls_now()),
                )
                .unwrap();
            let mut group = bare_alice
                .create_group(ExtensionList::new(), ExtensionList::new(), Some(mls_now()))
                .unwrap();
            let out = group
                .commit_builder()
                .commit_time(mls_now())
                .add_member(kp)
                .unwrap()
                .build()
                .unwrap();
            let bytes = out.welcome_messages[0].to_bytes().unwrap();
            let start = Instant::now();
            let w = MlsMessage::from_bytes(&bytes).unwrap();
            let (mut joined, _) = bare_bob.join_group(None, &w, Some(mls_now())).unwrap();
            if persist {
                joined.write_to_storage().unwrap();
            }
            black_box(joined);
            start.elapsed()
        };
        let name = format!("welcome-process/{}", suite.name());
        let mut group = c.benchmark_group(&name);
        configure(&mut group, 2);
        group.bench_function("ours", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| ours()).sum())
        });
        group.bench_function("bare", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bare(false)).sum())
        });
        group.bench_function("bare+storage", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bare(true)).sum())
        });
        group.finish();
        interleaved(
            &name,
            &["ours", "bare", "bare+storage"],
            2,
            |which| match which {
                0 => ours(),
                1 => bare(false),
                _ => bare(true),
            },
        );
    }
}

criterion_group!(benches, key_packages, welcomes, groups);
criterion_main!(benches);
