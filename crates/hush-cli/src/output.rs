//! What commands print: one line per item for people, or one JSON object per
//! line with `--json` (and then nothing else on stdout).
//!
//! JSON shapes:
//!
//! - a message (`send`, `send-file`, `history`, and messages in `sync`) is
//!   exactly `{"id", "conversation", "group", "from", "kind", "text",
//!   "sent_at"}`, plus `"file_name"` and `"size"` when `kind` is `"file"`.
//!   `conversation` is this device's number for the conversation, `group`
//!   the group's name or `null` in a 1:1 chat, `sent_at` milliseconds since
//!   the Unix epoch, `text` `null` for a deleted message or a file without
//!   a caption; plus `"unfranked": true` for a received message that came
//!   without the server's relay tag (its sender is not vouched for and it
//!   cannot be reported); plus, for this account's own message in a group,
//!   `"recipients"` (how many other members it went to), `"delivered_to"`
//!   and `"read_by"` (the members whose receipts say so, sorted; a read
//!   counts as delivered); plus, for a reply, `"reply_to"` (the answered
//!   message's id) and `"quoted"`: `{"from", "text"}` as this device holds
//!   that message (`text` up to 200 characters, `null` for a file or once
//!   deleted), or `null` when it does not hold it;
//! - every other event of `sync` carries an `"event"` field (`receipt`,
//!   `typing`, `presence`, `edited`, `deleted`, `joined`, `members`,
//!   `removed`, `renamed`, `disappearing`, `key_changed`, `channel_post`
//!   (also what `send --channel` and `history --channel` print), and from
//!   this account's other devices `read_elsewhere` and `synced`): a message never
//!   has one, so a reader tells them apart by that field;
//! - the other commands print one object describing what they did, or one
//!   object per item for lists (`contacts`, `group list`, `group members`).
//!
//! Human output shows what other people wrote inert ([`crate::inert`]):
//! no control character, escape sequence or bidi override reaches the
//! terminal raw. `--json` carries the exact text.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use hush_client::{Event, MessageView};
use serde_json::{Value, json};

use crate::inert;

/// stdout, in the chosen mode.
#[derive(Debug)]
pub struct Out {
    json: bool,
    stdout: io::Stdout,
}

impl Out {
    /// Writes to stdout; `json` selects JSON lines.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            stdout: io::stdout(),
        }
    }

    /// Whether output is JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `human` (a line for people) or `value` (with `--json`).
    pub fn emit(&mut self, human: impl FnOnce() -> String, value: Value) -> io::Result<()> {
        if self.json {
            self.write_line(&value.to_string())
        } else {
            self.write_line(&inert::line(&human()))
        }
    }

    /// Prints a line for people; nothing with `--json`.
    pub fn human(&mut self, line: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        self.write_line(&inert::line(line))
    }

    /// Prints a message in the shape documented above.
    pub fn message(&mut self, m: &MessageView) -> io::Result<()> {
        self.emit(|| format_message(m), message_json(m))
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut lock = self.stdout.lock();
        lock.write_all(line.as_bytes())?;
        lock.write_all(b"\n")?;
        lock.flush()
    }
}

/// A message as the JSON object documented in this module.
/// A quoted message in one line: `NAME: "text"` (the text cut at 60
/// characters), or `NAME's message` for a file or a deleted one.
pub fn quote_line(q: &hush_client::Quoted) -> String {
    match &q.text {
        Some(text) => {
            let mut short: String = text.chars().take(60).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!("{}: \"{}\"", inert::name(&q.from), inert::text(&short))
        }
        None => format!("{}'s message", inert::name(&q.from)),
    }
}

pub fn message_json(m: &MessageView) -> Value {
    let mut v = json!({
        "id": m.id,
        "conversation": m.conversation,
        "group": m.group,
        "from": m.from,
        "kind": m.kind,
        "text": m.text,
        "sent_at": m.sent_at,
    });
    if m.kind == "file"
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("file_name".into(), json!(m.file_name));
        obj.insert("size".into(), json!(m.size));
    }
    if m.unfranked
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("unfranked".into(), json!(true));
    }
    if !m.reactions.is_empty()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("reactions".into(), json!(m.reactions));
    }
    if m.pinned
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("pinned".into(), json!(true));
    }
    if m.forwarded
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("forwarded".into(), json!(true));
    }
    if let Some(poll) = &m.poll
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("poll".into(), json!(poll));
    }
    if let Some(reply_to) = &m.reply_to
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("reply_to".into(), json!(reply_to));
        obj.insert("quoted".into(), json!(m.quoted));
    }
    if !m.mentions.is_empty()
        && let Some(obj) = v.as_object_mut()
    {
        obj.insert("mentions".into(), json!(m.mentions));
        obj.insert("mentions_me".into(), json!(m.mentions_me));
    }
    if m.outgoing
        && m.group.is_some()
        && let Some(obj) = v.as_object_mut()
    {
        let r = &m.receipts;
        obj.insert("recipients".into(), json!(r.recipients));
        obj.insert("delivered_to".into(), json!(r.delivered_to));
        obj.insert("read_by".into(), json!(r.read_by));
    }
    v
}

/// For this account's group message: `delivered to 50 of 99, read by 37
/// of 99`, from the members' receipts.
pub fn receipt_counts(m: &MessageView) -> Option<String> {
    if !m.outgoing || m.group.is_none() {
        return None;
    }
    let r = &m.receipts;
    let of = r
        .recipients
        .map_or(r.delivered_to.len(), |n| n as usize)
        .max(r.delivered_to.len());
    Some(format!(
        "delivered to {} of {of}, read by {} of {of}",
        r.delivered_to.len(),
        r.read_by.len()
    ))
}

/// The warning shown after a received message without a relay tag.
pub const UNFRANKED_MARK: &str =
    "[unfranked: sender not vouched for by the server, cannot be reported]";

/// An event other than a message as JSON (an `"event"` field names it).
pub fn event_json(ev: &Event) -> Value {
    match ev {
        Event::Message(m) => message_json(m),
        other => serde_json::to_value(other).unwrap_or_else(|_| json!({"event": "unknown"})),
    }
}

/// `2025-01-31 12:34:56` (UTC) for a time in ms since the Unix epoch.
pub fn format_time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

/// The mark for an outgoing message's status.
pub fn status_mark(status: &str) -> &'static str {
    match status {
        "pending" => "…",
        "sent" => "✓",
        "delivered" => "✓✓",
        "read" => "✔✔",
        "failed" => "✗",
        _ => "",
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn format_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// What a message says, without who or when: its text, or the file, shown
/// inert (several lines for a text of several lines, see [`inert::text`]).
/// A file as messages and channel posts show it: `[file NAME, SIZE]`, the
/// sender's name drawn inert.
pub fn file_label(name: &str, size: Option<u64>) -> String {
    let size = size.map(format_size).unwrap_or_default();
    format!("[file {}, {size}]", inert::name(name))
}

pub fn message_body(m: &MessageView) -> String {
    if m.deleted {
        return "(deleted)".into();
    }
    let mut body = if let Some(poll) = &m.poll {
        poll_body(m.text.as_deref().unwrap_or_default(), poll)
    } else if m.kind == "file" {
        let file = file_label(m.file_name.as_deref().unwrap_or("file"), m.size);
        match &m.text {
            Some(caption) => format!("{file} {}", inert::text(caption)),
            None => file,
        }
    } else {
        inert::text(m.text.as_deref().unwrap_or_default()).into_owned()
    };
    if m.forwarded {
        body.insert_str(0, "(forwarded) ");
    }
    if m.edited {
        body.push_str(" (edited)");
    }
    if m.mentions_me {
        body.push_str(" (mentions you)");
    }
    if m.pinned {
        body.push_str(" (pinned)");
    }
    if !m.reactions.is_empty() {
        let list: Vec<String> = m
            .reactions
            .iter()
            .map(|r| format!("{} {}", inert::name(&r.from), inert::name(&r.emoji)))
            .collect();
        body.push_str(&format!(" [{}]", list.join(", ")));
    }
    body
}

/// A poll: `[poll] question`, then one continuation line per option with
/// who chose it.
fn poll_body(question: &str, poll: &hush_client::PollView) -> String {
    let several = if poll.multiple {
        ", several choices"
    } else {
        ""
    };
    let mut out = format!("[poll{several}] {}", inert::name(question));
    for (i, o) in poll.options.iter().enumerate() {
        let who = if o.voters.is_empty() {
            String::new()
        } else {
            format!(": {}", inert::name(&o.voters.join(", ")))
        };
        out.push_str(&format!(
            "\n{}{}. {} ({}{who})",
            inert::CONTINUATION,
            i + 1,
            inert::name(&o.text),
            o.voters.len()
        ));
    }
    out
}

/// One line for a message: time, where, who, what, status and id.
pub fn format_message(m: &MessageView) -> String {
    let place = m
        .group
        .as_ref()
        .map(|g| format!("[{}] ", inert::name(g)))
        .unwrap_or_default();
    let status = match (m.outgoing, receipt_counts(m)) {
        (true, Some(counts)) => format!(" {} ({counts})", status_mark(&m.status)),
        (true, None) => format!(" {}", status_mark(&m.status)),
        _ => String::new(),
    };
    let reply = match (&m.quoted, &m.reply_to) {
        (Some(q), _) => format!(" (reply to {})", quote_line(q)),
        (None, Some(r)) => format!(" (reply to {})", inert::name(r)),
        (None, None) => String::new(),
    };
    let unfranked = if m.unfranked {
        format!(" {UNFRANKED_MARK}")
    } else {
        String::new()
    };
    format!(
        "{}  {place}{}: {}{reply}{status}{unfranked}  id={}",
        format_time(m.sent_at),
        inert::name(&m.from),
        message_body(m),
        inert::name(&m.id)
    )
}

/// One line for an event other than a message; `label` finds a
/// conversation's name by number. Names and texts from other people are
/// shown inert.
pub fn format_event(ev: &Event, label: &dyn Fn(i64) -> String) -> Option<String> {
    use inert::name;
    let label = |id: i64| name(&label(id)).into_owned();
    let names = |list: &[String]| name(&list.join(", ")).into_owned();
    Some(match ev {
        Event::Message(m) => format_message(m),
        Event::Receipt { ids, status, from } => {
            let n = ids.len();
            let s = if n == 1 { "" } else { "s" };
            format!(
                "{} {}: {} ({n} message{s})",
                status_mark(status),
                name(from),
                name(status)
            )
        }
        Event::Typing {
            conversation,
            from,
            started: true,
        } => {
            let place = label(*conversation);
            if place.starts_with('#') {
                format!("{} is typing in {place}…", name(from))
            } else {
                format!("{} is typing…", name(from))
            }
        }
        Event::Typing { .. } => return None,
        Event::Presence { from, online } => {
            let state = if *online { "online" } else { "offline" };
            format!("{} is {state}", name(from))
        }
        Event::Edited { id, text } => format!("edited {}: {}", name(id), inert::text(text)),
        Event::Deleted { id } => format!("deleted {}", name(id)),
        Event::Voted { id, from, options } => {
            if options.is_empty() {
                format!("{} took back their vote in {}", name(from), name(id))
            } else {
                let list: Vec<String> = options.iter().map(|o| (o + 1).to_string()).collect();
                format!("{} voted {} in {}", name(from), list.join(", "), name(id))
            }
        }
        Event::Pinned { id, from, pinned } => {
            let what = if *pinned { "pinned" } else { "unpinned" };
            format!("{} {what} {}", name(from), name(id))
        }
        Event::Reaction { id, from, emoji } => match emoji {
            Some(e) => format!("{} reacted {} to {}", name(from), name(e), name(id)),
            None => format!("{} took back their reaction to {}", name(from), name(id)),
        },
        Event::Joined { conversation } => {
            if conversation.kind == "group" {
                format!(
                    "joined the group \"{}\" with {}",
                    name(&conversation.name),
                    names(&conversation.members)
                )
            } else {
                format!("new chat with {}", name(&conversation.name))
            }
        }
        Event::Members {
            conversation,
            added,
            removed,
        } => {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("{} joined", names(added)));
            }
            if !removed.is_empty() {
                parts.push(format!("{} left", names(removed)));
            }
            if parts.is_empty() {
                return None;
            }
            format!("{}: {}", label(*conversation), parts.join("; "))
        }
        Event::Removed { conversation } => {
            format!("you were removed from {}", label(*conversation))
        }
        Event::Renamed {
            conversation,
            name: new,
        } => {
            format!("{} is now called #{}", label(*conversation), name(new))
        }
        Event::Disappearing {
            conversation,
            seconds,
        } => match seconds {
            Some(s) => format!(
                "{}: messages now disappear after {}",
                label(*conversation),
                humantime::format_duration(Duration::from_secs(u64::from(*s)))
            ),
            None => format!("{}: disappearing messages off", label(*conversation)),
        },
        Event::KeyChanged { username } => {
            format!("the identity key of {} changed", name(username))
        }
        Event::Profile { username } => format!("{} updated their profile", name(username)),
        Event::ReadElsewhere { conversation, ids } => {
            format!(
                "{}: {} message(s) read on another of your devices",
                label(*conversation),
                ids.len()
            )
        }
        Event::Synced { what, subject } => match subject {
            Some(s) => format!("from another of your devices: {what} {}", name(s)),
            None => format!("from another of your devices: {what}"),
        },
        Event::KeyTransparencyAlarm { message } | Event::SecurityAlarm { message } => {
            name(message).into_owned()
        }
        Event::ChannelPost(p) => crate::commands::format_post(p),
        _ => return None,
    })
}

/// The loud stderr warning for a changed identity key (shown in every mode).
pub fn key_changed_warning(username: &str) -> String {
    let bar = "!".repeat(72);
    let username = inert::name(username);
    format!(
        "{bar}\n\
         hush: SECURITY WARNING: the identity key of {username} HAS CHANGED.\n\
         hush: Someone may be impersonating {username}, or they reinstalled.\n\
         hush: Compare safety numbers in person: `hush verify {username}`.\n\
         {bar}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str) -> MessageView {
        MessageView {
            id: "ab".into(),
            conversation: 3,
            group: None,
            from: "bob".into(),
            kind: kind.into(),
            text: Some("hi".into()),
            sent_at: 1_700_000_000_000,
            outgoing: false,
            status: "received".into(),
            reply_to: None,
            edited: false,
            deleted: false,
            file_name: Some("f.txt".into()),
            size: Some(4),
            media_type: Some("text/plain".into()),
            expires_at: None,
            unfranked: false,
            receipts: Box::default(),
            reactions: Vec::new(),
            mentions: Vec::new(),
            mentions_me: false,
            pinned: false,
            forwarded: false,
            poll: None,
            quoted: None,
        }
    }

    #[test]
    fn message_json_has_exactly_the_documented_keys() {
        let keys = |v: Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(message_json(&msg("text"))),
            [
                "conversation",
                "from",
                "group",
                "id",
                "kind",
                "sent_at",
                "text"
            ]
        );
        assert_eq!(
            keys(message_json(&msg("file"))),
            [
                "conversation",
                "file_name",
                "from",
                "group",
                "id",
                "kind",
                "sent_at",
                "size",
                "text"
            ]
        );
    }

    #[test]
    fn an_unfranked_message_is_marked_in_both_outputs() {
        let mut m = msg("text");
        m.unfranked = true;
        assert_eq!(message_json(&m)["unfranked"], json!(true));
        assert!(format_message(&m).contains(UNFRANKED_MARK));
        assert!(!format_message(&msg("text")).contains("unfranked"));
    }

    #[test]
    fn a_group_message_of_ours_shows_who_received_and_read_it() {
        let mut m = msg("text");
        m.outgoing = true;
        m.group = Some("team".into());
        m.status = "read".into();
        m.receipts.recipients = Some(3);
        m.receipts.delivered_to = vec!["bob".into(), "carol".into()];
        m.receipts.read_by = vec!["bob".into()];
        let v = message_json(&m);
        assert_eq!(v["recipients"], json!(3));
        assert_eq!(v["delivered_to"], json!(["bob", "carol"]));
        assert_eq!(v["read_by"], json!(["bob"]));
        assert!(
            format_message(&m).contains("(delivered to 2 of 3, read by 1 of 3)"),
            "{}",
            format_message(&m)
        );
        // 1:1 keeps its marks only; received messages carry no lists.
        m.group = None;
        assert!(message_json(&m).get("read_by").is_none());
        assert!(!format_message(&m).contains("read by"));
        m.group = Some("team".into());
        m.outgoing = false;
        assert!(message_json(&m).get("delivered_to").is_none());
    }

    #[test]
    fn reactions_show_in_both_outputs_and_only_when_there_are_some() {
        let mut m = msg("text");
        assert!(message_json(&m).get("reactions").is_none());
        m.reactions = vec![hush_client::ReactionView {
            from: "carol".into(),
            emoji: "👍".into(),
        }];
        assert_eq!(
            message_json(&m)["reactions"],
            json!([{"from": "carol", "emoji": "👍"}])
        );
        assert!(
            format_message(&m).contains("hi [carol 👍]"),
            "{}",
            format_message(&m)
        );
    }

    #[test]
    fn a_mention_of_this_account_is_marked() {
        let mut m = msg("text");
        assert!(message_json(&m).get("mentions").is_none());
        m.mentions = vec!["carol".into()];
        assert_eq!(message_json(&m)["mentions_me"], json!(false));
        assert!(!format_message(&m).contains("mentions you"));
        m.mentions_me = true;
        assert_eq!(message_json(&m)["mentions"], json!(["carol"]));
        assert!(format_message(&m).contains("hi (mentions you)"));
    }

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_size(10), "10 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
