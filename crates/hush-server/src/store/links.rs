//! Invite links (decision 0033): what the server keeps of them, and the
//! storage calls both backends implement.
//!
//! A link is filed under a hash of its secret, which the server never sees;
//! it keeps the preview sealed under a key from that secret, the hash of the
//! management token, the expiry, the use limit and count, the approval and
//! revoked flags, and a mailbox of sealed join requests. Nothing names the
//! group, its members or who made the link.

use async_trait::async_trait;

use super::StoreResult;

/// Most join requests a link's mailbox holds before it refuses more.
pub const MAX_PENDING_REQUESTS: u64 = 256;

/// A link to file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// The preview, sealed by the client.
    pub blob: Vec<u8>,
    /// SHA-256 of the management token.
    pub manage_hash: [u8; 32],
    /// When it stops working, ms since the Unix epoch; 0 for never.
    pub expires_at_ms: u64,
    /// How many requests it takes; 0 for no limit.
    pub max_uses: u32,
    /// Whether an admin approves each request.
    pub approve: bool,
    /// When it was filed.
    pub now_ms: u64,
}

/// A filed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// What was filed.
    pub link: NewLink,
    /// Requests it took so far.
    pub uses: u32,
    /// Revoked by a holder of the management token.
    pub revoked: bool,
}

impl LinkRecord {
    /// Whether it takes requests at `now_ms`: not revoked, not expired, not
    /// used up.
    pub fn is_open(&self, now_ms: u64) -> bool {
        !self.revoked
            && (self.link.expires_at_ms == 0 || now_ms < self.link.expires_at_ms)
            && (self.link.max_uses == 0 || self.uses < self.link.max_uses)
    }
}

/// What [`LinkStore::file_join_request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinFiled {
    /// Filed with this number; the link's use count went up by one.
    Filed(i64),
    /// No such link.
    Unknown,
    /// The link is revoked, expired or used up: nothing filed.
    Closed,
    /// The mailbox holds [`MAX_PENDING_REQUESTS`] already: nothing filed.
    Full,
}

/// Storage of invite links; part of every [`super::Store`].
#[async_trait]
pub trait LinkStore {
    /// Files a link under `link_id`; false (and nothing written) if the id
    /// is taken.
    async fn create_link(&self, link_id: [u8; 32], link: NewLink) -> StoreResult<bool>;

    /// The link filed under `link_id`.
    async fn link(&self, link_id: [u8; 32]) -> StoreResult<Option<LinkRecord>>;

    /// Files a sealed join request if the link is open at `now_ms` (see
    /// [`LinkRecord::is_open`]) and its mailbox has room, counting one use;
    /// atomic, so concurrent requests never exceed the use limit.
    async fn file_join_request(
        &self,
        link_id: [u8; 32],
        sealed: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<JoinFiled>;

    /// The link's pending requests, oldest first.
    async fn join_requests(&self, link_id: [u8; 32]) -> StoreResult<Vec<(i64, Vec<u8>)>>;

    /// Deletes these requests of the link; returns how many.
    async fn delete_join_requests(&self, link_id: [u8; 32], ids: Vec<i64>) -> StoreResult<u64>;

    /// Revokes the link for good and deletes its pending requests.
    async fn revoke_link(&self, link_id: [u8; 32]) -> StoreResult<()>;

    /// Forgets what outlived the retention period: links that expired
    /// before `before_ms`, revoked links made before it, and requests filed
    /// before it. Returns how many links.
    async fn expire_links(&self, before_ms: u64) -> StoreResult<u64>;
}

/// The statements of [`LinkStore::expire_links`], both backends; `$1` is
/// the cut-off.
pub(crate) const EXPIRE_SQL: [&str; 2] = [
    "DELETE FROM invite_requests WHERE received_at_ms < $1",
    "DELETE FROM invite_links WHERE (expires_at_ms <> 0 AND expires_at_ms < $1) \
     OR (revoked AND created_at_ms < $1)",
];

/// Schema version 5 on SQLite: invite links and their mailboxes.
pub const SQLITE_SCHEMA_V5: &str = r#"
CREATE TABLE invite_links (
    link_id       BLOB PRIMARY KEY,
    blob          BLOB NOT NULL,
    manage_hash   BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    max_uses      INTEGER NOT NULL,
    uses          INTEGER NOT NULL DEFAULT 0,
    approve       INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE invite_requests (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id        BLOB NOT NULL REFERENCES invite_links(link_id) ON DELETE CASCADE,
    sealed         BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE INDEX invite_requests_by_link ON invite_requests(link_id, id);
"#;

/// Schema version 5 on PostgreSQL.
pub const POSTGRES_SCHEMA_V5: &str = r#"
CREATE TABLE invite_links (
    link_id       BYTEA PRIMARY KEY,
    blob          BYTEA NOT NULL,
    manage_hash   BYTEA NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    max_uses      BIGINT NOT NULL,
    uses          BIGINT NOT NULL DEFAULT 0,
    approve       BOOLEAN NOT NULL,
    revoked       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE invite_requests (
    id             BIGSERIAL PRIMARY KEY,
    link_id        BYTEA NOT NULL REFERENCES invite_links(link_id) ON DELETE CASCADE,
    sealed         BYTEA NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX invite_requests_by_link ON invite_requests(link_id, id);
"#;
