//! The key directory as the server runs it: an akd directory over the
//! server's own storage, an Ed25519 key that signs every epoch root, and a
//! publisher that batches account changes into epochs.
//!
//! Handlers never write the directory themselves: after a store change they
//! call [`KeyDirectory::changed`] with the username and wait for the epoch that
//! includes it ([`KeyDirectory::wait_published`]). The publisher reads the
//! account from the store at publish time, so the directory always converges
//! on what the store holds, even if a wake-up is lost; [`KeyDirectory::reconcile`]
//! catches up after a restart or an operator's offline change.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use akd::directory::Directory;
use akd::ecvrf::{VRFKeyStorage, VrfError};
use akd::storage::StorageManager;
use akd::storage::types::ValueStateRetrievalFlag;
use akd::{AkdLabel, AzksParallelismConfig, HistoryParams};
use hush_proto::kt::{KtConfig, KtConfiguration, KtValue, SignedRoot, akd_value};
use hush_proto::{AccountKey, AccountPublicKey, DeviceCertificate, Username};
use protobuf::Message;
use tokio::sync::{OnceCell, watch};

use super::KtError;
use super::storage::KtDatabase;
use crate::store::{KtRoot, Store, StoreError};

/// The akd directory type the server runs.
pub type Akd<D> = Directory<KtConfiguration, D, ServerVrf>;

/// Server secrets (in the database, shared by every node) for the directory.
const VRF_SECRET: &str = "kt-vrf-v1";
const SIGNING_SECRET: &str = "kt-signing-v1";

/// How long a change may wait for more changes before its epoch is published.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(25);
/// How long a handler waits for its change to be published before answering
/// anyway (the change is published later; clients retry their lookups).
const PUBLISH_WAIT: Duration = Duration::from_secs(10);
/// How often the publisher compares the store with the directory.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(600);
/// The lease that makes one node at a time the directory's writer.
const PUBLISH_LEASE: &str = "kt-publisher";
/// How long a publisher holds the lease at most (a publish takes well under
/// a second; a node that stalls longer loses it).
const PUBLISH_LEASE_TTL_MS: u64 = 30_000;
/// How long a node waits for another node's publish before it gives up for
/// now (and retries from the publisher loop).
const PUBLISH_LEASE_WAIT: Duration = Duration::from_secs(10);

/// The VRF key, held as its 32-byte secret.
#[derive(Clone)]
pub struct ServerVrf(Arc<Vec<u8>>);

impl std::fmt::Debug for ServerVrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerVrf(<redacted>)")
    }
}

#[async_trait::async_trait]
impl VRFKeyStorage for ServerVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.0.as_ref().clone())
    }
}

pub(super) struct Inner {
    pub(super) dir: Akd<KtDatabase>,
    pub(super) db: KtDatabase,
    /// akd's node cache (shared with `dir`). Another node may publish, so
    /// before each operation the stored epoch is compared with the one the
    /// cache holds, and the cache is dropped when it moved; operations hold
    /// the read side of `cached_epoch`, dropping the cache or publishing the
    /// write side.
    storage: StorageManager<KtDatabase>,
    cached_epoch: tokio::sync::RwLock<u64>,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    vrf: ServerVrf,
    signing: AccountKey,
    config: KtConfig,
}

#[derive(Default)]
struct Pending {
    usernames: BTreeSet<String>,
    /// Ticket of the newest change queued.
    queued: u64,
}

/// The server's key-transparency directory.
pub struct KeyDirectory {
    store: Arc<dyn Store>,
    inner: OnceCell<Inner>,
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
    /// Ticket of the newest change included in a published epoch.
    published: watch::Sender<u64>,
    /// Serialises publishing within this process.
    publish_lock: tokio::sync::Mutex<()>,
    batch_window: Duration,
    /// This process's name as a lease holder.
    holder: String,
    /// Lookup proofs already made at the newest epoch (batched lookups).
    pub(super) proof_cache: Mutex<super::batch::ProofCache>,
    /// Held while a batched lookup makes the proofs it did not find kept.
    pub(super) proof_making: tokio::sync::Mutex<()>,
    /// Test-only faults (never compiled into release builds).
    #[cfg(feature = "fault-injection")]
    pub faults: super::faults::Faults,
}

impl std::fmt::Debug for KeyDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDirectory")
            .field("open", &self.inner.initialized())
            .finish_non_exhaustive()
    }
}

fn random_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut s = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

pub(super) fn akd_err(e: impl std::fmt::Display) -> KtError {
    KtError::Directory(e.to_string())
}

impl KeyDirectory {
    /// A directory over `store`, opened on first use.
    pub fn new(store: Arc<dyn Store>, batch_window: Duration) -> Self {
        Self {
            store,
            inner: OnceCell::new(),
            pending: Mutex::new(Pending::default()),
            wake: tokio::sync::Notify::new(),
            published: watch::channel(0).0,
            publish_lock: tokio::sync::Mutex::new(()),
            batch_window,
            holder: {
                use rand::RngCore;
                format!("kt-{:016x}", rand::rngs::OsRng.next_u64())
            },
            proof_cache: Mutex::new(super::batch::ProofCache::default()),
            proof_making: tokio::sync::Mutex::new(()),
            #[cfg(feature = "fault-injection")]
            faults: super::faults::Faults::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn inner(&self) -> Result<&Inner, KtError> {
        self.inner.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<Inner, KtError> {
        let vrf_secret = self
            .store
            .server_secret(VRF_SECRET, random_secret())
            .await?;
        let seed = self
            .store
            .server_secret(SIGNING_SECRET, random_secret())
            .await?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| KtError::Directory("the stored signing key is not 32 bytes".into()))?;
        let signing = AccountKey::from_seed(seed).map_err(akd_err)?;
        let vrf = ServerVrf(Arc::new(vrf_secret));
        let db = KtDatabase::new(self.store.clone());
        let storage = StorageManager::new(db.clone(), None, None, None);
        let dir = Akd::new(
            storage.clone(),
            vrf.clone(),
            AzksParallelismConfig::default(),
        )
        .await
        .map_err(akd_err)?;
        let vrf_public_key = dir
            .get_public_key()
            .await
            .map_err(akd_err)?
            .as_bytes()
            .to_vec();
        let epoch = dir.get_epoch_hash().await.map_err(akd_err)?.0;
        let inner = Inner {
            dir,
            db,
            storage,
            cached_epoch: tokio::sync::RwLock::new(epoch),
            vrf,
            config: KtConfig {
                signing_key: *signing.public().as_bytes(),
                vrf_public_key,
            },
            signing,
        };
        // Epoch 0 (the empty directory) gets a signed root like any other.
        let hash = inner.dir.get_epoch_hash().await.map_err(akd_err)?;
        if self.store.kt_root(hash.0).await?.is_none() {
            self.store_root(&inner, hash.0, hash.1).await?;
        }
        Ok(inner)
    }

    async fn store_root(
        &self,
        inner: &Inner,
        epoch: u64,
        root_hash: [u8; 32],
    ) -> Result<SignedRoot, KtError> {
        let signature = inner
            .signing
            .sign(&SignedRoot::signed_bytes(epoch, &root_hash))
            .map_err(akd_err)?;
        let root = SignedRoot {
            epoch,
            root_hash,
            signature,
        };
        self.store
            .kt_put_root(KtRoot {
                epoch,
                root_hash,
                signature: signature.to_vec(),
                published_at_ms: crate::delivery::now_ms(),
            })
            .await?;
        Ok(root)
    }

    /// The directory, with akd's cache made current: another node may have
    /// published since this one last looked. Hold the guard for the whole
    /// operation.
    pub(super) async fn current(
        &self,
    ) -> Result<(&Inner, tokio::sync::RwLockReadGuard<'_, u64>), KtError> {
        let inner = self.inner().await?;
        let stored = stored_epoch(&inner.db).await?;
        {
            let cached = inner.cached_epoch.read().await;
            if *cached == stored {
                return Ok((inner, cached));
            }
        }
        let mut cached = inner.cached_epoch.write().await;
        if *cached != stored {
            inner.storage.flush_cache().await;
            *cached = stored;
        }
        Ok((inner, cached.downgrade()))
    }

    /// What clients pin: the signing key and the VRF public key.
    pub async fn config(&self) -> Result<KtConfig, KtError> {
        Ok(self.inner().await?.config.clone())
    }

    /// Queues `username` for the next epoch; returns a ticket for
    /// [`KeyDirectory::wait_published`].
    pub fn changed(&self, username: &str) -> u64 {
        let ticket = {
            let mut p = self.lock();
            p.usernames.insert(username.to_owned());
            p.queued += 1;
            p.queued
        };
        self.wake.notify_one();
        ticket
    }

    /// Waits (bounded) until the change with `ticket` is in a published epoch.
    pub async fn wait_published(&self, ticket: u64) {
        let mut rx = self.published.subscribe();
        let _ = tokio::time::timeout(PUBLISH_WAIT, rx.wait_for(|p| *p >= ticket)).await;
    }

    /// Runs the publisher until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        if let Err(e) = self.reconcile().await {
            tracing::warn!(error = %e, "key directory: reconciling with the store failed");
        }
        let mut reconcile = tokio::time::interval(RECONCILE_INTERVAL);
        reconcile.tick().await;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {
                    tokio::time::sleep(self.batch_window).await;
                }
                _ = reconcile.tick() => {
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "key directory: reconcile failed");
                    }
                }
            }
            if let Err(e) = self.publish_pending().await {
                tracing::warn!(error = %e, "key directory: publishing failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.wake.notify_one();
            }
        }
    }

    /// Publishes every queued change as one epoch. Returns the new root, or
    /// `None` when nothing changed.
    pub async fn publish_pending(&self) -> Result<Option<SignedRoot>, KtError> {
        let inner = self.inner().await?;
        let _guard = self.publish_lock.lock().await;
        let (usernames, ticket) = {
            let mut p = self.lock();
            (std::mem::take(&mut p.usernames), p.queued)
        };
        if usernames.is_empty() {
            return Ok(None);
        }
        // One writer at a time across every node sharing the database.
        let result = match self.take_lease().await {
            Ok(token) => {
                inner.db.set_fence(Some(crate::store::Fence {
                    lease: PUBLISH_LEASE.into(),
                    holder: self.holder.clone(),
                    token,
                }));
                // Under the lease nobody else writes: make the cache current
                // and keep this node's readers out while the tree changes.
                let mut cached = inner.cached_epoch.write().await;
                let stored = stored_epoch(&inner.db).await;
                let r = match stored {
                    Ok(stored) => {
                        if *cached != stored {
                            inner.storage.flush_cache().await;
                        }
                        let r = self.publish_users(inner, &usernames).await;
                        *cached = match &r {
                            Ok(Some(root)) => root.epoch,
                            _ => stored,
                        };
                        r
                    }
                    Err(e) => Err(e),
                };
                drop(cached);
                inner.db.set_fence(None);
                if let Err(e) = self.store.release_lease(PUBLISH_LEASE, &self.holder).await {
                    tracing::warn!(error = %e, "key directory: could not release the publisher lease");
                }
                r
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => {
                self.published.send_if_modified(|p| {
                    let moved = *p < ticket;
                    *p = (*p).max(ticket);
                    moved
                });
            }
            Err(_) => {
                // Put them back for the retry.
                self.lock().usernames.extend(usernames);
            }
        }
        result
    }

    async fn take_lease(&self) -> Result<u64, KtError> {
        let deadline = tokio::time::Instant::now() + PUBLISH_LEASE_WAIT;
        loop {
            let granted = self
                .store
                .try_lease(
                    PUBLISH_LEASE,
                    &self.holder,
                    PUBLISH_LEASE_TTL_MS,
                    crate::delivery::now_ms(),
                )
                .await?;
            if let Some(token) = granted {
                return Ok(token);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KtError::Directory(
                    "another node has been publishing for too long; will retry".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The value the directory should hold for `username`, from the store.
    async fn value_of(&self, username: &str) -> Result<KtValue, KtError> {
        match self.store.account(username).await? {
            Some(account) => value_of_account(&account),
            None => Ok(KtValue::deleted()),
        }
    }

    async fn publish_users(
        &self,
        inner: &Inner,
        usernames: &BTreeSet<String>,
    ) -> Result<Option<SignedRoot>, KtError> {
        if usernames.is_empty() {
            return Ok(None);
        }
        let labels: Vec<AkdLabel> = usernames
            .iter()
            .map(|u| AkdLabel::from(u.as_str()))
            .collect();
        let current = akd::storage::Database::get_user_state_versions(
            &inner.db,
            &labels,
            ValueStateRetrievalFlag::LeqEpoch(u64::MAX),
        )
        .await
        .map_err(akd_err)?;
        let mut updates = Vec::new();
        for (name, label) in usernames.iter().zip(labels) {
            let real = self.value_of(name).await?;
            #[cfg(feature = "fault-injection")]
            let real = self.faults.published_value(name, &real).unwrap_or(real);
            let value = akd_value(&real);
            let unchanged = current.get(&label).is_some_and(|(_, v)| *v == value);
            // A deleted account that was never published needs no entry.
            let never_published =
                !current.contains_key(&label) && value == akd_value(&KtValue::deleted());
            if !unchanged && !never_published {
                updates.push((label, value));
            }
        }
        if updates.is_empty() {
            return Ok(None);
        }
        let n = updates.len();
        let hash = inner.dir.publish(updates).await.map_err(akd_err)?;
        let root = self.store_root(inner, hash.0, hash.1).await?;
        tracing::info!(
            epoch = root.epoch,
            accounts = n,
            "key directory: published an epoch"
        );
        Ok(Some(root))
    }

    /// Queues every account whose directory value differs from the store.
    pub async fn reconcile(&self) -> Result<usize, KtError> {
        let inner = self.inner().await?;
        // What the directory should hold, from the accounts as listed (one
        // read of the store, not one per account).
        let mut expected: std::collections::BTreeMap<String, KtValue> = Default::default();
        for account in self.store.list_accounts().await? {
            let value = value_of_account(&account)?;
            expected.insert(account.username, value);
        }
        let mut names: BTreeSet<String> = expected.keys().cloned().collect();
        // Accounts deleted while this process was not watching.
        let states = akd::storage::StorageUtil::batch_get_type_direct::<
            akd::storage::types::ValueState,
        >(&inner.db)
        .await
        .map_err(akd_err)?;
        for record in states {
            if let akd::storage::types::DbRecord::ValueState(state) = record
                && let Ok(name) = String::from_utf8(state.username.0.clone())
            {
                names.insert(name);
            }
        }
        let labels: Vec<AkdLabel> = names.iter().map(|u| AkdLabel::from(u.as_str())).collect();
        let current = akd::storage::Database::get_user_state_versions(
            &inner.db,
            &labels,
            ValueStateRetrievalFlag::LeqEpoch(u64::MAX),
        )
        .await
        .map_err(akd_err)?;
        let mut stale = 0;
        for (name, label) in names.iter().zip(&labels) {
            let value = akd_value(expected.get(name).unwrap_or(&KtValue::deleted()));
            let ok = match current.get(label) {
                Some((_, v)) => *v == value,
                None => value == akd_value(&KtValue::deleted()),
            };
            if !ok {
                self.changed(name);
                stale += 1;
            }
        }
        if stale > 0 {
            tracing::info!(
                accounts = stale,
                "key directory: catching up with the store"
            );
        }
        Ok(stale)
    }

    /// The signed root of the newest epoch.
    pub async fn latest_root(&self) -> Result<SignedRoot, KtError> {
        let (inner, _guard) = self.current().await?;
        let hash = inner.dir.get_epoch_hash().await.map_err(akd_err)?;
        self.root(hash.0).await
    }

    /// The newest epoch as `viewer` is shown it.
    pub async fn latest_epoch_for(&self, viewer: Option<&str>) -> Result<u64, KtError> {
        #[cfg(feature = "fault-injection")]
        if let Some(v) = viewer
            && let Some(roots) = self.faults.fork_roots(v, 0, u64::MAX).await
            && let Some(last) = roots.last()
        {
            return Ok(last.epoch);
        }
        let _ = viewer;
        Ok(self.latest_root().await?.epoch)
    }

    /// The signed root of `epoch`.
    pub async fn root(&self, epoch: u64) -> Result<SignedRoot, KtError> {
        self.inner().await?;
        let root = self
            .store
            .kt_root(epoch)
            .await?
            .ok_or(KtError::NoSuchEpoch(epoch))?;
        signed(root)
    }

    /// Signed roots `from..=to` (bounded by the caller).
    pub async fn roots(
        &self,
        viewer: Option<&str>,
        from: u64,
        to: u64,
    ) -> Result<Vec<SignedRoot>, KtError> {
        self.inner().await?;
        #[cfg(feature = "fault-injection")]
        if let Some(v) = viewer
            && let Some(roots) = self.faults.fork_roots(v, from, to).await
        {
            return Ok(roots);
        }
        let _ = viewer;
        let roots: Vec<SignedRoot> = self
            .store
            .kt_roots(from, to)
            .await?
            .into_iter()
            .map(signed)
            .collect::<Result<_, _>>()?;
        #[cfg(feature = "fault-injection")]
        {
            let mut out = Vec::with_capacity(roots.len());
            for r in roots {
                if self.faults.is_rewritten(r.epoch) {
                    let mut hash = r.root_hash;
                    hash[0] ^= 0xff;
                    out.push(self.sign(r.epoch, hash).await?);
                } else {
                    out.push(r);
                }
            }
            return Ok(out);
        }
        #[allow(unreachable_code)]
        Ok(roots)
    }

    /// A lookup proof for `username` at the newest epoch, with its root.
    /// `viewer` is the account asking, if known.
    pub async fn lookup(
        &self,
        viewer: Option<&str>,
        username: &Username,
    ) -> Result<(SignedRoot, Vec<u8>), KtError> {
        self.proof(viewer, ProofKind::Lookup, username).await
    }

    /// The complete key history of `username` at the newest epoch.
    pub async fn history(
        &self,
        viewer: Option<&str>,
        username: &Username,
    ) -> Result<(SignedRoot, Vec<u8>), KtError> {
        self.proof(viewer, ProofKind::History, username).await
    }

    async fn proof(
        &self,
        viewer: Option<&str>,
        kind: ProofKind,
        username: &Username,
    ) -> Result<(SignedRoot, Vec<u8>), KtError> {
        self.inner().await?;
        #[cfg(feature = "fault-injection")]
        if let Some(v) = viewer
            && let Some(answer) = self.faults.fork_proof(v, kind, username).await
        {
            return answer;
        }
        let _ = viewer;
        let (inner, _guard) = self.current().await?;
        let (epoch, bytes) = prove(&inner.dir, kind, username).await?;
        Ok((self.root(epoch).await?, bytes))
    }

    /// An append-only proof from epoch `from` to `to`.
    pub async fn audit(
        &self,
        viewer: Option<&str>,
        from: u64,
        to: u64,
    ) -> Result<Vec<u8>, KtError> {
        self.inner().await?;
        #[cfg(feature = "fault-injection")]
        if let Some(v) = viewer
            && let Some(answer) = self.faults.fork_audit(v, from, to).await
        {
            return answer;
        }
        let _ = viewer;
        let (inner, _guard) = self.current().await?;
        let latest = inner.dir.get_epoch_hash().await.map_err(akd_err)?.0;
        if from >= to || to > latest {
            return Err(KtError::BadRange { from, to, latest });
        }
        let proof = inner.dir.audit(from, to).await.map_err(akd_err)?;
        akd::proto::specs::types::AppendOnlyProof::from(&proof)
            .write_to_bytes()
            .map_err(akd_err)
    }

    /// The directory's storage, for test snapshots.
    #[cfg(feature = "fault-injection")]
    pub(crate) async fn database(&self) -> Result<(KtDatabase, ServerVrf), KtError> {
        let inner = self.inner().await?;
        Ok((inner.db.clone(), inner.vrf.clone()))
    }

    /// Signs any root with the directory's key, as a compelled server could
    /// (test builds only: forks and forged roots).
    #[cfg(feature = "fault-injection")]
    pub async fn sign(&self, epoch: u64, root_hash: [u8; 32]) -> Result<SignedRoot, KtError> {
        let inner = self.inner().await?;
        let signature = inner
            .signing
            .sign(&SignedRoot::signed_bytes(epoch, &root_hash))
            .map_err(akd_err)?;
        Ok(SignedRoot {
            epoch,
            root_hash,
            signature,
        })
    }
}

/// The directory value of a stored account.
fn value_of_account(account: &crate::store::AccountRecord) -> Result<KtValue, KtError> {
    let key = AccountPublicKey::from_slice(&account.account_key).map_err(akd_err)?;
    let certs: Vec<DeviceCertificate> = account
        .devices
        .iter()
        .filter_map(|d| DeviceCertificate::decode(&d.certificate).ok())
        .collect();
    Ok(KtValue::from_certificates(key, &certs))
}

/// The newest epoch in storage, read past any cache.
async fn stored_epoch(db: &KtDatabase) -> Result<u64, KtError> {
    match akd::storage::Database::get::<akd::Azks>(db, &akd::append_only_zks::DEFAULT_AZKS_KEY)
        .await
        .map_err(akd_err)?
    {
        akd::storage::types::DbRecord::Azks(azks) => Ok(azks.get_latest_epoch()),
        _ => Err(KtError::Directory(
            "the stored aZKS record is not an aZKS".into(),
        )),
    }
}

fn signed(root: KtRoot) -> Result<SignedRoot, KtError> {
    Ok(SignedRoot {
        epoch: root.epoch,
        root_hash: root.root_hash,
        signature: root
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| KtError::Directory(format!("stored root {} is corrupt", root.epoch)))?,
    })
}

/// Which proof a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    /// The current value.
    Lookup,
    /// Every value ever held.
    History,
}

/// Generates a proof of `kind` for `username` on any akd directory (the
/// server's, or a test fork's); returns the epoch it is against and the
/// protobuf bytes.
pub(crate) async fn prove<D: akd::storage::Database + 'static>(
    dir: &Akd<D>,
    kind: ProofKind,
    username: &Username,
) -> Result<(u64, Vec<u8>), KtError> {
    let label = hush_proto::kt::label(username);
    let (epoch, bytes) = match kind {
        ProofKind::Lookup => {
            let (proof, hash) = dir.lookup(label).await.map_err(not_found_or(username))?;
            (
                hash.0,
                akd::proto::specs::types::LookupProof::from(&proof).write_to_bytes(),
            )
        }
        ProofKind::History => {
            let (proof, hash) = dir
                .key_history(&label, HistoryParams::Complete)
                .await
                .map_err(not_found_or(username))?;
            (
                hash.0,
                akd::proto::specs::types::HistoryProof::from(&proof).write_to_bytes(),
            )
        }
    };
    Ok((epoch, bytes.map_err(akd_err)?))
}

fn not_found_or(username: &Username) -> impl FnOnce(akd::errors::AkdError) -> KtError + '_ {
    move |e| match e {
        akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_)) => {
            KtError::UnknownUser(username.to_string())
        }
        other => akd_err(other),
    }
}

impl From<StoreError> for KtError {
    fn from(e: StoreError) -> Self {
        KtError::Store(e)
    }
}
