//! What an archive carries of a message beyond its text (decision 0039,
//! archive format 2): a poll's options and votes, reactions, pins,
//! mentions and the forwarded mark. Without them a linked device or a
//! restored backup would show polls with no options and lose every
//! reaction and pin.

use std::collections::HashMap;

use hush_proto::MessageId;
use hush_proto::archive::{ArchivedPin, ArchivedReaction, ArchivedVote, MessageExtras};
use rusqlite::{Connection, Transaction, params};

use crate::error::ClientError;

/// The extras of conversation `conversation`'s messages that have any, by
/// message id.
pub(crate) fn load(
    conn: &Connection,
    conversation: i64,
) -> Result<HashMap<String, MessageExtras>, ClientError> {
    let mut out: HashMap<String, MessageExtras> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, poll, mentions, mentions_me, forwarded FROM messages WHERE conversation = ?1 \
         AND (poll IS NOT NULL OR mentions IS NOT NULL OR forwarded = 1)",
    )?;
    let rows = stmt.query_map(params![conversation], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    })?;
    for row in rows {
        let (id, poll, mentions, mentions_me, forwarded) = row?;
        let x = out.entry(id).or_default();
        (x.poll, x.mentions, x.mentions_me, x.forwarded) = (poll, mentions, mentions_me, forwarded);
    }
    let of = "JOIN messages m ON m.id = t.message_id WHERE m.conversation = ?1";
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.message_id, t.member, t.emoji, t.sent_at FROM reactions t {of}"
    ))?;
    for row in stmt.query_map(params![conversation], |r| {
        let reaction = ArchivedReaction {
            member: r.get(1)?,
            emoji: r.get(2)?,
            sent_at: r.get::<_, i64>(3)? as u64,
        };
        Ok((r.get::<_, String>(0)?, reaction))
    })? {
        let (id, reaction) = row?;
        out.entry(id).or_default().reactions.push(reaction);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.message_id, t.member, t.options, t.sent_at FROM votes t {of}"
    ))?;
    for row in stmt.query_map(params![conversation], |r| {
        let vote = ArchivedVote {
            member: r.get(1)?,
            options: r.get(2)?,
            sent_at: r.get::<_, i64>(3)? as u64,
        };
        Ok((r.get::<_, String>(0)?, vote))
    })? {
        let (id, vote) = row?;
        out.entry(id).or_default().votes.push(vote);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.message_id, t.pinned, t.member, t.sent_at FROM pins t {of}"
    ))?;
    for row in stmt.query_map(params![conversation], |r| {
        let pin = ArchivedPin {
            pinned: r.get(1)?,
            member: r.get(2)?,
            sent_at: r.get::<_, i64>(3)? as u64,
        };
        Ok((r.get::<_, String>(0)?, pin))
    })? {
        let (id, pin) = row?;
        out.entry(id).or_default().pin = Some(pin);
    }
    Ok(out)
}

/// Writes message `id`'s extras (inside `tx`), the way the features record
/// them as they arrive: what the message already has stays, and of two
/// reactions, votes or pin changes by one member the newer wins. What does
/// not fit (a vote that is not one of the poll's options, a malformed id)
/// is dropped, as it would be from the network.
pub(crate) fn store(
    tx: &Transaction<'_>,
    conversation: i64,
    id: &str,
    x: &MessageExtras,
) -> Result<(), ClientError> {
    if *x == MessageExtras::default() {
        return Ok(());
    }
    let Some(target) = MessageId::from_hex(id) else {
        return Ok(());
    };
    tx.execute(
        "UPDATE messages SET poll = COALESCE(poll, ?2), mentions = COALESCE(mentions, ?3), \
         mentions_me = mentions_me OR ?4, forwarded = forwarded OR ?5 \
         WHERE id = ?1 AND conversation = ?6",
        params![
            id,
            x.poll,
            x.mentions,
            x.mentions_me,
            x.forwarded,
            conversation
        ],
    )?;
    for r in &x.reactions {
        let emoji = r.emoji.as_deref();
        crate::reactions::record_reaction(tx, conversation, &target, &r.member, emoji, r.sent_at)?;
    }
    for v in &x.votes {
        if let Ok(options) = serde_json::from_str::<Vec<u8>>(&v.options) {
            crate::polls::record_vote(tx, conversation, &target, &v.member, &options, v.sent_at)?;
        }
    }
    if let Some(p) = &x.pin {
        crate::pins::record_pin(tx, conversation, &target, &p.member, p.pinned, p.sent_at)?;
    }
    Ok(())
}
