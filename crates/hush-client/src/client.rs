//! The client: one account on one device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hush_proto::{
    AccountKey, Content, Conversation, Device, DeviceCertificate, DeviceId, DeviceSigningKey,
    StateKey, Suite, Timestamp, Username,
};
use hush_wire::api::*;
use hush_wire::{Bytes, DeviceAddress};
use reqwest::Method;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::PresenceMode;
use crate::transport::{ConnectOptions, Transport, normalize_fingerprint};

/// One-time KeyPackages kept on the server per suite.
pub const KEY_PACKAGE_TARGET: u64 = 20;
/// Below this many, the client uploads more.
pub const KEY_PACKAGE_LOW: u64 = 5;

/// The current time, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_millis(now_ms())
}

/// A Hush account on this device.
pub struct Client {
    pub(crate) store: LocalStore,
    pub(crate) device: Device,
    pub(crate) convs: HashMap<Vec<u8>, Conversation>,
    pub(crate) transport: Transport,
    pub(crate) username: Username,
    pub(crate) device_id: u32,
    pub(crate) account: AccountKey,
    /// Directory values verified by key transparency in this session.
    pub(crate) kt_vouched: HashMap<String, hush_proto::kt::KtValue>,
    /// The directory epoch each of `kt_vouched` was proven at.
    pub(crate) kt_vouched_at: HashMap<String, u64>,
    /// Contacts' checkpoints (epoch, root hash) found to agree with this
    /// client's view of the directory in this session.
    pub(crate) kt_agreed: std::collections::HashSet<(u64, [u8; 32])>,
    /// When the self-monitoring check and the KeyPackage count last ran
    /// (see [`crate::sync`]: a sync listening on a kept connection runs them
    /// at most every [`crate::sync::ROUTINE_EVERY`]).
    pub(crate) routine_at: Option<std::time::Instant>,
    /// When this device last looked for join requests on its groups'
    /// invite links (decision 0033).
    pub(crate) links_checked_at: Option<std::time::Instant>,
    /// This device's key for opening sealed envelopes, derived once.
    pub(crate) open_key: std::sync::OnceLock<hush_proto::sealed::OpenKey>,
    /// Test hook: the next sync batch is opened but never written, as if
    /// the process died just before the write.
    pub(crate) crash_before_batch_write: bool,
    /// Commits larger than this travel out of band (decision 0021): the
    /// server's message limit; tests lower it.
    pub(crate) inline_commit_limit: usize,
    /// Test hook: conversations of the legacy suite are not moved, as by
    /// a release before decision 0031.
    pub(crate) hold_suite_moves: bool,
    /// Test hook: the next suite move stops between its announcement and
    /// its Welcome, as if the process died there.
    #[cfg(feature = "test-hooks")]
    pub(crate) crash_after_announcement: bool,
    /// No conversation of the legacy suite was left at the last routine
    /// sync: later ones need not load every group to look again.
    pub(crate) no_legacy_left: bool,
    /// The channel watch, once a front end started it
    /// ([`Client::watch_channels`]); its tasks stop when it is dropped.
    pub(crate) channel_watch: Option<crate::channel_watch::ChannelWatch>,
    pub(crate) dir: PathBuf,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .field("server", &self.transport.base())
            .finish_non_exhaustive()
    }
}

pub(crate) fn meta_required(store: &LocalStore, key: &str) -> Result<Vec<u8>, ClientError> {
    store
        .meta(key)?
        .ok_or_else(|| ClientError::Store(format!("the local store lacks {key}")))
}

pub(crate) fn seed(bytes: &[u8]) -> Result<[u8; 32], ClientError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| ClientError::Store("a stored key is corrupt".into()))
}

/// Checks every device certificate of a directory answer for `user`
/// against the answer's account key; returns that key.
pub(crate) fn checked_entry_key(
    user: &Username,
    entry: &AccountResponse,
) -> Result<hush_proto::AccountPublicKey, ClientError> {
    let devices = crate::directory::device_list(entry);
    let account = crate::directory::batch_account(entry, &devices);
    Ok(hush_proto::kt_batch::checked_key(user, account)?)
}

impl Client {
    /// A client over an opened store, with empty session caches. The name
    /// and device id are the certificate's.
    pub(crate) fn assemble(
        store: LocalStore,
        device: Device,
        transport: Transport,
        account: AccountKey,
        dir: &Path,
    ) -> Self {
        let cert = device.certificate();
        Client {
            username: cert.username().clone(),
            device_id: cert.device_id().0,
            store,
            device,
            convs: HashMap::new(),
            transport,
            account,
            kt_vouched: HashMap::new(),
            kt_vouched_at: HashMap::new(),
            kt_agreed: std::collections::HashSet::new(),
            routine_at: None,
            links_checked_at: None,
            open_key: std::sync::OnceLock::new(),
            crash_before_batch_write: false,
            inline_commit_limit: hush_wire::limits::MAX_MESSAGE_LEN,
            hold_suite_moves: false,
            #[cfg(feature = "test-hooks")]
            crash_after_announcement: false,
            no_legacy_left: false,
            channel_watch: None,
            dir: dir.to_owned(),
        }
    }

    /// Registers `username` on `server` and creates the local store in `dir`.
    /// For an `https://` server, `fingerprint` pins its certificate (see
    /// [`crate::probe_fingerprint`]); without one, the system's roots decide.
    /// On failure nothing is left behind in `dir`.
    pub async fn register(
        dir: &Path,
        passphrase: &str,
        server: &str,
        username: &str,
        fingerprint: Option<&str>,
    ) -> Result<Client, ClientError> {
        Self::register_with(
            dir,
            passphrase,
            server,
            username,
            fingerprint,
            ConnectOptions::default(),
        )
        .await
    }

    /// [`Client::register`], with `options` deciding how the server may be
    /// reached (plain `http://` to a server not on loopback is refused
    /// before anything is created or sent, unless allowed).
    pub async fn register_with(
        dir: &Path,
        passphrase: &str,
        server: &str,
        username: &str,
        fingerprint: Option<&str>,
        options: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let user = Username::new(username).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let transport = Transport::with_options(server, fingerprint.map(str::to_owned), options)?;
        let store = LocalStore::create(dir, passphrase)?;
        let result = Self::register_in(store, dir, transport, user, fingerprint).await;
        if result.is_err() {
            for name in ["keyfile.json", "hush.db", "hush.db-wal", "hush.db-shm"] {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        result
    }

    async fn register_in(
        store: LocalStore,
        dir: &Path,
        transport: Transport,
        user: Username,
        fingerprint: Option<&str>,
    ) -> Result<Client, ClientError> {
        let mut rng = rand::rngs::OsRng;
        let account = AccountKey::generate(&mut rng)?;
        let key = DeviceSigningKey::generate(&mut rng)?;
        let device_id = 1;
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(device_id), &key, now_ms())?;
        let resp: RegisterResponse = transport
            .json(
                Method::POST,
                "/v1/accounts",
                Some(&RegisterRequest {
                    username: user.to_string(),
                    account_key: Bytes(account.public().as_bytes().to_vec()),
                    device: NewDeviceBody {
                        device_id,
                        certificate: Bytes(cert.encode()),
                    },
                }),
            )
            .await?;
        {
            let conn = &store.conn;
            LocalStore::set_meta(conn, "server", transport.base().as_bytes())?;
            if let Some(fp) = fingerprint {
                LocalStore::set_meta(conn, "fingerprint", normalize_fingerprint(fp).as_bytes())?;
            }
            LocalStore::set_meta(conn, "username", user.as_str().as_bytes())?;
            LocalStore::set_meta(conn, "device_id", device_id.to_string().as_bytes())?;
            LocalStore::set_meta(conn, "token", resp.token.as_bytes())?;
            LocalStore::set_meta(conn, "account_seed", &*account.to_seed())?;
            LocalStore::set_meta(conn, "device_seed", &*key.to_seed())?;
            LocalStore::set_meta(conn, "certificate", &cert.encode())?;
            LocalStore::set_meta(conn, "last_seq", b"0")?;
            LocalStore::set_meta(conn, "presence", b"contacts")?;
            crate::devices::note_device(conn, &cert, None, false)?;
        }
        let device = Device::new(cert, &key)?;
        let mut client = Client::assemble(
            store,
            device,
            transport.with_token(resp.token),
            account,
            dir,
        );
        // Pin the server's key-transparency keys and check that the
        // directory holds exactly the keys just registered.
        client.kt_config().await?;
        let alarms = client.kt_monitor(true).await?;
        if let Some(a) = alarms.first() {
            return Err(ClientError::InvalidInput(a.clone()));
        }
        client.top_up_key_packages(true).await?;
        Ok(client)
    }

    /// Opens the account in `dir`.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Client, ClientError> {
        Self::open_with(dir, passphrase, ConnectOptions::default())
    }

    /// [`Client::open`], with `options` deciding how the server may be
    /// reached (see [`ConnectOptions`]).
    pub fn open_with(
        dir: &Path,
        passphrase: &str,
        options: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let store = LocalStore::open(dir, passphrase)?;
        let server = String::from_utf8_lossy(&meta_required(&store, "server")?).into_owned();
        let fingerprint = store.meta_str("fingerprint")?;
        let token = String::from_utf8_lossy(&meta_required(&store, "token")?).into_owned();
        let username = Username::new(&String::from_utf8_lossy(&meta_required(
            &store, "username",
        )?))
        .map_err(|e| ClientError::Store(e.to_string()))?;
        let device_id: u32 = String::from_utf8_lossy(&meta_required(&store, "device_id")?)
            .parse()
            .map_err(|_| ClientError::Store("device id is corrupt".into()))?;
        let account = AccountKey::from_seed(seed(&meta_required(&store, "account_seed")?)?)?;
        let key = DeviceSigningKey::from_seed(seed(&meta_required(&store, "device_seed")?)?)?;
        let cert = DeviceCertificate::decode(&meta_required(&store, "certificate")?)?;
        if cert.username() != &username || cert.device_id().0 != device_id {
            return Err(ClientError::Store(
                "the stored account and device do not match the stored certificate".into(),
            ));
        }
        let entries = store
            .mls_entries()?
            .into_iter()
            .filter_map(|(k, v)| StateKey::from_bytes(&k).ok().map(|k| (k, v)))
            .collect::<Vec<_>>();
        let device = Device::restore(cert, &key, entries)?;
        let transport = Transport::with_options(&server, fingerprint, options)?.with_token(token);
        let mut client = Client::assemble(store, device, transport, account, dir);
        client.expire_messages()?;
        Ok(client)
    }

    /// This account's username.
    pub fn username(&self) -> &str {
        self.username.as_str()
    }

    /// This device's id.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        self.transport.base()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Changes the passphrase of the local store.
    pub fn change_passphrase(&self, old: &str, new: &str) -> Result<(), ClientError> {
        self.store.change_passphrase(old, new)
    }

    /// The account's identity key.
    pub fn account_key(&self) -> hush_proto::AccountPublicKey {
        self.account.public()
    }

    /// Who sees this account's presence (see [`Client::set_presence_mode`]).
    pub fn presence_setting(&self) -> Result<PresenceMode, ClientError> {
        self.presence_mode()
    }

    pub(crate) fn presence_mode(&self) -> Result<PresenceMode, ClientError> {
        Ok(self
            .store
            .meta_str("presence")?
            .and_then(|s| PresenceMode::parse(&s))
            .unwrap_or(PresenceMode::Contacts))
    }

    /// Writes the MLS state changes of the last operations (a whole sync
    /// batch's included) together with whatever `f` writes, in one
    /// transaction. On failure the in-memory MLS
    /// state is reloaded from disk, so memory never runs ahead of the store.
    pub(crate) fn persist<R>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        // State changed by batched operations is written with this
        // transaction too (decision 0018).
        let flushed = self.convs.values_mut().try_for_each(|c| c.flush());
        if let Err(e) = flushed {
            self.reload_mls()?;
            return Err(e.into());
        }
        let changes = self.device.take_changes();
        let result = (|| {
            let tx = self.store.conn.transaction()?;
            LocalStore::apply_changes(&tx, changes)?;
            let r = f(&tx)?;
            tx.commit()?;
            Ok(r)
        })();
        if result.is_err() {
            self.reload_mls()?;
        }
        result
    }

    /// The connection to the server (HTTP and the device's WebSocket).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Bytes of MLS state this client has written to its store since it was
    /// opened (see `hush_proto::Device::state_bytes_written`).
    pub fn state_bytes_written(&self) -> u64 {
        self.device.state_bytes_written()
    }

    /// Drops in-memory MLS state and reloads it from the store.
    pub(crate) fn reload_mls(&mut self) -> Result<(), ClientError> {
        self.device.take_changes();
        let key = DeviceSigningKey::from_seed(seed(&meta_required(&self.store, "device_seed")?)?)?;
        let entries = self
            .store
            .mls_entries()?
            .into_iter()
            .filter_map(|(k, v)| StateKey::from_bytes(&k).ok().map(|k| (k, v)))
            .collect::<Vec<_>>();
        let modified = !self.device.checks_own_rules();
        self.device = Device::restore(self.device.certificate().clone(), &key, entries)?;
        if modified {
            self.device.play_modified_client();
        }
        self.convs.clear();
        Ok(())
    }

    /// Makes this client send group changes the group's rules forbid
    /// (decision 0032), as a modified client would: only for tests that
    /// play that attacker. What it receives is judged as before.
    #[doc(hidden)]
    pub fn play_modified_client(&mut self) {
        self.device.play_modified_client();
    }

    /// The conversation for `group_id`, loaded on first use.
    pub(crate) fn conv(&mut self, group_id: &[u8]) -> Result<&mut Conversation, ClientError> {
        if !self.convs.contains_key(group_id) {
            let conv = self.device.load(group_id)?;
            self.convs.insert(group_id.to_vec(), conv);
        }
        self.convs
            .get_mut(group_id)
            .ok_or_else(|| ClientError::NotFound("conversation".into()))
    }

    /// Uploads KeyPackages so the server holds [`KEY_PACKAGE_TARGET`] per
    /// suite (and, with `last_resort`, a last-resort one per suite). The
    /// secrets are stored before anything is uploaded.
    pub async fn top_up_key_packages(&mut self, last_resort: bool) -> Result<(), ClientError> {
        let counts: KeyPackageCountResponse = self
            .transport
            .json::<(), _>(Method::GET, "/v1/key-packages/count", None)
            .await?;
        for suite in Suite::ALL {
            let n = suite.cipher_suite().raw_value();
            let have = counts
                .counts
                .iter()
                .find(|c| c.suite == n)
                .map_or(0, |c| c.count);
            if have >= KEY_PACKAGE_LOW && !last_resort {
                continue;
            }
            let want = KEY_PACKAGE_TARGET.saturating_sub(have);
            let now = now();
            let mut kps = Vec::new();
            for _ in 0..want {
                kps.push(Bytes(
                    self.device.generate_key_package(suite, false, now)?.message,
                ));
            }
            let lr = if last_resort {
                Some(Bytes(
                    self.device.generate_key_package(suite, true, now)?.message,
                ))
            } else {
                None
            };
            if kps.is_empty() && lr.is_none() {
                continue;
            }
            self.persist(|_| Ok(()))?;
            self.transport
                .call(
                    Method::PUT,
                    "/v1/key-packages",
                    Some(&UploadKeyPackagesRequest {
                        suite: n,
                        key_packages: kps,
                        last_resort: lr,
                    }),
                )
                .await?;
        }
        Ok(())
    }

    /// A fresh KeyPackage of this device in RFC 9420 wire format (for other
    /// MLS implementations to check). Its secret is kept, so it is usable.
    pub fn export_key_package(&mut self, suite: Suite) -> Result<Vec<u8>, ClientError> {
        let kp = self.device.generate_key_package(suite, false, now())?;
        self.persist(|_| Ok(()))?;
        Ok(kp.message)
    }

    /// Fetches an account from the directory, checks every device
    /// certificate against the account key, and records the key on first
    /// contact. A changed key is recorded and returned as the second value.
    pub(crate) async fn lookup(
        &mut self,
        username: &str,
    ) -> Result<(AccountResponse, bool), ClientError> {
        let (entry, changed, _status) = self.lookup_verified(username).await?;
        Ok((entry, changed))
    }

    /// [`Client::lookup`], with what key transparency said about the keys.
    /// The directory answer is checked against a lookup proof before
    /// anything about it is recorded.
    pub(crate) async fn lookup_verified(
        &mut self,
        username: &str,
    ) -> Result<(AccountResponse, bool, crate::kt::KtStatus), ClientError> {
        let user = Username::new(username).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let mut entry: AccountResponse = self
            .transport
            .json::<(), _>(Method::GET, &format!("/v1/accounts/{user}"), None)
            .await
            .map_err(|e| match e.code() {
                Some(hush_wire::ErrorCode::NotFound) => {
                    ClientError::NotFound(format!("no account named {user} on this server"))
                }
                _ => e,
            })?;
        let key = checked_entry_key(&user, &entry)?;
        let (value, status) = self.kt_check_entry(&user, &mut entry).await?;
        let key = value.account_key.unwrap_or(key);
        self.kt_vouched.insert(user.to_string(), value);
        self.kt_vouched_at.insert(user.to_string(), status.epoch);
        let changed = self.note_account_key(user.as_str(), key.as_bytes())?;
        Ok((entry, changed, status))
    }

    /// Records `key` for `username` (first contact) or compares it with the
    /// recorded one. Returns true when it changed (recorded as such).
    pub(crate) fn note_account_key(
        &mut self,
        username: &str,
        key: &[u8],
    ) -> Result<bool, ClientError> {
        if username == self.username.as_str() {
            return Ok(key != self.account.public().as_bytes());
        }
        let known: Option<Vec<u8>> = self
            .store
            .conn
            .query_row(
                "SELECT account_key FROM contacts WHERE username = ?1",
                params![username],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            None => {
                self.store.conn.execute(
                    "INSERT INTO contacts (username, account_key, first_seen) VALUES (?1, ?2, ?3)",
                    params![username, key, now_ms() as i64],
                )?;
                // A block or mark another device of this account made first.
                crate::self_sync::apply_synced_contact(&self.store.conn, username)?;
                Ok(false)
            }
            Some(k) if k == key => Ok(false),
            Some(_) => {
                self.store.conn.execute(
                    // 2: changed after the user verified them; sends stop until
                    // they verify again. 1: changed, never verified; a warning.
                    "UPDATE contacts SET account_key = ?2, \
                     key_changed = CASE WHEN verified = 1 THEN 2 ELSE 1 END, verified = 0 \
                     WHERE username = ?1",
                    params![username, key],
                )?;
                // Chats with the old identity cannot reach the new one; the
                // next message starts a new chat with the current devices.
                self.store.conn.execute(
                    "UPDATE conversations SET active = 0 WHERE kind = 'direct' AND peer = ?1",
                    params![username],
                )?;
                tracing::warn!(%username, "identity key changed");
                Ok(true)
            }
        }
    }

    /// Claims one KeyPackage per device of `username`, skipping this device.
    pub(crate) async fn claim(
        &mut self,
        username: &str,
        suite: Suite,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let resp: ClaimResponse = self
            .transport
            .json::<(), _>(
                Method::POST,
                &format!(
                    "/v1/accounts/{username}/key-packages/claim?suite={}",
                    suite.cipher_suite().raw_value()
                ),
                None,
            )
            .await?;
        // This account's own devices change under it (links, removals):
        // always asked afresh.
        if username == self.username.as_str() || !self.kt_vouched.contains_key(username) {
            self.lookup(username).await?;
        }
        let value = self.kt_vouched.get(username).cloned().ok_or_else(|| {
            ClientError::NotFound(format!("{username} is not in the key directory"))
        })?;
        let mut out = Vec::new();
        for kp in resp.key_packages {
            if username == self.username.as_str() && kp.device_id == self.device_id {
                continue;
            }
            // Each KeyPackage must be signed by a device key the directory
            // proves, under the account key it proves.
            let info = hush_proto::inspect_key_package(kp.key_package.as_slice())?;
            if info.certificate.username().as_str() != username
                || !value.vouches_for(&info.certificate)
            {
                return Err(hush_proto::kt::KtError::KeysNotInDirectory {
                    username: username.to_owned(),
                    what: format!(
                        "a KeyPackage for device {} carries a key the directory does not list",
                        kp.device_id
                    ),
                }
                .into());
            }
            out.push(kp.key_package.0);
        }
        Ok(out)
    }

    /// Every device of a conversation except this one.
    pub(crate) fn recipients_of(
        &mut self,
        group_id: &[u8],
    ) -> Result<Vec<DeviceAddress>, ClientError> {
        let me = (self.username.clone(), self.device_id);
        Ok(self
            .conv(group_id)?
            .members()
            .into_iter()
            .filter(|c| !(c.username() == &me.0 && c.device_id().0 == me.1))
            .map(|c| DeviceAddress {
                username: c.username().to_string(),
                device_id: c.device_id().0,
            })
            .collect())
    }

    /// Queues a send in the outbox (inside the caller's transaction);
    /// `message_id` is the stored message it carries, if any.
    pub(crate) fn queue_send(
        tx: &Transaction<'_>,
        req: &SendRequest,
        message_id: Option<&str>,
    ) -> Result<(), ClientError> {
        let json = serde_json::to_string(req).map_err(|e| ClientError::Store(e.to_string()))?;
        tx.execute(
            "INSERT INTO outbox (request, message_id) VALUES (?1, ?2)",
            params![json, message_id],
        )?;
        Ok(())
    }

    /// Sends everything in the outbox, oldest first. A send the server
    /// refuses for good (4xx) is dropped and its message marked failed; a
    /// network failure stops here and is retried next time.
    pub async fn flush_outbox(&mut self) -> Result<(), ClientError> {
        // Devices the server says no longer exist.
        let mut departed = Vec::new();
        loop {
            let next: Option<(i64, String, Option<String>)> = self
                .store
                .conn
                .query_row(
                    "SELECT rowid, request, message_id FROM outbox ORDER BY rowid LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((rowid, json, message_id)) = next else {
                break;
            };
            let req: SendRequest =
                serde_json::from_str(&json).map_err(|e| ClientError::Store(e.to_string()))?;
            let outcome = match self.transport.send_message(&req).await {
                Ok(sent) => {
                    departed.extend(sent.missing);
                    "sent"
                }
                Err(ClientError::Server(e))
                    if !matches!(
                        e.code,
                        hush_wire::ErrorCode::RateLimited
                            | hush_wire::ErrorCode::Internal
                            | hush_wire::ErrorCode::Unavailable
                            // The account cannot send at all: keep it queued and say why.
                            | hush_wire::ErrorCode::Suspended
                            | hush_wire::ErrorCode::Unauthorized
                    ) =>
                {
                    tracing::warn!(error = %e, "the server refused a queued send; dropping it");
                    "failed"
                }
                Err(e) => return Err(e),
            };
            let tx = self.store.conn.transaction()?;
            tx.execute("DELETE FROM outbox WHERE rowid = ?1", params![rowid])?;
            if let Some(id) = message_id {
                tx.execute(
                    "UPDATE messages SET status = ?2 WHERE id = ?1 AND status = 'pending'",
                    params![id, outcome],
                )?;
            }
            tx.commit()?;
        }
        if !departed.is_empty() {
            // Boxed: removing them commits, and a commit flushes the outbox.
            Box::pin(self.remove_departed(departed)).await?;
        }
        Ok(())
    }

    /// Encrypts `content` for conversation `group_id` and queues it for every
    /// other device; `store_row` records the message (in the same
    /// transaction) when it is something the user sees.
    pub(crate) fn seal_and_queue(
        &mut self,
        group_id: &[u8],
        content: &Content,
        message_id: Option<&str>,
        store_row: impl FnOnce(&Transaction<'_>) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let recipients = self.recipients_of(group_id)?;
        let out = self
            .conv(group_id)?
            .encrypt(content, &mut rand::rngs::OsRng)?;
        self.persist(|tx| {
            store_row(tx)?;
            if !recipients.is_empty() {
                Self::queue_send(
                    tx,
                    &SendRequest {
                        recipients,
                        payload: Bytes(out.message),
                        ephemeral: false,
                        commit: None,
                        franking_commitment: Some(Bytes(out.commitment.0.to_vec())),
                    },
                    message_id,
                )?;
            }
            Ok(())
        })
    }

    /// Deletes messages whose disappearing timer ran out.
    pub fn expire_messages(&mut self) -> Result<usize, ClientError> {
        Ok(self.store.conn.execute(
            "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            params![now_ms() as i64],
        )?)
    }

    /// Sets who receives this account's presence.
    /// The same on this account's other devices (sent with the next flush
    /// of the outbox).
    pub fn set_presence_mode(&mut self, mode: PresenceMode) -> Result<(), ClientError> {
        let op = crate::self_sync::presence_op(mode);
        self.change_and_sync(vec![op], |tx| {
            LocalStore::set_meta(tx, "presence", mode.as_str().as_bytes())
        })
    }
}
