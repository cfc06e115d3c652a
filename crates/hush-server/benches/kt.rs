//! Key transparency on the server's SQLite store against akd's in-memory
//! database, in one run.
//!
//! Entries:
//!
//! - `mem`: akd's `AsyncInMemoryDatabase` (the baseline);
//! - `sqlite`: [`KtDatabase`] on [`SqliteStore`] (a file in a temporary
//!   directory, WAL, `synchronous = FULL`), behind akd's caching
//!   `StorageManager::new` as the server runs it;
//! - `sqlite-nocache`: the same database behind `StorageManager::new_no_cache`,
//!   so every read goes to SQLite (a cold directory, e.g. just restarted).
//!
//! For each size N (`HUSH_BENCH_SIZES`, default 10000; `10000,100000` for the
//! large run) the directories first get N new accounts in one epoch, then
//! publish rounds of N changed accounts (every account gets a new value),
//! `mem` and `sqlite` alternating round by round (5 rounds; 1 at 100k); each
//! publish is timed and the medians and per-round ratios to `mem` are printed
//! as `publish ...` lines. Then one more publish by a fresh directory on the
//! SQLite database (akd's cache empty, as after a restart).
//! Criterion then measures, on the resulting directories, lookup-proof
//! generation, key-history-proof generation and both verifications.
//!
//! Run with `cargo bench -p hush-server --bench kt`.

// A bench is a test harness: a failed step must stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use akd::append_only_zks::AzksParallelismConfig;
use akd::directory::Directory;
use akd::ecvrf::HardCodedAkdVRF;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::storage::{Database, StorageManager};
use akd::{AkdLabel, AkdValue, HistoryParams, HistoryVerificationParams};
use criterion::{Criterion, criterion_group, criterion_main};
use hush_server::kt::storage::KtDatabase;
use hush_server::store::sqlite::SqliteStore;
use tokio::runtime::Runtime;

/// The configuration the server runs (`hush_proto::kt`).
type Config = hush_proto::kt::KtConfiguration;
type Dir<S> = Directory<Config, S, HardCodedAkdVRF>;

/// Directory sizes: `HUSH_BENCH_SIZES=10000,100000` adds the large run.
fn sizes() -> Vec<usize> {
    std::env::var("HUSH_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![10_000])
}

async fn directory<S: Database + 'static>(storage: StorageManager<S>) -> Dir<S> {
    Directory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default())
        .await
        .unwrap()
}

fn label(i: usize) -> AkdLabel {
    AkdLabel::from(format!("user{i:07}").as_str())
}

/// Every account's value at `round`: about the size of a real entry (an
/// account key, two device keys and their KeyPackage-signing keys).
fn updates(n: usize, round: usize) -> Vec<(AkdLabel, AkdValue)> {
    (0..n)
        .map(|i| {
            let mut v = vec![0u8; 200];
            v[..8].copy_from_slice(&(i as u64).to_be_bytes());
            v[8..16].copy_from_slice(&(round as u64).to_be_bytes());
            (label(i), AkdValue(v))
        })
        .collect()
}

struct Setup {
    n: usize,
    _tmp: tempfile::TempDir,
    mem: Dir<AsyncInMemoryDatabase>,
    sqlite: Dir<KtDatabase>,
    nocache: Dir<KtDatabase>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn line(what: &str, labels: &[&str], times: &[Vec<f64>]) {
    let mut entries = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let mut e = format!("{l} {:.3} s", median(times[i].clone()));
        if i != 0 {
            let ratios = times[i].iter().zip(&times[0]).map(|(a, b)| a / b).collect();
            e.push_str(&format!(" ({:.2}x mem)", median(ratios)));
        }
        entries.push(e);
    }
    println!(
        "publish {what}: {} | {} rounds",
        entries.join(" | "),
        times[0].len()
    );
}

fn setup(rt: &Runtime, n: usize) -> Setup {
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&tmp.path().join("hush.db")).unwrap());
        let db = KtDatabase::new(store);
        let mem = directory(StorageManager::new(
            AsyncInMemoryDatabase::new(),
            None,
            None,
            None,
        ))
        .await;
        let sqlite = directory(StorageManager::new(db.clone(), None, None, None)).await;
        let labels = ["mem", "sqlite"];

        // N new accounts, once each.
        let mut times = vec![Vec::new(), Vec::new()];
        let t = Instant::now();
        mem.publish(updates(n, 0)).await.unwrap();
        times[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sqlite.publish(updates(n, 0)).await.unwrap();
        times[1].push(t.elapsed().as_secs_f64());
        line(&format!("{n} new accounts"), &labels, &times);

        // Rounds of N changed accounts, alternating which goes first.
        let rounds = if n >= 100_000 { 1 } else { 5 };
        let mut times = vec![Vec::new(), Vec::new()];
        for r in 0..rounds {
            for k in 0..2 {
                let t = Instant::now();
                if (r + k) % 2 == 0 {
                    mem.publish(updates(n, r + 1)).await.unwrap();
                    times[0].push(t.elapsed().as_secs_f64());
                } else {
                    sqlite.publish(updates(n, r + 1)).await.unwrap();
                    times[1].push(t.elapsed().as_secs_f64());
                }
            }
        }
        line(&format!("{n} changed accounts"), &labels, &times);

        // After a restart akd's cache is empty: one publish by a fresh
        // directory on the same database, every read going to SQLite.
        drop(sqlite);
        let sqlite = directory(StorageManager::new(db.clone(), None, None, None)).await;
        let t = Instant::now();
        sqlite.publish(updates(n, rounds + 1)).await.unwrap();
        println!(
            "publish {n} changed accounts, empty cache (after a restart): sqlite {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let nocache = directory(StorageManager::new_no_cache(db)).await;
        Setup {
            n,
            _tmp: tmp,
            mem,
            sqlite,
            nocache,
        }
    })
}

fn kt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes() {
        let s = setup(&rt, n);
        let public_key = rt.block_on(s.sqlite.get_public_key()).unwrap();
        let mut group = c.benchmark_group(format!("kt/{n}"));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(4));

        macro_rules! proofs {
            ($name:literal, $dir:expr) => {{
                let dir = &$dir;
                let mut i = 0usize;
                group.bench_function(concat!("lookup_proof/", $name), |b| {
                    b.iter(|| {
                        i = (i + 7919) % s.n;
                        black_box(rt.block_on(dir.lookup(label(i))).unwrap())
                    })
                });
                group.bench_function(concat!("history_proof/", $name), |b| {
                    b.iter(|| {
                        i = (i + 7919) % s.n;
                        black_box(
                            rt.block_on(dir.key_history(&label(i), HistoryParams::default()))
                                .unwrap(),
                        )
                    })
                });
            }};
        }
        proofs!("mem", s.mem);
        proofs!("sqlite", s.sqlite);
        proofs!("sqlite-nocache", s.nocache);

        // Verification does not touch storage: one entry, on SQLite's proofs.
        let (lookup, at) = rt.block_on(s.sqlite.lookup(label(1))).unwrap();
        group.bench_function("lookup_verify", |b| {
            b.iter(|| {
                akd::client::lookup_verify::<Config>(
                    public_key.as_bytes(),
                    at.hash(),
                    at.epoch(),
                    label(1),
                    lookup.clone(),
                )
                .unwrap()
            })
        });
        let (history, at) = rt
            .block_on(s.sqlite.key_history(&label(1), HistoryParams::default()))
            .unwrap();
        group.bench_function("history_verify", |b| {
            b.iter(|| {
                akd::client::key_history_verify::<Config>(
                    public_key.as_bytes(),
                    at.hash(),
                    at.epoch(),
                    label(1),
                    history.clone(),
                    HistoryVerificationParams::default(),
                )
                .unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, kt);
criterion_main!(benches);
