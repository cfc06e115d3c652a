//! `hush-client` is the library an app embeds to be one Hush account on one
//! device. Front ends (the `hush` CLI and terminal UI today) call its API:
//! commands in, [`Event`]s out.
//!
//! How data flows:
//!
//! - [`Client::register`] makes the account key and device, registers them,
//!   and creates the encrypted local store ([`local`]: SQLCipher under a key
//!   wrapped by Argon2id(passphrase)); [`Client::open`] reopens it.
//! - Sending ([`Client::send_text`], files, edits, receipts) encrypts with
//!   `hush-proto`, stores the new MLS state, the message and the ciphertext in
//!   one transaction (the outbox), then posts it; a send that fails on the
//!   network stays in the outbox and goes out with the next command.
//! - [`Client::sync`] drains the device's queue over the WebSocket; each
//!   message is opened, and its effect, the MLS state and the queue position
//!   are stored in one transaction before the server is told to delete it.
//! - An account's devices stay the same (decision 0025): reads, blocks,
//!   verification marks, the profile key, presence and device names go to
//!   the other devices as self-sync frames (`self_sync`), and new devices
//!   the key directory vouches for join shared conversations
//!   ([`new_devices`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hush_client::ClientError> {
//! use hush_client::{Client, Target};
//! let dir = std::path::Path::new("/tmp/alice");
//! let mut alice = Client::register(dir, "passphrase", "http://127.0.0.1:7780", "alice", None).await?;
//! alice.send_text(&Target::User("bob".into()), "hi bob").await?;
//! for event in alice.sync(std::time::Duration::from_secs(2), |_| {}).await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod admins;
pub mod archive;
mod archive_extras;
pub mod attachment;
pub mod backup;
mod batch;
mod big_groups;
mod channel_admins;
mod channel_files;
mod channel_sync;
pub mod channel_watch;
pub mod channels;
pub mod client;
mod commit_blobs;
mod convs;
pub mod devices;
mod directory;
pub mod error;
mod forward;
pub mod history;
pub mod invites;
pub mod kt;
pub mod link;
pub mod linking;
pub mod local;
mod mentions;
mod messages;
pub mod model;
pub mod monitor;
pub mod mute;
pub mod new_devices;
pub mod pages;
mod pins;
mod polls;
mod profile;
mod reactions;
mod readd;
mod receipts;
mod schema;
mod search;
mod self_sync;
pub mod server_backup;
mod suite_move;
mod sync;
mod token;
pub mod transport;
mod trust;

pub use archive::HistoryScope;
pub use attachment::OpenedFile;
pub use backup::{BackupReport, BackupTarget, RecoveryKey, RestoreRequest};
pub use channels::{ChannelPostView, ChannelView};
pub use client::Client;
pub use devices::{DeviceView, MAX_LINKED_DEVICES};
pub use error::ClientError;
pub use history::Progress;
pub use kt::{AuditFailure, KtStatus, audit_server};
pub use linking::LinkRequest;
pub use model::{
    ContactView, ConversationView, Event, MessageView, PollOptionView, PollView, PresenceMode,
    Quoted, ReactionView, ReceiptState, Target,
};
pub use pages::HistoryPage;
pub use profile::{AVATAR_TYPES, MAX_AVATAR_BYTES, Profile, avatar_media_type, check_avatar};
pub use transport::{ConnectOptions, probe_fingerprint};
