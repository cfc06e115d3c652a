//! Mentions (decision 0039): an `@name` of a member in a group message's
//! text (or a file's caption) is listed in the content
//! (`PostMeta::mentions`), so that the mentioned member's clients can
//! highlight the message and count it apart among the unread ones. The
//! list is what the sender's device found in the text; a receiving device
//! only asks whether its own account is in it.

use std::collections::BTreeSet;

use hush_proto::{Body, Username};
use rusqlite::params;

use crate::client::Client;
use crate::error::ClientError;
use crate::model::Target;

/// The stored form of a mention list: a JSON array, NULL for none.
pub(crate) fn stored(mentions: &[Username]) -> Option<String> {
    if mentions.is_empty() {
        return None;
    }
    let names: Vec<&str> = mentions.iter().map(Username::as_str).collect();
    serde_json::to_string(&names).ok()
}

/// The members of `members` (other than `me`) that `text` mentions as
/// `@name` (in any case; an `@` inside a word, as in an e-mail address, is
/// not a mention), sorted, each once.
pub(crate) fn mentions_in(
    text: &str,
    members: &BTreeSet<Username>,
    me: &Username,
) -> Vec<Username> {
    let mut found = BTreeSet::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts = c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_');
        prev = Some(c);
        if !starts {
            continue;
        }
        let word: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        // "@bob." at the end of a sentence: try shorter until a member.
        let mut candidate = word.as_str();
        while !candidate.is_empty() {
            if let Ok(name) = Username::new(candidate)
                && members.contains(&name)
                && &name != me
            {
                found.insert(name);
                break;
            }
            candidate = &candidate[..candidate.len() - 1];
        }
    }
    found.into_iter().collect()
}

impl Client {
    /// The members of group `group_id` that a text or file caption mentions.
    pub(crate) fn mentions_for(
        &mut self,
        group_id: &[u8],
        body: &Body,
    ) -> Result<Vec<Username>, ClientError> {
        let text = match body {
            Body::Text { text, .. } => text.as_str(),
            Body::Attachment {
                caption: Some(c), ..
            } => c.as_str(),
            _ => return Ok(Vec::new()),
        };
        if !text.contains('@') {
            return Ok(Vec::new());
        }
        let members = self.conv(group_id)?.accounts();
        Ok(mentions_in(text, &members, &self.username))
    }

    /// How many received messages of a conversation that mention this
    /// account are not read yet.
    pub fn unread_mentions(&mut self, target: &Target) -> Result<usize, ClientError> {
        self.expire_messages()?;
        let mut total = 0;
        for row in self.find_with_archived(target)? {
            let n: i64 = self.store.conn.query_row(
                "SELECT COUNT(*) FROM messages \
                 WHERE conversation = ?1 AND status = 'received' AND mentions_me = 1",
                params![row.id],
                |r| r.get(0),
            )?;
            total += n as usize;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<Username> {
        list.iter().map(|n| Username::new(n).unwrap()).collect()
    }

    fn found(text: &str) -> Vec<String> {
        let members = names(&["anna", "bob", "bob.smith", "carol"]);
        let me = Username::new("anna").unwrap();
        mentions_in(text, &members, &me)
            .into_iter()
            .map(|n| n.as_str().to_owned())
            .collect()
    }

    #[test]
    fn mentions_are_members_named_with_an_at() {
        assert_eq!(found("hi @Carol and @bob!"), ["bob", "carol"]);
        assert_eq!(found("@bob."), ["bob"]);
        assert_eq!(found("ask @bob.smith, @bob"), ["bob", "bob.smith"]);
        assert_eq!(found("@carol @carol"), ["carol"]);
        // Not members, not mentions: strangers, oneself, e-mail, a bare @.
        assert!(found("@dave @anna bob@example.org @ @@").is_empty());
        assert_eq!(found("(@carol)"), ["carol"]);
    }
}
