//! The error body of every refused request: `{"code": "...", "message": "..."}`.

use serde::{Deserialize, Serialize};

/// Machine-readable reason for a refusal. Clients branch on this, never on
/// the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body or a parameter does not parse or breaks a rule.
    BadRequest,
    /// The body is larger than the endpoint accepts.
    TooLarge,
    /// No valid credentials were presented.
    Unauthorized,
    /// The credentials are valid but do not allow this.
    Forbidden,
    /// The account, device, blob or message does not exist.
    NotFound,
    /// The username is already registered.
    UsernameTaken,
    /// The device id is already registered for this account.
    DeviceExists,
    /// Another commit already took this epoch of the group; catch up and retry.
    EpochConflict,
    /// The account has no KeyPackage left for a device (none uploaded).
    NoKeyPackage,
    /// Too many requests; retry after a while.
    RateLimited,
    /// The account is suspended by the operator.
    Suspended,
    /// An upload offset does not match what the server holds.
    OffsetMismatch,
    /// This account already reported this message.
    AlreadyReported,
    /// The franking commitment of a send does not match the one in the MLS
    /// message's authenticated data (or one of them is missing).
    FrankingMismatch,
    /// A requested range is outside the blob.
    RangeNotSatisfiable,
    /// The server failed; the request may be retried.
    Internal,
    /// The server is shutting down or not ready; retry on another node or later.
    Unavailable,
    /// A recipient's queue holds as many bytes as the server allows per
    /// device: nothing was queued; retry once the recipient has fetched.
    QueueFull,
    /// The account's attachments hold as many bytes as the server allows
    /// per account: nothing was stored; retry once older ones expired.
    BlobQuotaExceeded,
    /// The device holds as many KeyPackages as the server allows: nothing
    /// was stored; upload again once some were claimed.
    KeyPackageQuotaExceeded,
    /// The account has as many requests and connections open as the server
    /// allows: close one (or wait for it to finish) and retry.
    TooManyConnections,
    /// The request body did not arrive in time: send it faster, or in
    /// smaller parts.
    BodyTimeout,
}

impl ErrorCode {
    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::Suspended => 403,
            ErrorCode::BlobQuotaExceeded | ErrorCode::KeyPackageQuotaExceeded => 403,
            ErrorCode::NotFound | ErrorCode::NoKeyPackage => 404,
            ErrorCode::UsernameTaken | ErrorCode::DeviceExists | ErrorCode::EpochConflict => 409,
            ErrorCode::OffsetMismatch | ErrorCode::AlreadyReported => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::BodyTimeout => 408,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::FrankingMismatch => 422,
            ErrorCode::RateLimited | ErrorCode::TooManyConnections | ErrorCode::QueueFull => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// A refusal, as sent in the body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_statuses_are_errors() {
        let json = serde_json::to_string(&ErrorCode::EpochConflict).unwrap();
        assert_eq!(json, "\"epoch_conflict\"");
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
        ] {
            assert!(code.http_status() >= 400);
        }
    }
}
