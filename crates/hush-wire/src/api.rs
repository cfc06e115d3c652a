//! JSON bodies of the HTTP API (`/v1/...`). `docs/protocol.md` describes the
//! endpoints; `/openapi.json` on a running server is the machine-readable form.

use serde::{Deserialize, Serialize};

use crate::{Bytes, DeviceAddress};

/// Header carrying a device's bearer token: `Authorization: Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// `POST /v1/accounts`: register a username with its account key and first device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The username to register.
    pub username: String,
    /// The Ed25519 account public key (32 bytes).
    pub account_key: Bytes,
    /// The first device.
    pub device: NewDeviceBody,
}

/// A device being registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceBody {
    /// The device id, unique within the account (the first device is usually 1).
    pub device_id: u32,
    /// The device certificate, signed by the account key, naming this
    /// username and device id.
    pub certificate: Bytes,
}

/// The answer to a registration: the device's bearer token. The server keeps
/// only its hash; a lost token cannot be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The bearer token for `Authorization: Bearer`.
    pub token: String,
}

/// `POST /v1/accounts/{username}/devices`: add a device, authorised by the
/// account key. The signature covers a fresh nonce (the server refuses a
/// nonce it has seen) and the new device's certificate, so neither a
/// captured request nor its signature on another certificate is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDeviceRequest {
    /// The new device.
    pub device: NewDeviceBody,
    /// Milliseconds since the Unix epoch; must be within five minutes of the
    /// server's clock.
    pub timestamp_ms: u64,
    /// Fresh random bytes ([`DEVICE_REQUEST_NONCE_LEN`]), never used before.
    pub nonce: Bytes,
    /// Account-key signature over [`device_request_message`] for action
    /// `add`, with the SHA-256 of `device.certificate`.
    pub signature: Bytes,
    /// The SHA-256 of the new device's first bearer token (32 bytes), when
    /// the new device chose it (linking, decision 0023: the token derives
    /// from the link code, so the new device can sign in without the
    /// server handing it anything). The answer's `token` is then empty.
    /// Without it, the server makes the token and returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<Bytes>,
}

/// `DELETE /v1/accounts/{username}/devices/{id}` body: remove a device,
/// authorised by the account key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveDeviceRequest {
    /// Milliseconds since the Unix epoch; within five minutes of the server.
    pub timestamp_ms: u64,
    /// Fresh random bytes ([`DEVICE_REQUEST_NONCE_LEN`]), never used before.
    pub nonce: Bytes,
    /// Account-key signature over [`device_request_message`] for action
    /// `remove`, with the SHA-256 of the removed device's certificate as the
    /// directory lists it.
    pub signature: Bytes,
}

/// Length of the nonce of a signed device request.
pub const DEVICE_REQUEST_NONCE_LEN: usize = 16;

/// The bytes an account key signs to add or remove a device (version 2:
/// version 1 had neither nonce nor certificate and is refused).
pub fn device_request_message(
    action: &str,
    username: &str,
    device_id: u32,
    timestamp_ms: u64,
    nonce: &[u8],
    certificate_sha256: &[u8; 32],
) -> Vec<u8> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "hush device request v2\n{action}\n{username}\n{device_id}\n{timestamp_ms}\n{}\n{}",
        hex(nonce),
        hex(certificate_sha256)
    )
    .into_bytes()
}

/// `POST /v1/token/rotate`: the device's new bearer token; the one that
/// authenticated this request no longer does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateTokenResponse {
    /// The new bearer token for `Authorization: Bearer`.
    pub token: String,
}

/// A device in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Its id within the account.
    pub device_id: u32,
    /// Its certificate.
    pub certificate: Bytes,
}

/// `GET /v1/accounts/{username}`: the directory entry of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountResponse {
    /// The username.
    pub username: String,
    /// The Ed25519 account key.
    pub account_key: Bytes,
    /// Every device.
    pub devices: Vec<DeviceEntry>,
}

/// `PUT /v1/key-packages`: upload KeyPackages of the calling device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackagesRequest {
    /// The MLS ciphersuite number (1, or 77 = 0x004D for X-Wing).
    pub suite: u16,
    /// One-time KeyPackages (RFC 9420 `MLSMessage`).
    #[serde(default)]
    pub key_packages: Vec<Bytes>,
    /// A last-resort KeyPackage, replacing the previous one for this suite.
    #[serde(default)]
    pub last_resort: Option<Bytes>,
}

/// `GET /v1/key-packages/count`: how many one-time KeyPackages remain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageCountResponse {
    /// Per suite.
    pub counts: Vec<SuiteCount>,
}

/// A count for one suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteCount {
    /// The MLS ciphersuite number.
    pub suite: u16,
    /// One-time KeyPackages left.
    pub count: u64,
}

/// `POST /v1/accounts/{username}/key-packages/claim?suite=N`: one KeyPackage
/// per device of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// One per device that had one.
    pub key_packages: Vec<ClaimedKeyPackage>,
}

/// A claimed KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    /// The device it belongs to.
    pub device_id: u32,
    /// The KeyPackage.
    pub key_package: Bytes,
}

/// `POST /v1/messages`: one ciphertext for a list of devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Every recipient device.
    pub recipients: Vec<DeviceAddress>,
    /// The MLS message.
    pub payload: Bytes,
    /// Typing or presence: delivered to connected devices only, never stored.
    #[serde(default)]
    pub ephemeral: bool,
    /// For a commit: the group, the epoch it applies to and the epoch's
    /// commit token. Only a commit whose token matches the group's current
    /// one wins: for the current epoch, or an earlier one after the members
    /// refused the commits since (decision 0032); a later one for that
    /// epoch gets `epoch_conflict`, any other `forbidden`. A commit may have no recipients (the
    /// committer is alone in the group): it only moves the group's epoch.
    #[serde(default)]
    pub commit: Option<CommitClaim>,
    /// The franking commitment of an application message (32 bytes), which
    /// the server binds to sender, recipient and time.
    #[serde(default)]
    pub franking_commitment: Option<Bytes>,
}

/// The group and epoch of a commit, with the proof that its sender is a
/// member of that epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitClaim {
    /// The opaque MLS group id.
    pub group_id: Bytes,
    /// The epoch the commit applies to.
    pub epoch: u64,
    /// The epoch's commit token (32 bytes, from the MLS exporter; see
    /// `hush_proto::commit_token`).
    pub token: Bytes,
    /// The hash of the next epoch's commit token (32 bytes): the token the
    /// commit after this one must carry.
    pub next_token_hash: Bytes,
}

/// The answer to a send: everything is durable in every recipient's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    /// When the server accepted it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// How many devices it was queued for (or, for ephemeral sends, delivered to).
    pub delivered_to: usize,
    /// Recipients that do not exist (any more): the send went to the others.
    /// A client removes such devices from its conversations once the key
    /// directory confirms they are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<DeviceAddress>,
}

/// `POST /v1/attachments`: start an upload of an encrypted blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAttachmentRequest {
    /// The blob's full size in bytes.
    pub size: u64,
}

/// The new blob's id; upload with `PATCH /v1/attachments/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAttachmentResponse {
    /// The blob id.
    pub id: String,
}

/// `HEAD`/`GET /v1/attachments/{id}/status`: upload progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentStatus {
    /// Bytes received so far.
    pub offset: u64,
    /// The announced size.
    pub size: u64,
    /// Whether the upload is complete and the blob downloadable.
    pub complete: bool,
}

/// `POST /v1/reports`: report a received message with its franking proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The username the message came from.
    pub sender: String,
    /// The message content exactly as it was inside the ciphertext.
    pub content: Bytes,
    /// The franking key that came with it (32 bytes).
    pub franking_key: Bytes,
    /// The franking commitment from the message (32 bytes).
    pub commitment: Bytes,
    /// The server's relay tag delivered with the envelope (32 bytes).
    pub relay_tag: Bytes,
    /// When the server relayed it (from the envelope).
    pub received_at_ms: u64,
    /// Why it is reported (at most 1000 bytes).
    #[serde(default)]
    pub reason: String,
}

/// The filed report's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportResponse {
    /// The report id.
    pub id: i64,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` when the server can serve.
    pub status: String,
}

/// `PUT /v1/links/{link_id}`: files an invite link (decision 0033). The
/// path's id is the hex of a hash of the link's secret; the server never
/// sees the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkRequest {
    /// The preview sealed under a key from the link's secret.
    pub blob: Bytes,
    /// The token (32 bytes) that later revokes the link and reads its
    /// requests; the server keeps only its hash.
    pub manage_token: Bytes,
    /// When the link stops working, ms since the Unix epoch; 0 for never.
    #[serde(default)]
    pub expires_at_ms: u64,
    /// How many requests it takes; 0 for no limit.
    #[serde(default)]
    pub max_uses: u32,
    /// Whether an admin approves each request.
    #[serde(default)]
    pub approve: bool,
}

/// `GET /v1/links/{link_id}`: the sealed preview of a working link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkResponse {
    /// The sealed preview.
    pub blob: Bytes,
    /// Whether an admin approves each request.
    pub approve: bool,
    /// When the link stops working; 0 for never.
    pub expires_at_ms: u64,
}

/// `POST /v1/links/{link_id}/requests`: a join request sealed under a key
/// from the link's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinLinkRequest {
    /// The sealed request.
    pub sealed: Bytes,
}

/// `POST /v1/links/{link_id}/manage`: what a holder of the link's
/// management token asks of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManageLinkRequest {
    /// The management token given when the link was filed.
    pub manage_token: Bytes,
    /// What to do.
    pub action: LinkAction,
    /// For [`LinkAction::Delete`]: the request ids to delete.
    #[serde(default)]
    pub ids: Vec<i64>,
}

/// What [`ManageLinkRequest`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAction {
    /// Lists the link's pending requests.
    List,
    /// Deletes the requests named in `ids` (settled).
    Delete,
    /// Revokes the link: no more previews or requests.
    Revoke,
}

/// One pending join request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJoin {
    /// Its number.
    pub id: i64,
    /// The sealed request.
    pub sealed: Bytes,
}

/// The answer to [`ManageLinkRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManageLinkResponse {
    /// For [`LinkAction::List`]: the pending requests, oldest first.
    #[serde(default)]
    pub requests: Vec<PendingJoin>,
}
/// The header of `PUT /v1/backup`: the backup's locator, 64 hexadecimal
/// characters (decision 0035).
pub const BACKUP_LOCATOR: &str = "backup-locator";

/// `GET /v1/backup`: what the server holds of the account's backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// The sealed backup's size in bytes.
    pub size: u64,
    /// When it was last stored (ms since the Unix epoch).
    pub updated_at_ms: u64,
}

/// The optional header of `POST /v1/attachments`: SHA-256 of a secret
/// (64 hexadecimal characters) whose holder may delete the blob before it
/// expires (decision 0035). It names nobody; without it the blob only
/// expires.
pub const DELETE_TOKEN_HASH: &str = "delete-token-hash";

/// The header of `DELETE /v1/attachments/{id}`: that secret, 64
/// hexadecimal characters.
pub const DELETE_TOKEN: &str = "delete-token";

/// `PUT /v1/channels/{channel_id}`: files a channel, or replaces its
/// descriptor (decision 0038). The path's id is the hex of the channel id
/// (a one-way function of the link's secret). A new id is filed with any
/// `post_token`; an existing one only takes the token it was filed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutChannelRequest {
    /// The descriptor sealed under the link's descriptor key.
    pub descriptor: Bytes,
    /// The token (32 bytes) that posts and replaces the descriptor; the
    /// server keeps only its hash.
    pub post_token: Bytes,
}

/// `GET /v1/channels/{channel_id}`: the sealed descriptor and the newest
/// post's number (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelResponse {
    /// The sealed descriptor.
    pub descriptor: Bytes,
    /// The newest post's number.
    pub latest: u64,
}

/// `POST /v1/channels/{channel_id}/posts`: a sealed post, by a holder of
/// the channel's post token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPostRequest {
    /// The post token the channel was filed with.
    pub post_token: Bytes,
    /// The sealed post (`hush_proto::channel::Post::seal`).
    pub post: Bytes,
}

/// The answer to [`ChannelPostRequest`]: the number the server gave the post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPostResponse {
    /// Its number: per channel, from 1, in the order the server took posts.
    pub number: u64,
}

/// One stored post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPost {
    /// Its number.
    pub number: u64,
    /// The sealed post.
    pub post: Bytes,
    /// When the server took it (ms since the Unix epoch).
    pub received_at_ms: u64,
}

/// `GET /v1/channels/{channel_id}/posts?after=N&limit=L&wait_ms=W`: the posts
/// numbered above `after`, oldest first (at most `limit`, at most 256). With
/// `wait_ms` (at most 30,000) and nothing newer yet, the server holds the
/// request until a post arrives or the wait ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPostsResponse {
    /// The posts, oldest first.
    pub posts: Vec<ChannelPost>,
    /// The newest post's number.
    pub latest: u64,
}
