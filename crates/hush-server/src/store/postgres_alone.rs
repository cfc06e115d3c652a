//! A PostgreSQL node that serves its database alone (started without
//! `--nats`) numbers and hands over envelopes before their write, as a
//! SQLite node does (decisions 0008 and 0044): sequence numbers come from
//! durable blocks ([`super::seq_blocks`]), one writer task commits the
//! sends in the order of their numbers, and an envelope its online
//! recipient acknowledges within the commit window is never written.
//!
//! Numbering in memory is safe only while no other process writes the same
//! queues. The node holds the `queues` lease for that; every write, and the
//! answer to every send (even one whose copies were all acknowledged
//! early), checks in the database, under a share lock on the lease's row,
//! that the node still holds it with the token it took. Another node can
//! take the lease only once it lapsed, and its update of the row waits for
//! the writes under way: whatever it numbers is above every ceiling this
//! node raised, and every write of this node after it fails. The node then
//! numbers each send in its write if cluster nodes took the queues, and
//! writes none if another node alone did ([`Standing`]). Cluster nodes
//! hold the same lease under one shared name, so a node without `--nats`
//! cannot start beside them, nor they beside it.
//!
//! A cluster node started with `--early-across-nodes` runs the same
//! numbering and writer for the devices it claims one by one, with the
//! claims' fence instead of the lease's ([`Fence::Owner`],
//! [`super::postgres_owned`], decision 0046).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection as _, Row};
use tokio::sync::{mpsc, oneshot};

use super::Store as _;
use super::group_commit::{EARLY_ACK_POLL, EARLY_ACK_WINDOW};
use super::postgres::PostgresStore;
use super::seq_blocks::{SEQ_BLOCK, SeqBlocks};
use super::{
    DeviceKey, EarlyAck, EpochClaim, NewEnvelope, StoreError, StoreResult, TRY_LEASE_SQL, backend,
};

/// The lease that says who numbers the device queues.
pub(super) const QUEUES_LEASE: &str = "queues";
/// The holder name every cluster node shares.
pub(super) const CLUSTER_HOLDER: &str = "cluster";
/// How long a claim on the queues lasts unless renewed.
const CLAIM_TTL: Duration = Duration::from_secs(10);
/// How often a holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Most sends committed in one transaction.
const MAX_BATCH: usize = 512;
/// Sends waiting for the writer before more are refused as busy.
const MAX_WAITING: usize = super::postgres_writer::MAX_WAITING;

fn now_ms() -> u64 {
    crate::delivery::now_ms()
}

/// Takes the lease as a node serving its database alone: also from
/// itself (the same node started again after a crash), always with a new
/// token, so that a process it replaced is fenced off.
const TAKE_FRESH_SQL: &str = "\
INSERT INTO leases (name, holder, token, expires_at_ms) VALUES ($1, $2, 1, $3) \
ON CONFLICT (name) DO UPDATE SET \
    token = leases.token + 1, holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= $4 \
RETURNING token";

/// Runs `sql` (one of the lease upserts) for `holder`; the token, or
/// `None` when another holder's claim still runs.
async fn try_take(pool: &PgPool, holder: &str, sql: &str) -> StoreResult<Option<u64>> {
    let now = now_ms();
    let token: Option<i64> = sqlx::query_scalar(sql)
        .bind(QUEUES_LEASE)
        .bind(holder)
        .bind((now + CLAIM_TTL.as_millis() as u64) as i64)
        .bind(now as i64)
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    Ok(token.map(|t| t as u64))
}

/// Takes the queues lease for `holder` (with a token of its own when
/// `fresh`), waiting for a claim left by a node that stopped to lapse; the
/// token. An error names the holder whose claim is still renewed.
pub(super) async fn claim(pool: &PgPool, holder: &str, fresh: bool) -> StoreResult<u64> {
    let sql = if fresh { TAKE_FRESH_SQL } else { TRY_LEASE_SQL };
    let deadline = Instant::now() + CLAIM_TTL + Duration::from_secs(1);
    let mut told = false;
    loop {
        if let Some(token) = try_take(pool, holder, sql).await? {
            return Ok(token);
        }
        let other = current_holder(pool).await?;
        if Instant::now() >= deadline {
            return Err(StoreError::Backend(held_by(&other)));
        }
        if !told {
            tracing::info!(holder = %other, "waiting for another node's claim on the queues to lapse");
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Who holds (or last held) the queues lease.
pub(super) async fn current_holder<'e, E: sqlx::PgExecutor<'e>>(ex: E) -> StoreResult<String> {
    let holder: Option<String> = sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
        .bind(QUEUES_LEASE)
        .fetch_optional(ex)
        .await
        .map_err(backend)?;
    Ok(holder.unwrap_or_default())
}

/// Where a node stands with the queues.
#[derive(Debug, Default)]
pub(super) struct Standing {
    /// It numbers envelopes in memory (it serves the database alone).
    numbering: AtomicBool,
    /// Another node serving the database alone took the queues from it
    /// (the same node started again, or a second one): it must not write
    /// them at all.
    replaced: AtomicBool,
}

impl Standing {
    /// Whether this node numbers envelopes in memory.
    pub(super) fn numbering(&self) -> bool {
        self.numbering.load(Ordering::Acquire)
    }

    /// Whether another node took the queues from this one.
    pub(super) fn replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// The queues went to `holder`: cluster nodes number each send in its
    /// write, and so does this node from now on; a node serving the
    /// database alone leaves nothing to this one.
    pub(super) fn lost_to(&self, holder: &str) {
        self.numbering.store(false, Ordering::Release);
        if holder != CLUSTER_HOLDER {
            self.replaced.store(true, Ordering::Release);
        }
        tracing::error!(%holder, "another node took this database's queues");
    }
}

/// Why a node cannot take the queues from `other`.
fn held_by(other: &str) -> String {
    if other == CLUSTER_HOLDER {
        "cluster nodes (started with --nats) serve this database: a node without --nats \
         must be alone on it; give this one --nats too"
            .into()
    } else {
        format!(
            "a node started without --nats ({other}) serves this database alone: stop it, or \
             start every node with --nats"
        )
    }
}

/// Renews `holder`'s claim while `alive` is there; calls `lost` once
/// another holder took the lease, or (with a `token`) once the token
/// changed: the same node started again elsewhere.
pub(super) fn keep_renewing<T, L>(
    pool: PgPool,
    holder: String,
    token: Option<u64>,
    alive: Weak<T>,
    lost: L,
) where
    T: Send + Sync + 'static,
    L: Fn(&str) + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            if alive.strong_count() == 0 {
                return;
            }
            match try_take(&pool, &holder, TRY_LEASE_SQL).await {
                Ok(Some(t)) if token.is_none_or(|mine| mine == t) => {}
                Ok(_) => {
                    let now = current_holder(&pool).await.unwrap_or_default();
                    lost(&now);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the claim on the queues"),
            }
        }
    });
}

impl PostgresStore {
    /// The numbering of a node serving its database alone, while it does.
    pub(super) fn alone(&self) -> Option<&Alone> {
        self.alone.get().filter(|_| self.standing.numbering())
    }

    /// Refuses writes to the queues once another node serving the database
    /// alone took them from this one.
    pub(super) fn check_standing(&self) -> StoreResult<()> {
        if self.standing.replaced() {
            return Err(backend(
                "another node serves this database alone now: this one writes no queue",
            ));
        }
        Ok(())
    }

    /// Forgets the in-memory blocks of deleted devices.
    pub(super) fn forget_blocks(&self, username: &str, device_id: Option<u32>) {
        if let Some(a) = self.alone.get() {
            a.forget(username, device_id);
        }
    }

    /// Serves the database as its only node (no `--nats`), as `node` (a
    /// name that stays the same when the node is started again): takes the
    /// `queues` lease (waiting, at most about 11 s, for the claim of
    /// another node that stopped to lapse) and from then on numbers
    /// envelopes in memory and hands them over before their write, as a
    /// SQLite node does (decision 0044). Fails, naming them, while other
    /// nodes hold it.
    pub async fn serve_alone(&self, node: &str) -> StoreResult<()> {
        let holder = format!("alone:{node}");
        let token = claim(&self.pool, &holder, true).await?;
        let fence = Fence::Lease {
            holder: holder.clone(),
            token: token as i64,
        };
        let alone = Alone::start(
            &self.options,
            self.pool.clone(),
            fence,
            self.standing.clone(),
        );
        self.alone
            .set(alone)
            .map_err(|_| backend("this store serves its database alone already"))?;
        self.renew(holder, Some(token));
        Ok(())
    }

    /// Joins the database as one node of a cluster (with `--nats`): holds
    /// the `queues` lease under the name every cluster node shares, so that
    /// no node serving the database alone runs beside the cluster. Fails
    /// while such a node holds it.
    pub async fn join_cluster(&self) -> StoreResult<()> {
        claim(&self.pool, CLUSTER_HOLDER, false).await?;
        self.renew(CLUSTER_HOLDER.into(), None);
        Ok(())
    }

    /// As a cluster node (after [`PostgresStore::join_cluster`]), numbers
    /// the queues of the devices it sends to early in memory, each under a
    /// claim ([`super::postgres_owned`], decision 0046), instead of every
    /// send in its write.
    pub fn number_devices_here(&self) -> StoreResult<()> {
        let node = super::postgres_owned::node_name();
        tracing::info!(%node, "numbering the queues of devices connected here (decision 0046)");
        let owned = Alone::start(
            &self.options,
            self.pool.clone(),
            Fence::Owner { node },
            self.standing.clone(),
        );
        self.alone
            .set(owned)
            .map_err(|_| backend("this store numbers its queues already"))?;
        Ok(())
    }

    /// Gives the claim of a node serving its database alone back (at its
    /// end), so that the next node takes the queues at once; its writes
    /// still under way are fenced off by the next one's token. Cluster
    /// nodes keep their shared claim: the others still run.
    pub async fn release_queues(&self) {
        let Some(holder) = self.alone.get().and_then(Alone::lease_holder) else {
            return;
        };
        if let Err(e) = self.release_lease(QUEUES_LEASE, holder).await {
            tracing::warn!(error = %e, "cannot give the claim on the queues back");
        }
    }

    /// Renews the claim while the store is open; tells `standing` if it is
    /// lost.
    fn renew(&self, holder: String, token: Option<u64>) {
        let standing = Arc::downgrade(&self.standing);
        let alive = standing.clone();
        keep_renewing(self.pool.clone(), holder, token, alive, move |now| {
            if let Some(s) = standing.upgrade() {
                s.lost_to(now);
            }
        });
    }
}

/// Seals, off the async runtime, the headers a send left for its write:
/// a node that stopped serving its database alone between the send's
/// sealing and its write has them still to seal.
pub(super) async fn seal_all(n: usize, mut envelope: NewEnvelope) -> StoreResult<NewEnvelope> {
    if envelope.seal_later.is_none() {
        return Ok(envelope);
    }
    tokio::task::spawn_blocking(move || {
        envelope.seal_missing(n, &vec![true; n])?;
        Ok(envelope)
    })
    .await
    .map_err(backend)?
}

/// What makes this node's numbering in memory safe, checked by every write.
#[derive(Debug, Clone)]
pub(super) enum Fence {
    /// A node alone: the `queues` lease, held under `holder` with `token`.
    Lease { holder: String, token: i64 },
    /// A cluster node: each device it numbers is claimed in its `devices`
    /// row under this node's name, with a token per claim
    /// ([`super::postgres_owned`]).
    Owner { node: String },
}

/// The numbering and the writer of a node that serves its database alone,
/// or of a cluster node for the devices connected to it.
#[derive(Debug)]
pub(super) struct Alone {
    fence: Fence,
    seqs: Arc<SeqBlocks>,
    queue: mpsc::Sender<EarlyJob>,
    pool: PgPool,
}

impl Alone {
    /// Starts the writer for a node holding the lease as `holder` with
    /// `token`.
    /// `token`; `standing` hears when another node takes the queues.
    pub(super) fn start(
        options: &PgConnectOptions,
        pool: PgPool,
        fence: Fence,
        standing: Arc<Standing>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(MAX_WAITING);
        standing.numbering.store(true, Ordering::Release);
        let seqs = Arc::new(SeqBlocks::default());
        let writer = Writer {
            fence: fence.clone(),
            standing,
            seqs: seqs.clone(),
        };
        tokio::spawn(writer_loop(options.clone(), rx, writer));
        Self {
            fence,
            seqs,
            queue,
            pool,
        }
    }

    /// The name this node holds the queues lease under, if it serves its
    /// database alone.
    pub(super) fn lease_holder(&self) -> Option<&str> {
        match &self.fence {
            Fence::Lease { holder, .. } => Some(holder),
            Fence::Owner { .. } => None,
        }
    }

    /// Whether this node serves its database alone (else it numbers only
    /// the devices connected to it, in a cluster).
    pub(super) fn is_alone(&self) -> bool {
        self.lease_holder().is_some()
    }

    /// Forgets the blocks of deleted devices.
    pub(super) fn forget(&self, username: &str, device_id: Option<u32>) {
        self.seqs.forget(username, device_id);
    }

    /// Numbers the send from the recipients' blocks and queues its write
    /// under one lock (so writes commit in the order of their numbers),
    /// raising used-up blocks first. `on_reserved` gets the numbers before
    /// the write is queued; the write skips recipients whose early
    /// acknowledgement came first. The numbers and, per recipient, whether
    /// it was written.
    pub(super) async fn enqueue(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
        early: Vec<Arc<EarlyAck>>,
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<(Vec<u64>, Vec<bool>)> {
        if self.is_alone() {
            return self
                .enqueue_once(recipients, envelope, claim, early, on_reserved)
                .await;
        }
        // A cluster node: a send numbered under a claim another node took
        // meanwhile is numbered again, under a new claim. A copy the device
        // acknowledged the first time is not written; one it did not may
        // reach it twice, and it drops the second by message id.
        let first = self
            .enqueue_once(
                recipients,
                envelope.clone(),
                claim.clone(),
                early.clone(),
                on_reserved,
            )
            .await;
        match first {
            Err(StoreError::LeaseLost { .. }) => self
                .enqueue_once(recipients, envelope, claim, early, on_reserved)
                .await
                .map_err(|e| match e {
                    StoreError::LeaseLost { .. } => StoreError::Busy,
                    e => e,
                }),
            other => other,
        }
    }

    /// [`Alone::enqueue`], numbered once.
    async fn enqueue_once(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
        early: Vec<Arc<EarlyAck>>,
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<(Vec<u64>, Vec<bool>)> {
        let mut job = Some((envelope, claim, early));
        for _ in 0..8 {
            match self.try_queue(recipients, &mut job, on_reserved)? {
                Some((seqs, rx)) => {
                    let written = rx
                        .await
                        .map_err(|_| backend("the database writer has stopped"))??;
                    return Ok((seqs, written));
                }
                None => self.raise(recipients).await?,
            }
        }
        Err(backend("could not reserve sequence numbers"))
    }

    /// Queues the job if every recipient has a number left; `None` when a
    /// block must be raised first.
    fn try_queue(
        &self,
        recipients: &[DeviceKey],
        job: &mut Option<Unnumbered>,
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<Option<Queued>> {
        let permit = self.queue.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(()) => backend("the database writer has stopped"),
        })?;
        let mut blocks = self.seqs.lock();
        let Some(seqs) = blocks.take(recipients) else {
            return Ok(None);
        };
        let tokens = blocks.tokens(recipients);
        let (envelope, claim, early) = job.take().ok_or_else(|| backend("enqueued twice"))?;
        // Handed over before the write is queued, so that the write's wait
        // for early acknowledgements starts once every connection has it.
        on_reserved(&seqs);
        let (reply, rx) = oneshot::channel();
        permit.send(EarlyJob {
            recipients: recipients.to_vec(),
            seqs: seqs.clone(),
            tokens,
            envelope,
            claim,
            early,
            written: Vec::new(),
            reply,
        });
        Ok(Some((seqs, rx)))
    }

    /// Raises, durably, the ceiling of every recipient whose block is used
    /// up (or not loaded since the start), or waits for the raise another
    /// send has under way. The rows are locked in key order.
    async fn raise(&self, recipients: &[DeviceKey]) -> StoreResult<()> {
        let Some(raise) = self.seqs.turn(recipients).await else {
            return Ok(());
        };
        let need = raise.devices();
        if let Fence::Owner { node } = &self.fence {
            let believed = self.seqs.lock().tokens(&need);
            let claimed =
                super::postgres_owned::raise_claims(&self.pool, node, &need, &believed).await?;
            raise.commit_claimed(claimed);
            return Ok(());
        }
        let names: Vec<&str> = need.iter().map(|d| d.username.as_str()).collect();
        let ids: Vec<i64> = need.iter().map(|d| i64::from(d.device_id)).collect();
        let rows = sqlx::query(
            "WITH locked AS MATERIALIZED (SELECT d.username AS u, d.device_id AS i FROM devices d \
               JOIN unnest($1::TEXT[], $2::BIGINT[]) AS k(u, i) \
               ON d.username = k.u AND d.device_id = k.i \
               ORDER BY d.username, d.device_id FOR NO KEY UPDATE OF d) \
             UPDATE devices d SET next_seq = d.next_seq + $3 FROM locked l \
             WHERE d.username = l.u AND d.device_id = l.i \
             RETURNING d.username, d.device_id, d.next_seq",
        )
        .bind(&names)
        .bind(&ids)
        .bind(SEQ_BLOCK as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        if rows.len() != need.len() {
            return Err(StoreError::NotFound);
        }
        let ceilings = rows
            .into_iter()
            .map(|r| {
                let key = DeviceKey::new(&r.get::<String, _>(0), r.get::<i64, _>(1) as u32);
                (key, r.get::<i64, _>(2) as u64)
            })
            .collect();
        // Committed: these blocks are durable now.
        raise.commit(ceilings);
        Ok(())
    }
}

/// A send not numbered yet: its envelope, claim and early acknowledgements.
type Unnumbered = (NewEnvelope, Option<EpochClaim>, Vec<Arc<EarlyAck>>);

/// A queued send: its numbers, and where the writer answers.
type Queued = (Vec<u64>, oneshot::Receiver<StoreResult<Vec<bool>>>);

/// A numbered send waiting for the writer.
pub(super) struct EarlyJob {
    pub(super) recipients: Vec<DeviceKey>,
    pub(super) seqs: Vec<u64>,
    /// Per recipient, the claim token its number was taken under (a
    /// cluster node's; 0 on a node alone).
    pub(super) tokens: Vec<i64>,
    pub(super) envelope: NewEnvelope,
    pub(super) claim: Option<EpochClaim>,
    /// One per recipient handed the envelope early (empty: none was).
    early: Vec<Arc<EarlyAck>>,
    /// Per recipient, whether it is written: decided when the batch runs.
    pub(super) written: Vec<bool>,
    reply: oneshot::Sender<StoreResult<Vec<bool>>>,
}

impl EarlyJob {
    fn awaits_acks(&self) -> bool {
        self.early.iter().any(|e| e.is_pending())
    }

    /// Decides, recipient by recipient, between the write and an early
    /// acknowledgement that came first.
    fn take_for_write(&mut self) {
        self.written = (0..self.recipients.len())
            .map(|i| self.early.get(i).is_none_or(|e| e.take_for_write()))
            .collect();
    }

    /// Answers the sender's task: per recipient, whether it was written.
    pub(super) fn answer(self, result: StoreResult<()>) {
        let _ = self.reply.send(result.map(|()| self.written));
    }

    /// Whether every recipient acknowledged it before its write (so it is
    /// delivered and nothing of it needs writing).
    pub(super) fn all_acknowledged(&self) -> bool {
        !self.written.contains(&true)
    }
}

/// Takes what is waiting, without waiting, up to [`MAX_BATCH`].
fn drain(rx: &mut mpsc::Receiver<EarlyJob>, batch: &mut Vec<EarlyJob>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// The writer task: takes every send waiting, gives envelopes handed over
/// early the window for their acknowledgements (taking in what arrives
/// meanwhile), then writes the batch in order.
/// What the writer task checks its writes with and tells of a lost fence.
pub(super) struct Writer {
    pub(super) fence: Fence,
    pub(super) standing: Arc<Standing>,
    pub(super) seqs: Arc<SeqBlocks>,
}

async fn writer_loop(options: PgConnectOptions, mut rx: mpsc::Receiver<EarlyJob>, writer: Writer) {
    let mut conn: Option<PgConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        let start = Instant::now();
        batch.push(first);
        drain(&mut rx, &mut batch);
        while batch.iter().any(EarlyJob::awaits_acks) {
            let left = EARLY_ACK_WINDOW.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(EARLY_ACK_POLL)).await;
            drain(&mut rx, &mut batch);
        }
        let jobs = seal(std::mem::take(&mut batch)).await;
        let c = match conn.take() {
            Some(c) => c,
            None => match PgConnection::connect_with(&options).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the database writer cannot connect");
                    for job in jobs {
                        job.answer(Err(StoreError::Busy));
                    }
                    continue;
                }
            },
        };
        conn = super::postgres_alone_write::write_batch(c, jobs, &writer).await;
    }
}

/// Decides what each job writes and seals, off the async runtime, the
/// headers left for the write.
async fn seal(mut jobs: Vec<EarlyJob>) -> Vec<EarlyJob> {
    for job in &mut jobs {
        job.take_for_write();
    }
    if jobs.iter().all(|j| j.envelope.seal_later.is_none()) {
        return jobs;
    }
    let sealed = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let n = job.recipients.len();
            match job.envelope.seal_missing(n, &job.written) {
                Ok(()) => out.push(job),
                Err(e) => job.answer(Err(e)),
            }
        }
        out
    })
    .await;
    sealed.unwrap_or_default()
}
