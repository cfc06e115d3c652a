//! What the client shows: messages, conversations, contacts and events.

use serde::Serialize;

/// Who a command is about: a contact (1:1) or a group by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A 1:1 chat with this username.
    User(String),
    /// A group, by its name.
    Group(String),
}

/// A stored message as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// The message id (hex).
    pub id: String,
    /// The local conversation number.
    pub conversation: i64,
    /// The group's name, or `None` in a 1:1 chat.
    pub group: Option<String>,
    /// The sender's username.
    pub from: String,
    /// `text` or `file`.
    pub kind: String,
    /// The text (for a file, its caption if any).
    pub text: Option<String>,
    /// When the sender sent it, ms since the Unix epoch.
    pub sent_at: u64,
    /// Sent by this account.
    pub outgoing: bool,
    /// `pending`, `sent`, `delivered`, `read` (outgoing) or `received`.
    pub status: String,
    /// The message this one answers.
    pub reply_to: Option<String>,
    /// Edited after sending.
    pub edited: bool,
    /// Deleted for everyone (the text is gone).
    pub deleted: bool,
    /// For a file: its name.
    pub file_name: Option<String>,
    /// For a file: its size in bytes.
    pub size: Option<u64>,
    /// For a file: the media type its sender declared (not checked).
    pub media_type: Option<String>,
    /// When it disappears, ms since the Unix epoch.
    pub expires_at: Option<u64>,
    /// Received without the server's relay tag: the server did not vouch
    /// for its sender (franking), so it cannot be reported. Always false for
    /// outgoing messages.
    pub unfranked: bool,
    /// For this account's message: who received and who read it.
    pub receipts: Box<ReceiptState>,
    /// The members' reactions, one per member, sorted by member.
    pub reactions: Vec<ReactionView>,
    /// The accounts the message mentions (`@name` in a group), sorted.
    pub mentions: Vec<String>,
    /// It mentions this account.
    pub mentions_me: bool,
    /// Pinned in its conversation.
    pub pinned: bool,
    /// Forwarded from another conversation.
    pub forwarded: bool,
    /// For a poll (`kind` "poll", the question in `text`): its options and
    /// who chose each.
    pub poll: Option<PollView>,
    /// For a reply: the message it quotes, when this device holds it.
    pub quoted: Option<Quoted>,
}

/// The message a reply quotes, as this device holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quoted {
    /// Who wrote it.
    pub from: String,
    /// Its text, up to 200 characters; none for a file or a deleted message.
    pub text: Option<String>,
}

/// A poll's options and votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollView {
    /// Whether a member may choose several options.
    pub multiple: bool,
    /// The options, in order.
    pub options: Vec<PollOptionView>,
}

/// One option of a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollOptionView {
    /// What it says.
    pub text: String,
    /// The members who chose it, sorted.
    pub voters: Vec<String>,
}

/// One member's reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionView {
    /// The member.
    pub from: String,
    /// Their emoji.
    pub emoji: String,
}

/// Who received and who read one of this account's messages, from the
/// members' receipts (empty for a received message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptState {
    /// For a group message: how many other members it was sent to.
    pub recipients: Option<u32>,
    /// The members whose device has it (read included), sorted.
    pub delivered_to: Vec<String>,
    /// The members who read it, sorted.
    pub read_by: Vec<String>,
}

/// A conversation as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationView {
    /// The local number.
    pub id: i64,
    /// `direct` or `group`.
    pub kind: String,
    /// The group name, or the other person's username.
    pub name: String,
    /// Member usernames (for a group).
    pub members: Vec<String>,
    /// The members who are admins (decision 0032); every member of a group
    /// made before admins existed, and of a 1:1 chat.
    pub admins: Vec<String>,
    /// Only admins send in this group.
    pub only_admins_send: bool,
    /// Disappearing-message timer in seconds.
    pub disappear_secs: Option<u32>,
    /// Muted on this device until then (ms since the Unix epoch;
    /// [`crate::mute::FOREVER`] until unmuted); `None` when not muted. A
    /// muted conversation's messages still arrive and count as unread; a
    /// front end shows no notification for them, except a mention.
    pub muted_until: Option<u64>,
    /// For a 1:1 chat: how many other 1:1 chats with the same person this
    /// device is in (started by both sides at once, or made by them on
    /// purpose). Their messages show here; new messages go to this one, the
    /// first this device made or joined, whatever their group ids.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other_chats: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactView {
    /// Username.
    pub username: String,
    /// Display name from their profile, if they shared it.
    pub display_name: Option<String>,
    /// Marked verified by the user (safety number compared).
    pub verified: bool,
    /// Their identity key changed since first contact.
    pub key_changed: bool,
    /// Blocked locally.
    pub blocked: bool,
}

/// Who receives this account's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceMode {
    /// Every member of every conversation.
    Everyone,
    /// Only people with a 1:1 chat.
    Contacts,
    /// No one.
    Nobody,
}

impl PresenceMode {
    /// Parses `everyone`, `contacts` or `nobody`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "everyone" => Some(Self::Everyone),
            "contacts" => Some(Self::Contacts),
            "nobody" => Some(Self::Nobody),
            _ => None,
        }
    }

    /// The name [`PresenceMode::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Contacts => "contacts",
            Self::Nobody => "nobody",
        }
    }
}

/// Something that happened, for front ends to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
// A message is the common event; boxing it would change every front end's
// match for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A new message.
    Message(MessageView),
    /// Receipts changed the status of outgoing messages.
    Receipt {
        /// The messages.
        ids: Vec<String>,
        /// `delivered` or `read`.
        status: String,
        /// Who sent the receipt.
        from: String,
    },
    /// Someone started or stopped typing.
    Typing {
        /// Conversation number.
        conversation: i64,
        /// Who.
        from: String,
        /// Started (true) or stopped.
        started: bool,
    },
    /// Someone's presence.
    Presence {
        /// Who.
        from: String,
        /// Online now.
        online: bool,
    },
    /// A message was edited.
    Edited {
        /// The message.
        id: String,
        /// Its new text.
        text: String,
    },
    /// A member reacted to a message, or took the reaction back.
    Reaction {
        /// The message.
        id: String,
        /// The member.
        from: String,
        /// The emoji; `None` when taken back.
        emoji: Option<String>,
    },
    /// A member voted in a poll (or took the vote back: no options).
    Voted {
        /// The poll.
        id: String,
        /// The member.
        from: String,
        /// The options chosen (0-based).
        options: Vec<usize>,
    },
    /// A member pinned or unpinned a message.
    Pinned {
        /// The message.
        id: String,
        /// The member.
        from: String,
        /// Pinned (true) or unpinned.
        pinned: bool,
    },
    /// A message was deleted for everyone.
    Deleted {
        /// The message.
        id: String,
    },
    /// This account was added to a conversation.
    Joined {
        /// The conversation.
        conversation: ConversationView,
    },
    /// Members joined or left a group.
    Members {
        /// Conversation number.
        conversation: i64,
        /// Accounts added.
        added: Vec<String>,
        /// Accounts removed.
        removed: Vec<String>,
    },
    /// This account was removed from a conversation.
    Removed {
        /// Conversation number.
        conversation: i64,
    },
    /// A group was renamed.
    Renamed {
        /// Conversation number.
        conversation: i64,
        /// The new name.
        name: String,
    },
    /// The disappearing-message timer changed.
    Disappearing {
        /// Conversation number.
        conversation: i64,
        /// The new timer in seconds, or off.
        seconds: Option<u32>,
    },
    /// Another device of this account read these received messages: they
    /// are no longer unread here either.
    ReadElsewhere {
        /// Conversation number.
        conversation: i64,
        /// The messages.
        ids: Vec<String>,
    },
    /// Another device of this account changed a setting, now the same
    /// here: `what` is `blocked`, `unblocked`, `verified` (`subject`: the
    /// contact), `profile`, `presence` (`subject`: the new setting),
    /// `device_name` or `device_removed` (`subject`: the device id).
    Synced {
        /// What changed.
        what: String,
        /// Whom or what it is about, if anyone.
        subject: Option<String>,
    },
    /// A contact shared their profile key, which they do each time they
    /// change their profile: their name and avatar may be new.
    Profile {
        /// Whose.
        username: String,
    },
    /// SECURITY: a contact's identity key changed.
    KeyChanged {
        /// Whose.
        username: String,
    },
    /// SECURITY: key transparency caught the server: a key this account
    /// never added, or a directory shown differently to a contact.
    KeyTransparencyAlarm {
        /// What was found and what to do.
        message: String,
    },
    /// A new post in a channel this device follows (decision 0038).
    ChannelPost(crate::channels::ChannelPostView),
    /// SECURITY: this device refused something it was handed (an
    /// invitation or a membership change the key directory does not vouch
    /// for, a replayed invitation, one that would overwrite a conversation),
    /// or could not check the key directory's history of this account for
    /// too long. The text starts with "SECURITY:".
    SecurityAlarm {
        /// What was refused or found, and what to do.
        message: String,
    },
}
