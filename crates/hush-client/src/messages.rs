//! Sending and reading messages: text, replies, edits, deletes, receipts,
//! typing, presence, disappearing timers, profiles.

use hush_proto::self_sync::SyncOp;
use hush_proto::{Body, Content, MessageId, ReceiptKind, SafetyNumber, Username};
use hush_wire::Bytes;
use hush_wire::api::SendRequest;
use rand::RngCore;
use reqwest::Method;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::{ContactView, MessageView, PresenceMode, Target};

/// What a stored attachment message needs to fetch and open the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttachmentRecord {
    pub blob_id: String,
    pub key: String,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub file_name: String,
}

pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.conversation, c.kind, c.name, m.sender, m.kind, m.body, \
     m.sent_at, m.outgoing, m.status, m.reply_to, m.edited, m.deleted, m.attachment, m.expires_at, m.franking, \
     m.recipients, m.mentions, m.mentions_me, m.forwarded, m.poll, \
     (SELECT q.sender FROM messages q WHERE q.id = m.reply_to AND q.conversation = m.conversation), \
     (SELECT CASE WHEN q.deleted THEN NULL ELSE substr(q.body, 1, 200) END \
      FROM messages q WHERE q.id = m.reply_to AND q.conversation = m.conversation)";

/// Columns in [`MESSAGE_COLUMNS`]: a query may add its own after them.
pub(crate) const MESSAGE_COLUMN_COUNT: usize = 23;

pub(crate) fn message_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageView> {
    let kind: String = r.get(2)?;
    let attachment: Option<String> = r.get(13)?;
    let attachment: Option<AttachmentRecord> =
        attachment.and_then(|a| serde_json::from_str(&a).ok());
    Ok(MessageView {
        id: r.get(0)?,
        conversation: r.get(1)?,
        group: if kind == "group" { r.get(3)? } else { None },
        from: r.get(4)?,
        kind: r.get(5)?,
        text: r.get(6)?,
        sent_at: r.get::<_, i64>(7)? as u64,
        outgoing: r.get(8)?,
        status: r.get(9)?,
        reply_to: r.get(10)?,
        edited: r.get(11)?,
        deleted: r.get(12)?,
        file_name: attachment.as_ref().map(|a| a.file_name.clone()),
        size: attachment.as_ref().map(|a| a.size),
        media_type: attachment.as_ref().map(|a| a.media_type.clone()),
        expires_at: r.get::<_, Option<i64>>(14)?.map(|t| t as u64),
        unfranked: !r.get::<_, bool>(8)? && !has_relay_tag(r.get::<_, Option<String>>(15)?),
        receipts: Box::new(crate::model::ReceiptState {
            recipients: r.get::<_, Option<i64>>(16)?.map(|n| n as u32),
            ..Default::default()
        }),
        reactions: Vec::new(),
        mentions: r
            .get::<_, Option<String>>(17)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        mentions_me: r.get(18)?,
        pinned: false,
        forwarded: r.get(19)?,
        poll: crate::polls::view(r.get(20)?),
        quoted: r
            .get::<_, Option<String>>(21)?
            .map(|from| -> rusqlite::Result<_> {
                Ok(crate::model::Quoted {
                    from,
                    text: r.get(22)?,
                })
            })
            .transpose()?,
    })
}

/// Whether a received message's stored franking proof holds a relay tag:
/// 32 bytes the server delivered with the envelope.
fn has_relay_tag(franking: Option<String>) -> bool {
    franking
        .and_then(|f| serde_json::from_str::<serde_json::Value>(&f).ok())
        .and_then(|f| f["relay_tag"].as_str().and_then(|t| hex::decode(t).ok()))
        .is_some_and(|tag| tag.len() == 32)
}

impl Client {
    pub(crate) fn message(&self, id: &str) -> Result<Option<MessageView>, ClientError> {
        Ok(self
            .store
            .conn
            .query_row(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation WHERE m.id = ?1"
                ),
                params![id],
                message_view,
            )
            .optional()?)
    }

    /// Stores a displayable message (text or file) inside `tx`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_message(
        tx: &Transaction<'_>,
        conversation: i64,
        content: &Content,
        sender: &str,
        sender_device: u32,
        outgoing: bool,
        received_at: u64,
        franking: Option<String>,
    ) -> Result<bool, ClientError> {
        let (kind, body, reply_to, attachment) = match &content.body {
            Body::Text { text, reply_to } => ("text", Some(text.clone()), *reply_to, None),
            Body::Attachment {
                pointer,
                caption,
                reply_to,
            } => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                let record = AttachmentRecord {
                    blob_id: pointer.blob_id.clone(),
                    key: b64.encode(pointer.key),
                    digest: b64.encode(pointer.digest),
                    size: pointer.size,
                    media_type: pointer.media_type.clone(),
                    file_name: pointer.file_name.clone(),
                };
                (
                    "file",
                    caption.clone(),
                    *reply_to,
                    Some(
                        serde_json::to_string(&record)
                            .map_err(|e| ClientError::Store(e.to_string()))?,
                    ),
                )
            }
            Body::Poll { question, .. } => ("poll", Some(question.clone()), None, None),
            _ => return Ok(false),
        };
        let expires_at = content
            .expire_timer_secs
            .map(|s| (received_at + u64::from(s) * 1000) as i64);
        let status = if outgoing { "pending" } else { "received" };
        let mentions = crate::mentions::stored(&content.meta.mentions);
        // `mentions_me`: this account (the store's `username`) is listed.
        let n = tx.execute(
            "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind, body, reply_to, \
             attachment, sent_at, received_at, expires_at, status, franking, mentions, forwarded, \
             poll, mentions_me) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?15 IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(?15) j JOIN meta \
             ON meta.key = 'username' AND CAST(meta.value AS TEXT) = j.value)) \
             ON CONFLICT (id) DO NOTHING",
            params![
                content.id.to_hex(),
                conversation,
                sender,
                sender_device,
                outgoing,
                kind,
                body,
                reply_to.map(|r| r.to_hex()),
                attachment,
                content.sent_at_ms as i64,
                received_at as i64,
                expires_at,
                status,
                franking,
                mentions,
                content.meta.forwarded,
                crate::polls::stored(&content.body),
            ],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn new_content(&self, body: Body, disappear_secs: Option<u32>) -> Content {
        Content {
            id: MessageId::generate(&mut rand::rngs::OsRng),
            sent_at_ms: now_ms(),
            expire_timer_secs: disappear_secs,
            kt_checkpoint: self.kt_checkpoint(),
            meta: Default::default(),
            body,
        }
    }

    /// Sends a content that is shown as a message (text or file) and returns it.
    pub(crate) async fn send_shown(
        &mut self,
        target: &Target,
        body: Body,
    ) -> Result<MessageView, ClientError> {
        self.send_post(target, body, false).await
    }

    /// [`Client::send_shown`], marked forwarded or not.
    pub(crate) async fn send_post(
        &mut self,
        target: &Target,
        body: Body,
        forwarded: bool,
    ) -> Result<MessageView, ClientError> {
        let row = self.resolve(target).await?;
        if let Target::User(user) = target {
            self.check_not_blocked_verified(user)?;
        }
        let mut content = self.new_content(body, row.disappear_secs);
        content.meta.forwarded = forwarded;
        if row.kind == "group" {
            content.meta.mentions = self.mentions_for(&row.group_id, &content.body)?;
        }
        let me = self.username.to_string();
        let device = self.device_id;
        let id = content.id.to_hex();
        let stored = content.clone();
        // How many other members a group message goes to, for "read by N of M".
        let others = match row.kind.as_str() {
            "group" => Some(self.conv(&row.group_id)?.accounts().len().saturating_sub(1) as i64),
            _ => None,
        };
        self.seal_and_queue(&row.group_id, &content, Some(&id), |tx| {
            Self::insert_message(tx, row.id, &stored, &me, device, true, now_ms(), None)?;
            tx.execute(
                "UPDATE messages SET recipients = ?2 WHERE id = ?1",
                params![id, others],
            )?;
            Ok(())
        })?;
        self.flush_outbox().await?;
        let mut m = self
            .message(&id)?
            .ok_or_else(|| ClientError::Store("message vanished".into()))?;
        self.decorate(&mut m)?;
        Ok(m)
    }

    /// Sends `text` to a contact or group; creates a 1:1 chat on first use.
    pub async fn send_text(
        &mut self,
        target: &Target,
        text: &str,
    ) -> Result<MessageView, ClientError> {
        self.send_reply(target, text, None).await
    }

    /// Sends `text` as a reply to message `reply_to`.
    pub async fn send_reply(
        &mut self,
        target: &Target,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<MessageView, ClientError> {
        if text.is_empty() {
            return Err(ClientError::InvalidInput("the message is empty".into()));
        }
        if text.len() > hush_proto::content::MAX_TEXT_LEN {
            return Err(ClientError::InvalidInput(format!(
                "a message is at most {} bytes",
                hush_proto::content::MAX_TEXT_LEN
            )));
        }
        let reply_to = reply_to
            .map(|r| {
                MessageId::from_hex(r)
                    .ok_or_else(|| ClientError::InvalidInput(format!("{r:?} is not a message id")))
            })
            .transpose()?;
        self.send_shown(
            target,
            Body::Text {
                text: text.to_owned(),
                reply_to,
            },
        )
        .await
    }

    /// Sends a control content (not shown as a message) to a conversation.
    pub(crate) async fn send_control(
        &mut self,
        group_id: &[u8],
        body: Body,
        disappear: Option<u32>,
    ) -> Result<(), ClientError> {
        let content = self.new_content(body, disappear);
        self.seal_and_queue(group_id, &content, None, |_| Ok(()))?;
        self.flush_outbox().await
    }

    /// Someone else's message in a group this account is an admin of.
    fn moderated_message(&mut self, id: &str) -> Result<(MessageView, Vec<u8>), ClientError> {
        let m = self
            .message(id)?
            .ok_or_else(|| ClientError::NotFound(format!("no message {id}")))?;
        let row = self
            .conv_by_id(m.conversation)?
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        let me = self.username.clone();
        if self.moderates(&row.group_id, &me)? || !self.device.checks_own_rules() {
            return Ok((m, row.group_id));
        }
        Err(ClientError::InvalidInput(
            "only your own messages can be deleted, or any message of a group by its admins".into(),
        ))
    }

    fn own_message(&self, id: &str) -> Result<(MessageView, Vec<u8>), ClientError> {
        let m = self
            .message(id)?
            .ok_or_else(|| ClientError::NotFound(format!("no message {id}")))?;
        if !m.outgoing {
            return Err(ClientError::InvalidInput(
                "only your own messages can be changed".into(),
            ));
        }
        let row = self
            .conv_by_id(m.conversation)?
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        Ok((m, row.group_id))
    }

    /// Replaces the text of one of this account's messages, for everyone.
    pub async fn edit(&mut self, id: &str, text: &str) -> Result<(), ClientError> {
        let (m, group_id) = self.own_message(id)?;
        if m.deleted {
            return Err(ClientError::InvalidInput(
                "a deleted message cannot be edited".into(),
            ));
        }
        let target =
            MessageId::from_hex(&m.id).ok_or_else(|| ClientError::Store("bad id".into()))?;
        self.send_control(
            &group_id,
            Body::Edit {
                target,
                text: text.to_owned(),
            },
            None,
        )
        .await?;
        self.store.conn.execute(
            "UPDATE messages SET body = ?2, edited = 1 WHERE id = ?1 AND deleted = 0",
            params![id, text],
        )?;
        Ok(())
    }

    /// Deletes a message for everyone: one of this account's, or, by an
    /// admin of a group, any member's message in that group.
    pub async fn delete(&mut self, id: &str) -> Result<(), ClientError> {
        let (m, group_id) = match self.own_message(id) {
            Ok(own) => own,
            Err(ClientError::InvalidInput(_)) => self.moderated_message(id)?,
            Err(e) => return Err(e),
        };
        let target =
            MessageId::from_hex(&m.id).ok_or_else(|| ClientError::Store("bad id".into()))?;
        self.send_control(&group_id, Body::Delete { target }, None)
            .await?;
        self.store.conn.execute(
            "UPDATE messages SET body = NULL, attachment = NULL, deleted = 1 WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Sets the disappearing-message timer of a conversation (`None`: off),
    /// for every member.
    pub async fn set_disappearing(
        &mut self,
        target: &Target,
        seconds: Option<u32>,
    ) -> Result<(), ClientError> {
        let row = self.resolve(target).await?;
        self.send_control(&row.group_id, Body::DisappearingTimer { seconds }, None)
            .await?;
        for r in self.find(target)? {
            self.store.conn.execute(
                "UPDATE conversations SET disappear_secs = ?2 WHERE id = ?1",
                params![r.id, seconds],
            )?;
        }
        Ok(())
    }

    /// The messages of a conversation, oldest first.
    pub fn history(&mut self, target: &Target) -> Result<Vec<MessageView>, ClientError> {
        self.expire_messages()?;
        let ids: Vec<i64> = self
            .find_with_archived(target)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut out = Vec::new();
        let mut stmt = self.store.conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation \
             WHERE m.conversation = ?1 ORDER BY m.rowid"
        ))?;
        for id in ids {
            out.extend(
                stmt.query_map(params![id], message_view)?
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        drop(stmt);
        out.sort_by_key(|m| (m.sent_at, m.id.clone()));
        for m in &mut out {
            self.decorate(m)?;
        }
        Ok(out)
    }

    /// Marks a conversation's received messages as read and tells their
    /// senders (read receipts: one frame per sender, to that sender's
    /// devices only).
    pub async fn mark_read(&mut self, target: &Target) -> Result<usize, ClientError> {
        let rows = self.find(target)?;
        let mut total = 0;
        for row in rows {
            let unread: Vec<(String, String)> = {
                let mut stmt = self.store.conn.prepare(
                    "SELECT id, sender FROM messages WHERE conversation = ?1 AND outgoing = 0 \
                     AND status = 'received' ORDER BY sender, rowid",
                )?;
                stmt.query_map(params![row.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            if unread.is_empty() {
                continue;
            }
            let mut by_sender: std::collections::BTreeMap<&str, Vec<MessageId>> =
                std::collections::BTreeMap::new();
            for (id, sender) in &unread {
                if let Some(id) = MessageId::from_hex(id) {
                    by_sender.entry(sender).or_default().push(id);
                }
            }
            for (sender, ids) in by_sender {
                self.queue_receipts(&row.group_id, sender, ReceiptKind::Read, &ids)?;
            }
            // Read here, and on this account's other devices (decision 0025).
            let ids: Vec<String> = unread.into_iter().map(|(id, _)| id).collect();
            self.sync_reads(&row.group_id, &ids)?;
            self.flush_outbox().await?;
            total += ids.len();
        }
        Ok(total)
    }

    /// Tells a conversation's online members that this account is typing.
    pub async fn send_typing(&mut self, target: &Target, started: bool) -> Result<(), ClientError> {
        let row = self
            .find(target)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        let content = self.new_content(Body::Typing { started }, None);
        self.send_ephemeral(&row.group_id, &content).await
    }

    pub(crate) async fn send_ephemeral(
        &mut self,
        group_id: &[u8],
        content: &Content,
    ) -> Result<(), ClientError> {
        let recipients = self.recipients_of(group_id)?;
        if recipients.is_empty() {
            return Ok(());
        }
        let sealed = self
            .conv(group_id)?
            .seal_ephemeral(content, &mut rand::rngs::OsRng)?;
        self.transport
            .send_message(&SendRequest {
                recipients,
                payload: Bytes(sealed),
                ephemeral: true,
                commit: None,
                franking_commitment: None,
            })
            .await?;
        Ok(())
    }

    /// Announces this account online to whoever the presence setting allows.
    pub async fn announce_presence(&mut self, online: bool) -> Result<(), ClientError> {
        let mode = self.presence_mode()?;
        if mode == PresenceMode::Nobody {
            return Ok(());
        }
        let kinds: &[&str] = match mode {
            PresenceMode::Everyone => &["direct", "group"],
            _ => &["direct"],
        };
        let groups: Vec<Vec<u8>> = {
            let mut stmt = self
                .store
                .conn
                .prepare("SELECT group_id, kind FROM conversations WHERE active = 1")?;
            stmt.query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|(_, k)| kinds.contains(&k.as_str()))
            .map(|(g, _)| g)
            .collect()
        };
        let content = self.new_content(
            Body::Presence {
                online,
                last_seen_ms: Some(now_ms()),
            },
            None,
        );
        for g in groups {
            // Presence is best effort: one conversation failing does not stop the rest.
            if let Err(e) = self.send_ephemeral(&g, &content).await {
                tracing::debug!(error = %e, "presence not sent");
            }
        }
        Ok(())
    }

    /// The contacts this account has met.
    pub fn contacts(&self) -> Result<Vec<ContactView>, ClientError> {
        let mut stmt = self.store.conn.prepare(
            "SELECT username, display_name, verified = 1 AND verified_key IS account_key, \
             key_changed, blocked FROM contacts ORDER BY username",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ContactView {
                    username: r.get(0)?,
                    display_name: r.get(1)?,
                    verified: r.get(2)?,
                    key_changed: r.get::<_, i64>(3)? != 0,
                    blocked: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The safety number with `user` (their key as recorded on first contact,
    /// refreshed from the directory).
    pub async fn safety_number(&mut self, user: &str) -> Result<SafetyNumber, ClientError> {
        let (entry, _changed) = self.lookup(user).await?;
        let them = Username::new(user).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let key = hush_proto::AccountPublicKey::from_slice(entry.account_key.as_slice())?;
        Ok(SafetyNumber::new(
            (&self.username, &self.account.public()),
            (&them, &key),
        ))
    }

    /// Records that the user compared `compared`, the safety number shown
    /// to them, with `user`'s screen. The account key that number was made
    /// from is recorded with the mark; a later key never counts as verified.
    /// When the key changed since the number was shown, nothing is marked.
    pub fn mark_verified(
        &mut self,
        user: &str,
        compared: &SafetyNumber,
    ) -> Result<(), ClientError> {
        let known: Option<Vec<u8>> = self
            .store
            .conn
            .query_row(
                "SELECT account_key FROM contacts WHERE username = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?;
        let Some(key) = known else {
            return Err(ClientError::NotFound(format!(
                "{user} is not a contact yet"
            )));
        };
        let them = Username::new(user).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let current = SafetyNumber::new(
            (&self.username, &self.account.public()),
            (&them, &hush_proto::AccountPublicKey::from_slice(&key)?),
        );
        if current != *compared {
            return Err(ClientError::KeyChanged(user.to_owned()));
        }
        let account_key = <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| ClientError::Store("a contact's key is corrupt".into()))?;
        // Marked on this account's other devices too (decision 0025); the
        // mark holds there for this key only.
        let op = SyncOp::Verified {
            user: them,
            account_key,
        };
        self.change_and_sync(vec![op], |tx| {
            tx.execute(
                "UPDATE contacts SET verified = 1, key_changed = 0, verified_key = account_key \
                 WHERE username = ?1",
                params![user],
            )?;
            Ok(())
        })
    }

    /// Blocks (or unblocks) `user`: their messages are dropped, on this
    /// account's other devices too (sent with the next flush of the outbox).
    pub fn set_blocked(&mut self, user: &str, blocked: bool) -> Result<(), ClientError> {
        let op = SyncOp::Blocked {
            user: crate::self_sync::user(user)?,
            blocked,
        };
        self.change_and_sync(vec![op], |tx| {
            let n = tx.execute(
                "UPDATE contacts SET blocked = ?2 WHERE username = ?1",
                params![user, blocked],
            )?;
            if n == 0 {
                return Err(ClientError::NotFound(format!("{user} is not a contact")));
            }
            Ok(())
        })
    }

    pub(crate) fn profile_key(&mut self) -> Result<[u8; 32], ClientError> {
        if let Some(k) = self.store.meta("profile_key")?
            && let Ok(k) = <[u8; 32]>::try_from(k.as_slice())
        {
            return Ok(k);
        }
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        LocalStore::set_meta(&self.store.conn, "profile_key", &k)?;
        Ok(k)
    }
}

impl Client {
    /// The report of received message `id`: its content, franking key and
    /// commitment, and the server's relay tag, as stored when it arrived.
    pub fn report_request(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<hush_wire::api::ReportRequest, ClientError> {
        let row: Option<(String, bool, Option<String>)> = self
            .store
            .conn
            .query_row(
                "SELECT sender, outgoing, franking FROM messages WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (sender, outgoing, franking) =
            row.ok_or_else(|| ClientError::NotFound(format!("no message {id}")))?;
        if outgoing {
            return Err(ClientError::InvalidInput(
                "you cannot report your own message".into(),
            ));
        }
        let f: serde_json::Value = franking
            .and_then(|f| serde_json::from_str(&f).ok())
            .ok_or_else(|| {
                ClientError::InvalidInput("this message carries no franking proof".into())
            })?;
        let hexfield = |name: &str| -> Result<Vec<u8>, ClientError> {
            f[name]
                .as_str()
                .and_then(|s| hex::decode(s).ok())
                .ok_or_else(|| {
                    ClientError::InvalidInput(format!("this message has no {name} to report with"))
                })
        };
        Ok(hush_wire::api::ReportRequest {
            sender,
            content: Bytes(hexfield("content")?),
            franking_key: Bytes(hexfield("key")?),
            commitment: Bytes(hexfield("commitment")?),
            relay_tag: Bytes(hexfield("relay_tag")?),
            received_at_ms: f["received_at_ms"].as_u64().unwrap_or(0),
            reason: reason.to_owned(),
        })
    }

    /// Sends a report to the server's moderators; returns its number.
    pub async fn submit_report(
        &self,
        req: &hush_wire::api::ReportRequest,
    ) -> Result<i64, ClientError> {
        let resp: hush_wire::api::ReportResponse = self
            .transport
            .json(Method::POST, "/v1/reports", Some(req))
            .await?;
        Ok(resp.id)
    }

    /// Reports received message `id` with proof of who sent it. Only this
    /// message is revealed to the server's moderators.
    pub async fn report(&mut self, id: &str, reason: &str) -> Result<i64, ClientError> {
        let req = self.report_request(id, reason)?;
        self.submit_report(&req).await
    }
}
