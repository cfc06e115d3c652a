//! Reactions (decision 0039): one emoji per member and message, the newest
//! (by the sender's clock) replacing the one before; `None` takes it back.
//!
//! Who reacted is the MLS-authenticated sender of the reaction, never a
//! field of the content, and a reaction counts only for a message of the
//! same conversation that this device has and that is not deleted: one to
//! an unknown message is dropped without an error (it may be older than
//! this device's history), so nothing retries it.

use hush_proto::content::MAX_EMOJI_LEN;
use hush_proto::{Body, MessageId};
use rusqlite::{Transaction, params};

use crate::client::Client;
use crate::convs::ConvRow;
use crate::error::ClientError;
use crate::model::{Event, MessageView, ReactionView};

/// Checks a reaction this device is about to send.
pub(crate) fn check_emoji(emoji: &str) -> Result<(), ClientError> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_LEN || emoji.chars().any(char::is_control) {
        return Err(ClientError::InvalidInput(format!(
            "a reaction is one emoji (1 to {MAX_EMOJI_LEN} bytes, no control characters)"
        )));
    }
    Ok(())
}

/// Records `member`'s reaction to `target` (inside `tx`) if `target` is a
/// live message of `conversation` and the reaction is not older than the
/// one recorded. Returns the event when something changed.
pub(crate) fn record_reaction(
    tx: &Transaction<'_>,
    conversation: i64,
    target: &MessageId,
    member: &str,
    emoji: Option<&str>,
    sent_at: u64,
) -> Result<Option<Event>, ClientError> {
    let id = target.to_hex();
    let n = tx.execute(
        "INSERT INTO reactions (message_id, member, emoji, sent_at) \
         SELECT ?1, ?2, ?3, ?4 FROM messages WHERE id = ?1 AND conversation = ?5 AND deleted = 0 \
         ON CONFLICT (message_id, member) DO UPDATE SET emoji = excluded.emoji, \
         sent_at = excluded.sent_at WHERE excluded.sent_at >= reactions.sent_at",
        params![id, member, emoji, sent_at as i64, conversation],
    )?;
    Ok((n > 0).then(|| Event::Reaction {
        id,
        from: member.to_owned(),
        emoji: emoji.map(str::to_owned),
    }))
}

impl Client {
    /// Message `id` that content is about to act on: not deleted (else
    /// `refusal`), with its conversation and its id.
    pub(crate) fn live_message(
        &self,
        id: &str,
        refusal: &str,
    ) -> Result<(MessageView, ConvRow, MessageId), ClientError> {
        let m = self
            .message(id)?
            .ok_or_else(|| ClientError::NotFound(format!("no message {id}")))?;
        if m.deleted {
            return Err(ClientError::InvalidInput(refusal.to_owned()));
        }
        let row = self
            .conv_by_id(m.conversation)?
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        let target =
            MessageId::from_hex(&m.id).ok_or_else(|| ClientError::Store("bad id".into()))?;
        Ok((m, row, target))
    }

    /// Reacts to message `id` with `emoji`, or takes this account's
    /// reaction back (`None`), for every member of its conversation.
    pub async fn react(&mut self, id: &str, emoji: Option<&str>) -> Result<(), ClientError> {
        if let Some(e) = emoji {
            check_emoji(e)?;
        }
        let (_, row, target) = self.live_message(id, "a deleted message takes no reactions")?;
        let body = Body::Reaction {
            target,
            emoji: emoji.map(str::to_owned),
        };
        let content = self.new_content(body, None);
        let me = self.username.to_string();
        let at = content.sent_at_ms;
        self.seal_and_queue(&row.group_id, &content, None, |tx| {
            record_reaction(tx, row.id, &target, &me, emoji, at).map(|_| ())
        })?;
        self.flush_outbox().await
    }

    /// Fills in what is shown with a message beyond its row: receipts,
    /// reactions, whether it is pinned, and a poll's votes.
    pub(crate) fn decorate(&mut self, m: &mut MessageView) -> Result<(), ClientError> {
        self.add_receipts(m)?;
        if m.deleted {
            return Ok(());
        }
        m.pinned = self.is_pinned(&m.id)?;
        self.add_votes(m)?;
        let mut stmt = self.store.conn.prepare_cached(
            "SELECT member, emoji FROM reactions WHERE message_id = ?1 AND emoji IS NOT NULL \
             ORDER BY member",
        )?;
        m.reactions = stmt
            .query_map(params![m.id], |r| {
                Ok(ReactionView {
                    from: r.get(0)?,
                    emoji: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}
