//! Pinned messages (decision 0039): any member pins or unpins a message
//! of the conversation for everyone, except in a group where only admins
//! send, where pins are an admin's (every member's device refuses a
//! non-admin's pin there, as it refuses a non-admin's post: decision
//! 0032). The newest change to a message's pin (by the sender's clock)
//! wins; a pin of a message this device does not have, or that is
//! deleted, is dropped.

use hush_proto::{Body, MessageId};
use rusqlite::{Transaction, params};

use crate::client::Client;
use crate::error::ClientError;
use crate::messages::{MESSAGE_COLUMN_COUNT, MESSAGE_COLUMNS, message_view};
use crate::model::{Event, MessageView, Target};

/// Records `member`'s pin or unpin of `target` (inside `tx`) if `target`
/// is a live message of `conversation` and the change is not older than
/// the one recorded. Returns the event when something changed.
pub(crate) fn record_pin(
    tx: &Transaction<'_>,
    conversation: i64,
    target: &MessageId,
    member: &str,
    pinned: bool,
    sent_at: u64,
) -> Result<Option<Event>, ClientError> {
    let id = target.to_hex();
    let n = tx.execute(
        "INSERT INTO pins (message_id, pinned, member, sent_at) \
         SELECT ?1, ?2, ?3, ?4 FROM messages WHERE id = ?1 AND conversation = ?5 AND deleted = 0 \
         ON CONFLICT (message_id) DO UPDATE SET pinned = excluded.pinned, \
         member = excluded.member, sent_at = excluded.sent_at \
         WHERE excluded.sent_at >= pins.sent_at",
        params![id, pinned, member, sent_at as i64, conversation],
    )?;
    Ok((n > 0).then(|| Event::Pinned {
        id,
        from: member.to_owned(),
        pinned,
    }))
}

impl Client {
    /// Pins message `id` for every member of its conversation (or unpins
    /// it with `pinned` false).
    pub async fn pin(&mut self, id: &str, pinned: bool) -> Result<(), ClientError> {
        let (_, row, target) = self.live_message(id, "a deleted message cannot be pinned")?;
        let content = self.new_content(Body::Pin { target, pinned }, None);
        let me = self.username.to_string();
        let at = content.sent_at_ms;
        self.seal_and_queue(&row.group_id, &content, None, |tx| {
            record_pin(tx, row.id, &target, &me, pinned, at).map(|_| ())
        })?;
        self.flush_outbox().await
    }

    /// The pinned messages of a conversation, the most recently pinned
    /// first.
    pub fn pinned(&mut self, target: &Target) -> Result<Vec<MessageView>, ClientError> {
        self.expire_messages()?;
        let mut found: Vec<(i64, MessageView)> = Vec::new();
        {
            let mut stmt = self.store.conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS}, p.sent_at FROM pins p JOIN messages m ON m.id = p.message_id \
                 JOIN conversations c ON c.id = m.conversation \
                 WHERE p.pinned = 1 AND m.deleted = 0 AND m.conversation = ?1"
            ))?;
            for row in self.find_with_archived(target)? {
                let rows = stmt.query_map(params![row.id], |r| {
                    Ok((r.get::<_, i64>(MESSAGE_COLUMN_COUNT)?, message_view(r)?))
                })?;
                for r in rows {
                    found.push(r?);
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut out: Vec<MessageView> = found.into_iter().map(|(_, m)| m).collect();
        for m in &mut out {
            self.decorate(m)?;
        }
        Ok(out)
    }

    /// Whether message `id` is pinned (and not deleted).
    pub(crate) fn is_pinned(&self, id: &str) -> Result<bool, ClientError> {
        Ok(self.store.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pins WHERE message_id = ?1 AND pinned = 1)",
            params![id],
            |r| r.get(0),
        )?)
    }
}
