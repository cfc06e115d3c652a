//! Reading a conversation a page at a time, for front ends that show long
//! histories (`hush web`): each call reads only the rows it returns (the
//! `messages_by_time` index), never the whole history the way
//! [`Client::history`] does.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;
use crate::messages::{MESSAGE_COLUMNS, message_view};
use crate::model::{MessageView, Target};

/// One page of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    /// Oldest first, in the order of [`Client::history`].
    pub messages: Vec<MessageView>,
    /// Older messages exist before this page.
    pub more: bool,
}

impl Client {
    /// The `limit` messages of a conversation just before message `before`
    /// (or its newest, without `before`), oldest first, in the order of
    /// [`Client::history`] (the sender's time, then the id). `before` must
    /// be a message of this conversation.
    pub fn history_page(
        &mut self,
        target: &Target,
        before: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, ClientError> {
        if limit == 0 {
            return Err(ClientError::InvalidInput(
                "a page holds at least one message".into(),
            ));
        }
        self.expire_messages()?;
        let convs: Vec<i64> = self
            .find_with_archived(target)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let cursor = match before {
            None => (i64::MAX, String::new()),
            Some(id) => self.cursor_of(&convs, id)?.ok_or_else(|| {
                ClientError::InvalidInput(format!("no message {id:?} in this conversation"))
            })?,
        };
        let mut newest_first = Vec::new();
        {
            let mut stmt = self.store.conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation \
                 WHERE m.conversation = ?1 AND (m.sent_at, m.id) < (?2, ?3) \
                 ORDER BY m.sent_at DESC, m.id DESC LIMIT ?4"
            ))?;
            // A chat made twice with the same person reads as one: the
            // newest of each, merged.
            for conv in &convs {
                let rows = stmt.query_map(
                    params![conv, cursor.0, cursor.1, limit as i64 + 1],
                    message_view,
                )?;
                for row in rows {
                    newest_first.push(row?);
                }
            }
        }
        newest_first.sort_by(|a, b| (b.sent_at, &b.id).cmp(&(a.sent_at, &a.id)));
        let more = newest_first.len() > limit;
        newest_first.truncate(limit);
        newest_first.reverse();
        for m in &mut newest_first {
            self.decorate(m)?;
        }
        Ok(HistoryPage {
            messages: newest_first,
            more,
        })
    }

    /// How many received messages of a conversation are not read yet.
    pub fn unread_count(&mut self, target: &Target) -> Result<usize, ClientError> {
        self.expire_messages()?;
        let mut total = 0;
        for row in self.find_with_archived(target)? {
            let n: i64 = self.store.conn.query_row(
                "SELECT COUNT(*) FROM messages WHERE conversation = ?1 AND status = 'received'",
                params![row.id],
                |r| r.get(0),
            )?;
            total += n as usize;
        }
        Ok(total)
    }

    /// The sort key of message `id`, if it is in one of `convs`.
    fn cursor_of(&self, convs: &[i64], id: &str) -> Result<Option<(i64, String)>, ClientError> {
        let found: Option<(i64, i64)> = self
            .store
            .conn
            .query_row(
                "SELECT conversation, sent_at FROM messages WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(found
            .filter(|(conv, _)| convs.contains(conv))
            .map(|(_, sent_at)| (sent_at, id.to_owned())))
    }
}
