//! This account's devices (decision 0023): approve a new device's link
//! code, list, rename and remove devices. The new device's side of a link
//! is in [`crate::linking`].
//!
//! Every device of an account holds the account key, so any of them can
//! link or remove another; none is special. What this device knows of the
//! others is the `account_devices` table: each certificate seen under the
//! account key (from the directory, from its own links, from the roster a
//! link hands over), a name, and when a message from it last arrived here.

use std::time::{Duration, Instant};

use hush_proto::device_link::{
    FrameKind, LinkCode, LinkReady, LinkWelcome, MAX_KEY_PACKAGES, RosterEntry, open_frame,
    seal_frame,
};
use hush_proto::{DeviceCertificate, DeviceId, Suite};
use hush_wire::api::{
    AddDeviceRequest, DEVICE_REQUEST_NONCE_LEN, NewDeviceBody, RegisterResponse,
    RemoveDeviceRequest, SendRequest, device_request_message,
};
use hush_wire::{Bytes, DeviceAddress};
use rand::RngCore;
use reqwest::Method;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::archive::HistoryScope;
use crate::client::{Client, now, now_ms};
use crate::error::ClientError;
use crate::history::Progress;
use crate::local::LocalStore;
use crate::model::Event;

/// Most devices an account may have linked at once.
pub const MAX_LINKED_DEVICES: usize = 8;

/// How long `link_device` waits for the new device by default.
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(300);

/// One device of this account, as [`Client::devices`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// Its id within the account.
    pub id: u32,
    /// The name given to it here or when it was linked.
    pub name: Option<String>,
    /// Whether it is this device.
    pub this: bool,
    /// When the account key certified it (ms since the Unix epoch).
    pub added_at_ms: u64,
    /// When a message from it last arrived on this device (now for this
    /// device; `None` when none has).
    pub last_seen_ms: Option<u64>,
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Records `cert` as a device of this account (keeping what is known).
pub(crate) fn note_device(
    conn: &Connection,
    cert: &DeviceCertificate,
    name: Option<&str>,
    removed: bool,
) -> Result<(), ClientError> {
    conn.execute(
        "INSERT INTO account_devices (device_id, certificate, name, removed) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device_id) DO UPDATE SET \
         name = COALESCE(excluded.name, name), removed = MAX(removed, excluded.removed)",
        params![cert.device_id().0, cert.encode(), name, removed],
    )?;
    Ok(())
}

/// Every device this device knows of, with whether it was removed.
pub(crate) fn roster(conn: &Connection) -> Result<Vec<(DeviceCertificate, bool)>, ClientError> {
    let rows: Vec<(Vec<u8>, bool)> = conn
        .prepare("SELECT certificate, removed FROM account_devices ORDER BY device_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(c, removed)| Ok((DeviceCertificate::decode(&c)?, removed)))
        .collect()
}

/// Records that a message from `device` of this account arrived at `at`.
pub(crate) fn note_seen(conn: &Connection, device: u32, at: u64) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE account_devices SET last_seen = MAX(COALESCE(last_seen, 0), ?2) \
         WHERE device_id = ?1",
        params![device, at as i64],
    )?;
    Ok(())
}

/// Signs an add or remove request of `user`'s device `id` with
/// `certificate` under the account key: (timestamp, nonce, signature).
pub(crate) fn sign_device_request(
    account: &hush_proto::AccountKey,
    user: &hush_proto::Username,
    action: &str,
    id: u32,
    certificate: &[u8],
) -> Result<(u64, Bytes, Bytes), ClientError> {
    let ts = now_ms();
    let mut nonce = [0u8; DEVICE_REQUEST_NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let message =
        device_request_message(action, user.as_str(), id, ts, &nonce, &sha256(certificate));
    let signature = account.sign(&message)?;
    Ok((ts, Bytes(nonce.to_vec()), Bytes(signature.to_vec())))
}

impl Client {
    /// Signs an add or remove request for device `id` with `certificate`:
    /// (timestamp, nonce, signature).
    fn sign_device_request(
        &self,
        action: &str,
        id: u32,
        certificate: &[u8],
    ) -> Result<(u64, Bytes, Bytes), ClientError> {
        sign_device_request(&self.account, &self.username, action, id, certificate)
    }

    /// The directory's (key-transparency checked) certificates of this
    /// account, each verified under the account key and recorded.
    pub(crate) async fn own_directory(&mut self) -> Result<Vec<DeviceCertificate>, ClientError> {
        let me = self.username.to_string();
        let (entry, _, _) = self.lookup_verified(&me).await?;
        let mut certs = Vec::new();
        for d in &entry.devices {
            let cert = DeviceCertificate::decode(d.certificate.as_slice())?;
            if cert.verify().is_ok() && cert.account_key() == self.account.public() {
                note_device(&self.store.conn, &cert, None, false)?;
                certs.push(cert);
            }
        }
        Ok(certs)
    }

    /// Records the devices the directory serves for this account whose
    /// certificates verify under the account key (for self-monitoring,
    /// which must not depend on the rest of the answer being honest). A
    /// failure leaves what is known as it was.
    pub(crate) async fn learn_own_devices(&mut self) {
        let path = format!("/v1/accounts/{}", self.username);
        let Ok(entry) = self
            .transport
            .json::<(), hush_wire::api::AccountResponse>(Method::GET, &path, None)
            .await
        else {
            return;
        };
        for d in &entry.devices {
            if let Ok(cert) = DeviceCertificate::decode(d.certificate.as_slice())
                && cert.verify().is_ok()
                && cert.account_key() == self.account.public()
                && cert.username() == &self.username
                && cert.device_id().0 == d.device_id
            {
                let _ = note_device(&self.store.conn, &cert, None, false);
            }
        }
    }

    /// This account's devices: those the key directory lists now, with the
    /// names and last-seen times this device knows.
    pub async fn devices(&mut self) -> Result<Vec<DeviceView>, ClientError> {
        let certs = self.own_directory().await?;
        let now = now_ms();
        let mut out = Vec::new();
        for cert in certs {
            let id = cert.device_id().0;
            let (name, seen): (Option<String>, Option<i64>) = self
                .store
                .conn
                .query_row(
                    "SELECT name, last_seen FROM account_devices WHERE device_id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((None, None));
            let this = id == self.device_id;
            out.push(DeviceView {
                id,
                name,
                this,
                added_at_ms: cert.issued_at_ms(),
                last_seen_ms: if this {
                    Some(now)
                } else {
                    seen.map(|s| s as u64)
                },
            });
        }
        Ok(out)
    }

    /// Names device `id` (on this device).
    pub fn rename_device(&mut self, id: u32, name: &str) -> Result<(), ClientError> {
        let name = name.trim();
        if name.is_empty() || name.len() > hush_proto::device_link::MAX_DEVICE_NAME {
            return Err(ClientError::InvalidInput(
                "a device name is 1 to 64 bytes".into(),
            ));
        }
        // The same name on every device of the account (decision 0025).
        let op = hush_proto::self_sync::SyncOp::DeviceName {
            device: DeviceId(id),
            name: name.to_owned(),
        };
        self.change_and_sync(vec![op], |tx| {
            let n = tx.execute(
                "UPDATE account_devices SET name = ?2 WHERE device_id = ?1 AND removed = 0",
                params![id, name],
            )?;
            if n == 0 {
                return Err(ClientError::NotFound(format!(
                    "this account has no device {id} (see `hush devices list`)"
                )));
            }
            Ok(())
        })
    }

    /// Links the device that shows `code`: certifies its key, registers it,
    /// hands it the account over an encrypted channel, waits up to
    /// `timeout` for its answer and adds it to every conversation. On any
    /// failure after it was registered, it is removed again: nothing stays
    /// linked. Returns its id.
    pub async fn link_device(&mut self, code: &str, timeout: Duration) -> Result<u32, ClientError> {
        self.link_device_with(code, timeout, HistoryScope::All, |_| {})
            .await
    }

    /// [`Client::link_device`], sending `history` of the history (decision
    /// 0026) and reporting its transfer to `progress`.
    pub async fn link_device_with(
        &mut self,
        code: &str,
        timeout: Duration,
        history: HistoryScope,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<u32, ClientError> {
        let id = self.approve_link(code).await?;
        match self
            .finish_link_with(id, timeout, history, &mut progress)
            .await
        {
            Ok(()) => Ok(id),
            Err(e) => {
                // Nothing stays linked: off the server, and out of every
                // conversation it was added to before the failure.
                if let Err(undo) = self.unlink(id).await {
                    tracing::warn!(error = %undo, device = id, "could not remove a failed link");
                }
                if let Err(undo) = self.drop_everywhere(id).await {
                    tracing::warn!(error = %undo, device = id, "could not drop a failed link");
                }
                Err(e)
            }
        }
    }

    /// The first half of [`Client::link_device`]: registers the device of
    /// `code` and sends it the account. Returns its id.
    pub async fn approve_link(&mut self, code: &str) -> Result<u32, ClientError> {
        let code = LinkCode::parse(code).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let current = self.own_directory().await?;
        if current
            .iter()
            .any(|c| c.signature_key() == &code.device_key)
        {
            return Err(ClientError::InvalidInput(
                "the device of this code is already linked".into(),
            ));
        }
        if current.len() >= MAX_LINKED_DEVICES {
            return Err(ClientError::InvalidInput(format!(
                "this account already has {} devices, the most it may have \
                 ({MAX_LINKED_DEVICES}); remove one first (`hush devices list`, \
                 `hush devices remove ID`)",
                current.len()
            )));
        }
        // Ids are never reused: a removed device's id stays retired.
        let known = roster(&self.store.conn)?;
        let id = known
            .iter()
            .map(|(c, _)| c.device_id().0)
            .chain(current.iter().map(|c| c.device_id().0))
            .max()
            .unwrap_or(self.device_id)
            .max(self.device_id)
            + 1;
        let cert = DeviceCertificate::issue_for_key(
            &self.account,
            &self.username,
            DeviceId(id),
            code.device_key,
            now_ms(),
        )?;
        let keys = code.keys();
        let encoded = cert.encode();
        let (timestamp_ms, nonce, signature) = self.sign_device_request("add", id, &encoded)?;
        let _: RegisterResponse = self
            .transport
            .json(
                Method::POST,
                &format!("/v1/accounts/{}/devices", self.username),
                Some(&AddDeviceRequest {
                    device: NewDeviceBody {
                        device_id: id,
                        certificate: Bytes(encoded),
                    },
                    timestamp_ms,
                    nonce,
                    signature,
                    token_hash: Some(Bytes(sha256(keys.token_string().as_bytes()).to_vec())),
                }),
            )
            .await?;
        let wanted = self.wanted_suites()?;
        let welcome = self.link_welcome(cert.clone(), &known, &wanted).await?;
        self.store.conn.execute(
            "INSERT OR REPLACE INTO pending_links (device_id, to_new, to_existing, wanted, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id,
                &keys.to_new[..],
                &keys.to_existing[..],
                wanted
                    .iter()
                    .flat_map(|s| s.to_be_bytes())
                    .collect::<Vec<u8>>(),
                now_ms() as i64
            ],
        )?;
        note_device(&self.store.conn, &cert, None, false)?;
        let frame = seal_frame(
            &keys.to_new,
            FrameKind::Welcome,
            0,
            &welcome.encode(),
            &mut rand::rngs::OsRng,
        );
        self.transport
            .send_message(&SendRequest {
                recipients: vec![DeviceAddress {
                    username: self.username.to_string(),
                    device_id: id,
                }],
                payload: Bytes(frame),
                ephemeral: false,
                commit: None,
                franking_commitment: None,
            })
            .await?;
        Ok(id)
    }

    /// The suite of each active conversation (at most [`MAX_KEY_PACKAGES`]).
    fn wanted_suites(&mut self) -> Result<Vec<u16>, ClientError> {
        let groups = self.active_groups()?;
        let mut wanted = Vec::new();
        for g in groups.iter().take(MAX_KEY_PACKAGES) {
            let suite = self.conv(g)?.suite().unwrap_or(Suite::Hybrid);
            wanted.push(suite.cipher_suite().raw_value());
        }
        Ok(wanted)
    }

    pub(crate) fn active_groups(&self) -> Result<Vec<Vec<u8>>, ClientError> {
        Ok(self
            .store
            .conn
            .prepare("SELECT group_id FROM conversations WHERE active = 1 ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    async fn link_welcome(
        &mut self,
        certificate: DeviceCertificate,
        known: &[(DeviceCertificate, bool)],
        wanted: &[u16],
    ) -> Result<LinkWelcome, ClientError> {
        let config = self.kt_config().await?;
        Ok(LinkWelcome {
            account_seed: self.account.to_seed(),
            certificate,
            approver: self.device_id,
            kt_signing_key: config.signing_key,
            kt_vrf_key: config.vrf_public_key,
            roster: known
                .iter()
                .map(|(c, removed)| RosterEntry {
                    certificate: c.clone(),
                    removed: *removed,
                })
                .collect(),
            wanted: wanted.to_vec(),
        })
    }

    /// The second half of [`Client::link_device`]: waits for device `id`'s
    /// answer, then adds it to every conversation of this device.
    pub async fn finish_link(&mut self, id: u32, timeout: Duration) -> Result<(), ClientError> {
        self.finish_link_with(id, timeout, HistoryScope::All, &mut |_| {})
            .await
    }

    /// [`Client::finish_link`], sending `history` first: the new device
    /// imports it before it is added anywhere.
    pub async fn finish_link_with(
        &mut self,
        id: u32,
        timeout: Duration,
        history: HistoryScope,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        let ready = self.hand_over(id, timeout, history, progress).await?;
        self.add_linked_device(id, ready).await?;
        self.close_link(id)?;
        self.flush_outbox().await
    }

    /// [`Client::finish_link_with`] but for the adds: the new device gets
    /// its history and is linked, and this device adds it to no
    /// conversation; the members' clients do when they notice it in the key
    /// directory (decision 0025).
    pub async fn hand_over_link(
        &mut self,
        id: u32,
        timeout: Duration,
        history: HistoryScope,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        self.hand_over(id, timeout, history, progress).await?;
        self.close_link(id)?;
        self.flush_outbox().await
    }

    /// Waits for the new device's answer to link `id`, records its name and
    /// sends it the history; its answer.
    async fn hand_over(
        &mut self,
        id: u32,
        timeout: Duration,
        history: HistoryScope,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<LinkReady, ClientError> {
        let deadline = Instant::now() + timeout;
        let ready = loop {
            self.sync_quietly().await?;
            let ready: Option<Option<Vec<u8>>> = self
                .store
                .conn
                .query_row(
                    "SELECT ready FROM pending_links WHERE device_id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            match ready {
                None => {
                    return Err(ClientError::InvalidInput(format!(
                        "no link to device {id} is waiting on this device"
                    )));
                }
                Some(Some(bytes)) => break LinkReady::decode(&bytes).map_err(proto)?,
                Some(None) if Instant::now() >= deadline => {
                    return Err(ClientError::Network(format!(
                        "the new device did not answer within {} s; nothing was linked \
                         (start `hush link` on it again and use its new code)",
                        timeout.as_secs()
                    )));
                }
                Some(None) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let to_new: Vec<u8> = self.store.conn.query_row(
            "SELECT to_new FROM pending_links WHERE device_id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        let to_new = Zeroizing::new(
            <[u8; 32]>::try_from(to_new.as_slice())
                .map_err(|_| ClientError::Store("a stored link key is corrupt".into()))?,
        );
        if !ready.name.trim().is_empty() {
            self.store.conn.execute(
                "UPDATE account_devices SET name = ?2 WHERE device_id = ?1",
                params![id, ready.name.trim()],
            )?;
        }
        self.send_history(id, &to_new, history, progress).await?;
        Ok(ready)
    }

    /// Ends link `id` on this device: forgets its keys and tells every
    /// device the names the others use, the new one's too.
    fn close_link(&mut self, id: u32) -> Result<(), ClientError> {
        self.store.conn.execute(
            "DELETE FROM pending_links WHERE device_id = ?1",
            params![id],
        )?;
        self.share_device_names()
    }

    /// Adds device `id` to every active conversation, with the KeyPackages
    /// it sent (checked to be its own) or, past those, claimed ones.
    async fn add_linked_device(&mut self, id: u32, ready: LinkReady) -> Result<(), ClientError> {
        let cert = roster(&self.store.conn)?
            .into_iter()
            .map(|(c, _)| c)
            .find(|c| c.device_id().0 == id)
            .ok_or_else(|| ClientError::Store("the linked device's certificate is gone".into()))?;
        let mut sent = ready.key_packages.into_iter();
        for group_id in self.active_groups()? {
            let holds = self
                .conv(&group_id)?
                .members()
                .iter()
                .any(|c| c.username() == &self.username && c.device_id().0 == id);
            if holds {
                continue;
            }
            let kp = match sent.next() {
                Some(kp) => kp,
                None => self.claim_one(id, &group_id).await?,
            };
            let info = hush_proto::inspect_key_package(&kp)?;
            if info.certificate != cert {
                return Err(ClientError::InvalidInput(
                    "SECURITY: the new device answered with a KeyPackage that is not its own; \
                     nothing was linked"
                        .into(),
                ));
            }
            self.add_in_batches(&group_id, &[kp]).await?;
        }
        Ok(())
    }

    /// One KeyPackage of this account's device `id` from the server.
    async fn claim_one(&mut self, id: u32, group_id: &[u8]) -> Result<Vec<u8>, ClientError> {
        let suite = self.conv(group_id)?.suite().unwrap_or(Suite::Hybrid);
        let me = self.username.to_string();
        let kps = self.claim(&me, suite).await?;
        kps.into_iter()
            .find(|kp| {
                hush_proto::inspect_key_package(kp).is_ok_and(|i| i.certificate.device_id().0 == id)
            })
            .ok_or_else(|| {
                ClientError::NotFound(format!("device {id} has no KeyPackage on the server"))
            })
    }

    /// A link frame arrived (inside a sync): the answer of a device this
    /// device is linking, kept for [`Client::finish_link`].
    pub(crate) fn handle_link_frame(
        &mut self,
        payload: &[u8],
        seq: &str,
    ) -> Result<Vec<Event>, ClientError> {
        let pending: Vec<(u32, Vec<u8>)> = self
            .store
            .conn
            .prepare("SELECT device_id, to_existing FROM pending_links WHERE ready IS NULL")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, key) in &pending {
            let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
                continue;
            };
            let key = Zeroizing::new(key);
            if let Ok(frame) = open_frame(&key, payload)
                && frame.kind == FrameKind::Ready
                && LinkReady::decode(&frame.plaintext).is_ok()
            {
                let tx = self.store.conn.transaction()?;
                tx.execute(
                    "UPDATE pending_links SET ready = ?2 WHERE device_id = ?1",
                    params![id, &frame.plaintext[..]],
                )?;
                LocalStore::set_meta(&tx, "last_seq", seq.as_bytes())?;
                tx.commit()?;
                return Ok(Vec::new());
            }
        }
        if pending.is_empty() {
            // A late or repeated answer to a link already finished.
            LocalStore::set_meta(&self.store.conn, "last_seq", seq.as_bytes())?;
            return Ok(Vec::new());
        }
        self.refuse(
            seq,
            "a device-link answer that does not open with the key of any link you approved \
             (altered or made up on the server)",
        )
    }

    /// Takes device `id` out of the directory and every conversation: its
    /// connection closes, its token stops working, and it receives nothing
    /// new. This device cannot remove itself.
    pub async fn remove_device(&mut self, id: u32) -> Result<(), ClientError> {
        if id == self.device_id {
            return Err(ClientError::InvalidInput(
                "this is the device you are using: remove it from another of your devices".into(),
            ));
        }
        let listed = self.own_directory().await?;
        if !listed.iter().any(|c| c.device_id().0 == id) {
            return Err(ClientError::NotFound(format!(
                "this account has no device {id} (see `hush devices list`)"
            )));
        }
        self.unlink(id).await?;
        self.drop_everywhere(id).await
    }

    /// Tells the other devices that device `id` is removed and commits its
    /// removal in every conversation that holds it.
    async fn drop_everywhere(&mut self, id: u32) -> Result<(), ClientError> {
        // The other devices learn it was removed (decision 0025).
        let op = hush_proto::self_sync::SyncOp::DeviceRemoved {
            device: DeviceId(id),
        };
        self.change_and_sync(vec![op], |_| Ok(()))?;
        let me = self.username.clone();
        let gone = |c: &DeviceCertificate| c.username() == &me && c.device_id().0 == id;
        for group_id in self.active_groups()? {
            let holds = self.conv(&group_id)?.members().iter().any(gone);
            if holds {
                let t = now();
                self.commit_with(&group_id, |c| c.remove_devices(gone, t))
                    .await?;
            }
        }
        self.flush_outbox().await
    }

    /// Takes device `id` out of the directory (signed by the account key).
    pub(crate) async fn unlink(&mut self, id: u32) -> Result<(), ClientError> {
        let me = self.username.to_string();
        let (entry, _, _) = self.lookup_verified(&me).await?;
        if let Some(d) = entry.devices.iter().find(|d| d.device_id == id) {
            let (timestamp_ms, nonce, signature) =
                self.sign_device_request("remove", id, d.certificate.as_slice())?;
            self.transport
                .call(
                    Method::DELETE,
                    &format!("/v1/accounts/{me}/devices/{id}"),
                    Some(&RemoveDeviceRequest {
                        timestamp_ms,
                        nonce,
                        signature,
                    }),
                )
                .await?;
        }
        self.store.conn.execute(
            "UPDATE account_devices SET removed = 1 WHERE device_id = ?1",
            params![id],
        )?;
        self.store.conn.execute(
            "DELETE FROM pending_links WHERE device_id = ?1",
            params![id],
        )?;
        Ok(())
    }
}

fn proto(e: hush_proto::DecodeError) -> ClientError {
    ClientError::Proto(hush_proto::ProtoError::from(e))
}
