//! Account archives (decision 0026): one format for the history a linked
//! device receives and for backups.
//!
//! An [`Archive`] is what a device knows of its account that is worth
//! carrying to another device: chats and groups with their history,
//! contacts (with verification marks and blocks), settings and the
//! profile key, the account's devices, and, in a backup only, the account
//! key. [`seal`] encrypts it under a 32-byte key:
//!
//! ```text
//! "HUSHARCV" | format version u8 | purpose u8 | salt [32] | check [16]
//!            | length u64 | AES-256-GCM(ciphertext || tag)
//! ```
//!
//! HKDF-SHA256 (salt the random `salt`, input the key, info a label and the
//! purpose) gives the AES key and the 16-byte `check`, which tells a wrong
//! key apart from a damaged file before anything is decrypted. The whole
//! header is the AEAD's associated data, so an edited header, a flipped bit
//! anywhere or a cut-off end is refused: [`open`] returns the archive whole
//! or an error, never part of it. A format version above
//! [`FORMAT_VERSION`] is refused as made by a newer release; version 1
//! (before decision 0039's message features) is read, its messages with
//! empty [`MessageExtras`].
//!
//! Every count and length in the plaintext is bounded and nothing is
//! allocated from a count before its bytes were read.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};

/// The first bytes of a sealed archive.
pub const MAGIC: &[u8; 8] = b"HUSHARCV";
/// The archive format this build writes and the newest it reads: 2 adds
/// each message's [`MessageExtras`] (polls, votes, reactions, pins,
/// mentions, forwarding).
pub const FORMAT_VERSION: u8 = 2;
/// The oldest format this build reads.
pub const OLDEST_FORMAT_VERSION: u8 = 1;
/// Header length: magic, version, purpose, salt, check, length.
pub const HEADER_LEN: usize = 8 + 1 + 1 + 32 + 16 + 8;
const TAG_LEN: usize = 16;
/// The largest plaintext an archive may have (2 GiB).
pub const MAX_PLAINTEXT: u64 = 2 << 30;

const MAX_NAME: usize = 256;
const MAX_KEY: usize = 4096;
const MAX_SETTING: usize = 64 * 1024;
const MAX_BODY: usize = 1 << 20;
const MAX_TEXT: usize = 64 * 1024;

/// What an archive is for; part of the authenticated header, so a link
/// archive cannot pass for a backup or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// History sent to a device being linked.
    Link,
    /// A backup under a recovery key.
    Backup,
}

impl Purpose {
    fn to_u8(self) -> u8 {
        match self {
            Purpose::Link => 1,
            Purpose::Backup => 2,
        }
    }
}

/// Why a sealed archive was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArchiveError {
    /// It does not start like an archive.
    #[error("this is not a Hush backup or archive")]
    NotAnArchive,
    /// A newer release wrote it.
    #[error(
        "this archive has format version {0}, newer than this hush reads ({FORMAT_VERSION}); \
         upgrade hush"
    )]
    NewerVersion(u8),
    /// It is of the other purpose.
    #[error("this archive is not a {0}")]
    WrongPurpose(&'static str),
    /// It ends early.
    #[error("the file is truncated: {have} of {need} bytes")]
    Truncated {
        /// Bytes present.
        have: u64,
        /// Bytes the header announces.
        need: u64,
    },
    /// Bytes follow the announced end.
    #[error("the file is corrupt: {0} bytes after its end")]
    Trailing(u64),
    /// The key does not match the one it was sealed under.
    #[error("wrong key: this archive was sealed under a different one")]
    WrongKey,
    /// The key matches but the contents do not authenticate.
    #[error("the file is corrupt: its contents do not authenticate (altered or damaged)")]
    Corrupt,
    /// The contents authenticate but do not decode.
    #[error("the archive's contents are malformed: {0}")]
    Malformed(DecodeError),
}

/// One device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedDevice {
    /// Its certificate's encoding.
    pub certificate: Vec<u8>,
    /// The name the account gave it.
    pub name: Option<String>,
    /// Whether it was removed.
    pub removed: bool,
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedContact {
    /// Their username.
    pub username: String,
    /// Their account key as first seen.
    pub account_key: Vec<u8>,
    /// When first seen (ms).
    pub first_seen: u64,
    /// Whether the user verified them.
    pub verified: bool,
    /// The key they were verified with.
    pub verified_key: Option<Vec<u8>>,
    /// Key-change state (0 none, 1 changed, 2 changed after verification).
    pub key_changed: u8,
    /// Whether they are blocked.
    pub blocked: bool,
    /// The profile key they shared.
    pub profile_key: Option<Vec<u8>>,
    /// Their display name.
    pub display_name: Option<String>,
}

/// One message of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// Its id.
    pub id: String,
    /// Who sent it.
    pub sender: String,
    /// From which of their devices.
    pub sender_device: u32,
    /// Whether this account sent it.
    pub outgoing: bool,
    /// Its kind (`text`, `file`, ...).
    pub kind: String,
    /// The text.
    pub body: Option<String>,
    /// The message it answers.
    pub reply_to: Option<String>,
    /// The attachment pointer (JSON, as stored): the file stays on the
    /// server and is fetched when opened.
    pub attachment: Option<String>,
    /// Sent (ms).
    pub sent_at: u64,
    /// Received (ms).
    pub received_at: u64,
    /// When it disappears (ms).
    pub expires_at: Option<u64>,
    /// Delivery state.
    pub status: String,
    /// Whether it was edited.
    pub edited: bool,
    /// Whether it was deleted.
    pub deleted: bool,
    /// Its franking opening (JSON, as stored), for reports.
    pub franking: Option<String>,
    /// What decision 0039's features attached to it (format 2).
    pub extras: MessageExtras,
}

/// What a message carries beyond its text (decision 0039): empty in
/// archives of format 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageExtras {
    /// A poll's options (JSON, as stored).
    pub poll: Option<String>,
    /// The accounts it mentions (JSON, as stored).
    pub mentions: Option<String>,
    /// Whether it mentions this account.
    pub mentions_me: bool,
    /// Whether it was forwarded from another conversation.
    pub forwarded: bool,
    /// Each member's newest reaction (`emoji` None: taken back).
    pub reactions: Vec<ArchivedReaction>,
    /// Each member's newest vote, if it is a poll.
    pub votes: Vec<ArchivedVote>,
    /// Its pin's newest change.
    pub pin: Option<ArchivedPin>,
}

/// A member's newest reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedReaction {
    /// Who reacted.
    pub member: String,
    /// With what; None: taken back.
    pub emoji: Option<String>,
    /// When (the sender's clock, ms).
    pub sent_at: u64,
}

/// A member's newest vote in a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedVote {
    /// Who voted.
    pub member: String,
    /// The options chosen (JSON positions, as stored; empty: taken back).
    pub options: String,
    /// When (the sender's clock, ms).
    pub sent_at: u64,
}

/// The newest change to a message's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedPin {
    /// Pinned or unpinned.
    pub pinned: bool,
    /// By whom.
    pub member: String,
    /// When (the sender's clock, ms).
    pub sent_at: u64,
}

/// One conversation and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedConversation {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// `direct` or `group`.
    pub kind: String,
    /// The other account of a 1:1 chat.
    pub peer: Option<String>,
    /// A group's name.
    pub name: Option<String>,
    /// The disappearing-messages timer (seconds).
    pub disappear_secs: Option<u64>,
    /// Whether the account was still in it.
    pub active: bool,
    /// Created (ms).
    pub created_at: u64,
    /// Its messages, oldest first.
    pub messages: Vec<ArchivedMessage>,
}

/// Everything an archive carries.
#[derive(Clone, PartialEq, Eq)]
pub struct Archive {
    /// The account.
    pub username: String,
    /// When it was made (ms).
    pub created_at_ms: u64,
    /// The account key's seed: in backups only.
    pub account_seed: Option<Zeroizing<[u8; 32]>>,
    /// The key-transparency signing key the account pinned.
    pub kt_signing_key: Vec<u8>,
    /// The key-transparency VRF key the account pinned.
    pub kt_vrf_key: Vec<u8>,
    /// The account's devices.
    pub devices: Vec<ArchivedDevice>,
    /// Settings (`meta` entries), by name.
    pub settings: Vec<(String, Vec<u8>)>,
    /// Contacts.
    pub contacts: Vec<ArchivedContact>,
    /// Conversations with their history.
    pub conversations: Vec<ArchivedConversation>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("username", &self.username)
            .field(
                "account_seed",
                &self.account_seed.as_ref().map(|_| "<redacted>"),
            )
            .field("devices", &self.devices.len())
            .field("contacts", &self.contacts.len())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl Archive {
    /// How many messages it holds.
    pub fn message_count(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }

    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(FORMAT_VERSION)
            .bytes(self.username.as_bytes())
            .u64(self.created_at_ms);
        match &self.account_seed {
            Some(s) => w.bool(true).raw(&s[..]),
            None => w.bool(false),
        };
        w.bytes(&self.kt_signing_key).bytes(&self.kt_vrf_key);
        w.u32(self.devices.len() as u32);
        for d in &self.devices {
            w.bytes(&d.certificate);
            opt_str(&mut w, d.name.as_deref());
            w.bool(d.removed);
        }
        w.u32(self.settings.len() as u32);
        for (k, v) in &self.settings {
            w.bytes(k.as_bytes()).bytes(v);
        }
        w.u32(self.contacts.len() as u32);
        for c in &self.contacts {
            encode_contact(&mut w, c);
        }
        w.u32(self.conversations.len() as u32);
        for c in &self.conversations {
            encode_conversation(&mut w, c);
        }
        w.into_bytes()
    }

    /// Decodes a plaintext encoding (trailing bytes refused).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let username = r.string("username", MAX_NAME)?.to_owned();
        let created_at_ms = r.u64()?;
        let account_seed = if r.bool("account seed flag")? {
            Some(Zeroizing::new(r.array::<32>()?))
        } else {
            None
        };
        let kt_signing_key = r.bytes("kt signing key", MAX_KEY)?.to_vec();
        let kt_vrf_key = r.bytes("kt vrf key", MAX_KEY)?.to_vec();
        let devices = list(&mut r, |r| {
            Ok(ArchivedDevice {
                certificate: r.bytes("certificate", MAX_KEY)?.to_vec(),
                name: read_opt_str(r, "device name", MAX_NAME)?,
                removed: r.bool("removed")?,
            })
        })?;
        let settings = list(&mut r, |r| {
            Ok((
                r.string("setting name", MAX_NAME)?.to_owned(),
                r.bytes("setting", MAX_SETTING)?.to_vec(),
            ))
        })?;
        let contacts = list(&mut r, decode_contact)?;
        let conversations = list(&mut r, |r| decode_conversation(r, version))?;
        r.finish()?;
        Ok(Self {
            username,
            created_at_ms,
            account_seed,
            kt_signing_key,
            kt_vrf_key,
            devices,
            settings,
            contacts,
            conversations,
        })
    }
}

fn opt_str(w: &mut Writer, s: Option<&str>) {
    opt_bytes(w, s.map(str::as_bytes));
}

fn opt_bytes(w: &mut Writer, b: Option<&[u8]>) {
    match b {
        Some(b) => w.bool(true).bytes(b),
        None => w.bool(false),
    };
}

fn opt_u64(w: &mut Writer, v: Option<u64>) {
    match v {
        Some(v) => w.bool(true).u64(v),
        None => w.bool(false),
    };
}

fn read_opt_str(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, DecodeError> {
    Ok(if r.bool(field)? {
        Some(r.string(field, max)?.to_owned())
    } else {
        None
    })
}

fn read_opt_bytes(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    Ok(if r.bool(field)? {
        Some(r.bytes(field, max)?.to_vec())
    } else {
        None
    })
}

fn read_opt_u64(r: &mut Reader<'_>, field: &'static str) -> Result<Option<u64>, DecodeError> {
    Ok(if r.bool(field)? { Some(r.u64()?) } else { None })
}

/// A `u32`-counted list; nothing is reserved from the count.
fn list<'a, T>(
    r: &mut Reader<'a>,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(item(r)?);
    }
    Ok(out)
}

fn encode_contact(w: &mut Writer, c: &ArchivedContact) {
    w.bytes(c.username.as_bytes())
        .bytes(&c.account_key)
        .u64(c.first_seen)
        .bool(c.verified);
    opt_bytes(w, c.verified_key.as_deref());
    w.u8(c.key_changed).bool(c.blocked);
    opt_bytes(w, c.profile_key.as_deref());
    opt_str(w, c.display_name.as_deref());
}

fn decode_contact(r: &mut Reader<'_>) -> Result<ArchivedContact, DecodeError> {
    Ok(ArchivedContact {
        username: r.string("contact", MAX_NAME)?.to_owned(),
        account_key: r.bytes("account key", MAX_KEY)?.to_vec(),
        first_seen: r.u64()?,
        verified: r.bool("verified")?,
        verified_key: read_opt_bytes(r, "verified key", MAX_KEY)?,
        key_changed: r.u8()?,
        blocked: r.bool("blocked")?,
        profile_key: read_opt_bytes(r, "profile key", MAX_KEY)?,
        display_name: read_opt_str(r, "display name", MAX_NAME)?,
    })
}

fn encode_conversation(w: &mut Writer, c: &ArchivedConversation) {
    w.bytes(&c.group_id).bytes(c.kind.as_bytes());
    opt_str(w, c.peer.as_deref());
    opt_str(w, c.name.as_deref());
    opt_u64(w, c.disappear_secs);
    w.bool(c.active).u64(c.created_at);
    w.u32(c.messages.len() as u32);
    for m in &c.messages {
        w.bytes(m.id.as_bytes())
            .bytes(m.sender.as_bytes())
            .u32(m.sender_device)
            .bool(m.outgoing)
            .bytes(m.kind.as_bytes());
        opt_str(w, m.body.as_deref());
        opt_str(w, m.reply_to.as_deref());
        opt_str(w, m.attachment.as_deref());
        w.u64(m.sent_at).u64(m.received_at);
        opt_u64(w, m.expires_at);
        w.bytes(m.status.as_bytes()).bool(m.edited).bool(m.deleted);
        opt_str(w, m.franking.as_deref());
        encode_extras(w, &m.extras);
    }
}

fn encode_extras(w: &mut Writer, x: &MessageExtras) {
    opt_str(w, x.poll.as_deref());
    opt_str(w, x.mentions.as_deref());
    w.bool(x.mentions_me).bool(x.forwarded);
    w.u32(x.reactions.len() as u32);
    for r in &x.reactions {
        w.bytes(r.member.as_bytes());
        opt_str(w, r.emoji.as_deref());
        w.u64(r.sent_at);
    }
    w.u32(x.votes.len() as u32);
    for v in &x.votes {
        w.bytes(v.member.as_bytes())
            .bytes(v.options.as_bytes())
            .u64(v.sent_at);
    }
    match &x.pin {
        Some(p) => w
            .bool(true)
            .bool(p.pinned)
            .bytes(p.member.as_bytes())
            .u64(p.sent_at),
        None => w.bool(false),
    };
}

fn decode_extras(r: &mut Reader<'_>) -> Result<MessageExtras, DecodeError> {
    Ok(MessageExtras {
        poll: read_opt_str(r, "poll", MAX_TEXT)?,
        mentions: read_opt_str(r, "mentions", MAX_TEXT)?,
        mentions_me: r.bool("mentions me")?,
        forwarded: r.bool("forwarded")?,
        reactions: list(r, |r| {
            Ok(ArchivedReaction {
                member: r.string("reacting member", MAX_NAME)?.to_owned(),
                emoji: read_opt_str(r, "emoji", crate::content::MAX_EMOJI_LEN)?,
                sent_at: r.u64()?,
            })
        })?,
        votes: list(r, |r| {
            Ok(ArchivedVote {
                member: r.string("voter", MAX_NAME)?.to_owned(),
                options: r.string("vote", MAX_TEXT)?.to_owned(),
                sent_at: r.u64()?,
            })
        })?,
        pin: if r.bool("pin flag")? {
            Some(ArchivedPin {
                pinned: r.bool("pinned")?,
                member: r.string("pinning member", MAX_NAME)?.to_owned(),
                sent_at: r.u64()?,
            })
        } else {
            None
        },
    })
}

fn decode_conversation(
    r: &mut Reader<'_>,
    version: u8,
) -> Result<ArchivedConversation, DecodeError> {
    let group_id = r.bytes("group id", MAX_NAME)?.to_vec();
    let kind = r.string("conversation kind", 16)?.to_owned();
    if kind != "direct" && kind != "group" {
        return Err(DecodeError::Invalid {
            field: "conversation kind",
            reason: "neither direct nor group",
        });
    }
    Ok(ArchivedConversation {
        group_id,
        kind,
        peer: read_opt_str(r, "peer", MAX_NAME)?,
        name: read_opt_str(r, "group name", MAX_TEXT)?,
        disappear_secs: read_opt_u64(r, "disappear timer")?,
        active: r.bool("active")?,
        created_at: r.u64()?,
        messages: list(r, |r| decode_message(r, version))?,
    })
}

fn decode_message(r: &mut Reader<'_>, version: u8) -> Result<ArchivedMessage, DecodeError> {
    Ok(ArchivedMessage {
        id: r.string("message id", MAX_NAME)?.to_owned(),
        sender: r.string("sender", MAX_NAME)?.to_owned(),
        sender_device: r.u32()?,
        outgoing: r.bool("outgoing")?,
        kind: r.string("message kind", 32)?.to_owned(),
        body: read_opt_str(r, "body", MAX_BODY)?,
        reply_to: read_opt_str(r, "reply to", MAX_NAME)?,
        attachment: read_opt_str(r, "attachment", MAX_TEXT)?,
        sent_at: r.u64()?,
        received_at: r.u64()?,
        expires_at: read_opt_u64(r, "expiry")?,
        status: r.string("status", 32)?.to_owned(),
        edited: r.bool("edited")?,
        deleted: r.bool("deleted")?,
        franking: read_opt_str(r, "franking", MAX_TEXT)?,
        extras: if version >= 2 {
            decode_extras(r)?
        } else {
            MessageExtras::default()
        },
    })
}

/// Where a backup sealed under the recovery key `key` is stored on the
/// server (decision 0035): HKDF-SHA256 with its own salt and label, so the
/// locator reveals nothing of the key or of the archive's AEAD key, and
/// has 256 bits (it cannot be guessed).
pub fn backup_locator(key: &[u8; 32]) -> [u8; 32] {
    let prk = Salt::new(HKDF_SHA256, b"hush backup locator v1").extract(key);
    let mut out = [0u8; 32];
    // 32 bytes of HKDF-SHA256 output is always within HKDF's limit.
    if let Ok(okm) = prk.expand(&[&b"hush backup locator"[..]], HKDF_SHA256) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// The AES key and the key check for `key` under `salt`.
fn derive(key: &[u8; 32], salt: &[u8; 32], purpose: Purpose) -> (Zeroizing<[u8; 32]>, [u8; 16]) {
    let prk = Salt::new(HKDF_SHA256, salt).extract(key);
    let mut aead = Zeroizing::new([0u8; 32]);
    let mut check = [0u8; 32];
    let p = [purpose.to_u8()];
    // 32 bytes of HKDF-SHA256 output is always within HKDF's limit.
    if let Ok(okm) = prk.expand(&[&b"hush archive v1 key"[..], &p[..]], HKDF_SHA256) {
        let _ = okm.fill(&mut *aead);
    }
    if let Ok(okm) = prk.expand(&[&b"hush archive v1 check"[..], &p[..]], HKDF_SHA256) {
        let _ = okm.fill(&mut check);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&check[..16]);
    (aead, out)
}

/// Seals `archive` under `key` for `purpose`.
pub fn seal(
    key: &[u8; 32],
    purpose: Purpose,
    archive: &Archive,
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    seal_plaintext(key, purpose, archive.encode(), rng)
}

/// Seals an already encoded archive (or, for tests and fuzz seeds, any
/// bytes) under `key`.
pub fn seal_plaintext(
    key: &[u8; 32],
    purpose: Purpose,
    mut body: Vec<u8>,
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let (aead, check) = derive(key, &salt, purpose);
    let mut header = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
    header.extend_from_slice(MAGIC);
    header.push(FORMAT_VERSION);
    header.push(purpose.to_u8());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&check);
    header.extend_from_slice(&((body.len() + TAG_LEN) as u64).to_be_bytes());
    // The key is fresh for every salt, so one fixed nonce is safe; a
    // 32-byte key is always valid and sealing fails only past 64 GiB.
    if let Ok(k) = UnboundKey::new(&AES_256_GCM, &*aead) {
        let _ = LessSafeKey::new(k).seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(&header[..]),
            &mut body,
        );
    }
    header.extend_from_slice(&body);
    header
}

/// Checks the header of a sealed archive without a key: the format version
/// and the length (a newer or cut-off file is refused before any key is
/// asked for).
pub fn check_header(sealed: &[u8], purpose: Purpose) -> Result<(), ArchiveError> {
    if sealed.len() < MAGIC.len() || &sealed[..MAGIC.len()] != MAGIC {
        return Err(ArchiveError::NotAnArchive);
    }
    if sealed.len() < HEADER_LEN {
        return Err(ArchiveError::Truncated {
            have: sealed.len() as u64,
            need: HEADER_LEN as u64,
        });
    }
    let version = sealed[8];
    if version > FORMAT_VERSION {
        return Err(ArchiveError::NewerVersion(version));
    }
    if version < OLDEST_FORMAT_VERSION {
        return Err(ArchiveError::NotAnArchive);
    }
    if sealed[9] != purpose.to_u8() {
        return Err(ArchiveError::WrongPurpose(match purpose {
            Purpose::Link => "link history archive",
            Purpose::Backup => "backup",
        }));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&sealed[HEADER_LEN - 8..HEADER_LEN]);
    let len = u64::from_be_bytes(len);
    if !(TAG_LEN as u64..=MAX_PLAINTEXT + TAG_LEN as u64).contains(&len) {
        return Err(ArchiveError::Corrupt);
    }
    let need = HEADER_LEN as u64 + len;
    let have = sealed.len() as u64;
    if have < need {
        return Err(ArchiveError::Truncated { have, need });
    }
    if have > need {
        return Err(ArchiveError::Trailing(have - need));
    }
    Ok(())
}

/// Opens a sealed archive with `key`: the whole archive or an error.
pub fn open(key: &[u8; 32], purpose: Purpose, sealed: &[u8]) -> Result<Archive, ArchiveError> {
    let plain = open_plaintext(key, purpose, sealed)?;
    Archive::decode(&plain).map_err(ArchiveError::Malformed)
}

/// Opens a sealed archive's plaintext without decoding it.
pub fn open_plaintext(
    key: &[u8; 32],
    purpose: Purpose,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ArchiveError> {
    check_header(sealed, purpose)?;
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&sealed[10..42]);
    let (aead, check) = derive(key, &salt, purpose);
    if verify_slices_are_equal(&check, &sealed[42..58]).is_err() {
        return Err(ArchiveError::WrongKey);
    }
    let k = UnboundKey::new(&AES_256_GCM, &*aead).map_err(|_| ArchiveError::Corrupt)?;
    let mut body = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
    let n = LessSafeKey::new(k)
        .open_in_place(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(&sealed[..HEADER_LEN]),
            &mut body,
        )
        .map_err(|_| ArchiveError::Corrupt)?
        .len();
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
mod tests;
