//! Full-text search of local history (decision 0039): an FTS5 index with
//! the trigram tokenizer over the messages' text, inside the SQLCipher
//! store (so encrypted at rest like the rest). Triggers on `messages` keep
//! it current on every insert, edit, delete for everyone (the text becomes
//! NULL) and removal (disappearing messages), and `secure-delete` makes a
//! removal take the words out of the index rather than mark them: a
//! deleted or expired message leaves nothing to find.
//!
//! A query is a substring, any case: three characters or more go through
//! the index; shorter ones (trigrams need three) scan with `LIKE`, as
//! before the index existed.

use rusqlite::params;

use crate::client::Client;
use crate::error::ClientError;
use crate::messages::{MESSAGE_COLUMNS, message_view};
use crate::model::{MessageView, Target};

/// The shortest query the trigram index answers, in characters.
const MIN_INDEXED: usize = 3;

/// An FTS5 query matching `text` as one substring: a quoted string, its
/// quotes doubled, so nothing in it is query syntax.
fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A `LIKE` pattern matching `text` as a substring (wildcards escaped).
fn like_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

impl Client {
    /// The messages whose text contains `query` (in any case), newest
    /// first, at most `limit`: in one conversation, or in all of them
    /// (`None`). Deleted and expired messages are not found.
    pub fn search(
        &mut self,
        target: Option<&Target>,
        query: &str,
        limit: usize,
    ) -> Result<Vec<MessageView>, ClientError> {
        let query = query.trim();
        if query.is_empty() || limit == 0 {
            return Err(ClientError::InvalidInput(
                "search for at least one character, at least one result".into(),
            ));
        }
        self.expire_messages()?;
        let scopes: Vec<Option<i64>> = match target {
            None => vec![None],
            Some(t) => self
                .find_with_archived(t)?
                .into_iter()
                .map(|r| Some(r.id))
                .collect(),
        };
        let indexed = query.chars().count() >= MIN_INDEXED;
        let (sql, pattern) = if indexed {
            (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
                     JOIN conversations c ON c.id = m.conversation \
                     WHERE messages_fts MATCH ?1 AND m.deleted = 0 AND (?2 IS NULL OR m.conversation = ?2) \
                     ORDER BY m.sent_at DESC, m.id DESC LIMIT ?3"
                ),
                phrase(query),
            )
        } else {
            (
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation \
                     WHERE m.deleted = 0 AND m.body LIKE ?1 ESCAPE '\\' AND (?2 IS NULL OR m.conversation = ?2) \
                     ORDER BY m.sent_at DESC, m.id DESC LIMIT ?3"
                ),
                like_pattern(query),
            )
        };
        let mut found = Vec::new();
        {
            let mut stmt = self.store.conn.prepare_cached(&sql)?;
            for scope in scopes {
                for row in stmt.query_map(params![pattern, scope, limit as i64], message_view)? {
                    found.push(row?);
                }
            }
        }
        found.sort_by(|a, b| (b.sent_at, &b.id).cmp(&(a.sent_at, &a.id)));
        found.truncate(limit);
        for m in &mut found {
            self.decorate(m)?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with the schema, holding `texts` as messages 1, 2, ...
    fn store(texts: &[&str]) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::local::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO conversations (group_id, kind, peer, created_at) VALUES (X'aa', 'direct', 'bob', 1);",
        )
        .unwrap();
        for (i, t) in texts.iter().enumerate() {
            conn.execute(
                "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind, body, \
                 sent_at, received_at, status) VALUES (?1, 1, 'bob', 1, 0, 'text', ?2, ?3, ?3, 'received')",
                params![format!("m{i}"), t, i as i64],
            )
            .unwrap();
        }
        conn
    }

    /// The rowids the index itself (not the messages table) holds for `q`.
    fn hits(conn: &rusqlite::Connection, q: &str) -> Vec<i64> {
        conn.prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid")
            .unwrap()
            .query_map(params![phrase(q)], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// FTS5's own check of the index against the messages table.
    fn consistent(conn: &rusqlite::Connection) {
        conn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
    }

    #[test]
    fn the_index_follows_inserts_edits_deletes_and_expiry() {
        let conn = store(&["the Blue house", "a blue bird", "zebra crossing"]);
        assert_eq!(hits(&conn, "BLUE"), [1, 2]);
        assert_eq!(hits(&conn, "e ho"), [1]);
        // An edit replaces the words.
        conn.execute(
            "UPDATE messages SET body = 'a red bird', edited = 1 WHERE id = 'm1'",
            [],
        )
        .unwrap();
        assert_eq!(hits(&conn, "blue"), [1]);
        assert_eq!(hits(&conn, "red bird"), [2]);
        // Deleted for everyone: the text goes, and its words with it.
        conn.execute(
            "UPDATE messages SET body = NULL, deleted = 1 WHERE id = 'm0'",
            [],
        )
        .unwrap();
        assert!(hits(&conn, "blue").is_empty());
        // Expired: the row goes.
        conn.execute("DELETE FROM messages WHERE id = 'm2'", [])
            .unwrap();
        assert!(hits(&conn, "zebra").is_empty());
        consistent(&conn);
        // Status changes do not touch the index.
        conn.execute("UPDATE messages SET status = 'read'", [])
            .unwrap();
        assert_eq!(hits(&conn, "red"), [2]);
        consistent(&conn);
    }

    #[test]
    fn query_syntax_is_plain_text() {
        let conn = store(&["say \"hi\" OR NOT", "x AND y*", "plain"]);
        assert_eq!(hits(&conn, "\"hi\" OR"), [1]);
        assert_eq!(hits(&conn, "AND y*"), [2]);
        assert!(hits(&conn, "NOT plain").is_empty());
    }
}
