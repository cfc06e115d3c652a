//! Key-transparency bodies (`/v1/kt/...`): the server's pinned keys, signed
//! epoch roots, and akd proofs (protobuf bytes, base64 in JSON). The checks
//! live in `hush-proto::kt`; these are only the envelopes.

use serde::{Deserialize, Serialize};

use crate::Bytes;

/// Most roots one `GET /v1/kt/roots` answers with.
pub const MAX_ROOTS_PER_REQUEST: u64 = 1000;
/// Most epochs one `GET /v1/kt/audit` proof spans.
pub const MAX_AUDIT_SPAN: u64 = 100;

/// `GET /v1/kt/config`: what a client pins on first contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtConfigResponse {
    /// The Ed25519 key that signs epoch roots (32 bytes).
    pub signing_key: Bytes,
    /// The directory's VRF public key.
    pub vrf_public_key: Bytes,
}

/// An epoch root and the server's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtRoot {
    /// The epoch.
    pub epoch: u64,
    /// akd's root hash (32 bytes).
    pub root_hash: Bytes,
    /// Ed25519 signature (64 bytes) over "hush kt root v1" || epoch (u64 BE) || root hash.
    pub signature: Bytes,
}

/// `GET /v1/kt/roots`: signed roots, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtRootsResponse {
    /// The newest epoch the server has published.
    pub latest_epoch: u64,
    /// The roots asked for (at most [`MAX_ROOTS_PER_REQUEST`]).
    pub roots: Vec<KtRoot>,
}

/// `GET /v1/kt/lookup/{username}` and `GET /v1/kt/history/{username}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtProofResponse {
    /// The root the proof is against (the newest epoch).
    pub root: KtRoot,
    /// akd `LookupProof` or `HistoryProof`, protobuf-encoded.
    pub proof: Bytes,
}

/// `GET /v1/kt/audit?from=A&to=B`: proof that the directory only grew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtAuditResponse {
    /// Older epoch.
    pub from: u64,
    /// Newer epoch.
    pub to: u64,
    /// akd `AppendOnlyProof`, protobuf-encoded.
    pub proof: Bytes,
}

/// Most usernames one `POST /v1/kt/lookup` may name (a group of 1000
/// accounts in one request).
pub const MAX_BATCH_LOOKUP: usize = 1000;

/// `POST /v1/kt/lookup`: the directory entries and lookup proofs of many
/// accounts at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KtBatchLookupRequest {
    /// The accounts, each at most once, at most [`MAX_BATCH_LOOKUP`]. None
    /// at all asks for the newest signed root only.
    pub usernames: Vec<String>,
}

/// The answer to `POST /v1/kt/lookup`: one entry per username asked for, in
/// the order asked, every proof against the one `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtBatchLookupResponse {
    /// The root every proof is against (the newest epoch).
    pub root: KtRoot,
    /// One per username asked for, in the same order.
    pub entries: Vec<KtBatchEntry>,
}

impl KtBatchLookupResponse {
    /// Decodes an answer from its JSON body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// One account of a [`KtBatchLookupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtBatchEntry {
    /// The username.
    pub username: String,
    /// Its directory entry (as `GET /v1/accounts/{username}` gives it), or
    /// none when the server has no such account.
    pub account: Option<crate::api::AccountResponse>,
    /// Its akd `LookupProof` against `root`, protobuf-encoded, or none when
    /// the username is not in the key directory.
    pub proof: Option<Bytes>,
}
