//! Refusals as HTTP responses: a status and `{"code", "message"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hush_wire::{ApiError, ErrorCode};

use crate::store::StoreError;

/// A request that failed. Every variant maps to one [`ErrorCode`].
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl Failure {
    /// A failure with `code` and a message saying what to do.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ApiError::new(code, message))
    }

    /// 400 with a reason.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or unknown bearer token; register or use the device's token",
        )
    }

    /// 403 with a reason.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404 with a reason.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => Failure::new(
                ErrorCode::UsernameTaken,
                "that username is taken; pick another",
            ),
            StoreError::DeviceExists => Failure::new(
                ErrorCode::DeviceExists,
                "that device id is registered already; pick another",
            ),
            StoreError::NotFound => Failure::not_found("no such account or device"),
            StoreError::TooManyDevices => Failure::forbidden(
                "the account has its maximum number of devices; remove one first",
            ),
            StoreError::EpochConflict { current } => Failure::new(
                ErrorCode::EpochConflict,
                format!(
                    "another commit took this epoch; the group is at epoch {current}: process it and retry"
                ),
            ),
            StoreError::CommitRefused => Failure::forbidden(
                "this commit does not carry the commit token of the group's current epoch: \
                 only a member of that epoch can commit; process the group's messages and retry",
            ),
            StoreError::DuplicateReport => Failure::new(
                ErrorCode::AlreadyReported,
                "you already reported this message",
            ),
            StoreError::LocatorTaken => Failure::forbidden(
                "another account's backup is stored under this locator: nothing was stored",
            ),
            e @ StoreError::LeaseLost { .. } => {
                tracing::warn!(error = %e, "fenced write refused");
                Failure::new(ErrorCode::Unavailable, "another node took over; retry")
            }
            StoreError::KtRootConflict { epoch } => {
                tracing::error!(epoch, "a different signed root exists for this epoch");
                Failure::new(ErrorCode::Internal, "storage failure; retry later")
            }
            StoreError::Busy => {
                crate::metrics::METRICS.busy();
                Failure::new(
                    ErrorCode::Unavailable,
                    "the server is busy: nothing was done; retry in a moment",
                )
            }
            StoreError::Backend(e) => {
                tracing::error!(error = %e, "storage failure");
                Failure::new(ErrorCode::Internal, "storage failure; retry later")
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::metrics::METRICS.error(status.as_u16());
        // Buckets refill within a second at the default rates (limits that
        // refill slower answer with a [`Refusal`] that says so), and a busy
        // node has room again within a second.
        let retry_soon = matches!(self.0.code, ErrorCode::RateLimited | ErrorCode::Unavailable);
        let mut response = (status, Json(self.0)).into_response();
        if retry_soon {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A [`Failure`] with, for a rate limit, how many seconds to wait
/// (`Retry-After`).
#[derive(Debug)]
pub struct Refusal {
    /// The refusal.
    pub failure: Failure,
    /// Seconds until a retry can succeed.
    pub retry_after_s: Option<u64>,
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            retry_after_s: None,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Failure::from(e).into()
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        r.failure
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = self.failure.into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, Failure>;
