//! Receiving in batches (decision 0018): the application messages that arrive
//! together are opened one after the other in memory, then their effects, the
//! MLS state and the queue position are written in one transaction, and only
//! then is the whole batch acknowledged. A crash before that write loses
//! nothing: nothing was acknowledged, and the restarted client opens the same
//! envelopes again from the state of the previous write.

use hush_proto::{Body, Incoming, MessageKind, is_application_message, peek_message};
use hush_wire::ws::Envelope;
use rusqlite::{Transaction, params};

use crate::client::{Client, now};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::Event;
use crate::receipts::{receipt_event, record_receipt};

/// The most envelopes held before a write, whatever keeps arriving.
pub(crate) const MAX_BATCH: usize = 500;

/// Envelopes opened since the last write.
#[derive(Default)]
pub(crate) struct Batch {
    /// Sequence numbers to acknowledge once the batch is written.
    pub(crate) acks: Vec<u64>,
    /// The newest queue position handled.
    last_seq: Option<u64>,
    /// Messages opened, waiting to be stored.
    opened: Vec<Opened>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.acks.len()
    }
}

/// One opened application message, waiting for the batch's write.
pub(crate) struct Opened {
    pub(crate) group_id: Vec<u8>,
    pub(crate) conversation: i64,
    pub(crate) content: hush_proto::Content,
    pub(crate) sender: String,
    pub(crate) device: u32,
    pub(crate) outgoing: bool,
    pub(crate) blocked: bool,
    pub(crate) received_at: u64,
    pub(crate) franking: String,
    /// The sender may delete others' messages here (an admin of a group
    /// with admins); looked at only for a delete.
    pub(crate) moderator: bool,
}

impl Opened {
    /// Stores the message's effect; `shown` says whether it is new to show.
    pub(crate) fn apply(
        &self,
        tx: &Transaction<'_>,
        shown: &mut bool,
    ) -> Result<Option<Event>, ClientError> {
        if self.blocked {
            return Ok(None);
        }
        apply_content(
            tx,
            self.conversation,
            &self.content,
            &self.sender,
            self.device,
            self.outgoing,
            self.received_at,
            self.franking.clone(),
            self.moderator,
            shown,
        )
    }
}

/// What a written batch produced.
pub(crate) struct Written {
    pub(crate) events: Vec<Event>,
    /// Messages to confirm with a delivery receipt: conversation, original
    /// sender, message.
    pub(crate) delivered: Vec<(Vec<u8>, String, hush_proto::MessageId)>,
    /// Contacts' key-transparency checkpoints carried by the messages.
    pub(crate) checkpoints: Vec<(String, hush_proto::kt::KtCheckpoint)>,
}

impl Client {
    /// Whether `env` can join a batch: an application message (after the
    /// device's seal is opened). Anything else is handled on its own after
    /// the batch is written.
    pub(crate) fn batchable(&self, env: &Envelope) -> Option<Envelope> {
        let env = self.unseal(env).ok()?;
        let group = matches!(peek_message(&env.payload), Ok(MessageKind::Group { .. }));
        (group && is_application_message(&env.payload)).then_some(env)
    }

    /// Opens an application message into `batch`. Events known at once (a
    /// contact's new key) are returned; a message that cannot be opened is
    /// dropped (its position still recorded), as one at a time did.
    pub(crate) fn open_into(
        &mut self,
        env: &Envelope,
        batch: &mut Batch,
    ) -> Result<Vec<Event>, ClientError> {
        batch.acks.push(env.seq);
        batch.last_seq = Some(env.seq);
        match self.open_message(env) {
            Ok((opened, events)) => {
                batch.opened.extend(opened);
                Ok(events)
            }
            Err(e @ ClientError::Store(_)) => Err(e),
            Err(e) => {
                // The conversation rolled itself back: the batch stays good.
                tracing::warn!(seq = env.seq, error = %e, "dropped a message that could not be opened");
                Ok(Vec::new())
            }
        }
    }

    fn open_message(
        &mut self,
        env: &Envelope,
    ) -> Result<(Option<Opened>, Vec<Event>), ClientError> {
        let Ok(MessageKind::Group { group_id, .. }) = peek_message(&env.payload) else {
            return Err(ClientError::NotFound("not a group message".into()));
        };
        let row = self.row_for_group(&group_id)?.ok_or_else(|| {
            ClientError::NotFound("message for a conversation this device is not in".into())
        })?;
        let incoming = self
            .conv(&group_id)?
            .process_in_batch(&env.payload, now())?;
        let Incoming::Message(received) = incoming else {
            return Ok((None, Vec::new()));
        };
        let mut events = Vec::new();
        let opened = self.opened(&group_id, row.id, &received, env, &mut events)?;
        Ok((Some(opened), events))
    }

    /// What to store for a received message; notes the sender's account key.
    pub(crate) fn opened(
        &mut self,
        group_id: &[u8],
        conversation: i64,
        received: &hush_proto::Received,
        env: &Envelope,
        events: &mut Vec<Event>,
    ) -> Result<Opened, ClientError> {
        let sender = received.sender.username().to_string();
        if self.note_account_key(&sender, received.sender.account_key().as_bytes())? {
            events.push(Event::KeyChanged {
                username: sender.clone(),
            });
        }
        let blocked: bool = self
            .store
            .conn
            .query_row(
                "SELECT blocked FROM contacts WHERE username = ?1",
                params![sender],
                |r| r.get(0),
            )
            .unwrap_or(false);
        let franking = serde_json::json!({
            "content": hex::encode(&received.opening.content),
            "key": hex::encode(received.opening.key.as_bytes()),
            "commitment": hex::encode(received.opening.commitment.0),
            "relay_tag": env.relay_tag.map(hex::encode),
            "received_at_ms": env.received_at_ms,
        })
        .to_string();
        Ok(Opened {
            group_id: group_id.to_vec(),
            conversation,
            outgoing: sender == self.username.as_str(),
            content: received.content.clone(),
            device: received.sender.device_id().0,
            sender,
            blocked,
            received_at: env.received_at_ms,
            franking,
            moderator: matches!(received.content.body, Body::Delete { .. })
                && self.moderates(group_id, received.sender.username())?,
        })
    }

    /// Writes a batch: its messages, the MLS state (one write however many
    /// messages) and the queue position, in one transaction. The caller
    /// acknowledges `batch.acks` after this returns.
    pub(crate) fn write_batch(&mut self, batch: &mut Batch) -> Result<Written, ClientError> {
        if std::mem::take(&mut self.crash_before_batch_write) {
            return Err(ClientError::Store(
                "simulated crash before the batch write".into(),
            ));
        }
        let opened = std::mem::take(&mut batch.opened);
        let last_seq = batch.last_seq.take();
        let applied = self.persist(|tx| {
            let mut out = Vec::with_capacity(opened.len());
            for o in &opened {
                let mut shown = false;
                let ev = o.apply(tx, &mut shown)?;
                out.push((shown, ev));
            }
            if let Some(seq) = last_seq {
                LocalStore::set_meta(tx, "last_seq", seq.to_string().as_bytes())?;
            }
            Ok(out)
        })?;
        let mut written = Written {
            events: Vec::new(),
            delivered: Vec::new(),
            checkpoints: Vec::new(),
        };
        for (o, (shown, effect)) in opened.into_iter().zip(applied) {
            if let Some(cp) = &o.content.kt_checkpoint
                && !o.outgoing
            {
                written.checkpoints.push((o.sender.clone(), *cp));
            }
            if shown && !o.outgoing {
                written
                    .delivered
                    .push((o.group_id.clone(), o.sender.clone(), o.content.id));
            }
            let ev = if shown {
                self.message(&o.content.id.to_hex())?.map(Event::Message)
            } else {
                effect
            };
            written.events.extend(ev);
        }
        Ok(written)
    }

    /// Test hook: the next sync opens its first batch and fails before
    /// writing it, as a process killed at that point would (the caller then
    /// drops this client and opens the store again).
    #[doc(hidden)]
    pub fn crash_before_next_batch_write(&mut self) {
        self.crash_before_batch_write = true;
    }

    /// The newest queue position handled, counting a batch not yet written.
    pub(crate) fn handled_up_to(&self, batch: &Batch) -> Result<u64, ClientError> {
        let stored = self
            .store
            .meta_str("last_seq")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(batch.last_seq.map_or(stored, |b| b.max(stored)))
    }
}

/// Applies one received content to the store (inside the sync transaction).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_content(
    tx: &rusqlite::Transaction<'_>,
    conversation: i64,
    content: &hush_proto::Content,
    sender: &str,
    device: u32,
    outgoing: bool,
    received_at: u64,
    franking: String,
    moderator: bool,
    shown: &mut bool,
) -> Result<Option<Event>, ClientError> {
    Ok(match &content.body {
        Body::Text { .. } | Body::Attachment { .. } | Body::Poll { .. } => {
            *shown = Client::insert_message(
                tx,
                conversation,
                content,
                sender,
                device,
                outgoing,
                received_at,
                Some(franking),
            )?;
            if outgoing {
                tx.execute(
                    "UPDATE messages SET status = 'sent' WHERE id = ?1",
                    params![content.id.to_hex()],
                )?;
                crate::devices::note_seen(tx, device, received_at)?;
            }
            None
        }
        // From a client before decision 0017, through the group: counted
        // the same way as a receipt to the sender.
        Body::Receipt { kind, ids } if !outgoing => {
            let changed = record_receipt(tx, conversation, sender, *kind, ids, received_at)?;
            receipt_event(changed, *kind, sender)
        }
        Body::Edit { target, text } => {
            let n = tx.execute(
                "UPDATE messages SET body = ?3, edited = 1 WHERE id = ?1 AND sender = ?2 AND deleted = 0",
                params![target.to_hex(), sender, text],
            )?;
            (n > 0).then(|| Event::Edited {
                id: target.to_hex(),
                text: text.clone(),
            })
        }
        // The sender's own message, or, by a group's admin, anyone's in
        // that group (never in another conversation).
        Body::Delete { target } => {
            let n = tx.execute(
                "UPDATE messages SET body = NULL, attachment = NULL, deleted = 1 \
                 WHERE id = ?1 AND conversation = ?3 AND (sender = ?2 OR ?4)",
                params![target.to_hex(), sender, conversation, moderator],
            )?;
            (n > 0).then(|| Event::Deleted {
                id: target.to_hex(),
            })
        }
        Body::Reaction { target, emoji } => crate::reactions::record_reaction(
            tx,
            conversation,
            target,
            sender,
            emoji.as_deref(),
            content.sent_at_ms,
        )?,
        Body::ChannelAdmin { grant } if !outgoing => {
            crate::channel_admins::take_grant(tx, sender, grant)?;
            None
        }
        Body::Vote { poll, options } => {
            crate::polls::record_vote(tx, conversation, poll, sender, options, content.sent_at_ms)?
        }
        Body::Pin { target, pinned } => crate::pins::record_pin(
            tx,
            conversation,
            target,
            sender,
            *pinned,
            content.sent_at_ms,
        )?,
        Body::DisappearingTimer { seconds } => {
            tx.execute(
                "UPDATE conversations SET disappear_secs = ?2 WHERE id = ?1",
                params![conversation, seconds],
            )?;
            Some(Event::Disappearing {
                conversation,
                seconds: *seconds,
            })
        }
        Body::ProfileKey { key } => {
            tx.execute(
                "UPDATE contacts SET profile_key = ?2 WHERE username = ?1",
                params![sender, key.as_slice()],
            )?;
            Some(Event::Profile {
                username: sender.to_owned(),
            })
        }
        Body::Typing { started } => Some(Event::Typing {
            conversation,
            from: sender.to_owned(),
            started: *started,
        }),
        Body::Presence { online, .. } => Some(Event::Presence {
            from: sender.to_owned(),
            online: *online,
        }),
        _ => None,
    })
}
