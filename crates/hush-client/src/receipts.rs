//! Receipts to the sender (decision 0017): delivery and read receipts go to
//! the devices of the member who wrote the messages, one frame per
//! conversation and sender covering many messages, signed by this device
//! and sealed outside the group's MLS ratchet (`hush_proto::receipt`). The
//! sender keeps, per message, who received it and who read it.

use hush_proto::receipt::{MAX_DEVICES, MAX_IDS, Receipt};
use hush_proto::{DeviceId, MessageId, ProtoError, ReceiptKind, Username};
use hush_wire::api::SendRequest;
use hush_wire::{Bytes, DeviceAddress};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::client::{Client, meta_required, now_ms, seed};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::{Event, MessageView};

fn kind_name(kind: ReceiptKind) -> &'static str {
    match kind {
        ReceiptKind::Delivered => "delivered",
        ReceiptKind::Read => "read",
    }
}

impl Client {
    fn signing_key(&self) -> Result<hush_proto::DeviceSigningKey, ClientError> {
        Ok(hush_proto::DeviceSigningKey::from_seed(seed(
            &meta_required(&self.store, "device_seed")?,
        )?)?)
    }

    /// Queues `kind` receipts for `ids`, messages `sender` wrote in the
    /// conversation `group_id`, to `sender`'s devices in it (nothing when
    /// the sender is no longer a member). The caller flushes the outbox.
    pub(crate) fn queue_receipts(
        &mut self,
        group_id: &[u8],
        sender: &str,
        kind: ReceiptKind,
        ids: &[MessageId],
    ) -> Result<(), ClientError> {
        if ids.is_empty() || sender == self.username.as_str() {
            return Ok(());
        }
        let to = Username::new(sender).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let devices: Vec<_> = self
            .conv(group_id)?
            .members()
            .into_iter()
            .filter(|c| c.username() == &to)
            .collect();
        if devices.is_empty() {
            return Ok(());
        }
        let key = self.signing_key()?;
        let mut frames = Vec::new();
        for chunk in ids.chunks(MAX_IDS) {
            let receipt = Receipt {
                group_id: group_id.to_vec(),
                from: self.username.clone(),
                from_device: DeviceId(self.device_id),
                to: to.clone(),
                kind,
                sent_at_ms: now_ms(),
                ids: chunk.to_vec(),
            };
            for certs in devices.chunks(MAX_DEVICES) {
                let frame = receipt.seal(&key, certs, &mut rand::rngs::OsRng)?;
                let recipients = certs
                    .iter()
                    .map(|c| DeviceAddress {
                        username: sender.to_owned(),
                        device_id: c.device_id().0,
                    })
                    .collect();
                frames.push(SendRequest {
                    recipients,
                    payload: Bytes(frame),
                    ephemeral: false,
                    commit: None,
                    franking_commitment: None,
                });
            }
        }
        let tx = self.store.conn.transaction()?;
        for req in &frames {
            Self::queue_send(&tx, req, None)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Opens a receipt frame addressed to this device, checks it comes from
    /// a member device of the conversation it names, and records it with
    /// the queue position `seq`. Anything else is an error (the caller drops
    /// the envelope).
    pub(crate) fn handle_receipt(
        &mut self,
        payload: &[u8],
        seq: &str,
    ) -> Result<Vec<Event>, ClientError> {
        let open = hush_proto::sealed::OpenKey::of(&self.signing_key()?)?;
        let signed = hush_proto::receipt::open(&open, DeviceId(self.device_id), payload)?;
        let group_id = signed.group_id().to_vec();
        let row = self.conv_by_group_id(&group_id)?.ok_or_else(|| {
            ClientError::NotFound("a receipt for a conversation this device is not in".into())
        })?;
        let (from, device) = signed.claimed_sender();
        let (from, device) = (from.clone(), device);
        let cert = self
            .conv(&group_id)?
            .members()
            .into_iter()
            .find(|c| c.username() == &from && c.device_id() == device)
            .ok_or_else(|| ProtoError::NotAMember(from.to_string()))?;
        let receipt = signed.verify(&cert, &self.username)?;
        let changed = self.persist(|tx| {
            let changed = record_receipt(
                tx,
                row.id,
                receipt.from.as_str(),
                receipt.kind,
                &receipt.ids,
                now_ms(),
            )?;
            LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
            Ok(changed)
        })?;
        Ok(receipt_event(changed, receipt.kind, receipt.from.as_str())
            .into_iter()
            .collect())
    }

    /// Fills in who received and who read an outgoing message.
    pub(crate) fn add_receipts(&mut self, m: &mut MessageView) -> Result<(), ClientError> {
        if !m.outgoing {
            return Ok(());
        }
        let rows = {
            let mut stmt = self.store.conn.prepare_cached(
                "SELECT member, read_at IS NOT NULL FROM receipts WHERE message_id = ?1 ORDER BY member",
            )?;
            stmt.query_map(params![m.id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let state = &mut m.receipts;
        state.read_by = rows
            .iter()
            .filter(|(_, read)| *read)
            .map(|(u, _)| u.clone())
            .collect();
        state.delivered_to = rows.into_iter().map(|(u, _)| u).collect();
        if state.recipients.is_none() && m.group.is_some() {
            // Sent before this version or from another device: the members
            // the group has now.
            if let Some(r) = self.conv_by_id(m.conversation)? {
                m.receipts.recipients = self
                    .conv(&r.group_id)
                    .ok()
                    .map(|c| c.accounts().len().saturating_sub(1) as u32);
            }
        }
        Ok(())
    }
}

/// The event for receipts that changed something, if any did.
pub(crate) fn receipt_event(changed: Vec<String>, kind: ReceiptKind, from: &str) -> Option<Event> {
    (!changed.is_empty()).then(|| Event::Receipt {
        ids: changed,
        status: kind_name(kind).into(),
        from: from.to_owned(),
    })
}

/// Records that `member` received or read `ids` (inside `tx`): only this
/// account's own messages in `conversation` count, a read implies delivery,
/// and nothing is ever downgraded. Returns the ids whose state changed.
pub(crate) fn record_receipt(
    tx: &Transaction<'_>,
    conversation: i64,
    member: &str,
    kind: ReceiptKind,
    ids: &[MessageId],
    at: u64,
) -> Result<Vec<String>, ClientError> {
    let mut changed = Vec::new();
    for id in ids {
        let id = id.to_hex();
        let own: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM messages WHERE id = ?1 AND conversation = ?2 AND outgoing = 1",
                params![id, conversation],
                |r| r.get(0),
            )
            .optional()?;
        if own.is_none() {
            continue;
        }
        let n = match kind {
            ReceiptKind::Delivered => tx.execute(
                "INSERT INTO receipts (message_id, member, delivered_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (message_id, member) DO NOTHING",
                params![id, member, at as i64],
            )?,
            ReceiptKind::Read => tx.execute(
                "INSERT INTO receipts (message_id, member, delivered_at, read_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (message_id, member) DO UPDATE SET read_at = excluded.read_at \
                 WHERE read_at IS NULL",
                params![id, member, at as i64],
            )?,
        };
        let status = kind_name(kind);
        // The status the list shows: never read back to delivered.
        tx.execute(
            "UPDATE messages SET status = ?2 WHERE id = ?1 AND status != 'read' AND status != ?2",
            params![id, status],
        )?;
        if n > 0 {
            changed.push(id);
        }
    }
    Ok(changed)
}
