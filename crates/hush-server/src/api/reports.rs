//! Abuse reports with cryptographic proof (message franking).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hush_proto::{Commitment, Content, FrankingKey, FrankingOpening, verify_opening};
use hush_wire::ErrorCode;
use hush_wire::api::{ReportRequest, ReportResponse};

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::delivery::now_ms;
use crate::error::{ApiResult, Failure};
use crate::extract::Body;
use crate::franking::{check_relay_tag, franking_key};
use crate::store::{NewReport, StoreError};

/// Reports one account may file per hour.
pub const REPORTS_PER_HOUR: u64 = 20;
/// Longest reason.
const MAX_REASON: usize = 1000;

fn bytes32(b: &hush_wire::Bytes, field: &str) -> ApiResult<[u8; 32]> {
    <[u8; 32]>::try_from(b.as_slice())
        .map_err(|_| Failure::bad_request(format!("{field} must be 32 bytes")))
}

/// `POST /v1/reports`
pub async fn file(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    Body(req): Body<ReportRequest>,
) -> ApiResult<impl IntoResponse> {
    if req.reason.len() > MAX_REASON {
        return Err(Failure::bad_request("the reason is at most 1000 bytes"));
    }
    if req.content.0.len() > hush_proto::content::MAX_CONTENT_LEN {
        return Err(Failure::bad_request("the reported content is too large"));
    }
    let key = bytes32(&req.franking_key, "franking_key")?;
    let commitment = bytes32(&req.commitment, "commitment")?;
    let tag = bytes32(&req.relay_tag, "relay_tag")?;
    let now = now_ms();
    let recent = state
        .store
        .reports_since(&me.username, now.saturating_sub(3_600_000))
        .await?;
    if recent >= REPORTS_PER_HOUR {
        return Err(Failure::new(
            ErrorCode::RateLimited,
            "too many reports from this account in the last hour",
        ));
    }
    // The content and key must produce the commitment...
    verify_opening(&FrankingOpening {
        content: req.content.0.clone(),
        key: FrankingKey::from_bytes(key),
        commitment: Commitment(commitment),
    })
    .map_err(|_| {
        Failure::forbidden("the reported message does not match its franking commitment")
    })?;
    // ...and this server must have relayed that commitment from the named
    // sender to the reporter at that time.
    let server_key = franking_key(&state).await?;
    if !check_relay_tag(
        &server_key,
        &tag,
        &commitment,
        &req.sender,
        &me.username,
        req.received_at_ms,
    ) {
        return Err(Failure::forbidden(
            "this server relayed no such message from that sender to you",
        ));
    }
    Content::decode(&req.content.0)
        .map_err(|e| Failure::bad_request(format!("the reported content does not decode: {e}")))?;
    let id = state
        .store
        .file_report(NewReport {
            reporter: me.username.clone(),
            sender: req.sender.clone(),
            commitment,
            content: req.content.0,
            reason: req.reason,
            received_at_ms: req.received_at_ms,
            filed_at_ms: now,
        })
        .await
        .map_err(|e| match e {
            StoreError::DuplicateReport => Failure::new(
                ErrorCode::AlreadyReported,
                "you already reported this message",
            ),
            e => e.into(),
        })?;
    tracing::info!(report = id, sender = %req.sender, "abuse report filed");
    Ok((StatusCode::CREATED, axum::Json(ReportResponse { id })))
}
