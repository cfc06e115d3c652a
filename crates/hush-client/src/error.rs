//! The client's error type: what happened and what the user can do.

use thiserror::Error;

/// Everything the client can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The passphrase does not open the local store. Nothing was changed.
    #[error("wrong passphrase: the local store was not opened (nothing was changed)")]
    WrongPassphrase,
    /// `keyfile.json` asks for an Argon2id cost outside the accepted bounds
    /// (someone edited it). Nothing was opened or changed.
    #[error(
        "keyfile.json asks for Argon2id with {m_kib} KiB, {t} passes, {p} lanes, outside what \
         hush accepts (at least 65536 KiB and 3 passes; at most 1 GiB, 16 passes, 8 lanes): \
         someone may have edited it to make your passphrase cheap to guess. The store was not \
         opened; restore keyfile.json from a backup"
    )]
    KeyfileCost {
        /// Memory asked for, KiB.
        m_kib: u32,
        /// Passes asked for.
        t: u32,
        /// Lanes asked for.
        p: u32,
    },
    /// No account in this data directory.
    #[error("no account in {0}: run `hush register` first")]
    NotRegistered(String),
    /// An account exists already in this data directory.
    #[error("an account is already registered in {0}")]
    AlreadyRegistered(String),
    /// The local store failed.
    #[error("local store: {0}")]
    Store(String),
    /// A file operation failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// The server could not be reached or spoke nonsense.
    #[error("network: {0}")]
    Network(String),
    /// The server's certificate does not match the pinned fingerprint.
    #[error(
        "the server's TLS certificate does not match the pinned fingerprint {expected} ({actual}). \
         If the operator replaced it, check the new fingerprint with them out of band"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// What the server presented.
        actual: String,
    },
    /// Plain `http://` to a server that is not on loopback, not allowed.
    #[error(
        "refusing plain http:// to {0}: the device's token and everything sent would cross \
         the network unencrypted. Use https://, or pass --insecure-http to allow plain HTTP \
         to a server that is not on this machine (127.0.0.0/8, ::1 and localhost need no flag)"
    )]
    PlainHttp(String),
    /// The server refused the request.
    #[error("server refused: {0}")]
    Server(hush_wire::ApiError),
    /// A protocol-level failure (MLS, codec, identity).
    #[error("protocol: {0}")]
    Proto(#[from] hush_proto::ProtoError),
    /// The user asked for something impossible.
    #[error("{0}")]
    InvalidInput(String),
    /// No such contact, group or message.
    #[error("{0}")]
    NotFound(String),
    /// A contact's identity key changed.
    #[error(
        "SECURITY: the identity key of {0} has changed. Their safety number is different: \
         verify it with `hush verify {0}` before trusting new messages"
    )]
    KeyChanged(String),
    /// Key transparency refused what the server showed: nothing was sent.
    #[error(
        "SECURITY (key transparency): {0}. Nothing was sent; the server may be trying to \
         add a key that is not theirs"
    )]
    KeyTransparency(#[from] hush_proto::kt::KtError),
    /// A downloaded attachment does not match its digest.
    #[error("the attachment was altered: its digest does not match; nothing was written")]
    AttachmentTampered,
    /// A backup or history archive was refused (decision 0026).
    #[error("{0}; nothing was written")]
    Archive(#[from] hush_proto::archive::ArchiveError),
}

impl From<rusqlite::Error> for ClientError {
    fn from(e: rusqlite::Error) -> Self {
        ClientError::Store(e.to_string())
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Network(e.to_string())
    }
}

impl ClientError {
    /// The server's error code, when the server refused.
    pub fn code(&self) -> Option<hush_wire::ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

impl From<hush_proto::IdentityError> for ClientError {
    fn from(e: hush_proto::IdentityError) -> Self {
        ClientError::Proto(hush_proto::ProtoError::Identity(e))
    }
}
