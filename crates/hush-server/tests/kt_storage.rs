//! akd's directory on the server's own database ([`KtDatabase`]), SQLite
//! always and PostgreSQL when `HUSH_TEST_POSTGRES_URL` is set: several
//! epochs of adds and updates, lookup, key-history and audit proofs checked
//! with akd's client and auditor, root hashes equal to akd's in-memory
//! database's for the same publishes, and a restart (a fresh `Directory` on
//! the same database, the SQLite file reopened) that carries on. Then akd's
//! own storage test suite over `KtDatabase`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use akd::append_only_zks::AzksParallelismConfig;
use akd::directory::Directory;
use akd::ecvrf::HardCodedAkdVRF;
use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::storage::{Database, StorageUtil};
use akd::{AkdLabel, AkdValue, Digest, EpochHash, HistoryParams, HistoryVerificationParams};
use hush_server::kt::storage::KtDatabase;
use hush_server::store::Store;
use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;

/// The configuration the server runs (`hush_proto::kt`).
type Config = hush_proto::kt::KtConfiguration;

async fn directory<S: Database + 'static>(db: S) -> Directory<Config, S, HardCodedAkdVRF> {
    let storage = StorageManager::new(db, None, None, None);
    Directory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default())
        .await
        .unwrap()
}

fn kv(label: &str, value: &str) -> (AkdLabel, AkdValue) {
    (AkdLabel::from(label), AkdValue::from(value))
}

/// Epochs 1-3 before the restart, 4-5 after.
fn epochs() -> Vec<Vec<(AkdLabel, AkdValue)>> {
    vec![
        vec![kv("alice", "a1"), kv("bob", "b1"), kv("carol", "c1")],
        vec![kv("alice", "a2"), kv("dave", "d1")],
        vec![kv("bob", "b2"), kv("alice", "a3")],
        vec![kv("erin", "e1"), kv("alice", "a4")],
        vec![kv("carol", "c2")],
    ]
}

async fn check_proofs<S: Database + 'static>(
    dir: &Directory<Config, S, HardCodedAkdVRF>,
    hashes: &[Digest],
    label: &str,
    expected: &[(u64, &str)],
) {
    let public_key = dir.get_public_key().await.unwrap();
    let EpochHash(epoch, hash) = dir.get_epoch_hash().await.unwrap();
    assert_eq!(epoch as usize, hashes.len());
    assert_eq!(Some(&hash), hashes.last());

    let (proof, at) = dir.lookup(AkdLabel::from(label)).await.unwrap();
    let (latest_epoch, latest_value) = expected[0];
    let got = akd::client::lookup_verify::<Config>(
        public_key.as_bytes(),
        at.hash(),
        at.epoch(),
        AkdLabel::from(label),
        proof,
    )
    .unwrap();
    assert_eq!(got.epoch, latest_epoch);
    assert_eq!(got.version, expected.len() as u64);
    assert_eq!(got.value, AkdValue::from(latest_value));

    let (proof, at) = dir
        .key_history(&AkdLabel::from(label), HistoryParams::default())
        .await
        .unwrap();
    let history = akd::client::key_history_verify::<Config>(
        public_key.as_bytes(),
        at.hash(),
        at.epoch(),
        AkdLabel::from(label),
        proof,
        HistoryVerificationParams::default(),
    )
    .unwrap();
    let history: Vec<(u64, AkdValue)> = history.into_iter().map(|r| (r.epoch, r.value)).collect();
    let want: Vec<(u64, AkdValue)> = expected
        .iter()
        .map(|(e, v)| (*e, AkdValue::from(*v)))
        .collect();
    assert_eq!(history, want);

    // Every audit from epoch 1, against the roots seen when publishing.
    for end in 2..=hashes.len() {
        let proof = dir.audit(1, end as u64).await.unwrap();
        akd::auditor::audit_verify::<Config>(hashes[..end].to_vec(), proof)
            .await
            .unwrap();
    }
    // A wrong root breaks the audit.
    if hashes.len() >= 2 {
        let proof = dir.audit(1, 2).await.unwrap();
        let mut wrong = hashes[..2].to_vec();
        wrong[1][0] ^= 1;
        assert!(
            akd::auditor::audit_verify::<Config>(wrong, proof)
                .await
                .is_err()
        );
    }
}

/// Publishes every epoch on `open()`'s database, restarting between epoch 3
/// and 4, and checks it against akd's in-memory database doing the same.
async fn directory_over_store<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let reference = directory(AsyncInMemoryDatabase::new()).await;
    let mut reference_hashes = Vec::new();
    for updates in epochs() {
        let EpochHash(_, h) = reference.publish(updates).await.unwrap();
        reference_hashes.push(h);
    }

    let db = KtDatabase::new(open().await);
    let dir = directory(db.clone()).await;
    let mut hashes = Vec::new();
    for updates in epochs().into_iter().take(3) {
        let EpochHash(epoch, h) = dir.publish(updates).await.unwrap();
        assert_eq!(epoch as usize, hashes.len() + 1);
        hashes.push(h);
    }
    assert_eq!(hashes[..], reference_hashes[..3]);
    check_proofs(&dir, &hashes, "alice", &[(3, "a3"), (2, "a2"), (1, "a1")]).await;
    check_proofs(&dir, &hashes, "bob", &[(3, "b2"), (1, "b1")]).await;
    let before = sorted(db.batch_get_all_direct().await.unwrap());
    drop(dir);
    drop(db);

    // Restart: a new store on the same database and a fresh directory.
    let db = KtDatabase::new(open().await);
    assert_eq!(sorted(db.batch_get_all_direct().await.unwrap()), before);
    let dir = directory(db.clone()).await;
    assert_eq!(dir.get_epoch_hash().await.unwrap().1, hashes[2]);
    check_proofs(&dir, &hashes, "alice", &[(3, "a3"), (2, "a2"), (1, "a1")]).await;
    for updates in epochs().into_iter().skip(3) {
        let EpochHash(_, h) = dir.publish(updates).await.unwrap();
        hashes.push(h);
    }
    assert_eq!(hashes, reference_hashes);
    check_proofs(
        &dir,
        &hashes,
        "alice",
        &[(4, "a4"), (3, "a3"), (2, "a2"), (1, "a1")],
    )
    .await;
    check_proofs(&dir, &hashes, "carol", &[(5, "c2"), (1, "c1")]).await;
    check_proofs(&dir, &hashes, "erin", &[(4, "e1")]).await;

    // The stored directory is record for record the in-memory one (akd's
    // in-memory store keeps the same records).
    let mem = AsyncInMemoryDatabase::new();
    let again = directory(mem.clone()).await;
    for updates in epochs() {
        again.publish(updates).await.unwrap();
    }
    assert_eq!(
        sorted(db.batch_get_all_direct().await.unwrap()),
        sorted(mem.batch_get_all_direct().await.unwrap())
    );
    same_user_states(&db, &mem).await;
}

/// Every value-state query answers as akd's in-memory database does.
async fn same_user_states(db: &KtDatabase, mem: &AsyncInMemoryDatabase) {
    use akd::storage::types::{ValueState, ValueStateKey, ValueStateRetrievalFlag as F};
    let names = ["alice", "bob", "carol", "dave", "erin", "nobody"];
    let labels: Vec<AkdLabel> = names.iter().map(|n| AkdLabel::from(*n)).collect();
    let mut flags = vec![F::MaxEpoch, F::MinEpoch];
    for x in [0, 1, 2, 3, 4, 5, 6, u64::MAX] {
        flags.extend([F::SpecificVersion(x), F::SpecificEpoch(x), F::LeqEpoch(x)]);
    }
    let mut found = 0;
    for flag in flags {
        for label in &labels {
            let ours = db.get_user_state(label, flag).await;
            let theirs = mem.get_user_state(label, flag).await;
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{label:?} {flag:?}");
                    found += 1;
                }
                (Err(akd::errors::StorageError::NotFound(_)), Err(_)) => {}
                (a, b) => panic!("{label:?} {flag:?}: {a:?} vs {b:?}"),
            }
        }
        assert_eq!(
            db.get_user_state_versions(&labels, flag).await.unwrap(),
            mem.get_user_state_versions(&labels, flag).await.unwrap(),
            "{flag:?}"
        );
    }
    assert!(found > 40, "{found}");
    for label in &labels {
        let ours = db.get_user_data(label).await.map(|d| d.states);
        let theirs = mem.get_user_data(label).await.map(|d| d.states);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{label:?}: {a:?} vs {b:?}"),
        }
    }
    let keys: Vec<ValueStateKey> = names
        .iter()
        .flat_map(|n| (0..7).map(|e| ValueStateKey(n.as_bytes().to_vec(), e)))
        .collect();
    assert_eq!(
        sorted(db.batch_get::<ValueState>(&keys).await.unwrap()),
        sorted(mem.batch_get::<ValueState>(&keys).await.unwrap())
    );
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test]
async fn directory_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    directory_over_store(|| {
        let path = path.clone();
        async move { Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn Store> }
    })
    .await;
}

/// A fresh schema in `HUSH_TEST_POSTGRES_URL`'s database (dropped at the
/// end), or `None` when the variable is unset. When it is set the server
/// must answer: a test never passes because the database was down.
async fn postgres_schema() -> Option<(String, String)> {
    use sqlx::Connection;
    let url = std::env::var("HUSH_TEST_POSTGRES_URL").ok()?;
    let name = format!(
        "hush_kt_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("HUSH_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
    });
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    Some((url, name))
}

async fn postgres_store(url: &str, schema: &str) -> Arc<dyn Store> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema)]);
    Arc::new(PostgresStore::connect_with(options).await.unwrap())
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn directory_on_postgres() {
    let Some((url, schema)) = postgres_schema().await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping the PostgreSQL run");
        return;
    };
    directory_over_store(|| postgres_store(&url, &schema)).await;
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn akd_storage_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hush.db")).unwrap());
    akd::storage::tests::run_test_cases_for_storage_impl(KtDatabase::new(store)).await;
}

#[tokio::test]
async fn akd_storage_suite_on_postgres() {
    let Some((url, schema)) = postgres_schema().await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping the PostgreSQL run");
        return;
    };
    let store = postgres_store(&url, &schema).await;
    akd::storage::tests::run_test_cases_for_storage_impl(KtDatabase::new(store)).await;
    drop_schema(&url, &schema).await;
}
