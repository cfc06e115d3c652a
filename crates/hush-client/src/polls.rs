//! Polls in groups (decision 0039): a poll is a message (the question is
//! its text, so search finds it) with options; each member's newest vote
//! (by the sender's clock) counts, and every member sees who chose what, as
//! in WhatsApp and Signal. The voter is the MLS sender, so nobody votes in
//! another's name and a non-member cannot vote at all; a vote for a poll
//! this device does not have, or that does not fit the poll (an option it
//! does not have, several where one is allowed), is dropped.

use hush_proto::content::{
    MAX_POLL_OPTION_LEN, MAX_POLL_OPTIONS, MAX_POLL_QUESTION_LEN, MIN_POLL_OPTIONS,
};
use hush_proto::{Body, MessageId};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;
use crate::model::{Event, MessageView, PollOptionView, PollView, Target};

/// A poll's options as stored with its message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredPoll {
    pub options: Vec<String>,
    pub multiple: bool,
}

/// The stored form of a poll body, if `body` is one.
pub(crate) fn stored(body: &Body) -> Option<String> {
    match body {
        Body::Poll {
            options, multiple, ..
        } => serde_json::to_string(&StoredPoll {
            options: options.clone(),
            multiple: *multiple,
        })
        .ok(),
        _ => None,
    }
}

/// A poll as shown, with no votes yet, from its stored form.
pub(crate) fn view(stored: Option<String>) -> Option<PollView> {
    let p: StoredPoll = serde_json::from_str(&stored?).ok()?;
    Some(PollView {
        multiple: p.multiple,
        options: p
            .options
            .into_iter()
            .map(|text| PollOptionView {
                text,
                voters: Vec::new(),
            })
            .collect(),
    })
}

/// Records `member`'s vote in `poll` (inside `tx`) if the poll is a live
/// poll of `conversation`, the vote fits it, and it is not older than the
/// one recorded. Returns the event when something changed.
pub(crate) fn record_vote(
    tx: &Transaction<'_>,
    conversation: i64,
    poll: &MessageId,
    member: &str,
    options: &[u8],
    sent_at: u64,
) -> Result<Option<Event>, ClientError> {
    let id = poll.to_hex();
    let stored: Option<Option<String>> = tx
        .query_row(
            "SELECT poll FROM messages WHERE id = ?1 AND conversation = ?2 AND deleted = 0",
            params![id, conversation],
            |r| r.get(0),
        )
        .optional()?;
    let Some(p) = stored
        .flatten()
        .and_then(|s| serde_json::from_str::<StoredPoll>(&s).ok())
    else {
        return Ok(None);
    };
    if !fits(&p, options) {
        return Ok(None);
    }
    let chosen = serde_json::to_string(options).map_err(|e| ClientError::Store(e.to_string()))?;
    let n = tx.execute(
        "INSERT INTO votes (message_id, member, options, sent_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (message_id, member) DO UPDATE SET options = excluded.options, \
         sent_at = excluded.sent_at WHERE excluded.sent_at >= votes.sent_at",
        params![id, member, chosen, sent_at as i64],
    )?;
    Ok((n > 0).then(|| Event::Voted {
        id,
        from: member.to_owned(),
        options: options.iter().map(|&o| usize::from(o)).collect(),
    }))
}

/// Whether `options` (positions, ascending, each once) fit poll `p`.
fn fits(p: &StoredPoll, options: &[u8]) -> bool {
    options.iter().all(|&o| usize::from(o) < p.options.len())
        && options.windows(2).all(|w| w[0] < w[1])
        && (p.multiple || options.len() <= 1)
}

fn check_poll(question: &str, options: &[String]) -> Result<(), ClientError> {
    let bad = |why: String| Err(ClientError::InvalidInput(why));
    if question.trim().is_empty() || question.len() > MAX_POLL_QUESTION_LEN {
        return bad(format!(
            "a poll's question is 1 to {MAX_POLL_QUESTION_LEN} bytes"
        ));
    }
    if !(MIN_POLL_OPTIONS..=MAX_POLL_OPTIONS).contains(&options.len()) {
        return bad(format!(
            "a poll has {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} options"
        ));
    }
    if options
        .iter()
        .any(|o| o.trim().is_empty() || o.len() > MAX_POLL_OPTION_LEN)
    {
        return bad(format!("each option is 1 to {MAX_POLL_OPTION_LEN} bytes"));
    }
    Ok(())
}

impl Client {
    /// Asks the group `target` a question with `options` (several may be
    /// chosen when `multiple`); returns the poll as a message.
    pub async fn create_poll(
        &mut self,
        target: &Target,
        question: &str,
        options: &[String],
        multiple: bool,
    ) -> Result<MessageView, ClientError> {
        if !matches!(target, Target::Group(_)) {
            return Err(ClientError::InvalidInput("polls are for groups".into()));
        }
        check_poll(question, options)?;
        let body = Body::Poll {
            question: question.to_owned(),
            options: options.to_vec(),
            multiple,
        };
        self.send_shown(target, body).await
    }

    /// Votes in poll `id` for the options at `choices` (0-based; empty
    /// takes this account's vote back), replacing the earlier vote.
    pub async fn vote(&mut self, id: &str, choices: &[usize]) -> Result<(), ClientError> {
        let (m, row, target) = self.live_message(id, "the poll was deleted")?;
        let Some(poll) = &m.poll else {
            return Err(ClientError::InvalidInput(format!("{id} is not a poll")));
        };
        let mut options: Vec<u8> = choices
            .iter()
            .map(|&c| u8::try_from(c).unwrap_or(u8::MAX))
            .collect();
        options.sort_unstable();
        options.dedup();
        let stored = StoredPoll {
            options: poll.options.iter().map(|o| o.text.clone()).collect(),
            multiple: poll.multiple,
        };
        if !fits(&stored, &options) {
            return Err(ClientError::InvalidInput(format!(
                "choose {} of options 1 to {}",
                if poll.multiple { "any" } else { "one" },
                poll.options.len()
            )));
        }
        let content = self.new_content(
            Body::Vote {
                poll: target,
                options: options.clone(),
            },
            None,
        );
        let me = self.username.to_string();
        let at = content.sent_at_ms;
        self.seal_and_queue(&row.group_id, &content, None, |tx| {
            record_vote(tx, row.id, &target, &me, &options, at).map(|_| ())
        })?;
        self.flush_outbox().await
    }

    /// Poll `id` with its votes so far.
    pub fn poll(&mut self, id: &str) -> Result<MessageView, ClientError> {
        let mut m = self
            .message(id)?
            .filter(|m| m.poll.is_some())
            .ok_or_else(|| ClientError::NotFound(format!("no poll {id}")))?;
        self.decorate(&mut m)?;
        Ok(m)
    }

    /// Fills in who chose each option of a poll.
    pub(crate) fn add_votes(&mut self, m: &mut MessageView) -> Result<(), ClientError> {
        let Some(poll) = m.poll.as_mut() else {
            return Ok(());
        };
        let mut stmt = self.store.conn.prepare_cached(
            "SELECT member, options FROM votes WHERE message_id = ?1 ORDER BY member",
        )?;
        let rows = stmt.query_map(params![m.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (member, chosen) = row?;
            let chosen: Vec<usize> = serde_json::from_str(&chosen).unwrap_or_default();
            for i in chosen {
                if let Some(o) = poll.options.get_mut(i) {
                    o.voters.push(member.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_fits_its_poll_or_is_dropped() {
        let one = StoredPoll {
            options: vec!["a".into(), "b".into(), "c".into()],
            multiple: false,
        };
        assert!(fits(&one, &[]) && fits(&one, &[2]));
        assert!(!fits(&one, &[0, 1]) && !fits(&one, &[3]));
        let many = StoredPoll {
            multiple: true,
            ..one
        };
        assert!(fits(&many, &[0, 1, 2]));
        assert!(!fits(&many, &[1, 0]) && !fits(&many, &[1, 1]));
    }
}
