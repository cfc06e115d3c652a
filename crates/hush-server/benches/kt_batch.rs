//! What the server spends on the lookups a joiner of a big group asks for,
//! in one run: the lookup proofs of N accounts (`HUSH_BENCH_BATCH`, default
//! 1000) of a directory of those N accounts on the server's SQLite store,
//!
//! - `single`: one `KeyDirectory::lookup` per account, as before batched
//!   lookups (the baseline);
//! - `batch_cold`: one `KeyDirectory::batch_lookup` with the kept proofs
//!   dropped first (the first joiner at an epoch);
//! - `batch_kept`: the same with the proofs kept from the previous
//!   iteration (every later joiner at that epoch).
//!
//! Run with `cargo bench -p hush-server --bench kt_batch`.

// A bench is a test harness: a failed step must stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hush_proto::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
use hush_server::kt::KeyDirectory;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::{NewAccount, NewDevice, Store};

fn size() -> usize {
    std::env::var("HUSH_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

async fn directory(n: usize, dir: &std::path::Path) -> (KeyDirectory, Vec<Username>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("hush.db")).unwrap());
    let kt = KeyDirectory::new(store.clone(), Duration::ZERO);
    let mut rng = rand::rngs::OsRng;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let user = Username::new(&format!("member{i:05}")).unwrap();
        let account = AccountKey::generate(&mut rng).unwrap();
        let key = DeviceSigningKey::generate(&mut rng).unwrap();
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, 1).unwrap();
        store
            .create_account(NewAccount {
                username: user.to_string(),
                account_key: account.public().as_bytes().to_vec(),
                device: NewDevice {
                    device_id: 1,
                    certificate: cert.encode(),
                    token_hash: [i as u8; 32],
                },
                now_ms: 1,
            })
            .await
            .unwrap();
        kt.changed(user.as_str());
        names.push(user);
    }
    kt.publish_pending().await.unwrap();
    (kt, names)
}

fn kt_batch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = size();
    let tmp = tempfile::tempdir().unwrap();
    let (kt, names) = rt.block_on(directory(n, tmp.path()));
    let mut group = c.benchmark_group(format!("kt_batch/{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("single", |b| {
        b.iter(|| {
            rt.block_on(async {
                for u in &names {
                    black_box(kt.lookup(None, u).await.unwrap());
                }
            })
        })
    });
    group.bench_function("batch_cold", |b| {
        b.iter(|| {
            kt.forget_cached_proofs();
            black_box(rt.block_on(kt.batch_lookup(None, &names)).unwrap())
        })
    });
    group.bench_function("batch_kept", |b| {
        b.iter(|| black_box(rt.block_on(kt.batch_lookup(None, &names)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, kt_batch);
criterion_main!(benches);
