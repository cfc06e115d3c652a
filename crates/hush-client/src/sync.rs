//! Receiving: drain the device's queue over the WebSocket, open each message,
//! store its effect together with the MLS state and the queue position in one
//! transaction, and only then acknowledge it to the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hush_proto::{Body, Incoming, MessageId, MessageKind, ProtoError, ReceiptKind, peek_message};
use hush_wire::ws::{ClientFrame, Envelope, ServerFrame};
use rusqlite::params;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Client, now};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::Event;
use crate::trust::Vetting;

/// How long a sync waits for the server to finish sending the stored queue.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What receiving left to do once the connection is closed.
#[derive(Default)]
struct FollowUp {
    /// Delivery receipts to send, per conversation.
    receipts: BTreeMap<Vec<u8>, Vec<MessageId>>,
    /// Conversations with proposals (members leaving) waiting for a commit.
    proposals: Vec<Vec<u8>>,
    /// Conversations joined in this sync: each gets one self-update, so
    /// the joiner's leaf and path are fresh and the tree stays populated.
    joined: Vec<Vec<u8>>,
    /// Contacts' key-transparency checkpoints to compare with this view.
    checkpoints: Vec<(String, hush_proto::kt::KtCheckpoint)>,
}

impl Client {
    /// Connects, receives everything waiting (and whatever arrives within
    /// `wait` after that), stores it and acknowledges it. Each event is
    /// passed to `on_event` as it happens and returned at the end. Then sends
    /// delivery receipts, commits members' pending departures, and tops up
    /// KeyPackages.
    pub async fn sync(
        &mut self,
        wait: Duration,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<Vec<Event>, ClientError> {
        self.flush_outbox().await?;
        let mut follow = FollowUp::default();
        let mut events = self.receive(wait, &mut follow, &mut on_event).await?;
        let mut alarms = self.kt_monitor_alarms().await?;
        let mut seen = std::collections::BTreeSet::new();
        for (from, cp) in std::mem::take(&mut follow.checkpoints) {
            if !seen.insert((cp.epoch, cp.root_hash)) {
                continue;
            }
            match self.kt_check_checkpoint(&from, &cp).await {
                Ok(Some(alarm)) => alarms.push(alarm),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "checkpoint not compared"),
            }
        }
        for message in alarms {
            self.raise_kt_alarm(&message)?;
            let ev = Event::KeyTransparencyAlarm { message };
            on_event(&ev);
            events.push(ev);
        }
        for (group_id, ids) in std::mem::take(&mut follow.receipts) {
            for chunk in ids.chunks(hush_proto::content::MAX_RECEIPT_IDS) {
                let body = Body::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids: chunk.to_vec(),
                };
                if let Err(e) = self.send_control(&group_id, body, None).await {
                    tracing::debug!(error = %e, "delivery receipt not sent");
                }
            }
        }
        for group_id in std::mem::take(&mut follow.joined) {
            self.self_update_after_join(&group_id).await;
        }
        for group_id in std::mem::take(&mut follow.proposals) {
            if self.conv_by_group_id(&group_id)?.is_none() {
                continue;
            }
            let t = now();
            match self.commit_with(&group_id, |c| c.self_update(t)).await {
                Ok(change) if !change.added.is_empty() || !change.removed.is_empty() => {
                    let ev = self.members_event(&group_id, &change)?;
                    on_event(&ev);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not commit pending proposals"),
            }
        }
        self.top_up_key_packages(false).await?;
        self.expire_messages()?;
        Ok(events)
    }

    /// Receives what is waiting without follow-ups (used while retrying a
    /// commit that lost its epoch).
    pub(crate) async fn sync_quietly(&mut self) -> Result<(), ClientError> {
        let mut follow = FollowUp::default();
        self.receive(Duration::ZERO, &mut follow, &mut |_| {})
            .await?;
        Ok(())
    }

    async fn receive(
        &mut self,
        wait: Duration,
        follow: &mut FollowUp,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Vec<Event>, ClientError> {
        let mut ws = self.transport.websocket().await?;
        let mut events = Vec::new();
        let mut deadline: Option<Instant> = None;
        let started = Instant::now();
        loop {
            let limit = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => DRAIN_TIMEOUT.saturating_sub(started.elapsed()),
            };
            let next = match tokio::time::timeout(limit, ws.next()).await {
                Ok(n) => n,
                Err(_) if deadline.is_some() => break,
                Err(_) => {
                    return Err(ClientError::Network(
                        "the server did not finish sending the queue in time".into(),
                    ));
                }
            };
            let bytes = match next {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(_))) | None => {
                    if deadline.is_some() {
                        break;
                    }
                    return Err(ClientError::Network(
                        "the server closed the connection during sync".into(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Network(e.to_string())),
            };
            let frame = ServerFrame::decode(&bytes).map_err(|e| {
                ClientError::Network(format!("malformed frame from the server: {e}"))
            })?;
            match frame {
                ServerFrame::Envelope(env) => {
                    let new = self.handle_envelope(&env, follow).await?;
                    for ev in new {
                        on_event(&ev);
                        events.push(ev);
                    }
                    ws.send(Message::Binary(
                        ClientFrame::Ack(vec![env.seq]).encode().into(),
                    ))
                    .await
                    .map_err(|e| ClientError::Network(e.to_string()))?;
                }
                ServerFrame::Ephemeral(payload) => {
                    if let Some(ev) = self.handle_ephemeral(&payload) {
                        on_event(&ev);
                        events.push(ev);
                    }
                }
                // Answers to sends on the socket; this client sends by HTTP.
                ServerFrame::Sent { .. } | ServerFrame::Refused { .. } => {}
                ServerFrame::Drained => {
                    if deadline.is_none() {
                        if wait.is_zero() {
                            break;
                        }
                        deadline = Some(Instant::now() + wait);
                    }
                }
            }
        }
        // Let the server see the last acknowledgements before the close.
        let _ = ws.close(None).await;
        Ok(events)
    }

    fn last_seq(&self) -> Result<u64, ClientError> {
        Ok(self
            .store
            .meta_str("last_seq")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Opens one envelope and stores its effect with the new queue position.
    /// An envelope already handled (its acknowledgement was lost) is skipped.
    async fn handle_envelope(
        &mut self,
        env: &Envelope,
        follow: &mut FollowUp,
    ) -> Result<Vec<Event>, ClientError> {
        if env.seq <= self.last_seq()? {
            return Ok(Vec::new());
        }
        let seq = env.seq.to_string();
        let result = match self.unseal(env) {
            Err(e) => Err(e),
            Ok(env) => match peek_message(&env.payload) {
                Ok(MessageKind::Welcome) => {
                    self.handle_welcome(&env.payload, &seq, &mut follow.joined)
                        .await
                }
                Ok(MessageKind::Group { group_id, .. }) => {
                    self.handle_group(&group_id, &env, &seq, follow).await
                }
                Ok(_) | Err(_) => Err(ClientError::Proto(ProtoError::InvalidRequest(
                    "not a message for this device",
                ))),
            },
        };
        match result {
            Ok(events) => Ok(events),
            Err(ClientError::Store(e)) => Err(ClientError::Store(e)),
            // The key directory could not be asked about new members: keep
            // the message queued and try again next time.
            Err(e @ (ClientError::Network(_) | ClientError::Server(_))) => {
                self.reload_mls()?;
                Err(e)
            }
            Err(e) => {
                // Undecryptable, replayed or foreign: nothing to keep. Record
                // the position so it is not retried, and move on.
                tracing::warn!(seq = env.seq, error = %e, "dropped a message that could not be opened");
                self.reload_mls()?;
                LocalStore::set_meta(&self.store.conn, "last_seq", seq.as_bytes())?;
                Ok(Vec::new())
            }
        }
    }

    /// The server stores and relays every message sealed to the recipient
    /// device (see `hush_proto::sealed`): open it with this device's key. A
    /// bare MLS message (queued before the server sealed) comes as it is.
    fn unseal(&self, env: &Envelope) -> Result<Envelope, ClientError> {
        if !hush_proto::sealed::is_sealed(&env.payload) {
            return Ok(env.clone());
        }
        let seed = crate::client::seed(&crate::client::meta_required(&self.store, "device_seed")?)?;
        let key = hush_proto::sealed::OpenKey::of(&hush_proto::DeviceSigningKey::from_seed(seed)?)?;
        let opened = hush_proto::sealed::open_envelope(&key, &env.payload)?;
        Ok(Envelope {
            seq: env.seq,
            received_at_ms: env.received_at_ms,
            relay_tag: opened.relay_tag,
            payload: opened.message,
        })
    }

    async fn handle_group(
        &mut self,
        group_id: &[u8],
        env: &Envelope,
        seq: &str,
        follow: &mut FollowUp,
    ) -> Result<Vec<Event>, ClientError> {
        let row = self.conv_by_group_id(group_id)?.ok_or_else(|| {
            ClientError::NotFound("message for a conversation this device is not in".into())
        })?;
        let incoming = self.conv(group_id)?.process(&env.payload, now())?;
        let mut events = Vec::new();
        match incoming {
            Incoming::Message(received) => {
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
                let outgoing = sender == self.username.as_str();
                let content = received.content.clone();
                if let Some(cp) = content.kt_checkpoint
                    && !outgoing
                {
                    follow.checkpoints.push((sender.clone(), cp));
                }
                let franking = serde_json::json!({
                    "content": hex::encode(&received.opening.content),
                    "key": hex::encode(received.opening.key.as_bytes()),
                    "commitment": hex::encode(received.opening.commitment.0),
                    "relay_tag": env.relay_tag.map(hex::encode),
                    "received_at_ms": env.received_at_ms,
                })
                .to_string();
                let device = received.sender.device_id().0;
                let conv_id = row.id;
                let mut shown = false;
                let effect = self.persist(|tx| {
                    let ev = if blocked {
                        None
                    } else {
                        apply_content(
                            tx,
                            conv_id,
                            &content,
                            &sender,
                            device,
                            outgoing,
                            env.received_at_ms,
                            franking,
                            &mut shown,
                        )?
                    };
                    LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
                    Ok(ev)
                })?;
                if shown && !outgoing {
                    follow
                        .receipts
                        .entry(group_id.to_vec())
                        .or_default()
                        .push(content.id);
                }
                if shown {
                    if let Some(m) = self.message(&content.id.to_hex())? {
                        events.push(Event::Message(m));
                    }
                } else if let Some(ev) = effect {
                    events.push(ev);
                }
            }
            Incoming::Commit(change) => {
                if !change.removed_self {
                    match self.vet_commit(group_id, &change.added).await? {
                        Vetting::Refused(why) => return self.refuse(seq, &why),
                        Vetting::Vouched(changed) => events.extend(
                            changed
                                .into_iter()
                                .map(|username| Event::KeyChanged { username }),
                        ),
                    }
                }
                let removed_self = change.removed_self;
                let name = change.info.as_ref().and_then(|i| i.name.clone());
                let gid = group_id.to_vec();
                if removed_self {
                    self.convs.remove(group_id);
                    self.device.forget(group_id);
                }
                let ev = self.members_event(group_id, &change)?;
                let epoch = change.epoch;
                self.persist(|tx| {
                    Self::note_group_epoch(tx, &gid, epoch)?;
                    if removed_self {
                        tx.execute(
                            "UPDATE conversations SET active = 0 WHERE group_id = ?1",
                            params![gid],
                        )?;
                    }
                    if let Some(n) = &name {
                        tx.execute(
                            "UPDATE conversations SET name = ?2 WHERE group_id = ?1",
                            params![gid, n],
                        )?;
                    }
                    LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
                    Ok(())
                })?;
                if removed_self {
                    events.push(Event::Removed {
                        conversation: row.id,
                    });
                } else {
                    if let Some(n) = name {
                        events.push(Event::Renamed {
                            conversation: row.id,
                            name: n,
                        });
                    }
                    // A plain key update changes no membership: nothing to show.
                    if !change_is_empty(&ev) {
                        events.push(ev);
                    }
                }
            }
            Incoming::Proposal { .. } => {
                follow.proposals.push(group_id.to_vec());
                self.persist(|tx| LocalStore::set_meta(tx, "last_seq", seq.as_bytes()))?;
            }
            _ => {
                self.persist(|tx| LocalStore::set_meta(tx, "last_seq", seq.as_bytes()))?;
            }
        }
        Ok(events)
    }

    pub(crate) fn members_event(
        &mut self,
        group_id: &[u8],
        change: &hush_proto::MembershipChange,
    ) -> Result<Event, ClientError> {
        let id = self
            .store
            .conn
            .query_row(
                "SELECT id FROM conversations WHERE group_id = ?1",
                params![group_id],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let accounts = |certs: &[hush_proto::DeviceCertificate]| {
            let mut v: Vec<String> = certs.iter().map(|c| c.username().to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        Ok(Event::Members {
            conversation: id,
            added: accounts(&change.added),
            removed: accounts(&change.removed),
        })
    }

    fn handle_ephemeral(&mut self, payload: &[u8]) -> Option<Event> {
        let header = hush_proto::ephemeral_header(payload).ok()?;
        let row = self.conv_by_group_id(&header.group_id).ok()??;
        let (sender, content) = self
            .conv(&header.group_id)
            .ok()?
            .open_ephemeral(payload)
            .ok()?;
        match content.body {
            Body::Typing { started } => Some(Event::Typing {
                conversation: row.id,
                from: sender.username().to_string(),
                started,
            }),
            Body::Presence { online, .. } => Some(Event::Presence {
                from: sender.username().to_string(),
                online,
            }),
            _ => None,
        }
    }
}

/// Applies one received content to the store (inside the sync transaction).
#[allow(clippy::too_many_arguments)]
fn apply_content(
    tx: &rusqlite::Transaction<'_>,
    conversation: i64,
    content: &hush_proto::Content,
    sender: &str,
    device: u32,
    outgoing: bool,
    received_at: u64,
    franking: String,
    shown: &mut bool,
) -> Result<Option<Event>, ClientError> {
    Ok(match &content.body {
        Body::Text { .. } | Body::Attachment { .. } => {
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
            }
            None
        }
        Body::Receipt { kind, ids } => {
            let status = match kind {
                ReceiptKind::Delivered => "delivered",
                ReceiptKind::Read => "read",
            };
            let mut changed = Vec::new();
            for id in ids {
                // Never downgrade read to delivered.
                let n = tx.execute(
                    "UPDATE messages SET status = ?2 WHERE id = ?1 AND outgoing = 1 AND status != 'read' AND status != ?2",
                    params![id.to_hex(), status],
                )?;
                if n > 0 {
                    changed.push(id.to_hex());
                }
            }
            (!changed.is_empty()).then(|| Event::Receipt {
                ids: changed,
                status: status.into(),
                from: sender.to_owned(),
            })
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
        Body::Delete { target } => {
            let n = tx.execute(
                "UPDATE messages SET body = NULL, attachment = NULL, deleted = 1 WHERE id = ?1 AND sender = ?2",
                params![target.to_hex(), sender],
            )?;
            (n > 0).then(|| Event::Deleted {
                id: target.to_hex(),
            })
        }
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
            None
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

fn change_is_empty(ev: &Event) -> bool {
    matches!(ev, Event::Members { added, removed, .. } if added.is_empty() && removed.is_empty())
}
