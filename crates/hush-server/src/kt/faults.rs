//! Test-only misbehaviour of a malicious or compelled server, compiled only
//! with the `fault-injection` cargo feature (which no release build enables).
//! Tests use it to check that clients catch what key transparency exists to
//! catch:
//!
//! - [`Faults::serve_ghost`]: the directory answer and the KeyPackages of a
//!   username are swapped for a "ghost" identity the server made (the GCHQ
//!   proposal), without publishing it: lookup proofs give it away.
//! - [`Faults::publish_ghost`]: the ghost is also published in the directory,
//!   so lookups verify; the account's owner sees a version it never made.
//! - [`Faults::fork`]: one user is shown a copy of the directory in which the
//!   ghost is published, everyone else the real one; signed roots of the two
//!   views differ for the same epoch.
//! - [`Faults::state_latest_epoch`]: `GET /v1/kt/roots` says the directory
//!   stopped at an epoch it has moved past (the field is unsigned).
//! - [`Faults::refuse_history`]: key-history requests fail, so an account
//!   cannot monitor its own keys.
//! - [`Faults::strip_relay_tags`]: the server relays messages without its
//!   franking tag; recipients must mark them as not reportable.
//! - [`Faults::publish_extra_device`]: the directory publishes the real
//!   account with one more device, whose key the server made (no account
//!   key certified it).
//! - [`Faults::swap_link_frames`]: every device-link message (decision
//!   0023) is replaced on the way by one the server sealed itself.
//! - [`Faults::corrupt_blob_downloads`]: attachment downloads arrive with
//!   their last byte flipped (a history archive or file altered on the
//!   server, decision 0026).
//! - [`Faults::admit_closed_links`]: invite links (decision 0033) ignore
//!   their expiry and every revocation (the server says revoked and keeps
//!   taking join requests); members' devices must refuse them themselves.
//! - [`Faults::tamper_batch`]: batched lookups (`POST /v1/kt/lookup`) omit
//!   a name, add one, swap two proofs or carry a proof of an older epoch.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use akd::storage::memory::AsyncInMemoryDatabase;
use akd::storage::{Database, DbSetState, StorageManager, StorageUtil};
use akd::{AkdLabel, AkdValue, AzksParallelismConfig};
use hush_proto::kt::{KtDevice, KtValue, SignedRoot, akd_value};
use hush_proto::{
    AccountKey, Device, DeviceCertificate, DeviceId, DeviceSigningKey, Suite, Timestamp, Username,
};
use protobuf::Message;

use super::KtError;
use super::service::{Akd, KeyDirectory, ProofKind, ServerVrf, prove};

/// A server-made identity for someone else's username.
#[derive(Debug, Clone)]
pub struct Ghost {
    /// The ghost account key.
    pub account_key: Vec<u8>,
    /// Its one device certificate (device id 1).
    pub certificate: Vec<u8>,
    /// Ready KeyPackages by suite number.
    pub key_packages: HashMap<u16, Vec<u8>>,
    /// Its directory value.
    pub value: KtValue,
}

struct Fork {
    victim: String,
    dir: Akd<AsyncInMemoryDatabase>,
    roots: Vec<SignedRoot>,
}

#[derive(Default)]
struct State {
    ghosts: HashMap<String, Ghost>,
    published: HashSet<String>,
    rewritten: HashSet<u64>,
    stated_latest: Option<u64>,
    history_refused: bool,
    strip_relay_tags: bool,
    extra_devices: HashMap<String, KtDevice>,
    swap_link_frames: bool,
    corrupt_blobs: bool,
    admit_closed_links: bool,
    batch: Option<BatchFault>,
    stale_proofs: HashMap<String, Vec<u8>>,
}

/// How batched lookups are tampered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFault {
    /// The entry of this username is left out.
    Omit(String),
    /// An entry for this username (not asked for) is added, with its real
    /// proof.
    Add(String),
    /// The two usernames' proofs are swapped.
    Swap(String, String),
    /// This username's proof is the one it had when the fault was set (an
    /// older epoch's, once the directory moved on).
    Stale(String),
}

/// The faults in force.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
    fork: tokio::sync::Mutex<Option<Fork>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Faults")
    }
}

fn err(e: impl std::fmt::Display) -> KtError {
    KtError::Directory(e.to_string())
}

fn make_ghost(username: &str) -> Result<Ghost, KtError> {
    let mut rng = rand::rngs::OsRng;
    let user = Username::new(username).map_err(err)?;
    let account = AccountKey::generate(&mut rng).map_err(err)?;
    let key = DeviceSigningKey::generate(&mut rng).map_err(err)?;
    let now = Timestamp::from_millis(crate::delivery::now_ms());
    let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, now.as_millis())
        .map_err(err)?;
    let device = Device::new(cert.clone(), &key).map_err(err)?;
    let mut key_packages = HashMap::new();
    for suite in Suite::ALL {
        // Last resort: kept when claimed, so every claim gets one.
        let kp = device.generate_key_package(suite, true, now).map_err(err)?;
        key_packages.insert(suite.cipher_suite().raw_value(), kp.message);
    }
    Ok(Ghost {
        account_key: account.public().as_bytes().to_vec(),
        certificate: cert.encode(),
        value: KtValue::from_certificates(account.public(), &[cert]),
        key_packages,
    })
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves a ghost identity for `username` from now on (not published).
    pub fn serve_ghost(&self, username: &str) -> Result<Ghost, KtError> {
        let ghost = make_ghost(username)?;
        self.lock()
            .ghosts
            .insert(username.to_owned(), ghost.clone());
        Ok(ghost)
    }

    /// Also publishes the ghost of `username` in the directory.
    pub async fn publish_ghost(&self, kt: &KeyDirectory, username: &str) -> Result<(), KtError> {
        if !self.lock().ghosts.contains_key(username) {
            self.serve_ghost(username)?;
        }
        self.lock().published.insert(username.to_owned());
        kt.changed(username);
        kt.publish_pending().await?;
        Ok(())
    }

    /// From now on `GET /v1/kt/roots` shows a different (validly signed)
    /// root for `epoch` than the one published: a history rewrite that an
    /// auditor must catch.
    pub fn rewrite_root(&self, epoch: u64) {
        self.lock().rewritten.insert(epoch);
    }

    /// From now on sends are relayed without the server's relay tag (as a
    /// server that skips franking would).
    pub fn strip_relay_tags(&self) {
        self.lock().strip_relay_tags = true;
    }

    pub(crate) fn strips_relay_tags(&self) -> bool {
        self.lock().strip_relay_tags
    }

    pub(crate) fn is_rewritten(&self, epoch: u64) -> bool {
        self.lock().rewritten.contains(&epoch)
    }

    /// From now on `GET /v1/kt/roots` reports `epoch` (or the truth, with
    /// `None`) as its latest epoch, whatever it has published since.
    pub fn state_latest_epoch(&self, epoch: Option<u64>) {
        self.lock().stated_latest = epoch;
    }

    pub(crate) fn stated_latest_epoch(&self) -> Option<u64> {
        self.lock().stated_latest
    }

    /// From now on (or no longer) every `GET /v1/kt/history/{username}`
    /// fails as if the directory were down.
    pub fn refuse_history(&self, refuse: bool) {
        self.lock().history_refused = refuse;
    }

    pub(crate) fn history_refused(&self) -> bool {
        self.lock().history_refused
    }

    /// From now on (or no longer, with `None`) batched lookups are
    /// tampered with. [`BatchFault::Stale`] keeps the proof `kt` makes now.
    pub async fn tamper_batch(
        &self,
        kt: &KeyDirectory,
        fault: Option<BatchFault>,
    ) -> Result<(), KtError> {
        if let Some(BatchFault::Stale(name)) = &fault {
            let (_, proof) = kt.lookup(None, &Username::new(name).map_err(err)?).await?;
            self.lock().stale_proofs.insert(name.clone(), proof);
        }
        self.lock().batch = fault;
        Ok(())
    }

    /// Applies the batch fault in force to an answer.
    pub(crate) async fn tampered(
        &self,
        kt: &KeyDirectory,
        resp: &mut hush_wire::kt::KtBatchLookupResponse,
    ) -> Result<(), KtError> {
        let (fault, stale) = {
            let s = self.lock();
            (s.batch.clone(), s.stale_proofs.clone())
        };
        let entries = &mut resp.entries;
        match fault {
            None => {}
            Some(BatchFault::Omit(name)) => entries.retain(|e| e.username != name),
            Some(BatchFault::Add(name)) => {
                let (_, proof) = kt.lookup(None, &Username::new(&name).map_err(err)?).await?;
                entries.push(hush_wire::kt::KtBatchEntry {
                    username: name,
                    account: None,
                    proof: Some(hush_wire::Bytes(proof)),
                });
            }
            Some(BatchFault::Swap(a, b)) => {
                let ia = entries.iter().position(|e| e.username == a);
                let ib = entries.iter().position(|e| e.username == b);
                if let (Some(ia), Some(ib)) = (ia, ib) {
                    let pa = entries[ia].proof.take();
                    entries[ia].proof = entries[ib].proof.take();
                    entries[ib].proof = pa;
                }
            }
            Some(BatchFault::Stale(name)) => {
                for e in entries.iter_mut().filter(|e| e.username == name) {
                    e.proof = stale.get(&name).cloned().map(hush_wire::Bytes);
                }
            }
        }
        Ok(())
    }

    /// The ghost served for `username`, if any.
    pub fn ghost(&self, username: &str) -> Option<Ghost> {
        self.lock().ghosts.get(username).cloned()
    }

    /// The value to publish for `username` instead of `real`.
    pub(crate) fn published_value(&self, username: &str, real: &KtValue) -> Option<KtValue> {
        let s = self.lock();
        if let Some(extra) = s.extra_devices.get(username) {
            let mut value = real.clone();
            value.devices.push(*extra);
            value.devices.sort();
            return Some(value);
        }
        if !s.published.contains(username) {
            return None;
        }
        s.ghosts.get(username).map(|g| g.value.clone())
    }

    /// Publishes `username`'s real keys plus a device `device_id` with
    /// `signature_key` (a removed device's, replayed) or, without one, a key
    /// the server made up, as a server adding a listener would.
    pub async fn publish_extra_device(
        &self,
        kt: &KeyDirectory,
        username: &str,
        device_id: u32,
        signature_key: Option<[u8; 32]>,
    ) -> Result<(), KtError> {
        let signature_key = match signature_key {
            Some(k) => k,
            None => DeviceSigningKey::generate(&mut rand::rngs::OsRng)
                .map_err(err)?
                .public(),
        };
        self.lock().extra_devices.insert(
            username.to_owned(),
            KtDevice {
                device_id,
                signature_key,
            },
        );
        kt.changed(username);
        kt.publish_pending().await?;
        Ok(())
    }

    /// From now on every device-link frame is relayed as a frame of the
    /// same kind sealed under a key the server made up.
    pub fn swap_link_frames(&self) {
        self.lock().swap_link_frames = true;
    }

    /// From now on every whole-blob attachment download has its last byte
    /// flipped.
    pub fn corrupt_blob_downloads(&self) {
        self.lock().corrupt_blobs = true;
    }

    /// From now on invite links ignore expiry and revocations.
    pub fn admit_closed_links(&self) {
        self.lock().admit_closed_links = true;
    }

    /// Whether invite links ignore expiry and revocations.
    pub(crate) fn admits_closed_links(&self) -> bool {
        self.lock().admit_closed_links
    }

    /// Whether downloads are corrupted.
    pub(crate) fn corrupting_blobs(&self) -> bool {
        self.lock().corrupt_blobs
    }

    /// The payload to relay instead of `payload`, when it is a link frame
    /// and frames are swapped.
    pub(crate) fn swapped_link_frame(&self, payload: &[u8]) -> Option<Vec<u8>> {
        use hush_proto::device_link::{FrameKind, is_link_frame, seal_frame};
        if !self.lock().swap_link_frames || !is_link_frame(payload) {
            return None;
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let kind = match payload.get(9) {
            Some(2) => FrameKind::Ready,
            _ => FrameKind::Welcome,
        };
        let body = vec![0x5a; payload.len().saturating_sub(38)];
        Some(seal_frame(&key, kind, 0, &body, &mut rand::rngs::OsRng))
    }

    /// From now on `victim` sees a copy of the directory in which `ghost_of`
    /// has a ghost identity, published as the next epoch of the copy; the
    /// real directory goes on without it. Returns the forked root.
    pub async fn fork(
        &self,
        kt: &KeyDirectory,
        victim: &str,
        ghost_of: &str,
    ) -> Result<SignedRoot, KtError> {
        let ghost = match self.ghost(ghost_of) {
            Some(g) => g,
            None => make_ghost(ghost_of)?,
        };
        let (db, vrf): (_, ServerVrf) = kt.database().await?;
        let copy = AsyncInMemoryDatabase::new();
        let records = db.batch_get_all_direct().await.map_err(err)?;
        copy.batch_set(records, DbSetState::General)
            .await
            .map_err(err)?;
        let dir = Akd::new(
            StorageManager::new_no_cache(copy),
            vrf,
            AzksParallelismConfig::default(),
        )
        .await
        .map_err(err)?;
        let latest = kt.latest_root().await?;
        let mut roots = Vec::new();
        while roots.len() as u64 <= latest.epoch {
            let more = kt.roots(None, roots.len() as u64, latest.epoch).await?;
            if more.is_empty() {
                break;
            }
            roots.extend(more);
        }
        let update: (AkdLabel, AkdValue) = (AkdLabel::from(ghost_of), akd_value(&ghost.value));
        let hash = dir.publish(vec![update]).await.map_err(err)?;
        let root = kt.sign(hash.0, hash.1).await?;
        roots.push(root);
        *self.fork.lock().await = Some(Fork {
            victim: victim.to_owned(),
            dir,
            roots,
        });
        Ok(root)
    }

    /// The forked view's roots `from..=to`, when `viewer` is the victim.
    pub(crate) async fn fork_roots(
        &self,
        viewer: &str,
        from: u64,
        to: u64,
    ) -> Option<Vec<SignedRoot>> {
        let fork = self.fork.lock().await;
        let f = fork.as_ref().filter(|f| f.victim == viewer)?;
        Some(
            f.roots
                .iter()
                .filter(|r| r.epoch >= from && r.epoch <= to)
                .copied()
                .collect(),
        )
    }

    /// A lookup or history proof from the forked view, when `viewer` is the
    /// victim.
    pub(crate) async fn fork_proof(
        &self,
        viewer: &str,
        kind: ProofKind,
        username: &Username,
    ) -> Option<Result<(SignedRoot, Vec<u8>), KtError>> {
        let fork = self.fork.lock().await;
        let f = fork.as_ref().filter(|f| f.victim == viewer)?;
        let answer = async {
            let (epoch, bytes) = prove(&f.dir, kind, username).await?;
            let root = f
                .roots
                .iter()
                .find(|r| r.epoch == epoch)
                .copied()
                .ok_or(KtError::NoSuchEpoch(epoch))?;
            Ok((root, bytes))
        };
        Some(answer.await)
    }

    /// Batched lookup proofs from the forked view, when `viewer` is the
    /// victim.
    pub(crate) async fn fork_batch(
        &self,
        viewer: &str,
        usernames: &[Username],
    ) -> Option<Result<super::batch::BatchProofs, KtError>> {
        let fork = self.fork.lock().await;
        let f = fork.as_ref().filter(|f| f.victim == viewer)?;
        let root = *f.roots.last()?;
        let answer = async {
            let mut out = Vec::new();
            for u in usernames {
                match prove(&f.dir, ProofKind::Lookup, u).await {
                    Ok((epoch, bytes)) if epoch == root.epoch => {
                        out.push(Some(std::sync::Arc::new(bytes)))
                    }
                    Ok((epoch, _)) => return Err(KtError::NoSuchEpoch(epoch)),
                    Err(KtError::UnknownUser(_)) => out.push(None),
                    Err(e) => return Err(e),
                }
            }
            Ok((root, out))
        };
        Some(answer.await)
    }

    /// An audit proof from the forked view, when `viewer` is the victim.
    pub(crate) async fn fork_audit(
        &self,
        viewer: &str,
        from: u64,
        to: u64,
    ) -> Option<Result<Vec<u8>, KtError>> {
        let fork = self.fork.lock().await;
        let f = fork.as_ref().filter(|f| f.victim == viewer)?;
        let answer = async {
            let proof = f.dir.audit(from, to).await.map_err(err)?;
            akd::proto::specs::types::AppendOnlyProof::from(&proof)
                .write_to_bytes()
                .map_err(err)
        };
        Some(answer.await)
    }
}
