//! The embedded SQLite backend.
//!
//! WAL mode with `synchronous = FULL`: a committed transaction is on disk.
//! All writes go through one writer thread that batches whatever writes are
//! waiting into a single transaction (group commit), so concurrent sends share
//! one fsync instead of paying one each. Each write runs inside its own
//! savepoint: one failing write rolls back alone and the rest of the batch
//! commits. A write's caller hears back only after the batch has committed.
//! Reads use a small pool of read-only connections.

use super::backend;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::group_commit::{self, WriteJob};
use super::seq_blocks::{SEQ_BLOCK, SeqBlocks};
use super::sqlite_accounts::state_to_int;
use super::sqlite_queue::{self, AckEntry, AckJob, AckQueue, write_envelopes};
use super::{
    AccountRecord, AccountState, Authenticated, DeviceKey, EarlyAck, EarlyOutcome, EpochClaim,
    Fence, KtRecord, KtRoot, KtStateQuery, KtValueState, LeaseInfo, NewAccount, NewDevice,
    NewEnvelope, NewReport, ReportRecord, Stats, Store, StoreError, StoreResult, StoredEnvelope,
};
use super::{sqlite_accounts, sqlite_keys, sqlite_kt, sqlite_records};

/// Read connections kept open.
const READERS: usize = 4;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::UnboundedSender<Box<dyn WriteJob>>,
    seqs: Arc<SeqBlocks>,
    acks: AckQueue,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    conn.pragma_update(None, "busy_timeout", 5000)
        .map_err(backend)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts the writer.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let writer_conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        super::sqlite_migrate::prepare(&writer_conn)?;
        super::sqlite_migrate::migrate(&writer_conn, path)?;
        // A key-transparency publish rewrites tens of thousands of tree
        // nodes spread over the whole table: keep its pages in memory.
        writer_conn
            .pragma_update(None, "cache_size", sqlite_kt::WRITER_CACHE_KIB)
            .map_err(backend)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open_connection(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("hush-sqlite-writer".into())
            .spawn(move || group_commit::writer_loop(writer_conn, rx))
            .map_err(backend)?;
        Ok(Self {
            writer: tx,
            seqs: Arc::default(),
            acks: Arc::default(),
            readers: Arc::new(Mutex::new(readers)),
            path: path.to_owned(),
        })
    }

    /// Assigns the recipients' sequence numbers from durable blocks and
    /// queues the write under one lock, so that writes reach the writer in
    /// the order of their sequence numbers and commit in that order (a
    /// reader that saw seq n never misses a later-committed seq below it).
    /// Raises the blocks first where they are used up. `on_reserved` gets
    /// the numbers before the write is queued (under the lock: it must only
    /// hand envelopes over, never wait); the write skips recipients whose
    /// early acknowledgement came first. Returns the numbers and, per
    /// recipient, whether it was written.
    async fn enqueue_reserved(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
        early: Option<Vec<Arc<EarlyAck>>>,
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<(Vec<u64>, Vec<bool>)> {
        let mut job = Some((recipients.to_vec(), envelope, claim, early));
        for _ in 0..8 {
            let queued = {
                let mut blocks = self.seqs.lock();
                match blocks.take(recipients) {
                    Some(seqs) => {
                        let (recipients, envelope, claim, early) =
                            job.take().ok_or_else(|| backend("enqueued twice"))?;
                        // Handed over before the write is queued, so that the
                        // write's wait for early acknowledgements starts once
                        // every connection has its envelope.
                        on_reserved(&seqs);
                        let (reply, rx) = oneshot::channel();
                        let s = seqs.clone();
                        let waits_for = early.clone().unwrap_or_default();
                        let write = group_commit::early_job(
                            move |conn: &Connection| {
                                write_envelopes(conn, &recipients, &s, envelope, claim, early)
                            },
                            reply,
                            waits_for,
                        );
                        self.writer
                            .send(write)
                            .map_err(|_| backend("the database writer has stopped"))?;
                        Some((seqs, rx))
                    }
                    None => None,
                }
            };
            match queued {
                Some((seqs, rx)) => {
                    let written = rx
                        .await
                        .map_err(|_| backend("the database writer has stopped"))??;
                    return Ok((seqs, written));
                }
                None => self.raise_seq_blocks(recipients).await?,
            }
        }
        Err(backend("could not reserve sequence numbers"))
    }

    /// Raises, durably, the sequence-number ceiling of every recipient whose
    /// block is used up (or not loaded since the start), or waits for the
    /// raise another send has under way.
    async fn raise_seq_blocks(&self, recipients: &[DeviceKey]) -> StoreResult<()> {
        let Some(raise) = self.seqs.turn(recipients).await else {
            return Ok(());
        };
        let need = raise.devices();
        let ceilings = self
            .write(move |conn| {
                let mut raise = conn
                    .prepare_cached(
                        "UPDATE devices SET next_seq = next_seq + ?3 \
                         WHERE username = ?1 AND device_id = ?2 RETURNING next_seq",
                    )
                    .map_err(backend)?;
                let mut out = Vec::with_capacity(need.len());
                for r in need {
                    let ceiling: i64 = raise
                        .query_row(params![r.username, r.device_id, SEQ_BLOCK as i64], |row| {
                            row.get(0)
                        })
                        .optional()
                        .map_err(backend)?
                        .ok_or(StoreError::NotFound)?;
                    out.push((r, ceiling as u64));
                }
                Ok(out)
            })
            .await?;
        // Committed: these blocks are durable now.
        raise.commit(ceilings);
        Ok(())
    }

    /// Forgets the blocks of deleted devices (`device_id` None: all of the
    /// account's).
    fn forget_seq_blocks(&self, username: &str, device_id: Option<u32>) {
        self.seqs.forget(username, device_id);
    }

    /// Runs `f` in its own savepoint inside the next group-committed batch.
    pub(super) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = group_commit::job(f, reply);
        self.writer
            .send(job)
            .map_err(|_| backend("the database writer has stopped"))?;
        rx.await
            .map_err(|_| backend("the database writer has stopped"))?
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub(super) async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?,
            };
            let result = f(&conn);
            let mut pool = readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(backend)?
    }
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

pub(super) fn require_changed(n: usize) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, account: NewAccount) -> StoreResult<()> {
        self.write(move |conn| sqlite_accounts::create(conn, &account))
            .await
    }

    async fn account(&self, username: &str) -> StoreResult<Option<AccountRecord>> {
        let username = username.to_owned();
        self.read(move |conn| sqlite_accounts::load(conn, &username))
            .await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        self.read(sqlite_accounts::list).await
    }

    async fn set_account_state(&self, username: &str, state: AccountState) -> StoreResult<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE accounts SET state = ?2 WHERE username = ?1",
                    params![username, state_to_int(state)],
                )
                .map_err(backend)?;
            require_changed(n)
        })
        .await
    }

    async fn suspended_accounts(&self) -> StoreResult<Vec<String>> {
        let suspended = state_to_int(AccountState::Suspended);
        self.read(move |conn| {
            conn.prepare_cached("SELECT username FROM accounts WHERE state = ?1")
                .map_err(backend)?
                .query_map(params![suspended], |r| r.get(0))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)
        })
        .await
    }

    async fn replace_token(
        &self,
        device: &DeviceKey,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> StoreResult<()> {
        let (device, old, new) = (device.clone(), *old, *new);
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE devices SET token_hash = ?4 \
                     WHERE username = ?1 AND device_id = ?2 AND token_hash = ?3",
                    params![
                        device.username,
                        device.device_id,
                        old.as_slice(),
                        new.as_slice()
                    ],
                )
                .map_err(backend)?;
            require_changed(n)
        })
        .await
    }

    async fn delete_account(&self, username: &str) -> StoreResult<()> {
        let name = username.to_owned();
        let username = username.to_owned();
        self.write(move |conn| {
            let payloads = sqlite_queue::payloads_of(conn, &username, None)?;
            let n = conn
                .execute(
                    "DELETE FROM accounts WHERE username = ?1",
                    params![username],
                )
                .map_err(backend)?;
            require_changed(n)?;
            sqlite_queue::free_payloads(conn, &payloads)
        })
        .await?;
        self.forget_seq_blocks(&name, None);
        Ok(())
    }

    async fn add_device(
        &self,
        username: &str,
        device: NewDevice,
        max_devices: usize,
    ) -> StoreResult<()> {
        let username = username.to_owned();
        self.write(move |conn| sqlite_accounts::add_device(conn, &username, &device, max_devices))
            .await
    }

    async fn remove_device(&self, device: &DeviceKey) -> StoreResult<()> {
        let key = device.clone();
        let device = device.clone();
        self.write(move |conn| {
            let payloads =
                sqlite_queue::payloads_of(conn, &device.username, Some(device.device_id))?;
            let n = conn
                .execute(
                    "DELETE FROM devices WHERE username = ?1 AND device_id = ?2",
                    params![device.username, device.device_id],
                )
                .map_err(backend)?;
            require_changed(n)?;
            sqlite_queue::free_payloads(conn, &payloads)
        })
        .await?;
        self.forget_seq_blocks(&key.username, Some(key.device_id));
        Ok(())
    }

    async fn authenticate(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Authenticated>> {
        let hash = *token_hash;
        self.read(move |conn| sqlite_accounts::authenticate(conn, &hash))
            .await
    }

    async fn put_key_packages(
        &self,
        device: &DeviceKey,
        suite: u16,
        key_packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> StoreResult<()> {
        let device = device.clone();
        self.write(move |conn| sqlite_keys::put(conn, &device, suite, &key_packages, last_resort))
            .await
    }

    async fn claim_key_packages(
        &self,
        username: &str,
        suite: u16,
    ) -> StoreResult<Vec<(u32, Vec<u8>)>> {
        let username = username.to_owned();
        self.write(move |conn| sqlite_keys::claim(conn, &username, suite))
            .await
    }

    async fn key_package_counts(&self, device: &DeviceKey) -> StoreResult<Vec<(u16, u64)>> {
        let device = device.clone();
        self.read(move |conn| sqlite_keys::counts(conn, &device))
            .await
    }

    async fn enqueue(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
    ) -> StoreResult<Vec<u64>> {
        let (seqs, _) = self
            .enqueue_reserved(recipients, envelope, claim, None, &mut |_| {})
            .await?;
        Ok(seqs)
    }

    fn seals_lazily(&self) -> bool {
        true
    }

    async fn enqueue_early(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        early: &[Arc<EarlyAck>],
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<EarlyOutcome> {
        if early.len() != recipients.len() {
            return Err(backend("one early acknowledgement per recipient"));
        }
        let (seqs, written) = self
            .enqueue_reserved(
                recipients,
                envelope,
                None,
                Some(early.to_vec()),
                on_reserved,
            )
            .await?;
        Ok(EarlyOutcome {
            seqs,
            wake: written,
        })
    }

    async fn fetch(
        &self,
        device: &DeviceKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEnvelope>> {
        let device = device.clone();
        self.read(move |conn| sqlite_queue::fetch(conn, &device, after, limit))
            .await
    }

    async fn ack(&self, device: &DeviceKey, seqs: &[u64]) -> StoreResult<u64> {
        let (reply, rx) = oneshot::channel();
        let first = {
            let mut waiting = self.acks.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push(AckEntry {
                device: device.clone(),
                seqs: seqs.to_vec(),
                reply,
                result: None,
            });
            waiting.len() == 1
        };
        // One job deletes every acknowledgement waiting when it runs; the
        // first to wait queues it.
        if first {
            let job = Box::new(AckJob {
                waiting: self.acks.clone(),
                taken: Vec::new(),
            });
            if self.writer.send(job).is_err() {
                let waiting =
                    std::mem::take(&mut *self.acks.lock().unwrap_or_else(|e| e.into_inner()));
                for w in waiting {
                    let _ = w
                        .reply
                        .send(Err(backend("the database writer has stopped")));
                }
            }
        }
        rx.await
            .map_err(|_| backend("the database writer has stopped"))?
    }

    async fn expire(&self, now_ms: u64) -> StoreResult<u64> {
        self.write(move |conn| {
            super::nonces::sqlite_expire(conn, now_ms)?;
            sqlite_queue::expire(conn, now_ms)
        })
        .await
    }

    async fn remember_nonce(
        &self,
        nonce: [u8; 32],
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<bool> {
        self.write(move |conn| super::nonces::sqlite_remember(conn, &nonce, expires_at_ms, now_ms))
            .await
    }

    async fn group_epoch(&self, group_id: &[u8]) -> StoreResult<Option<u64>> {
        let group_id = group_id.to_vec();
        self.read(move |conn| {
            conn.query_row(
                "SELECT epoch FROM groups WHERE group_id = ?1",
                params![group_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|e| e.map(|e| e as u64))
            .map_err(backend)
        })
        .await
    }

    async fn put_profile(&self, username: &str, blob: Vec<u8>) -> StoreResult<()> {
        let username = username.to_owned();
        self.write(move |conn| sqlite_records::put_profile(conn, &username, &blob))
            .await
    }

    async fn profile(&self, username: &str) -> StoreResult<Option<Vec<u8>>> {
        let username = username.to_owned();
        self.read(move |conn| sqlite_records::profile(conn, &username))
            .await
    }

    async fn put_backup(
        &self,
        user: &str,
        loc: [u8; 32],
        data: Vec<u8>,
        now: u64,
    ) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |c| super::backups::sqlite_put(c, &user, &loc, &data, now))
            .await
    }

    async fn backup(&self, loc: [u8; 32]) -> StoreResult<Option<Vec<u8>>> {
        self.read(move |c| super::backups::sqlite_get(c, &loc))
            .await
    }

    async fn backup_info(&self, user: &str) -> StoreResult<Option<super::backups::BackupInfo>> {
        let user = user.to_owned();
        self.read(move |c| super::backups::sqlite_info(c, &user))
            .await
    }

    async fn delete_backup(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.write(move |c| super::backups::sqlite_delete(c, &user))
            .await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.read(sqlite_records::stats).await
    }

    async fn queue_bytes(&self, devices: &[DeviceKey]) -> StoreResult<Vec<u64>> {
        let devices = devices.to_vec();
        self.read(move |conn| sqlite_queue::queue_bytes(conn, &devices))
            .await
    }

    async fn ping(&self) -> bool {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(backend)
        })
        .await
        .is_ok()
    }

    async fn server_secret(&self, name: &str, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.write(move |conn| sqlite_records::server_secret(conn, &name, &fresh))
            .await
    }

    async fn file_report(&self, report: NewReport) -> StoreResult<i64> {
        self.write(move |conn| sqlite_records::file(conn, &report))
            .await
    }

    async fn list_reports(&self, all: bool) -> StoreResult<Vec<ReportRecord>> {
        self.read(move |conn| sqlite_records::list(conn, all)).await
    }

    async fn get_report(&self, id: i64) -> StoreResult<Option<ReportRecord>> {
        self.read(move |conn| sqlite_records::get(conn, id)).await
    }

    async fn resolve_report(&self, id: i64, status: &str) -> StoreResult<()> {
        let status = status.to_owned();
        self.write(move |conn| sqlite_records::resolve(conn, id, &status))
            .await
    }

    async fn reports_since(&self, reporter: &str, since_ms: u64) -> StoreResult<u64> {
        let reporter = reporter.to_owned();
        self.read(move |conn| sqlite_records::since(conn, &reporter, since_ms))
            .await
    }

    // Key transparency: the SQL is in `sqlite_kt`.

    async fn kt_write(&self, records: Vec<KtRecord>, states: Vec<KtValueState>) -> StoreResult<()> {
        self.write(move |conn| sqlite_kt::write(conn, &records, &states, None))
            .await
    }

    async fn kt_write_fenced(
        &self,
        records: Vec<KtRecord>,
        states: Vec<KtValueState>,
        fence: Fence,
    ) -> StoreResult<()> {
        self.write(move |conn| sqlite_kt::write(conn, &records, &states, Some(&fence)))
            .await
    }

    async fn kt_records(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<KtRecord>> {
        let keys = keys.to_vec();
        self.read(move |conn| sqlite_kt::records(conn, &keys)).await
    }

    async fn kt_states(&self, keys: &[(Vec<u8>, u64)]) -> StoreResult<Vec<KtValueState>> {
        let keys = keys.to_vec();
        self.read(move |conn| sqlite_kt::states(conn, &keys)).await
    }

    async fn kt_user_states(&self, username: &[u8]) -> StoreResult<Vec<KtValueState>> {
        let username = username.to_vec();
        self.read(move |conn| sqlite_kt::user_states(conn, &username))
            .await
    }

    async fn kt_user_state(
        &self,
        usernames: &[Vec<u8>],
        query: KtStateQuery,
    ) -> StoreResult<Vec<KtValueState>> {
        let usernames = usernames.to_vec();
        self.read(move |conn| sqlite_kt::user_state(conn, &usernames, query))
            .await
    }

    async fn kt_dump(&self) -> StoreResult<(Vec<KtRecord>, Vec<KtValueState>)> {
        self.read(sqlite_kt::dump).await
    }

    async fn kt_put_root(&self, root: KtRoot) -> StoreResult<()> {
        self.write(move |conn| sqlite_kt::put_root(conn, &root))
            .await
    }

    async fn kt_root(&self, epoch: u64) -> StoreResult<Option<KtRoot>> {
        self.read(move |conn| sqlite_kt::root_by_epoch(conn, epoch))
            .await
    }

    async fn kt_roots(&self, from: u64, to: u64) -> StoreResult<Vec<KtRoot>> {
        self.read(move |conn| sqlite_kt::roots(conn, from, to))
            .await
    }

    async fn kt_latest_root(&self) -> StoreResult<Option<KtRoot>> {
        self.read(sqlite_kt::latest_root).await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let expires = clamp_i64(now_ms.saturating_add(ttl_ms));
        let now = clamp_i64(now_ms);
        self.write(move |conn| sqlite_records::try_lease(conn, &name, &holder, expires, now))
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |conn| sqlite_records::release_lease(conn, &name, &holder))
            .await
    }

    async fn lease(&self, name: &str, now_ms: u64) -> StoreResult<Option<LeaseInfo>> {
        let name = name.to_owned();
        let now = clamp_i64(now_ms);
        self.read(move |conn| sqlite_records::lease(conn, &name, now))
            .await
    }
}

/// Times are stored as signed 64-bit integers.
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
