//! Storage: one async trait, [`Store`], with a backend per database.
//!
//! What is stored is listed, column by column, in `docs/what-the-server-knows.md`.
//! Envelopes carry no sender; a send's sealed body is stored once and every
//! recipient device's envelope references it. Groups are known only as (opaque id -> epoch,
//! hashes of the current and previous epochs' commit tokens).
//! Every backend passes the same conformance suite (`tests/store_conformance.rs`).

pub mod backups;
pub mod channels;
mod epoch;
mod group_commit;
pub mod links;
mod nonces;
pub mod postgres;
mod postgres_acks;
mod postgres_alone;
mod postgres_alone_write;
mod postgres_batch;
mod postgres_certs;
mod postgres_channels;
mod postgres_kt;
mod postgres_links;
pub mod postgres_migrate;
mod postgres_owned;
mod postgres_queue;
mod postgres_writer;
mod seq_blocks;
pub mod sqlite;
mod sqlite_accounts;
pub mod sqlite_backup;
mod sqlite_channels;
mod sqlite_keys;
mod sqlite_kt;
mod sqlite_links;
pub mod sqlite_migrate;
mod sqlite_queue;
mod sqlite_records;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

/// Named by [`Store::enqueue_early`]; it lives with the rest of delivery.
pub use crate::delivery::EarlyAck;
pub use channels::{ChannelPage, ChannelPut, ChannelRecord, ChannelStore, PostFiled, StoredPost};
pub use links::{JoinFiled, LinkRecord, LinkStore, NewLink};

/// A device: (username, device id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// The account.
    pub username: String,
    /// The device within the account.
    pub device_id: u32,
}

impl DeviceKey {
    /// Shorthand constructor.
    pub fn new(username: &str, device_id: u32) -> Self {
        Self {
            username: username.to_owned(),
            device_id,
        }
    }
}

/// Whether an account may use the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Normal.
    Active,
    /// Suspended by the operator: cannot authenticate.
    Suspended,
}

/// A new account with its first device.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Unique username.
    pub username: String,
    /// The Ed25519 account key.
    pub account_key: Vec<u8>,
    /// The first device.
    pub device: NewDevice,
    /// Registration time, ms since the Unix epoch.
    pub now_ms: u64,
}

/// A new device.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Its id within the account (chosen by the client, unique per account).
    pub device_id: u32,
    /// The device certificate signed by the account key.
    pub certificate: Vec<u8>,
    /// SHA-256 of the device's bearer token; the token itself is never stored.
    pub token_hash: [u8; 32],
}

/// An account as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Username.
    pub username: String,
    /// The Ed25519 account key.
    pub account_key: Vec<u8>,
    /// Active or suspended.
    pub state: AccountState,
    /// When it registered, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Its devices, by id.
    pub devices: Vec<DeviceRecord>,
}

/// A device as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Id within the account.
    pub device_id: u32,
    /// The device certificate.
    pub certificate: Vec<u8>,
}

/// Who an authenticated request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The device.
    pub device: DeviceKey,
    /// The account's state.
    pub state: AccountState,
}

/// A message bound for devices' queues.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// The sealed body (or, before sealing, the MLS message): stored once
    /// for all the recipients, and freed when the last one acknowledged it
    /// or it expired.
    pub payload: Vec<u8>,
    /// Per recipient, in the order given to [`Store::enqueue`]: the sealed
    /// header (body key and franking tag sealed to the device, see
    /// [`crate::sealing`]); or, in rows written before sealing, the 32-byte
    /// franking tag. Empty entries or a short list store nothing.
    pub relay_tags: Vec<Vec<u8>>,
    /// When the server accepted it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// When it expires undelivered, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Headers sealed only if written: the write calls it with the
    /// recipients (indices in the order given) it writes whose entry in
    /// `relay_tags` is empty, and stores the headers it returns in their
    /// place. Only for a store whose [`Store::seals_lazily`] is true.
    pub seal_later: Option<SealLater>,
}

/// Seals the headers of a send's recipients at the indices given, in that
/// order; runs on a thread outside the async runtime (a store's writer).
#[derive(Clone)]
pub struct SealLater(pub Arc<SealFn>);

/// What a [`SealLater`] runs.
pub type SealFn = dyn Fn(&[usize]) -> StoreResult<Vec<Vec<u8>>> + Send + Sync;

impl std::fmt::Debug for SealLater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealLater")
    }
}

impl NewEnvelope {
    /// Seals, with [`NewEnvelope::seal_later`], the headers still missing
    /// for the recipients marked in `written` (of `n` recipients).
    pub fn seal_missing(&mut self, n: usize, written: &[bool]) -> StoreResult<()> {
        let Some(seal) = self.seal_later.take() else {
            return Ok(());
        };
        self.relay_tags.resize(n, Vec::new());
        let missing: Vec<usize> = (0..n)
            .filter(|&i| written.get(i).is_some_and(|w| *w) && self.relay_tags[i].is_empty())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let headers = (seal.0)(&missing)?;
        if headers.len() != missing.len() {
            return Err(StoreError::Backend("one header per recipient".into()));
        }
        for (i, h) in missing.into_iter().zip(headers) {
            self.relay_tags[i] = h;
        }
        Ok(())
    }
}

/// [`Store::enqueue_early`] of a backend that wrote the envelope (numbered
/// `seqs`) before handing it over: every acknowledgement is a deletion.
pub(crate) fn written_first(
    seqs: Vec<u64>,
    early: &[Arc<EarlyAck>],
    on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
) -> EarlyOutcome {
    for e in early {
        // Written already: an acknowledgement is a deletion.
        e.take_for_write();
    }
    on_reserved(&seqs);
    EarlyOutcome {
        wake: vec![false; seqs.len()],
        seqs,
    }
}

/// What [`Store::enqueue_early`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyOutcome {
    /// Each recipient's sequence number, in the order given.
    pub seqs: Vec<u64>,
    /// Recipients that were handed the envelope before it was written and had
    /// not acknowledged it by then: unless the device's current connection
    /// sent it ([`EarlyAck::sent_on`]), that connection skipped it or
    /// started after it was handed over (it was not yet readable), so wake
    /// them to read it back.
    pub wake: Vec<bool>,
}

/// An abuse report whose franking proof the server verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    /// The reporting account.
    pub reporter: String,
    /// The sender the proof names.
    pub sender: String,
    /// The message's franking commitment.
    pub commitment: [u8; 32],
    /// The revealed content (hush-proto content encoding).
    pub content: Vec<u8>,
    /// The reporter's reason.
    pub reason: String,
    /// When the server relayed the message.
    pub received_at_ms: u64,
    /// When the report was filed.
    pub filed_at_ms: u64,
}

/// A filed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    /// Its number.
    pub id: i64,
    /// What was filed.
    pub report: NewReport,
    /// `open` or the operator's resolution (`dismissed`, `warned`, ...).
    pub status: String,
}

/// A queued message as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Position in the device's queue (increasing).
    pub seq: u64,
    /// The MLS message.
    pub payload: Vec<u8>,
    /// The sealed header, or (rows from before sealing) the franking tag.
    pub relay_tag: Option<Vec<u8>>,
    /// When the server accepted it.
    pub received_at_ms: u64,
}

/// A commit's claim on an epoch: accepted only if the group is at `epoch`
/// and `token` is that epoch's commit token (see `hush_proto::commit_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochClaim {
    /// Opaque MLS group id.
    pub group_id: Vec<u8>,
    /// The epoch the commit applies to.
    pub epoch: u64,
    /// The epoch's commit token.
    pub token: [u8; 32],
    /// The hash of the next epoch's commit token.
    pub next_token_hash: [u8; 32],
}

/// Counters for `hush-server admin stats` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Registered accounts.
    pub accounts: u64,
    /// Registered devices.
    pub devices: u64,
    /// Envelopes waiting in queues.
    pub queued_envelopes: u64,
    /// Payloads stored (one per send that some device has yet to
    /// acknowledge).
    pub payloads: u64,
    /// Their bytes.
    pub payload_bytes: u64,
    /// Unclaimed KeyPackages.
    pub key_packages: u64,
    /// Groups with a known epoch.
    pub groups: u64,
}

/// One record of the key-transparency tree (akd's aZKS header or a tree
/// node), opaque to the store: `key` is akd's binary id of the record, `data`
/// its encoding (see `kt::storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtRecord {
    /// akd's full binary id (type byte first); unique.
    pub key: Vec<u8>,
    /// The encoded record.
    pub data: Vec<u8>,
}

/// A key-transparency value state: what `username` maps to from `epoch` on.
/// (`username`, `epoch`) is unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtValueState {
    /// The directory label (the username's bytes).
    pub username: Vec<u8>,
    /// The epoch this state was published in.
    pub epoch: u64,
    /// The label's version (1 for its first value, then one more per update).
    pub version: u64,
    /// Length in bits of the tree label (the VRF output) of this version.
    pub node_label_len: u32,
    /// The tree label (the VRF output) of this version.
    pub node_label: [u8; 32],
    /// The value in clear (or akd's tombstone).
    pub value: Vec<u8>,
}

/// Which value state of a username to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtStateQuery {
    /// The state with this version.
    Version(u64),
    /// The state published in exactly this epoch.
    Epoch(u64),
    /// The state of the greatest epoch at or before this one.
    AtOrBefore(u64),
    /// The state of the greatest epoch.
    Latest,
    /// The state of the smallest epoch.
    Earliest,
}

/// A signed key-transparency epoch root. Immutable once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtRoot {
    /// The directory epoch.
    pub epoch: u64,
    /// The directory's root hash at that epoch.
    pub root_hash: [u8; 32],
    /// The server's signature over the root.
    pub signature: Vec<u8>,
    /// When it was published, ms since the Unix epoch.
    pub published_at_ms: u64,
}

/// Payload bytes after which [`Store::fetch`] stops adding envelopes.
pub const FETCH_MAX_BYTES: u64 = 4 << 20;

/// The most roots [`Store::kt_roots`] returns in one call.
pub const KT_ROOTS_LIMIT: usize = 1000;

/// A lease a write depends on: its name, the holder and the fencing token
/// [`Store::try_lease`] granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease.
    pub lease: String,
    /// Who holds it.
    pub holder: String,
    /// The token it was granted with.
    pub token: u64,
}

/// Who holds a named lease, as [`Store::lease`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The holder's name (a node id).
    pub holder: String,
    /// The fencing token: it grows every time the lease changes hands, so a
    /// write stamped with an older token can be refused.
    pub token: u64,
    /// When it lapses unless renewed, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Why a storage call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The username is registered already.
    #[error("username is taken")]
    UsernameTaken,
    /// The device id is registered already for the account.
    #[error("device id is taken")]
    DeviceExists,
    /// No such account or device.
    #[error("not found")]
    NotFound,
    /// The account has its maximum number of devices.
    #[error("too many devices")]
    TooManyDevices,
    /// Another commit already took the epoch; the group is at `current`.
    #[error("epoch conflict: the group is at epoch {current}")]
    EpochConflict {
        /// The group's epoch now.
        current: u64,
    },
    /// The commit's token is not the token of the group's current epoch
    /// (its sender is not a member of that epoch, or is behind): refused,
    /// without saying the group's epoch.
    #[error("the commit does not carry the group's current epoch token")]
    CommitRefused,
    /// This account already reported this message.
    #[error("this message was already reported")]
    DuplicateReport,
    /// Another account's backup is stored under this locator.
    #[error("the backup locator is taken by another account")]
    LocatorTaken,
    /// A fenced write's lease is held by someone else now (or its token
    /// moved on): the write was refused and nothing was written.
    #[error("the lease {lease} is no longer held with token {token}: write refused")]
    LeaseLost {
        /// The lease.
        lease: String,
        /// The token the writer held.
        token: u64,
    },
    /// A different signed root is stored for this epoch already.
    #[error("epoch {epoch} already has a different signed root")]
    KtRootConflict {
        /// The epoch.
        epoch: u64,
    },
    /// The database has no connection free for this request in time: the
    /// node is overloaded, nothing was written; retry later.
    #[error("the database is busy")]
    Busy,
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// Longest a connection's own store work (fetching its queue, deleting what
/// it acknowledged) waits out a busy database before it fails.
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `op` again while it finds the database busy ([`StoreError::Busy`]),
/// waiting a little longer each time, for up to [`BUSY_PATIENCE`]: work a
/// connected device needs done (its queue, its acknowledgements) slows
/// down under overload instead of failing and dropping the connection.
pub async fn when_free<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match op().await {
            Err(StoreError::Busy) if started.elapsed() < BUSY_PATIENCE => {
                crate::metrics::METRICS.busy();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// A database error as a [`StoreError`]: a pool with no connection free in
/// time is [`StoreError::Busy`] (overload, answered 503 with `Retry-After`,
/// never a failure); anything else is a backend failure.
pub(crate) fn backend<E: std::fmt::Display + 'static>(e: E) -> StoreError {
    let any: &dyn std::any::Any = &e;
    if let Some(sqlx::Error::PoolTimedOut) = any.downcast_ref::<sqlx::Error>() {
        return StoreError::Busy;
    }
    StoreError::Backend(e.to_string())
}

/// Result of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The server's storage. Every method is atomic: it either happens completely
/// or not at all, and a method that returns `Ok` has made its writes durable.
#[async_trait]
pub trait Store: links::LinkStore + channels::ChannelStore + Send + Sync + 'static {
    /// Registers an account and its first device.
    async fn create_account(&self, account: NewAccount) -> StoreResult<()>;

    /// The account and its devices.
    async fn account(&self, username: &str) -> StoreResult<Option<AccountRecord>>;

    /// The certificate of each device, in the order given; `None` for a
    /// device the directory does not hold. This default reads each account
    /// once; a backend across a network answers in one round trip.
    async fn device_certificates(
        &self,
        devices: &[DeviceKey],
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let mut accounts: std::collections::HashMap<&str, Option<AccountRecord>> =
            Default::default();
        let mut out = Vec::with_capacity(devices.len());
        for d in devices {
            if !accounts.contains_key(d.username.as_str()) {
                let account = self.account(&d.username).await?;
                accounts.insert(&d.username, account);
            }
            let certificate = accounts
                .get(d.username.as_str())
                .and_then(Option::as_ref)
                .and_then(|a| a.devices.iter().find(|r| r.device_id == d.device_id))
                .map(|r| r.certificate.clone());
            out.push(certificate);
        }
        Ok(out)
    }

    /// All accounts, for the operator.
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>>;

    /// Suspends or reactivates an account.
    async fn set_account_state(&self, username: &str, state: AccountState) -> StoreResult<()>;

    /// The suspended accounts (each node looks them up to close their
    /// open connections).
    async fn suspended_accounts(&self) -> StoreResult<Vec<String>>;

    /// Replaces the device's token hash `old` by `new`; `NotFound` when the
    /// device's token is no longer `old` (removed, or rotated meanwhile).
    async fn replace_token(
        &self,
        device: &DeviceKey,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> StoreResult<()>;

    /// Deletes an account with its devices, queues, KeyPackages and profile
    /// (and the payloads no other device's queue references).
    async fn delete_account(&self, username: &str) -> StoreResult<()>;

    /// Adds a device to an account (at most `max_devices`).
    async fn add_device(
        &self,
        username: &str,
        device: NewDevice,
        max_devices: usize,
    ) -> StoreResult<()>;

    /// Removes a device with its queue and KeyPackages (and the payloads
    /// no other device's queue references).
    async fn remove_device(&self, device: &DeviceKey) -> StoreResult<()>;

    /// The device a bearer token (by hash) belongs to.
    async fn authenticate(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Authenticated>>;

    /// Stores KeyPackages of one device for one suite. `last_resort`, if
    /// given, replaces the device's last-resort KeyPackage for that suite.
    async fn put_key_packages(
        &self,
        device: &DeviceKey,
        suite: u16,
        key_packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> StoreResult<()>;

    /// Claims one KeyPackage for `suite` from every device of the account:
    /// an ordinary one (deleted as it is handed out) or else the last-resort
    /// one (kept). Devices with neither are left out.
    async fn claim_key_packages(
        &self,
        username: &str,
        suite: u16,
    ) -> StoreResult<Vec<(u32, Vec<u8>)>>;

    /// How many ordinary KeyPackages a device has left, per suite.
    async fn key_package_counts(&self, device: &DeviceKey) -> StoreResult<Vec<(u16, u64)>>;

    /// Appends `envelope` to every recipient's queue and returns each
    /// recipient's sequence number, in the order given. With a `claim`, the
    /// group moves to epoch `claim.epoch + 1` (and the claim's next token
    /// hash) in the same transaction, if the claim wins the epoch; else
    /// nothing is written: [`StoreError::EpochConflict`] when another commit
    /// won the epoch the claimant's token belongs to,
    /// [`StoreError::CommitRefused`] when the token is not of the group's
    /// current (or previous) epoch. The first claim for an unknown group
    /// registers it; see `docs/decisions/0012-commit-tokens.md`.
    /// Recipients that do not exist are an error ([`StoreError::NotFound`]).
    async fn enqueue(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
    ) -> StoreResult<Vec<u64>>;

    /// Whether [`NewEnvelope::seal_later`] may be set: the store seals, off
    /// the async runtime, only the headers it writes (this default: no).
    fn seals_lazily(&self) -> bool {
        false
    }

    /// [`Store::enqueue`] for a message with no commit claim, which may reach
    /// online recipients before it is durable: `on_reserved` gets the
    /// sequence numbers as soon as they are assigned (the caller hands the
    /// envelope to connected recipients then; it must not block, a backend
    /// may call it under a lock), and the write skips every
    /// recipient whose [`EarlyAck::ack`] came first, so an online device
    /// that acknowledges within the commit window never costs a disk write.
    /// Returns once the message is durable for every recipient (written, or
    /// acknowledged). A backend that cannot assign sequence numbers before
    /// its write (this default) writes first and calls `on_reserved` after.
    async fn enqueue_early(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        early: &[Arc<EarlyAck>],
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<EarlyOutcome> {
        let seqs = self.enqueue(recipients, envelope, None).await?;
        Ok(written_first(seqs, early, on_reserved))
    }

    /// Up to `limit` envelopes of a device with `seq > after`, in order,
    /// and no more once they hold [`FETCH_MAX_BYTES`] of payload: an
    /// envelope is left for the next call if those before it hold that
    /// much (so a batch holds at most that plus one payload, and at least
    /// one envelope).
    async fn fetch(
        &self,
        device: &DeviceKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEnvelope>>;

    /// Deletes acknowledged envelopes of this device only; returns how many.
    /// A payload is deleted with the last envelope that references it.
    async fn ack(&self, device: &DeviceKey, seqs: &[u64]) -> StoreResult<u64>;

    /// Deletes envelopes that expired before `now_ms`, and their payloads;
    /// returns how many envelopes.
    /// Also forgets the signed-request nonces that expired before `now_ms`
    /// (not counted).
    async fn expire(&self, now_ms: u64) -> StoreResult<u64>;

    /// Remembers the nonce of a signed device request (a key derived from
    /// the account and the nonce) until `expires_at_ms`. True when it is
    /// fresh: never seen, or seen with an expiry before `now_ms`; false when
    /// it is still remembered (a replay). Atomic across every node sharing
    /// the database: of concurrent callers with one nonce exactly one gets
    /// true.
    async fn remember_nonce(
        &self,
        nonce: [u8; 32],
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<bool>;

    /// The group's current epoch, if the server has seen a commit for it.
    async fn group_epoch(&self, group_id: &[u8]) -> StoreResult<Option<u64>>;

    /// Replaces an account's encrypted profile.
    async fn put_profile(&self, username: &str, blob: Vec<u8>) -> StoreResult<()>;

    /// An account's encrypted profile.
    async fn profile(&self, username: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Stores the account's one backup under `locator`, replacing the one it
    /// had (decision 0035). [`StoreError::LocatorTaken`] when another
    /// account's backup has this locator, [`StoreError::NotFound`] when the
    /// account does not exist; then nothing changes.
    async fn put_backup(
        &self,
        username: &str,
        locator: [u8; 32],
        data: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<()>;

    /// The backup stored under `locator`, whoever's it is.
    async fn backup(&self, locator: [u8; 32]) -> StoreResult<Option<Vec<u8>>>;

    /// The size and time of the account's backup, if it has one.
    async fn backup_info(&self, username: &str) -> StoreResult<Option<backups::BackupInfo>>;

    /// Deletes the account's backup; false when it had none.
    async fn delete_backup(&self, username: &str) -> StoreResult<bool>;

    /// Counts for operators.
    async fn stats(&self) -> StoreResult<Stats>;

    /// The payload bytes waiting in each device's queue, in the order given
    /// (0 for a device with none, or none at all): the size of every payload
    /// its envelopes reference (shared payloads count in full for each
    /// device). For the queue quota.
    async fn queue_bytes(&self, devices: &[DeviceKey]) -> StoreResult<Vec<u64>>;

    /// Whether the database answers.
    async fn ping(&self) -> bool;

    /// The server secret called `name`, storing `fresh` as its value if it
    /// has none yet (so every node of a cluster gets the same one).
    async fn server_secret(&self, name: &str, fresh: Vec<u8>) -> StoreResult<Vec<u8>>;

    /// Files a verified report; [`StoreError::DuplicateReport`] if the
    /// reporter already reported this commitment.
    async fn file_report(&self, report: NewReport) -> StoreResult<i64>;

    /// Reports, newest first; only open ones unless `all`.
    async fn list_reports(&self, all: bool) -> StoreResult<Vec<ReportRecord>>;

    /// One report.
    async fn get_report(&self, id: i64) -> StoreResult<Option<ReportRecord>>;

    /// Records the operator's resolution of a report.
    async fn resolve_report(&self, id: i64, status: &str) -> StoreResult<()>;

    /// How many reports `reporter` filed since `since_ms`.
    async fn reports_since(&self, reporter: &str, since_ms: u64) -> StoreResult<u64>;

    // ------------------------------------------------ key transparency

    /// Writes key-transparency records and value states in one transaction:
    /// a record replaces the one with the same key, a value state the one
    /// with the same (username, epoch). Within one call the last of equal
    /// keys wins.
    async fn kt_write(&self, records: Vec<KtRecord>, states: Vec<KtValueState>) -> StoreResult<()>;

    /// [`Store::kt_write`], only while `fence` is current: in the same
    /// transaction the lease must still name the fence's holder and token
    /// (on PostgreSQL the lease row is locked until the commit, so nobody
    /// takes the lease over mid-write); otherwise nothing is written and
    /// [`StoreError::LeaseLost`] is returned.
    async fn kt_write_fenced(
        &self,
        records: Vec<KtRecord>,
        states: Vec<KtValueState>,
        fence: Fence,
    ) -> StoreResult<()>;

    /// The records with these keys, in no particular order; missing keys
    /// are left out.
    async fn kt_records(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<KtRecord>>;

    /// The value states with these (username, epoch) keys, in no particular
    /// order; missing keys are left out.
    async fn kt_states(&self, keys: &[(Vec<u8>, u64)]) -> StoreResult<Vec<KtValueState>>;

    /// Every value state of `username`, by ascending epoch.
    async fn kt_user_states(&self, username: &[u8]) -> StoreResult<Vec<KtValueState>>;

    /// For each username, its one value state matching `query`; usernames
    /// with none are left out. In no particular order.
    async fn kt_user_state(
        &self,
        usernames: &[Vec<u8>],
        query: KtStateQuery,
    ) -> StoreResult<Vec<KtValueState>>;

    /// Every record and every value state (for snapshots and tests).
    async fn kt_dump(&self) -> StoreResult<(Vec<KtRecord>, Vec<KtValueState>)>;

    /// Stores a signed epoch root. Storing the same root (hash and
    /// signature) again is `Ok` and changes nothing; a different one for a
    /// stored epoch is [`StoreError::KtRootConflict`].
    async fn kt_put_root(&self, root: KtRoot) -> StoreResult<()>;

    /// The signed root of `epoch`.
    async fn kt_root(&self, epoch: u64) -> StoreResult<Option<KtRoot>>;

    /// Signed roots with `from <= epoch <= to`, ascending, at most
    /// [`KT_ROOTS_LIMIT`] (the first ones): page on from the last epoch + 1.
    async fn kt_roots(&self, from: u64, to: u64) -> StoreResult<Vec<KtRoot>>;

    /// The signed root of the greatest epoch.
    async fn kt_latest_root(&self) -> StoreResult<Option<KtRoot>>;
    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`:
    /// granted when nobody holds it, when the holder's lease lapsed
    /// (`expires_at_ms <= now_ms`), or when `holder` holds it already
    /// (a renewal). Returns the fencing token when granted, `None` when
    /// another holder's lease is still running. Atomic across every node
    /// sharing the database: of concurrent callers at most one is granted.
    /// Nodes must keep their clocks in step (NTP) to well under `ttl_ms`.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>>;

    /// Gives the lease up if `holder` holds it, so another node can take it
    /// at once; returns whether it did. The fencing token is kept.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<bool>;

    /// The lease's current holder, if its lease runs past `now_ms`.
    async fn lease(&self, name: &str, now_ms: u64) -> StoreResult<Option<LeaseInfo>>;
}

/// The upsert both backends run for [`Store::try_lease`]: one statement, so
/// the check and the take are atomic. Parameters: name, holder, expiry, now.
/// The token moves on only when the holder changes.
pub(crate) const TRY_LEASE_SQL: &str = "\
INSERT INTO leases (name, holder, token, expires_at_ms) VALUES ($1, $2, 1, $3) \
ON CONFLICT (name) DO UPDATE SET \
    token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
    holder = excluded.holder, \
    expires_at_ms = excluded.expires_at_ms \
WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= $4 \
RETURNING token";
