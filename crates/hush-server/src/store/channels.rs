//! Channels (decision 0038): what the server keeps of them, and the storage
//! calls both backends implement.
//!
//! A channel is filed under an id derived from a secret the server never
//! sees. It keeps the descriptor sealed under a key from that secret, the
//! SHA-256 of the post token, the newest post's number and when the channel
//! was filed; and each post once, sealed, with its number and when it
//! arrived. Nothing names the channel's owner, who posts, or who reads: no
//! table records a subscriber or a fetch.

use async_trait::async_trait;
use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::StoreResult;

/// Posts a channel keeps: filing one more forgets the oldest.
pub const MAX_KEPT_POSTS: u64 = 4096;

/// A channel as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// The sealed descriptor.
    pub descriptor: Vec<u8>,
    /// The newest post's number (0 before the first).
    pub latest: u64,
}

/// One stored post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPost {
    /// Its number in the channel, from 1.
    pub number: u64,
    /// The sealed post.
    pub post: Vec<u8>,
    /// When the server took it, ms since the Unix epoch.
    pub received_at_ms: u64,
}

/// What [`ChannelStore::put_channel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPut {
    /// A new channel was filed.
    Created,
    /// The channel existed and the token matched: its descriptor replaced.
    Replaced,
    /// The channel existed and the token did not match: nothing changed.
    Forbidden,
}

/// What [`ChannelStore::add_channel_post`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostFiled {
    /// Stored with this number.
    Filed(u64),
    /// No such channel: nothing stored.
    Unknown,
    /// The token does not match: nothing stored.
    Forbidden,
}

/// A page of a channel's posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPage {
    /// The newest post's number when the page was read.
    pub latest: u64,
    /// Posts numbered above the `after` asked for and at most `latest`,
    /// oldest first.
    pub posts: Vec<StoredPost>,
}

/// Storage of channels; part of every [`super::Store`].
#[async_trait]
pub trait ChannelStore {
    /// Files a channel under `channel_id` with this descriptor and post
    /// token hash; on an id filed already, replaces its descriptor only if
    /// `token_hash` is the one it was filed with (the token stays).
    async fn put_channel(
        &self,
        channel_id: [u8; 32],
        descriptor: Vec<u8>,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<ChannelPut>;

    /// The channel filed under `channel_id`.
    async fn channel(&self, channel_id: [u8; 32]) -> StoreResult<Option<ChannelRecord>>;

    /// Stores a post if `token_hash` is the channel's, numbering it after
    /// the newest (under the channel row's lock, so concurrent posts get
    /// distinct, consecutive numbers) and forgetting posts beyond the newest
    /// [`MAX_KEPT_POSTS`].
    async fn add_channel_post(
        &self,
        channel_id: [u8; 32],
        token_hash: [u8; 32],
        post: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<PostFiled>;

    /// Up to `limit` posts numbered above `after`, oldest first; `None` for
    /// an unknown channel.
    async fn channel_posts(
        &self,
        channel_id: [u8; 32],
        after: u64,
        limit: u32,
    ) -> StoreResult<Option<ChannelPage>>;

    /// Forgets posts taken before `before_ms` (the retention period); the
    /// channels and their numbering stay. Returns how many posts.
    async fn expire_channel_posts(&self, before_ms: u64) -> StoreResult<u64>;
}

/// Whether a stored token hash is `given` (in constant time).
pub(crate) fn token_matches(stored: &[u8], given: &[u8; 32]) -> bool {
    verify_slices_are_equal(stored, given).is_ok()
}

/// Forgets the posts of `$1` beyond the newest [`MAX_KEPT_POSTS`], `$2`
/// being the newest number (both backends).
pub(crate) const TRIM_SQL: &str =
    "DELETE FROM channel_posts WHERE channel_id = $1 AND number <= $2";

/// The oldest number a channel keeps when its newest is `latest`: posts at
/// or below the returned number go.
pub(crate) fn trim_below(latest: u64) -> u64 {
    latest.saturating_sub(MAX_KEPT_POSTS)
}

/// The statement of [`ChannelStore::expire_channel_posts`], both backends.
pub(crate) const EXPIRE_SQL: &str = "DELETE FROM channel_posts WHERE received_at_ms < $1";

/// The page query, both backends: `$1` channel, `$2` after, `$3` latest,
/// `$4` limit.
pub(crate) const PAGE_SQL: &str = "SELECT number, post, received_at_ms FROM channel_posts \
     WHERE channel_id = $1 AND number > $2 AND number <= $3 ORDER BY number LIMIT $4";

/// Schema version 7 on SQLite: channels and their posts.
pub const SQLITE_SCHEMA_V7: &str = r#"
CREATE TABLE channels (
    channel_id      BLOB PRIMARY KEY,
    descriptor      BLOB NOT NULL,
    post_token_hash BLOB NOT NULL,
    latest          INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE channel_posts (
    channel_id     BLOB NOT NULL REFERENCES channels(channel_id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    post           BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (channel_id, number)
) WITHOUT ROWID;
CREATE INDEX channel_posts_by_time ON channel_posts(received_at_ms);
"#;

/// Schema version 7 on PostgreSQL.
pub const POSTGRES_SCHEMA_V7: &str = r#"
CREATE TABLE channels (
    channel_id      BYTEA PRIMARY KEY,
    descriptor      BYTEA NOT NULL,
    post_token_hash BYTEA NOT NULL,
    latest          BIGINT NOT NULL DEFAULT 0,
    created_at_ms   BIGINT NOT NULL
);
CREATE TABLE channel_posts (
    channel_id     BYTEA NOT NULL REFERENCES channels(channel_id) ON DELETE CASCADE,
    number         BIGINT NOT NULL,
    post           BYTEA NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (channel_id, number)
);
CREATE INDEX channel_posts_by_time ON channel_posts(received_at_ms);
"#;
