//! The PostgreSQL backend, for clusters of server nodes sharing one database.
//!
//! Each trait method is one transaction; sends are group-committed by a
//! writer task of their own, many in one transaction
//! ([`super::postgres_writer`]), and acknowledgements deleted the same way
//! by another ([`super::postgres_acks`]). Sequence numbers come from a per-device
//! counter row updated in the same transaction as the insert, so they are
//! gap-free per device and ordered by commit. A commit's epoch claim
//! locks the group's row (`FOR UPDATE`), so of two concurrent commits for one
//! epoch exactly one wins on any number of nodes.

use super::backend;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::postgres_acks::AckWriter;
use super::postgres_alone::{self, Alone, Standing};
use super::postgres_certs::CertReader;
use super::postgres_kt;
use super::postgres_queue;
use super::postgres_writer::SendWriter;
use super::{
    AccountRecord, AccountState, Authenticated, DeviceKey, DeviceRecord, EarlyAck, EarlyOutcome,
    EpochClaim, Fence, KtRecord, KtRoot, KtStateQuery, KtValueState, LeaseInfo, NewAccount,
    NewDevice, NewEnvelope, NewReport, ReportRecord, Stats, Store, StoreError, StoreResult,
    StoredEnvelope, TRY_LEASE_SQL,
};

/// The PostgreSQL store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    pub(super) options: PgConnectOptions,
    /// Set once the node serves the database alone
    /// ([`PostgresStore::serve_alone`]).
    pub(super) alone: Arc<std::sync::OnceLock<Alone>>,
    /// Where this node stands with the queues.
    pub(super) standing: Arc<Standing>,
    /// Writes the sends, batched, on a connection of its own.
    writer: SendWriter,
    /// Deletes acknowledged envelopes, batched, on a connection of its own.
    acks: AckWriter,
    /// Reads the certificates sends seal to, batched likewise.
    certificates: CertReader,
}

fn code_of(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// SQLSTATE 23505 unique_violation, 23503 foreign_key_violation.
fn map_insert(e: sqlx::Error, on_unique: StoreError) -> StoreError {
    match code_of(&e).as_deref() {
        Some("23505") => on_unique,
        Some("23503") => StoreError::NotFound,
        _ => backend(e),
    }
}

fn state_from_i16(v: i16) -> AccountState {
    if v == 0 {
        AccountState::Active
    } else {
        AccountState::Suspended
    }
}

impl PostgresStore {
    /// Connects to `url` and creates the schema if needed.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse().map_err(backend)?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options (tests use a schema per test).
    pub async fn connect_with(options: PgConnectOptions) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        super::postgres_migrate::migrate(&pool).await?;
        let writer = SendWriter::start(&options);
        let acks = AckWriter::start(&options);
        let certificates = CertReader::start(&options);
        Ok(Self {
            pool,
            options,
            alone: Arc::default(),
            standing: Arc::default(),
            writer,
            acks,
            certificates,
        })
    }
}

async fn load_account<'e, E>(ex: E, username: &str) -> StoreResult<Option<AccountRecord>>
where
    E: sqlx::PgExecutor<'e> + Copy,
{
    let Some(row) =
        sqlx::query("SELECT account_key, state, created_at_ms FROM accounts WHERE username = $1")
            .bind(username)
            .fetch_optional(ex)
            .await
            .map_err(backend)?
    else {
        return Ok(None);
    };
    let devices = sqlx::query(
        "SELECT device_id, certificate FROM devices WHERE username = $1 ORDER BY device_id",
    )
    .bind(username)
    .fetch_all(ex)
    .await
    .map_err(backend)?
    .into_iter()
    .map(|r| DeviceRecord {
        device_id: r.get::<i64, _>(0) as u32,
        certificate: r.get(1),
    })
    .collect();
    Ok(Some(AccountRecord {
        username: username.to_owned(),
        account_key: row.get(0),
        state: state_from_i16(row.get(1)),
        created_at_ms: row.get::<i64, _>(2) as u64,
        devices,
    }))
}

async fn insert_device(
    tx: &mut sqlx::PgConnection,
    username: &str,
    d: &NewDevice,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO devices (username, device_id, certificate, token_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(username)
    .bind(i64::from(d.device_id))
    .bind(&d.certificate)
    .bind(d.token_hash.as_slice())
    .execute(tx)
    .await
    .map_err(|e| map_insert(e, StoreError::DeviceExists))?;
    Ok(())
}

fn require_changed(n: u64) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_account(&self, account: NewAccount) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ($1, $2, 0, $3)",
        )
        .bind(&account.username)
        .bind(&account.account_key)
        .bind(account.now_ms as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_insert(e, StoreError::UsernameTaken))?;
        insert_device(&mut tx, &account.username, &account.device).await?;
        tx.commit().await.map_err(backend)
    }

    async fn account(&self, username: &str) -> StoreResult<Option<AccountRecord>> {
        load_account(&self.pool, username).await
    }

    async fn device_certificates(
        &self,
        devices: &[DeviceKey],
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.certificates.read(devices).await
    }

    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT username FROM accounts ORDER BY username")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(a) = load_account(&self.pool, &name).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn set_account_state(&self, username: &str, state: AccountState) -> StoreResult<()> {
        let v: i16 = match state {
            AccountState::Active => 0,
            AccountState::Suspended => 1,
        };
        let n = sqlx::query("UPDATE accounts SET state = $2 WHERE username = $1")
            .bind(username)
            .bind(v)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        require_changed(n)
    }

    async fn suspended_accounts(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT username FROM accounts WHERE state = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn replace_token(
        &self,
        device: &DeviceKey,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> StoreResult<()> {
        let n = sqlx::query(
            "UPDATE devices SET token_hash = $4 \
             WHERE username = $1 AND device_id = $2 AND token_hash = $3",
        )
        .bind(&device.username)
        .bind(i64::from(device.device_id))
        .bind(old.as_slice())
        .bind(new.as_slice())
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        require_changed(n)
    }

    async fn delete_account(&self, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        postgres_queue::drop_queues(&mut tx, username, None).await?;
        let n = sqlx::query("DELETE FROM accounts WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        require_changed(n)?;
        tx.commit().await.map_err(backend)?;
        self.forget_blocks(username, None);
        Ok(())
    }

    async fn add_device(
        &self,
        username: &str,
        device: NewDevice,
        max_devices: usize,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Lock the account row so concurrent adds respect the device limit.
        let exists = sqlx::query("SELECT 1 FROM accounts WHERE username = $1 FOR UPDATE")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE username = $1")
            .bind(username)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if count as usize >= max_devices {
            return Err(StoreError::TooManyDevices);
        }
        insert_device(&mut tx, username, &device).await?;
        tx.commit().await.map_err(backend)
    }

    async fn remove_device(&self, device: &DeviceKey) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        postgres_queue::drop_queues(&mut tx, &device.username, Some(device.device_id)).await?;
        let n = sqlx::query("DELETE FROM devices WHERE username = $1 AND device_id = $2")
            .bind(&device.username)
            .bind(i64::from(device.device_id))
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        require_changed(n)?;
        tx.commit().await.map_err(backend)?;
        self.forget_blocks(&device.username, Some(device.device_id));
        Ok(())
    }

    async fn authenticate(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Authenticated>> {
        let row = sqlx::query(
            "SELECT d.username, d.device_id, a.state FROM devices d \
             JOIN accounts a ON a.username = d.username WHERE d.token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| Authenticated {
            device: DeviceKey {
                username: r.get(0),
                device_id: r.get::<i64, _>(1) as u32,
            },
            state: state_from_i16(r.get(2)),
        }))
    }

    async fn put_key_packages(
        &self,
        device: &DeviceKey,
        suite: u16,
        key_packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let insert = "INSERT INTO key_packages (username, device_id, suite, last_resort, data) \
                      VALUES ($1, $2, $3, $4, $5)";
        for kp in &key_packages {
            sqlx::query(insert)
                .bind(&device.username)
                .bind(i64::from(device.device_id))
                .bind(i32::from(suite))
                .bind(false)
                .bind(kp)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_insert(e, StoreError::NotFound))?;
        }
        if let Some(lr) = last_resort {
            sqlx::query(
                "DELETE FROM key_packages WHERE username = $1 AND device_id = $2 \
                 AND suite = $3 AND last_resort",
            )
            .bind(&device.username)
            .bind(i64::from(device.device_id))
            .bind(i32::from(suite))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            sqlx::query(insert)
                .bind(&device.username)
                .bind(i64::from(device.device_id))
                .bind(i32::from(suite))
                .bind(true)
                .bind(lr)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_insert(e, StoreError::NotFound))?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn claim_key_packages(
        &self,
        username: &str,
        suite: u16,
    ) -> StoreResult<Vec<(u32, Vec<u8>)>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let devices: Vec<i64> = sqlx::query_scalar(
            "SELECT device_id FROM devices WHERE username = $1 ORDER BY device_id",
        )
        .bind(username)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut out = Vec::with_capacity(devices.len());
        for device_id in devices {
            // SKIP LOCKED: two concurrent claims never get the same KeyPackage.
            let row = sqlx::query(
                "SELECT id, last_resort, data FROM key_packages \
                 WHERE username = $1 AND device_id = $2 AND suite = $3 \
                 ORDER BY last_resort, id LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(username)
            .bind(device_id)
            .bind(i32::from(suite))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if let Some(r) = row {
                let id: i64 = r.get(0);
                let last_resort: bool = r.get(1);
                if !last_resort {
                    sqlx::query("DELETE FROM key_packages WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                out.push((device_id as u32, r.get(2)));
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }

    async fn key_package_counts(&self, device: &DeviceKey) -> StoreResult<Vec<(u16, u64)>> {
        let rows = sqlx::query(
            "SELECT suite, COUNT(*) FROM key_packages WHERE username = $1 AND device_id = $2 \
             AND NOT last_resort GROUP BY suite ORDER BY suite",
        )
        .bind(&device.username)
        .bind(i64::from(device.device_id))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<i32, _>(0) as u16, r.get::<i64, _>(1) as u64))
            .collect())
    }

    async fn enqueue(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
    ) -> StoreResult<Vec<u64>> {
        self.check_standing()?;
        // A cluster node numbers only the sends it hands over early; the
        // rest take the counters, and with them any claim on the devices.
        if let Some(alone) = self.alone().filter(|a| a.is_alone()) {
            let (seqs, _) = alone
                .enqueue(recipients, envelope, claim, Vec::new(), &mut |_| {})
                .await?;
            return Ok(seqs);
        }
        let envelope = postgres_alone::seal_all(recipients.len(), envelope).await?;
        self.writer
            .write(recipients.to_vec(), envelope, claim)
            .await
    }

    fn seals_lazily(&self) -> bool {
        self.alone().is_some()
    }

    async fn enqueue_early(
        &self,
        recipients: &[DeviceKey],
        envelope: NewEnvelope,
        early: &[Arc<EarlyAck>],
        on_reserved: &mut (dyn for<'s> FnMut(&'s [u64]) + Send),
    ) -> StoreResult<EarlyOutcome> {
        let Some(alone) = self.alone() else {
            let seqs = self.enqueue(recipients, envelope, None).await?;
            return Ok(super::written_first(seqs, early, on_reserved));
        };
        if early.len() != recipients.len() {
            return Err(backend("one early acknowledgement per recipient"));
        }
        let (seqs, wake) = alone
            .enqueue(recipients, envelope, None, early.to_vec(), on_reserved)
            .await?;
        Ok(EarlyOutcome { seqs, wake })
    }

    async fn fetch(
        &self,
        device: &DeviceKey,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredEnvelope>> {
        postgres_queue::fetch(&self.pool, device, after, limit).await
    }

    async fn ack(&self, device: &DeviceKey, seqs: &[u64]) -> StoreResult<u64> {
        self.acks.ack(device, seqs).await
    }

    async fn expire(&self, now_ms: u64) -> StoreResult<u64> {
        super::nonces::postgres_expire(&self.pool, now_ms).await?;
        postgres_queue::expire(&self.pool, now_ms).await
    }

    async fn remember_nonce(
        &self,
        nonce: [u8; 32],
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<bool> {
        super::nonces::postgres_remember(&self.pool, &nonce, expires_at_ms, now_ms).await
    }

    async fn group_epoch(&self, group_id: &[u8]) -> StoreResult<Option<u64>> {
        let e: Option<i64> = sqlx::query_scalar("SELECT epoch FROM groups WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(e.map(|e| e as u64))
    }

    async fn put_profile(&self, username: &str, blob: Vec<u8>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO profiles (username, blob) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET blob = excluded.blob",
        )
        .bind(username)
        .bind(blob)
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert(e, StoreError::NotFound))?;
        Ok(())
    }

    async fn profile(&self, username: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT blob FROM profiles WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn put_backup(
        &self,
        user: &str,
        loc: [u8; 32],
        data: Vec<u8>,
        now: u64,
    ) -> StoreResult<()> {
        super::backups::pg_put(&self.pool, user, &loc, data, now).await
    }

    async fn backup(&self, loc: [u8; 32]) -> StoreResult<Option<Vec<u8>>> {
        super::backups::pg_get(&self.pool, &loc).await
    }

    async fn backup_info(&self, user: &str) -> StoreResult<Option<super::backups::BackupInfo>> {
        super::backups::pg_info(&self.pool, user).await
    }

    async fn delete_backup(&self, user: &str) -> StoreResult<bool> {
        super::backups::pg_delete(&self.pool, user).await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM devices), \
             (SELECT COUNT(*) FROM envelopes), \
             (SELECT COUNT(*) FROM key_packages WHERE NOT last_resort), \
             (SELECT COUNT(*) FROM groups), \
             (SELECT COUNT(*) FROM payloads), \
             (SELECT COALESCE(SUM(size), 0)::BIGINT FROM payloads)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(Stats {
            accounts: row.get::<i64, _>(0) as u64,
            devices: row.get::<i64, _>(1) as u64,
            queued_envelopes: row.get::<i64, _>(2) as u64,
            key_packages: row.get::<i64, _>(3) as u64,
            groups: row.get::<i64, _>(4) as u64,
            payloads: row.get::<i64, _>(5) as u64,
            payload_bytes: row.get::<i64, _>(6) as u64,
        })
    }

    async fn queue_bytes(&self, devices: &[DeviceKey]) -> StoreResult<Vec<u64>> {
        postgres_queue::queue_bytes(&self.pool, devices).await
    }

    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    async fn server_secret(&self, name: &str, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn file_report(&self, report: NewReport) -> StoreResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO reports (reporter, sender, commitment, content, reason, received_at_ms, filed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&report.reporter)
        .bind(&report.sender)
        .bind(report.commitment.as_slice())
        .bind(&report.content)
        .bind(&report.reason)
        .bind(report.received_at_ms as i64)
        .bind(report.filed_at_ms as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| map_insert(e, StoreError::DuplicateReport))
    }

    async fn list_reports(&self, all: bool) -> StoreResult<Vec<ReportRecord>> {
        let sql = if all {
            format!("SELECT {REPORT_COLUMNS} FROM reports ORDER BY id DESC")
        } else {
            format!("SELECT {REPORT_COLUMNS} FROM reports WHERE status = 'open' ORDER BY id DESC")
        };
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(report_row).collect())
    }

    async fn get_report(&self, id: i64) -> StoreResult<Option<ReportRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(report_row))
    }

    async fn resolve_report(&self, id: i64, status: &str) -> StoreResult<()> {
        let n = sqlx::query("UPDATE reports SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        require_changed(n)
    }

    async fn reports_since(&self, reporter: &str, since_ms: u64) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM reports WHERE reporter = $1 AND filed_at_ms >= $2",
        )
        .bind(reporter)
        .bind(since_ms as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n as u64)
    }

    // Key transparency: the SQL is in `postgres_kt`.

    async fn kt_write(&self, records: Vec<KtRecord>, states: Vec<KtValueState>) -> StoreResult<()> {
        postgres_kt::write(&self.pool, records, states, None).await
    }

    async fn kt_write_fenced(
        &self,
        records: Vec<KtRecord>,
        states: Vec<KtValueState>,
        fence: Fence,
    ) -> StoreResult<()> {
        postgres_kt::write(&self.pool, records, states, Some(fence)).await
    }

    async fn kt_records(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<KtRecord>> {
        postgres_kt::records(&self.pool, keys).await
    }

    async fn kt_states(&self, keys: &[(Vec<u8>, u64)]) -> StoreResult<Vec<KtValueState>> {
        postgres_kt::states(&self.pool, keys).await
    }

    async fn kt_user_states(&self, username: &[u8]) -> StoreResult<Vec<KtValueState>> {
        postgres_kt::user_states(&self.pool, username).await
    }

    async fn kt_user_state(
        &self,
        usernames: &[Vec<u8>],
        query: KtStateQuery,
    ) -> StoreResult<Vec<KtValueState>> {
        postgres_kt::user_state(&self.pool, usernames, query).await
    }

    async fn kt_dump(&self) -> StoreResult<(Vec<KtRecord>, Vec<KtValueState>)> {
        postgres_kt::dump(&self.pool).await
    }

    async fn kt_put_root(&self, root: KtRoot) -> StoreResult<()> {
        postgres_kt::put_root(&self.pool, &root).await
    }

    async fn kt_root(&self, epoch: u64) -> StoreResult<Option<KtRoot>> {
        postgres_kt::root_by_epoch(&self.pool, epoch).await
    }

    async fn kt_roots(&self, from: u64, to: u64) -> StoreResult<Vec<KtRoot>> {
        postgres_kt::roots(&self.pool, from, to).await
    }

    async fn kt_latest_root(&self) -> StoreResult<Option<KtRoot>> {
        postgres_kt::latest_root(&self.pool).await
    }
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        let token: Option<i64> = sqlx::query_scalar(TRY_LEASE_SQL)
            .bind(name)
            .bind(holder)
            .bind(clamp_i64(now_ms.saturating_add(ttl_ms)))
            .bind(clamp_i64(now_ms))
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(token.map(|t| t as u64))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at_ms = 0 WHERE name = $1 AND holder = $2 AND expires_at_ms > 0",
        )
        .bind(name)
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn lease(&self, name: &str, now_ms: u64) -> StoreResult<Option<LeaseInfo>> {
        let row = sqlx::query(
            "SELECT holder, token, expires_at_ms FROM leases WHERE name = $1 AND expires_at_ms > $2",
        )
        .bind(name)
        .bind(clamp_i64(now_ms))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|r| LeaseInfo {
            holder: r.get(0),
            token: r.get::<i64, _>(1) as u64,
            expires_at_ms: r.get::<i64, _>(2) as u64,
        }))
    }
}

/// Times are stored as signed 64-bit integers.
fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const REPORT_COLUMNS: &str =
    "id, reporter, sender, commitment, content, reason, received_at_ms, filed_at_ms, status";

fn report_row(r: &sqlx::postgres::PgRow) -> ReportRecord {
    let commitment: Vec<u8> = r.get(3);
    ReportRecord {
        id: r.get(0),
        report: NewReport {
            reporter: r.get(1),
            sender: r.get(2),
            commitment: <[u8; 32]>::try_from(commitment.as_slice()).unwrap_or([0; 32]),
            content: r.get(4),
            reason: r.get(5),
            received_at_ms: r.get::<i64, _>(6) as u64,
            filed_at_ms: r.get::<i64, _>(7) as u64,
        },
        status: r.get(8),
    }
}
