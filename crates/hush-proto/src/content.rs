//! The message content codec: what travels inside an MLS application message.
//!
//! Layout (version 1), all integers big-endian:
//!
//! ```text
//! u8  version = 1
//! [16] message id (chosen by the sender)
//! u64 sent_at, milliseconds since the Unix epoch (sender's clock)
//! u16 kind
//! fields until the end: u16 tag | u32 length | value
//! ```
//!
//! Fields appear in strictly ascending tag order, each at most once, so every
//! content has exactly one encoding (franking commits to these bytes). A tag
//! with the high bit set (`0x8000`) is optional: a decoder that does not know
//! it skips it. Any other unknown tag is mandatory and the content is rejected.
//! An unknown *kind* decodes to [`Body::Unsupported`] so that newer clients can
//! add kinds without older ones failing.

use std::fmt;

use rand_core::{CryptoRng, RngCore};

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::Username;

mod fields;
use crate::kt::KtCheckpoint;
use fields::{FieldWriter, Fields};

/// The encoding version this build writes and reads.
pub const CONTENT_VERSION: u8 = 1;
/// Largest encoded content accepted.
pub const MAX_CONTENT_LEN: usize = 256 * 1024;
/// Longest text of a message or edit, in bytes.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Longest attachment file name, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Longest media type, in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 127;
/// Longest attachment blob id, in bytes.
pub const MAX_BLOB_ID_LEN: usize = 128;
/// Longest reaction (one emoji, possibly several code points), in bytes.
pub const MAX_EMOJI_LEN: usize = 64;
/// Most options of a poll (and at least [`MIN_POLL_OPTIONS`]).
pub const MAX_POLL_OPTIONS: usize = 12;
/// Fewest options of a poll.
pub const MIN_POLL_OPTIONS: usize = 2;
/// Longest poll question, in bytes.
pub const MAX_POLL_QUESTION_LEN: usize = 1024;
/// Longest poll option, in bytes.
pub const MAX_POLL_OPTION_LEN: usize = 255;
/// Most accounts one message mentions.
pub const MAX_MENTIONS: usize = 64;
/// Most message ids in one receipt.
pub const MAX_RECEIPT_IDS: usize = 1000;
/// Fields after the header, at most.
const MAX_FIELDS: usize = 64;

/// Fields with this bit set may be skipped by decoders that do not know them.
pub const OPTIONAL_FIELD: u16 = 0x8000;
/// The disappearing-message timer in force when the message was sent (u32 seconds).
const FIELD_EXPIRE_TIMER: u16 = OPTIONAL_FIELD | 1;
/// The key-transparency root the sender last saw ([`crate::kt::KtCheckpoint`]).
const FIELD_KT_CHECKPOINT: u16 = OPTIONAL_FIELD | 2;
/// The accounts a text or file mentions ([`PostMeta::mentions`]): each a
/// u8 length and the username, in ascending order, each once.
const FIELD_MENTIONS: u16 = OPTIONAL_FIELD | 3;
/// The text or file was forwarded from another conversation (empty value).
const FIELD_FORWARDED: u16 = OPTIONAL_FIELD | 4;

/// A message id: 16 random bytes chosen by the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh random id.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self(id)
    }

    /// Lowercase hex, 32 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`MessageId::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.to_hex())
    }
}

/// One message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Sender-chosen id, unique per message; receipts, edits, replies and
    /// deletes refer to it.
    pub id: MessageId,
    /// When the sender sent it, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// The disappearing-message timer in force for this message, in seconds.
    pub expire_timer_secs: Option<u32>,
    /// What the message says or does.
    pub body: Body,
    /// The newest signed key-transparency root the sender has seen, so the
    /// recipient can check that the server shows both the same directory.
    pub kt_checkpoint: Option<KtCheckpoint>,
    /// What a text or file says about itself beyond its body (optional
    /// fields: an older client shows the message without them).
    pub meta: PostMeta,
}

/// What a text or file says about itself beyond its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostMeta {
    /// The accounts it mentions (`@name` in a group), so that their
    /// clients can highlight it and notify them. Encoded sorted, each once.
    pub mentions: Vec<Username>,
    /// Forwarded from another conversation (shown as such).
    pub forwarded: bool,
}

/// The kinds of content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// A text message, possibly a reply.
    Text {
        /// The text.
        text: String,
        /// The message this one answers.
        reply_to: Option<MessageId>,
    },
    /// A file or picture stored encrypted on the server.
    Attachment {
        /// Where and how to fetch and open it.
        pointer: AttachmentPointer,
        /// Text shown with it.
        caption: Option<String>,
        /// The message this one answers.
        reply_to: Option<MessageId>,
    },
    /// Delivery or read receipts for earlier messages.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// The messages this receipt covers.
        ids: Vec<MessageId>,
    },
    /// The sender started or stopped typing.
    Typing {
        /// True when typing started.
        started: bool,
    },
    /// The sender's presence.
    Presence {
        /// Online or not.
        online: bool,
        /// When the sender was last active, if shared.
        last_seen_ms: Option<u64>,
    },
    /// The conversation's disappearing-message timer changed.
    DisappearingTimer {
        /// The new timer in seconds; `None` turns it off.
        seconds: Option<u32>,
    },
    /// Replace the text of an earlier message.
    Edit {
        /// The message being edited.
        target: MessageId,
        /// Its new text.
        text: String,
    },
    /// Delete an earlier message for everyone.
    Delete {
        /// The message being deleted.
        target: MessageId,
    },
    /// The sender's profile key, so the recipient can open its profile.
    ProfileKey {
        /// The key.
        key: [u8; 32],
    },
    /// The sender's reaction to a message: one per member and message, the
    /// newest replacing the one before.
    Reaction {
        /// The message reacted to.
        target: MessageId,
        /// The emoji; `None` takes the sender's reaction back.
        emoji: Option<String>,
    },
    /// Pins a message for every member of the conversation, or unpins it.
    Pin {
        /// The message.
        target: MessageId,
        /// Pinned (true) or unpinned.
        pinned: bool,
    },
    /// A poll, shown as a message: a question and its options.
    Poll {
        /// The question.
        question: String,
        /// The options, in order ([`MIN_POLL_OPTIONS`] to
        /// [`MAX_POLL_OPTIONS`], each 1 to [`MAX_POLL_OPTION_LEN`] bytes).
        options: Vec<String>,
        /// Whether a member may choose several options.
        multiple: bool,
    },
    /// The sender's vote in a poll, replacing their earlier one.
    Vote {
        /// The poll.
        poll: MessageId,
        /// The chosen options' positions, ascending, each once; empty
        /// takes the vote back.
        options: Vec<u8>,
    },
    /// The owner of a channel (decision 0038) names the recipient one of
    /// its admins: what the recipient's device needs to post to it.
    ChannelAdmin {
        /// The channel link, the admin's signing key, the post token and the
        /// owner-signed descriptor listing the admin key.
        grant: ChannelGrant,
    },
    /// A kind this build does not know; shown as "unsupported message".
    Unsupported {
        /// The unknown kind number.
        kind: u16,
    },
}

/// Which receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The recipient's device has the message.
    Delivered,
    /// The recipient has seen the message.
    Read,
}

/// How to fetch and open an attachment.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachmentPointer {
    /// The server's id of the encrypted blob.
    pub blob_id: String,
    /// The key the blob is encrypted under.
    pub key: [u8; 32],
    /// SHA-256 of the encrypted blob.
    pub digest: [u8; 32],
    /// Size of the plaintext in bytes.
    pub size: u64,
    /// Media type, such as `image/png`.
    pub media_type: String,
    /// The original file name.
    pub file_name: String,
}

impl fmt::Debug for AttachmentPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachmentPointer")
            .field("blob_id", &self.blob_id)
            .field("key", &"<redacted>")
            .field("size", &self.size)
            .field("media_type", &self.media_type)
            .field("file_name", &self.file_name)
            .finish()
    }
}

/// Longest channel link in a [`ChannelGrant`], in bytes.
pub const MAX_GRANT_LINK_LEN: usize = 2048;
/// Longest post token in a [`ChannelGrant`], in bytes.
pub const MAX_GRANT_TOKEN_LEN: usize = 64;
/// Longest encoded descriptor in a [`ChannelGrant`], in bytes.
pub const MAX_GRANT_DESCRIPTOR_LEN: usize = 8 * 1024;

/// What a channel's owner hands an account it names an admin
/// ([`Body::ChannelAdmin`]). The recipient keeps it only if the
/// descriptor verifies against the owner key in the link and lists the
/// public half of `admin_seed`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelGrant {
    /// The channel link (`SERVER/channel#SECRET OWNER`).
    pub link: String,
    /// The seed of the admin signing key made for the recipient.
    pub admin_seed: [u8; 32],
    /// The channel's post token (the server files posts only with it).
    pub post_token: Vec<u8>,
    /// The descriptor (its encoding), signed by the owner key, listing
    /// the admin key.
    pub descriptor: Vec<u8>,
}

impl fmt::Debug for ChannelGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelGrant")
            .field("link", &"<redacted>")
            .field("admin_seed", &"<redacted>")
            .field("post_token", &"<redacted>")
            .field("descriptor_len", &self.descriptor.len())
            .finish()
    }
}

mod kind {
    pub const TEXT: u16 = 1;
    pub const ATTACHMENT: u16 = 2;
    pub const RECEIPT: u16 = 3;
    pub const TYPING: u16 = 4;
    pub const PRESENCE: u16 = 5;
    pub const DISAPPEARING_TIMER: u16 = 6;
    pub const EDIT: u16 = 7;
    pub const DELETE: u16 = 8;
    pub const PROFILE_KEY: u16 = 9;
    pub const REACTION: u16 = 10;
    pub const PIN: u16 = 11;
    pub const POLL: u16 = 12;
    pub const VOTE: u16 = 13;
    pub const CHANNEL_ADMIN: u16 = 14;
}

impl Content {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut f = FieldWriter::default();
        let kind = match &self.body {
            Body::Text { text, reply_to } => {
                f.field(1, |w| w.raw(text.as_bytes()));
                f.opt_id(2, reply_to.as_ref());
                kind::TEXT
            }
            Body::Attachment {
                pointer,
                caption,
                reply_to,
            } => {
                f.field(1, |w| w.raw(pointer.blob_id.as_bytes()));
                f.field(2, |w| w.raw(&pointer.key));
                f.field(3, |w| w.raw(&pointer.digest));
                f.field(4, |w| w.u64(pointer.size));
                f.field(5, |w| w.raw(pointer.media_type.as_bytes()));
                f.field(6, |w| w.raw(pointer.file_name.as_bytes()));
                if let Some(c) = caption {
                    f.field(7, |w| w.raw(c.as_bytes()));
                }
                f.opt_id(8, reply_to.as_ref());
                kind::ATTACHMENT
            }
            Body::Receipt { kind: k, ids } => {
                let k = match k {
                    ReceiptKind::Delivered => 1,
                    ReceiptKind::Read => 2,
                };
                f.field(1, |w| w.u8(k));
                f.field(2, |w| {
                    for id in ids {
                        w.raw(&id.0);
                    }
                    w
                });
                kind::RECEIPT
            }
            Body::Typing { started } => {
                f.field(1, |w| w.bool(*started));
                kind::TYPING
            }
            Body::Presence {
                online,
                last_seen_ms,
            } => {
                f.field(1, |w| w.bool(*online));
                if let Some(t) = last_seen_ms {
                    f.field(2, |w| w.u64(*t));
                }
                kind::PRESENCE
            }
            Body::DisappearingTimer { seconds } => {
                f.field(1, |w| w.u32(seconds.unwrap_or(0)));
                kind::DISAPPEARING_TIMER
            }
            Body::Edit { target, text } => {
                f.field(1, |w| w.raw(&target.0));
                f.field(2, |w| w.raw(text.as_bytes()));
                kind::EDIT
            }
            Body::Delete { target } => {
                f.field(1, |w| w.raw(&target.0));
                kind::DELETE
            }
            Body::ProfileKey { key } => {
                f.field(1, |w| w.raw(key));
                kind::PROFILE_KEY
            }
            Body::Reaction { target, emoji } => {
                f.field(1, |w| w.raw(&target.0));
                if let Some(e) = emoji {
                    f.field(2, |w| w.raw(e.as_bytes()));
                }
                kind::REACTION
            }
            Body::Pin { target, pinned } => {
                f.field(1, |w| w.raw(&target.0));
                f.field(2, |w| w.bool(*pinned));
                kind::PIN
            }
            Body::Poll {
                question,
                options,
                multiple,
            } => {
                f.field(1, |w| w.raw(question.as_bytes()));
                f.field(2, |w| {
                    for o in options {
                        w.u8(o.len().min(255) as u8)
                            .raw(&o.as_bytes()[..o.len().min(255)]);
                    }
                    w
                });
                f.field(3, |w| w.bool(*multiple));
                kind::POLL
            }
            Body::Vote { poll, options } => {
                f.field(1, |w| w.raw(&poll.0));
                f.field(2, |w| w.raw(options));
                kind::VOTE
            }
            Body::ChannelAdmin { grant } => {
                f.field(1, |w| w.raw(grant.link.as_bytes()));
                f.field(2, |w| w.raw(&grant.admin_seed));
                f.field(3, |w| w.raw(&grant.post_token));
                f.field(4, |w| w.raw(&grant.descriptor));
                kind::CHANNEL_ADMIN
            }
            Body::Unsupported { kind } => *kind,
        };
        if let Some(t) = self.expire_timer_secs {
            f.field(FIELD_EXPIRE_TIMER, |w| w.u32(t));
        }
        if let Some(c) = &self.kt_checkpoint {
            f.field(FIELD_KT_CHECKPOINT, |w| w.raw(&c.encode()));
        }
        if !self.meta.mentions.is_empty() {
            let mut names: Vec<&Username> = self.meta.mentions.iter().collect();
            names.sort();
            names.dedup();
            f.field(FIELD_MENTIONS, |w| {
                for n in names.iter().take(MAX_MENTIONS) {
                    w.u8(n.as_str().len() as u8).raw(n.as_str().as_bytes());
                }
                w
            });
        }
        if self.meta.forwarded {
            f.field(FIELD_FORWARDED, |w| w);
        }
        let mut w = Writer::new();
        w.u8(CONTENT_VERSION)
            .raw(&self.id.0)
            .u64(self.sent_at_ms)
            .u16(kind)
            .raw(&f.finish());
        w.into_bytes()
    }

    /// Decodes and validates content; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_CONTENT_LEN {
            return Err(DecodeError::TooLong {
                field: "content",
                len: bytes.len(),
                max: MAX_CONTENT_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != CONTENT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let id = MessageId(r.array()?);
        let sent_at_ms = r.u64()?;
        let kind = r.u16()?;
        let mut fields = Fields::parse(r)?;
        let expire_timer_secs = fields.opt(FIELD_EXPIRE_TIMER, |r| r.u32())?;
        let kt_checkpoint = fields.opt(FIELD_KT_CHECKPOINT, |r| {
            let raw = r.take(r.remaining())?;
            KtCheckpoint::decode(raw)
        })?;
        let mentions = fields.opt(FIELD_MENTIONS, mentions)?.unwrap_or_default();
        // Present means forwarded; its value is empty (`opt` refuses any byte).
        let forwarded = fields.opt(FIELD_FORWARDED, |_| Ok(()))?.is_some();
        let body = match kind {
            kind::TEXT => Body::Text {
                text: fields.req("text", 1, |r| text(r, "text", MAX_TEXT_LEN))?,
                reply_to: fields.opt(2, message_id)?,
            },
            kind::ATTACHMENT => Body::Attachment {
                pointer: AttachmentPointer {
                    blob_id: fields.req("blob id", 1, |r| text(r, "blob id", MAX_BLOB_ID_LEN))?,
                    key: fields.req("key", 2, |r| r.array())?,
                    digest: fields.req("digest", 3, |r| r.array())?,
                    size: fields.req("size", 4, |r| r.u64())?,
                    media_type: fields.req("media type", 5, |r| {
                        text(r, "media type", MAX_MEDIA_TYPE_LEN)
                    })?,
                    file_name: fields
                        .req("file name", 6, |r| text(r, "file name", MAX_FILE_NAME_LEN))?,
                },
                caption: fields.opt(7, |r| text(r, "caption", MAX_TEXT_LEN))?,
                reply_to: fields.opt(8, message_id)?,
            },
            kind::RECEIPT => Body::Receipt {
                kind: fields.req("receipt kind", 1, |r| match r.u8()? {
                    1 => Ok(ReceiptKind::Delivered),
                    2 => Ok(ReceiptKind::Read),
                    _ => Err(DecodeError::Invalid {
                        field: "receipt kind",
                        reason: "neither delivered nor read",
                    }),
                })?,
                ids: fields.req("receipt ids", 2, receipt_ids)?,
            },
            kind::TYPING => Body::Typing {
                started: fields.req("typing", 1, |r| r.bool("typing"))?,
            },
            kind::PRESENCE => Body::Presence {
                online: fields.req("online", 1, |r| r.bool("online"))?,
                last_seen_ms: fields.opt(2, |r| r.u64())?,
            },
            kind::DISAPPEARING_TIMER => Body::DisappearingTimer {
                seconds: Some(fields.req("timer", 1, |r| r.u32())?).filter(|s| *s != 0),
            },
            kind::EDIT => Body::Edit {
                target: fields.req("edit target", 1, message_id)?,
                text: fields.req("text", 2, |r| text(r, "text", MAX_TEXT_LEN))?,
            },
            kind::DELETE => Body::Delete {
                target: fields.req("delete target", 1, message_id)?,
            },
            kind::PROFILE_KEY => Body::ProfileKey {
                key: fields.req("profile key", 1, |r| r.array())?,
            },
            kind::REACTION => Body::Reaction {
                target: fields.req("reaction target", 1, message_id)?,
                emoji: fields.opt(2, emoji)?,
            },
            kind::PIN => Body::Pin {
                target: fields.req("pin target", 1, message_id)?,
                pinned: fields.req("pinned", 2, |r| r.bool("pinned"))?,
            },
            kind::POLL => Body::Poll {
                question: fields.req("poll question", 1, |r| {
                    nonempty(
                        text(r, "poll question", MAX_POLL_QUESTION_LEN)?,
                        "poll question",
                    )
                })?,
                options: fields.req("poll options", 2, poll_options)?,
                multiple: fields.req("multiple", 3, |r| r.bool("multiple"))?,
            },
            kind::VOTE => Body::Vote {
                poll: fields.req("poll", 1, message_id)?,
                options: fields.req("vote", 2, vote_options)?,
            },
            kind::CHANNEL_ADMIN => Body::ChannelAdmin {
                grant: ChannelGrant {
                    link: fields.req("channel link", 1, |r| {
                        text(r, "channel link", MAX_GRANT_LINK_LEN)
                    })?,
                    admin_seed: fields.req("admin key", 2, |r| r.array())?,
                    post_token: fields.req("post token", 3, |r| {
                        bounded(r, "post token", MAX_GRANT_TOKEN_LEN)
                    })?,
                    descriptor: fields.req("descriptor", 4, |r| {
                        bounded(r, "descriptor", MAX_GRANT_DESCRIPTOR_LEN)
                    })?,
                },
            },
            other => {
                // Newer kinds: the structure was checked, the meaning is unknown.
                fields.skip_all();
                Body::Unsupported { kind: other }
            }
        };
        fields.finish(kind_name(kind))?;
        Ok(Content {
            id,
            sent_at_ms,
            expire_timer_secs,
            body,
            kt_checkpoint,
            meta: PostMeta {
                mentions,
                forwarded,
            },
        })
    }
}

fn kind_name(kind: u16) -> &'static str {
    match kind {
        kind::TEXT => "text",
        kind::ATTACHMENT => "attachment",
        kind::RECEIPT => "receipt",
        kind::TYPING => "typing",
        kind::PRESENCE => "presence",
        kind::DISAPPEARING_TIMER => "disappearing timer",
        kind::EDIT => "edit",
        kind::DELETE => "delete",
        kind::PROFILE_KEY => "profile key",
        kind::REACTION => "reaction",
        kind::PIN => "pin",
        kind::POLL => "poll",
        kind::VOTE => "vote",
        kind::CHANNEL_ADMIN => "channel admin",
        _ => "unsupported kind",
    }
}

fn text(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<String, DecodeError> {
    let raw = r.take(r.remaining())?;
    if raw.len() > max {
        return Err(DecodeError::TooLong {
            field,
            len: raw.len(),
            max,
        });
    }
    String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Invalid {
        field,
        reason: "not UTF-8",
    })
}

/// The rest of a field as bytes, at most `max`.
fn bounded(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
    let raw = r.take(r.remaining())?;
    if raw.len() > max {
        return Err(DecodeError::TooLong {
            field,
            len: raw.len(),
            max,
        });
    }
    Ok(raw.to_vec())
}

/// A reaction: non-empty, short, printable (no control characters).
fn emoji(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let e = text(r, "emoji", MAX_EMOJI_LEN)?;
    if e.is_empty() || e.chars().any(char::is_control) {
        return Err(DecodeError::Invalid {
            field: "emoji",
            reason: "empty or a control character",
        });
    }
    Ok(e)
}

fn nonempty(s: String, field: &'static str) -> Result<String, DecodeError> {
    if s.trim().is_empty() {
        return Err(DecodeError::Invalid {
            field,
            reason: "empty",
        });
    }
    Ok(s)
}

/// A poll's options: each a u8 length and UTF-8 text, not empty.
fn poll_options(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let mut out = Vec::new();
    while r.remaining() > 0 {
        if out.len() == MAX_POLL_OPTIONS {
            return Err(DecodeError::TooLong {
                field: "poll options",
                len: MAX_POLL_OPTIONS + 1,
                max: MAX_POLL_OPTIONS,
            });
        }
        let n = usize::from(r.u8()?);
        let mut one = Reader::new(r.take(n)?);
        out.push(nonempty(
            text(&mut one, "poll option", MAX_POLL_OPTION_LEN)?,
            "poll option",
        )?);
    }
    if out.len() < MIN_POLL_OPTIONS {
        return Err(DecodeError::Invalid {
            field: "poll options",
            reason: "fewer than two",
        });
    }
    Ok(out)
}

/// A vote's options: positions, ascending, each once, within a poll's most.
fn vote_options(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let raw = r.take(r.remaining())?;
    if raw.windows(2).any(|w| w[0] >= w[1])
        || raw
            .last()
            .is_some_and(|&i| usize::from(i) >= MAX_POLL_OPTIONS)
    {
        return Err(DecodeError::Invalid {
            field: "vote",
            reason: "positions not ascending, repeated, or past the last option",
        });
    }
    Ok(raw.to_vec())
}

/// A mention list: at least one name, at most [`MAX_MENTIONS`], ascending.
fn mentions(r: &mut Reader<'_>) -> Result<Vec<Username>, DecodeError> {
    let invalid = |reason| DecodeError::Invalid {
        field: "mentions",
        reason,
    };
    let mut out: Vec<Username> = Vec::new();
    while r.remaining() > 0 {
        if out.len() == MAX_MENTIONS {
            return Err(DecodeError::TooLong {
                field: "mentions",
                len: MAX_MENTIONS + 1,
                max: MAX_MENTIONS,
            });
        }
        let n = usize::from(r.u8()?);
        let raw = r.take(n)?;
        let name = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| Username::new(s).ok())
            .ok_or(invalid("not a username"))?;
        if out.last().is_some_and(|prev| *prev >= name) {
            return Err(invalid("not in ascending order, or repeated"));
        }
        out.push(name);
    }
    if out.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(out)
}

fn message_id(r: &mut Reader<'_>) -> Result<MessageId, DecodeError> {
    Ok(MessageId(r.array()?))
}

fn receipt_ids(r: &mut Reader<'_>) -> Result<Vec<MessageId>, DecodeError> {
    let n = r.remaining();
    if !n.is_multiple_of(16) {
        return Err(DecodeError::Invalid {
            field: "receipt ids",
            reason: "not a whole number of ids",
        });
    }
    if n / 16 > MAX_RECEIPT_IDS {
        return Err(DecodeError::TooLong {
            field: "receipt ids",
            len: n / 16,
            max: MAX_RECEIPT_IDS,
        });
    }
    (0..n / 16).map(|_| message_id(r)).collect()
}

#[cfg(test)]
#[path = "content_tests.rs"]
mod tests;
