//! Keeping this account's devices the same (decision 0025): a change made
//! here that the other devices should make too (messages read, a block, a
//! verification mark, the profile key, the presence setting, a device's
//! name or removal, a contact's display name) goes to them as a self-sync frame, signed by this
//! device and sealed to each of the others outside every conversation
//! (`hush_proto::self_sync`). It travels through the outbox like a receipt:
//! queued in the transaction that makes the change, sent with the next
//! flush, durable in the other devices' queues.
//!
//! Each synced setting is a field with a logical clock ([`Stamp`]) in the
//! `sync_fields` table, which also keeps the value, so a setting for a
//! contact this device has not met yet is applied when it meets them. A
//! change is applied only when its stamp is newer than the field's: frames
//! that arrive late, twice or out of order change nothing.

use hush_proto::self_sync::{
    MAX_DEVICES, MAX_OPS, MAX_READ_IDS, Presence, SelfSync, Stamp, StampedOp, SyncOp,
};
use hush_proto::{DeviceCertificate, DeviceId, MessageId, ProtoError, Username};
use hush_wire::api::SendRequest;
use hush_wire::{Bytes, DeviceAddress};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::client::{Client, meta_required, now_ms, seed};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::{Event, PresenceMode};

/// The field a change sets, for last-writer-wins; `None` for changes that
/// are never undone (reads, removals), which need no clock.
fn field(op: &SyncOp) -> Option<String> {
    match op {
        SyncOp::Blocked { user, .. } => Some(format!("blocked:{user}")),
        SyncOp::Verified { user, .. } => Some(format!("verified:{user}")),
        SyncOp::ProfileKey { .. } => Some("profile".into()),
        SyncOp::Presence(_) => Some("presence".into()),
        SyncOp::DeviceName { device, .. } => Some(format!("device_name:{}", device.0)),
        SyncOp::ContactName { user, .. } => Some(format!("contact_name:{user}")),
        SyncOp::Read { .. } | SyncOp::DeviceRemoved { .. } => None,
    }
}

/// The value a field keeps (to apply when its subject shows up later).
fn value(op: &SyncOp) -> Vec<u8> {
    match op {
        SyncOp::Blocked { blocked, .. } => vec![u8::from(*blocked)],
        SyncOp::Verified { account_key, .. } => account_key.to_vec(),
        SyncOp::ProfileKey { key } => key.to_vec(),
        SyncOp::Presence(p) => presence_mode(*p).as_str().as_bytes().to_vec(),
        SyncOp::DeviceName { name, .. } | SyncOp::ContactName { name, .. } => {
            name.as_bytes().to_vec()
        }
        _ => Vec::new(),
    }
}

fn presence_mode(p: Presence) -> PresenceMode {
    match p {
        Presence::Everyone => PresenceMode::Everyone,
        Presence::Contacts => PresenceMode::Contacts,
        Presence::Nobody => PresenceMode::Nobody,
    }
}

/// The wire form of a presence setting.
pub(crate) fn presence_op(mode: PresenceMode) -> SyncOp {
    SyncOp::Presence(match mode {
        PresenceMode::Everyone => Presence::Everyone,
        PresenceMode::Contacts => Presence::Contacts,
        PresenceMode::Nobody => Presence::Nobody,
    })
}

/// The newest stamp this device holds for `field`.
fn stored_stamp(conn: &Connection, field: &str) -> Result<Option<Stamp>, ClientError> {
    Ok(conn
        .query_row(
            "SELECT at_ms, device FROM sync_fields WHERE field = ?1",
            params![field],
            |r| {
                Ok(Stamp {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    device: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Records `stamp` and `value` for `field` when the stamp is newer than the
/// one held; returns whether it was.
fn take_if_newer(
    conn: &Connection,
    field: &str,
    stamp: Stamp,
    value: &[u8],
) -> Result<bool, ClientError> {
    if stored_stamp(conn, field)?.is_some_and(|s| s >= stamp) {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO sync_fields (field, at_ms, device, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (field) DO UPDATE SET at_ms = excluded.at_ms, device = excluded.device, \
         value = excluded.value",
        params![field, stamp.at_ms as i64, stamp.device, value],
    )?;
    Ok(true)
}

/// Applies to the new contact `user` the block and verification mark that
/// other devices of this account synced before this device met them.
pub(crate) fn apply_synced_contact(conn: &Connection, user: &str) -> Result<(), ClientError> {
    let get = |f: String| -> Result<Option<Vec<u8>>, ClientError> {
        Ok(conn
            .query_row(
                "SELECT value FROM sync_fields WHERE field = ?1",
                params![f],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    };
    if let Some(v) = get(format!("blocked:{user}"))? {
        conn.execute(
            "UPDATE contacts SET blocked = ?2 WHERE username = ?1",
            params![user, v.first() == Some(&1)],
        )?;
    }
    if let Some(key) = get(format!("verified:{user}"))? {
        set_verified(conn, user, &key)?;
    }
    if let Some(name) = get(format!("contact_name:{user}"))? {
        set_contact_name(conn, user, &String::from_utf8_lossy(&name))?;
    }
    Ok(())
}

/// Shows `name` for `user` (none when empty).
fn set_contact_name(conn: &Connection, user: &str, name: &str) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE contacts SET display_name = ?2 WHERE username = ?1",
        params![user, (!name.is_empty()).then_some(name)],
    )?;
    Ok(())
}

/// Marks `user` verified with `key`: it shows as verified only while `key`
/// is the account key this device holds for them.
fn set_verified(conn: &Connection, user: &str, key: &[u8]) -> Result<(), ClientError> {
    conn.execute(
        "UPDATE contacts SET verified = 1, verified_key = ?2, \
         key_changed = CASE WHEN account_key = ?2 THEN 0 ELSE key_changed END \
         WHERE username = ?1",
        params![user, key],
    )?;
    Ok(())
}

impl Client {
    /// Makes a change here with `apply` and queues `ops` for this account's
    /// other devices, in one transaction. Each op that sets a field is
    /// stamped after the newest stamp this device holds for it.
    pub(crate) fn change_and_sync<R>(
        &mut self,
        ops: Vec<SyncOp>,
        apply: impl FnOnce(&Transaction<'_>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let to = self.sibling_certificates()?;
        let key = hush_proto::DeviceSigningKey::from_seed(seed(&meta_required(
            &self.store,
            "device_seed",
        )?)?)?;
        let tx = self.store.conn.transaction()?;
        let out = apply(&tx)?;
        let now = now_ms();
        let mut stamped = Vec::with_capacity(ops.len());
        for op in ops {
            let mut at_ms = now;
            if let Some(f) = field(&op) {
                let held = stored_stamp(&tx, &f)?;
                at_ms = held.map_or(now, |s| now.max(s.at_ms + 1));
                let stamp = Stamp {
                    at_ms,
                    device: self.device_id,
                };
                take_if_newer(&tx, &f, stamp, &value(&op))?;
            }
            stamped.push(StampedOp { at_ms, op });
        }
        let from = (&self.username, self.device_id);
        queue_frames(&tx, &key, from, &to, &stamped, now)?;
        tx.commit()?;
        Ok(out)
    }

    /// Tells the other devices every device name this device holds, each
    /// with the stamp it has (a name never synced before goes with the
    /// oldest stamp, so that any name given since wins): a device just
    /// linked learns the names the others use.
    pub(crate) fn share_device_names(&mut self) -> Result<(), ClientError> {
        let to = self.sibling_certificates()?;
        if to.is_empty() {
            return Ok(());
        }
        let names: Vec<(u32, String)> = self
            .store
            .conn
            .prepare(
                "SELECT device_id, name FROM account_devices \
                 WHERE name IS NOT NULL AND removed = 0 ORDER BY device_id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let key = hush_proto::DeviceSigningKey::from_seed(seed(&meta_required(
            &self.store,
            "device_seed",
        )?)?)?;
        let tx = self.store.conn.transaction()?;
        let mut stamped = Vec::new();
        for (id, name) in names {
            let op = SyncOp::DeviceName {
                device: DeviceId(id),
                name,
            };
            if op_check(&op).is_err() {
                continue;
            }
            let f = field(&op).unwrap_or_default();
            let at_ms = stored_stamp(&tx, &f)?.map_or(1, |s| s.at_ms);
            stamped.push(StampedOp { at_ms, op });
        }
        let from = (&self.username, self.device_id);
        queue_frames(&tx, &key, from, &to, &stamped, now_ms())?;
        tx.commit()?;
        Ok(())
    }

    /// This account's other devices as this device knows them: certified
    /// by the account key, not removed.
    fn sibling_certificates(&self) -> Result<Vec<DeviceCertificate>, ClientError> {
        let mine = self.account.public();
        Ok(crate::devices::roster(&self.store.conn)?
            .into_iter()
            .filter(|(c, removed)| {
                !removed
                    && c.device_id().0 != self.device_id
                    && c.username() == &self.username
                    && c.account_key() == mine
                    && c.verify().is_ok()
            })
            .map(|(c, _)| c)
            .collect())
    }

    /// The certificate of this account's device `id`, if this device knows
    /// one certified by the account key.
    fn sibling(&self, id: DeviceId) -> Result<Option<DeviceCertificate>, ClientError> {
        Ok(self
            .sibling_certificates()?
            .into_iter()
            .find(|c| c.device_id() == id))
    }

    /// Marks `ids`, received messages of the conversation `group_id`, read
    /// here and queues the same for the other devices.
    pub(crate) fn sync_reads(
        &mut self,
        group_id: &[u8],
        ids: &[String],
    ) -> Result<(), ClientError> {
        let ids: Vec<MessageId> = ids.iter().filter_map(|i| MessageId::from_hex(i)).collect();
        let ops: Vec<SyncOp> = ids
            .chunks(MAX_READ_IDS)
            .map(|chunk| SyncOp::Read {
                group_id: group_id.to_vec(),
                ids: chunk.to_vec(),
            })
            .collect();
        self.change_and_sync(ops, |tx| {
            for id in ids {
                tx.execute(
                    "UPDATE messages SET status = 'read' WHERE id = ?1 AND outgoing = 0",
                    params![id.to_hex()],
                )?;
            }
            Ok(())
        })
    }

    /// A self-sync frame arrived (inside a sync): opens it, checks it comes
    /// from another device of this account, applies what is newer than what
    /// this device holds, and records the queue position `seq`.
    pub(crate) async fn handle_self_sync(
        &mut self,
        payload: &[u8],
        seq: &str,
    ) -> Result<Vec<Event>, ClientError> {
        let key = hush_proto::DeviceSigningKey::from_seed(seed(&meta_required(
            &self.store,
            "device_seed",
        )?)?)?;
        let open = hush_proto::sealed::OpenKey::of(&key)?;
        let signed = hush_proto::self_sync::open(&open, DeviceId(self.device_id), payload)?;
        let (account, from) = signed.claimed_sender();
        if account != &self.username || from.0 == self.device_id {
            return Err(ProtoError::NotAMember(account.to_string()).into());
        }
        let cert = match self.sibling(from)? {
            Some(c) => Some(c),
            None => {
                // Linked by another device of the account: its certificate
                // is in the directory.
                self.learn_own_devices().await;
                self.sibling(from)?
            }
        };
        let cert = cert.ok_or_else(|| {
            ClientError::Proto(ProtoError::NotAMember(format!(
                "device {} of this account",
                from.0
            )))
        })?;
        let sync = signed.verify(&cert, &self.username)?;
        let from = sync.from_device.0;
        let me = self.device_id;
        let tx = self.store.conn.transaction()?;
        let mut events = Vec::new();
        for op in &sync.ops {
            let stamp = Stamp {
                at_ms: op.at_ms,
                device: from,
            };
            events.extend(apply_op(&tx, &op.op, stamp, me)?);
        }
        LocalStore::set_meta(&tx, "last_seq", seq.as_bytes())?;
        tx.commit()?;
        Ok(events)
    }
}

/// Seals `stamped` (changes of device `from` of `account`) to the devices
/// `to` and queues it in the outbox (inside `tx`).
fn queue_frames(
    tx: &Transaction<'_>,
    key: &hush_proto::DeviceSigningKey,
    (account, from): (&Username, u32),
    to: &[DeviceCertificate],
    stamped: &[StampedOp],
    now: u64,
) -> Result<(), ClientError> {
    for chunk in stamped.chunks(MAX_OPS) {
        let frame = SelfSync {
            account: account.clone(),
            from_device: DeviceId(from),
            sent_at_ms: now,
            ops: chunk.to_vec(),
        };
        for certs in to.chunks(MAX_DEVICES) {
            let payload = frame.seal(key, certs, &mut rand::rngs::OsRng)?;
            let recipients = certs
                .iter()
                .map(|c| DeviceAddress {
                    username: account.to_string(),
                    device_id: c.device_id().0,
                })
                .collect();
            Client::queue_send(
                tx,
                &SendRequest {
                    recipients,
                    payload: Bytes(payload),
                    ephemeral: false,
                    commit: None,
                    franking_commitment: None,
                },
                None,
            )?;
        }
    }
    Ok(())
}

/// Applies one change from another device (inside `tx`).
fn apply_op(
    tx: &Transaction<'_>,
    op: &SyncOp,
    stamp: Stamp,
    me: u32,
) -> Result<Option<Event>, ClientError> {
    if let Some(f) = field(op)
        && !take_if_newer(tx, &f, stamp, &value(op))?
    {
        return Ok(None);
    }
    let synced = |what: &str, subject: Option<String>| {
        Some(Event::Synced {
            what: what.into(),
            subject,
        })
    };
    Ok(match op {
        SyncOp::Read { group_id, ids } => read_here(tx, group_id, ids)?,
        SyncOp::Blocked { user, blocked } => {
            tx.execute(
                "UPDATE contacts SET blocked = ?2 WHERE username = ?1",
                params![user.as_str(), blocked],
            )?;
            synced(
                if *blocked { "blocked" } else { "unblocked" },
                Some(user.to_string()),
            )
        }
        SyncOp::Verified { user, account_key } => {
            set_verified(tx, user.as_str(), account_key)?;
            synced("verified", Some(user.to_string()))
        }
        SyncOp::ProfileKey { key } => {
            LocalStore::set_meta(tx, "profile_key", key)?;
            LocalStore::set_meta(tx, "profile_shared", b"1")?;
            synced("profile", None)
        }
        SyncOp::Presence(p) => {
            let mode = presence_mode(*p);
            LocalStore::set_meta(tx, "presence", mode.as_str().as_bytes())?;
            synced("presence", Some(mode.as_str().into()))
        }
        SyncOp::DeviceName { device, name } => {
            tx.execute(
                "UPDATE account_devices SET name = ?2 WHERE device_id = ?1",
                params![device.0, name],
            )?;
            synced("device_name", Some(device.0.to_string()))
        }
        SyncOp::ContactName { user, name } => {
            set_contact_name(tx, user.as_str(), name)?;
            synced("contact_name", Some(user.to_string()))
        }
        SyncOp::DeviceRemoved { device } if device.0 != me => {
            let n = tx.execute(
                "UPDATE account_devices SET removed = 1 WHERE device_id = ?1 AND removed = 0",
                params![device.0],
            )?;
            (n > 0)
                .then(|| synced("device_removed", Some(device.0.to_string())))
                .flatten()
        }
        _ => None,
    })
}

/// Marks the received messages `ids` of the conversation `group_id` read
/// here; the event names those that were unread.
fn read_here(
    tx: &Transaction<'_>,
    group_id: &[u8],
    ids: &[MessageId],
) -> Result<Option<Event>, ClientError> {
    let conversation: Option<i64> = tx
        .query_row(
            "SELECT id FROM conversations WHERE group_id = ?1",
            params![group_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(conversation) = conversation else {
        return Ok(None);
    };
    let mut read = Vec::new();
    for id in ids {
        let id = id.to_hex();
        let n = tx.execute(
            "UPDATE messages SET status = 'read' WHERE id = ?1 AND conversation = ?2 \
             AND outgoing = 0 AND status = 'received'",
            params![id, conversation],
        )?;
        if n > 0 {
            read.push(id);
        }
    }
    Ok((!read.is_empty()).then_some(Event::ReadElsewhere {
        conversation,
        ids: read,
    }))
}

/// A contact's name, checked (for an op).
pub(crate) fn user(name: &str) -> Result<Username, ClientError> {
    Username::new(name).map_err(|e| ClientError::InvalidInput(e.to_string()))
}

/// Whether a name op is one the wire format carries (1 to 64 bytes).
fn op_check(op: &SyncOp) -> Result<(), ()> {
    match op {
        SyncOp::DeviceName { name, .. }
            if name.trim().is_empty() || name.len() > hush_proto::self_sync::MAX_NAME =>
        {
            Err(())
        }
        _ => Ok(()),
    }
}
