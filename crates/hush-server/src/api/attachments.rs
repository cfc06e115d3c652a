//! Attachments: create, resumable upload, status, ranged download.
//!
//! `PATCH /v1/attachments/{id}` carries `Upload-Offset: N` and the bytes from
//! N; the answer's `Upload-Offset` says where the next request continues. A
//! client that lost its connection asks `GET .../status` and resumes there.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hush_wire::ErrorCode;
use hush_wire::api::{
    AttachmentStatus, CreateAttachmentRequest, CreateAttachmentResponse, DELETE_TOKEN,
    DELETE_TOKEN_HASH,
};

use crate::api::backups::parse_locator;
use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::blobs::{BlobError, valid_id};
use crate::delivery::now_ms;
use crate::error::{ApiResult, Failure};
use crate::extract::{Body, PathParams};

/// The header of resumable uploads.
pub const UPLOAD_OFFSET: &str = "upload-offset";

impl From<BlobError> for Failure {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => Failure::not_found("no such attachment"),
            e @ BlobError::OffsetMismatch { .. } => Failure::new(
                ErrorCode::OffsetMismatch,
                format!("{e}; ask for the status and resume"),
            ),
            BlobError::PastEnd => Failure::new(
                ErrorCode::TooLarge,
                "the upload goes past the size announced at creation",
            ),
            BlobError::Incomplete => Failure::new(
                ErrorCode::NotFound,
                "the attachment is not completely uploaded yet",
            ),
            BlobError::BadRange => Failure::new(
                ErrorCode::RangeNotSatisfiable,
                "the requested range is outside the attachment",
            ),
            BlobError::Backend(e) => {
                tracing::error!(error = %e, "blob storage failure");
                Failure::new(ErrorCode::Internal, "blob storage failure; retry later")
            }
            e @ BlobError::Body(_) => {
                Failure::bad_request(format!("{e}; ask for the status and resume where it says"))
            }
        }
    }
}

fn checked_id(id: &str) -> ApiResult<()> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Failure::not_found("no such attachment"))
    }
}

/// `POST /v1/attachments`
pub async fn create(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    headers: HeaderMap,
    Body(req): Body<CreateAttachmentRequest>,
) -> ApiResult<impl IntoResponse> {
    let delete_hash = match headers.get(DELETE_TOKEN_HASH) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(parse_locator).ok_or_else(|| {
            Failure::bad_request("Delete-Token-Hash is 64 hexadecimal characters")
        })?),
    };
    if req.size == 0 || req.size > state.settings.max_attachment_size {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "an attachment is 1 to {} bytes",
                state.settings.max_attachment_size
            ),
        ));
    }
    let now = now_ms();
    let retention_ms = u64::try_from(state.settings.retention.as_millis()).unwrap_or(u64::MAX);
    state.quotas.reserve_blob(
        &me.username,
        req.size,
        now,
        now.saturating_add(retention_ms),
    )?;
    let id = state.blobs.create_owned(req.size, now, delete_hash).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreateAttachmentResponse { id }),
    ))
}

/// `PATCH /v1/attachments/{id}` with `Upload-Offset`.
pub async fn upload(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    checked_id(&id)?;
    let offset = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            Failure::bad_request("Upload-Offset header with a byte offset is required")
        })?;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced {
        let size = state.blobs.status(&id).await?.size;
        if offset.saturating_add(len) > size {
            return Err(BlobError::PastEnd.into());
        }
    }
    // Streamed to the store part by part: memory stays at one part.
    let status = state
        .blobs
        .append_stream(&id, offset, body.into_data_stream())
        .await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(status.offset));
    Ok(r)
}

/// `GET /v1/attachments/{id}/status`
pub async fn status(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(id): PathParams<String>,
) -> ApiResult<axum::Json<AttachmentStatus>> {
    checked_id(&id)?;
    let s = state.blobs.status(&id).await?;
    Ok(axum::Json(AttachmentStatus {
        offset: s.offset,
        size: s.size,
        complete: s.offset == s.size,
    }))
}

/// `DELETE /v1/attachments/{id}` with `Delete-Token`: deletes a blob
/// before it expires, for whoever holds the token its uploader chose
/// (decision 0035: a link's history once the new device has it). A wrong
/// token, or a blob created without one, gets `404`, as for a blob that does
/// not exist.
pub async fn delete(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    checked_id(&id)?;
    let token = headers
        .get(DELETE_TOKEN)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_locator)
        .ok_or_else(|| Failure::bad_request("Delete-Token is 64 hexadecimal characters"))?;
    state.blobs.delete(&id, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses `bytes=A-B`, `bytes=A-` or `bytes=-N` against `size`.
fn parse_range(value: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        // A zero-length suffix selects nothing: unsatisfiable (RFC 9110 14.1.1).
        let n: u64 = b.parse().ok().filter(|n| *n > 0)?;
        return Some(size.saturating_sub(n)..size);
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        b.parse::<u64>().ok()?.checked_add(1)?.min(size)
    };
    (start < end).then_some(start..end)
}

/// `GET /v1/attachments/{id}`, honouring `Range: bytes=...`.
pub async fn download(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    checked_id(&id)?;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let Some(range_header) = range_header else {
        #[cfg(feature = "fault-injection")]
        if state.kt.faults.corrupting_blobs() {
            return corrupted(&state, &id).await;
        }
        let (stream, size) = state.blobs.read_stream(&id, None).await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::ACCEPT_RANGES, "bytes"),
            ],
            [(header::CONTENT_LENGTH, HeaderValue::from(size))],
            axum::body::Body::from_stream(stream),
        )
            .into_response());
    };
    let size = state.blobs.status(&id).await?.size;
    let range = parse_range(range_header, size).ok_or_else(|| {
        Failure::new(
            ErrorCode::RangeNotSatisfiable,
            "the Range header is malformed or outside the attachment",
        )
    })?;
    let (stream, total) = state.blobs.read_stream(&id, Some(range.clone())).await?;
    let mut r = (
        StatusCode::PARTIAL_CONTENT,
        [(
            header::CONTENT_LENGTH,
            HeaderValue::from(range.end - range.start),
        )],
        axum::body::Body::from_stream(stream),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "bytes {}-{}/{}",
        range.start,
        range.end.saturating_sub(1),
        total
    )) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// The blob with its last byte flipped (fault injection, tests only).
#[cfg(feature = "fault-injection")]
async fn corrupted(state: &AppState, id: &str) -> ApiResult<Response> {
    use futures_util::StreamExt;
    let (mut stream, _) = state.blobs.read_stream(id, None).await?;
    let mut all = Vec::new();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk?);
    }
    if let Some(b) = all.last_mut() {
        *b ^= 1;
    }
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], all).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-5", 100), Some(95..100));
        assert_eq!(parse_range("bytes=-500", 100), Some(0..100));
        assert_eq!(parse_range("bytes=-0", 100), None);
        assert_eq!(parse_range("bytes=50-500", 100), Some(50..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-3", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-1", 100), None);
    }
}
