//! `hush-proto` is the sans-I/O core of Hush: it turns plaintext into MLS
//! (RFC 9420) ciphertext and back, for 1:1 chats and groups.
//!
//! It does no I/O: no network, no files, no clock, no threads of its own. Time
//! comes in as a [`Timestamp`] argument, randomness as an `RngCore` argument
//! (where mls-rs allows; its own key generation draws from aws-lc), and state
//! goes out as [`StateChange`]s the caller persists.
//!
//! How data flows:
//!
//! 1. An account has an Ed25519 [`AccountKey`]; each of its devices has a
//!    [`DeviceSigningKey`] and a [`DeviceCertificate`] signed by the account key.
//! 2. A [`Device`] publishes [`KeyPackage`]s for both [`Suite`]s.
//! 3. [`Device::create_conversation`] makes an MLS group with every device of
//!    every member; invited devices [`Device::join`] from the Welcome.
//! 4. [`Conversation::encrypt`] seals a [`Content`] with a franking commitment;
//!    [`Conversation::process`] opens messages, commits and proposals.
//! 5. After each call, [`Device::take_changes`] hands the state writes to the
//!    caller, which stores them and can later [`Device::restore`].
//!
//! ```
//! use hush_proto::*;
//! # fn main() -> Result<(), ProtoError> {
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! # use rand_core::SeedableRng;
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let device = |name: &str, rng: &mut rand_chacha::ChaCha20Rng| -> Result<Device, ProtoError> {
//!     let account = AccountKey::generate(rng)?;
//!     let key = DeviceSigningKey::generate(rng)?;
//!     let user = Username::new(name)?;
//!     let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, now.as_millis())?;
//!     Device::new(cert, &key)
//! };
//! let alice = device("alice", &mut rng)?;
//! let bob = device("bob", &mut rng)?;
//!
//! let bob_kp = bob.generate_key_package(Suite::Hybrid, false, now)?;
//! let (mut chat, commit) =
//!     alice.create_conversation(Suite::Hybrid, &ConversationInfo::direct(), &[bob_kp.message], now)?;
//! let welcome = commit.and_then(|c| c.welcome).expect("bob was invited");
//! let mut bob_chat = bob.join(&welcome, now)?;
//!
//! let hello = Content {
//!     id: MessageId::generate(&mut rng),
//!     sent_at_ms: now.as_millis(),
//!     expire_timer_secs: None,
//!     kt_checkpoint: None,
//!     meta: Default::default(),
//!     body: Body::Text { text: "hi bob".into(), reply_to: None },
//! };
//! let out = chat.encrypt(&hello, &mut rng)?;
//! match bob_chat.process(&out.message, now)? {
//!     Incoming::Message(m) => assert_eq!(m.content, hello),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod archive;
pub mod big_group;
pub mod channel;
mod chunked;
pub mod codec;
pub mod commit_blob;
pub mod commit_token;
pub mod content;
pub mod conversation;
pub mod crypto;
pub mod device;
pub mod device_link;
pub mod ephemeral;
pub mod error;
pub mod framing;
pub mod franking;
pub mod identity;
pub mod invite;
pub mod kt;
pub mod kt_batch;
mod link_seal;
pub mod memo;
pub mod migration;
mod multi_seal;
pub mod receipt;
pub mod safety;
pub mod sealed;
pub mod self_sync;
pub mod storage;
pub mod xwing;

pub use big_group::{MAX_GROUP_DEVICES, TreeBlob, TreeRef, TreeSlot};
pub use codec::DecodeError;
pub use content::{
    AttachmentPointer, Body, ChannelGrant, Content, MessageId, PostMeta, ReceiptKind,
};
pub use conversation::{
    Conversation, ConversationInfo, ConversationKind, GroupPolicy, Incoming, MembershipChange,
    MessageKind, Outgoing, PendingCommit, Received, is_application_message, peek_message,
};
pub use device::{Device, KeyPackage, KeyPackageInfo, Suite, inspect_key_package};
pub use ephemeral::{EphemeralHeader, ephemeral_header};
pub use error::ProtoError;
pub use framing::{Framing, read_framing};
pub use franking::{Commitment, FrankingError, FrankingKey, FrankingOpening, verify_opening};
pub use identity::{
    AccountKey, AccountPublicKey, DeviceCertificate, DeviceId, DeviceSigningKey,
    HushIdentityProvider, IdentityError, Username,
};
pub use invite::{GroupLinks, InviteLink, InviteSecret, JoinRequest, LinkPreview};
pub use safety::SafetyNumber;
pub use storage::{StateChange, StateKey};

/// A point in time, in milliseconds since the Unix epoch, supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub(crate) fn mls(self) -> mls_rs::time::MlsTime {
        mls_rs::time::MlsTime::from_duration_since_epoch(std::time::Duration::from_millis(self.0))
    }
}
