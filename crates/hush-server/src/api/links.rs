//! Invite links (decision 0033): the server keeps a sealed preview, counters
//! and a mailbox of sealed join requests under an id derived from a secret
//! it never sees. It cannot read the group's name, members or anything the
//! requests say; it enforces revocation, expiry, the use limit and the size
//! of the mailbox, and members' devices check the same again.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hush_wire::api::{
    CreateLinkRequest, JoinLinkRequest, LinkAction, LinkResponse, ManageLinkRequest,
    ManageLinkResponse, PendingJoin,
};
use hush_wire::{Bytes, ErrorCode};

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::delivery::now_ms;
use crate::error::{Failure, Refusal};
use crate::extract::{Body, PathParams};
use crate::store::{JoinFiled, LinkRecord, NewLink};

/// Largest sealed preview or join request.
pub const MAX_SEALED: usize = 4096;

fn link_id(hex: &str) -> Result<[u8; 32], Failure> {
    let bad = || Failure::bad_request("a link id is 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(id)
}

fn hash(token: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token).as_ref());
    out
}

fn closed() -> Failure {
    Failure::forbidden("this invite link was revoked, has expired or is used up")
}

fn unknown() -> Failure {
    Failure::not_found("no such invite link")
}

/// The time links are judged at: now, or (the test-only fault of a server
/// that ignores expiry and revocation) the beginning of time.
fn clock(state: &AppState) -> u64 {
    #[cfg(feature = "fault-injection")]
    if state.kt.faults.admits_closed_links() {
        return 0;
    }
    let _ = state;
    now_ms()
}

/// Whether the server ignores revocations (test-only fault).
fn ignores_revocation(state: &AppState) -> bool {
    #[cfg(feature = "fault-injection")]
    if state.kt.faults.admits_closed_links() {
        return true;
    }
    let _ = state;
    false
}

/// `PUT /v1/links/{link_id}`
pub async fn create(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(id): PathParams<String>,
    Body(req): Body<CreateLinkRequest>,
) -> Result<impl IntoResponse, Refusal> {
    let id = link_id(&id)?;
    state.limits.check_link(&me.username)?;
    if req.blob.0.len() > MAX_SEALED {
        return Err(Failure::new(ErrorCode::TooLarge, "the sealed preview is too large").into());
    }
    if req.manage_token.0.len() != 32 {
        return Err(Failure::bad_request("manage_token must be 32 bytes").into());
    }
    let created = state
        .store
        .create_link(
            id,
            NewLink {
                blob: req.blob.0,
                manage_hash: hash(&req.manage_token.0),
                expires_at_ms: req.expires_at_ms,
                max_uses: req.max_uses,
                approve: req.approve,
                now_ms: now_ms(),
            },
        )
        .await?;
    if !created {
        return Err(Failure::forbidden("this link id is taken").into());
    }
    Ok(StatusCode::CREATED)
}

async fn open_link(state: &AppState, id: [u8; 32]) -> Result<LinkRecord, Refusal> {
    let link = state.store.link(id).await?.ok_or_else(unknown)?;
    if !link.is_open(clock(state)) {
        return Err(closed().into());
    }
    Ok(link)
}

/// `GET /v1/links/{link_id}`
pub async fn preview(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<LinkResponse>, Refusal> {
    let id = link_id(&id)?;
    state.limits.check_link(&me.username)?;
    let link = open_link(&state, id).await?;
    Ok(axum::Json(LinkResponse {
        blob: Bytes(link.link.blob),
        approve: link.link.approve,
        expires_at_ms: link.link.expires_at_ms,
    }))
}

/// `POST /v1/links/{link_id}/requests`
pub async fn request(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(id): PathParams<String>,
    Body(req): Body<JoinLinkRequest>,
) -> Result<impl IntoResponse, Refusal> {
    let id = link_id(&id)?;
    state.limits.check_link(&me.username)?;
    if req.sealed.0.len() > MAX_SEALED {
        return Err(Failure::new(ErrorCode::TooLarge, "the sealed request is too large").into());
    }
    let now = clock(&state);
    match state.store.file_join_request(id, req.sealed.0, now).await? {
        JoinFiled::Filed(_) => Ok(StatusCode::ACCEPTED),
        JoinFiled::Unknown => Err(unknown().into()),
        JoinFiled::Closed => Err(closed().into()),
        JoinFiled::Full => Err(Failure::new(
            ErrorCode::QueueFull,
            "this invite link has too many requests waiting for an admin",
        )
        .into()),
    }
}

async fn open_any(state: &AppState, id: [u8; 32]) -> Result<LinkRecord, Refusal> {
    Ok(state.store.link(id).await?.ok_or_else(unknown)?)
}

/// `POST /v1/links/{link_id}/manage`
pub async fn manage(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(id): PathParams<String>,
    Body(req): Body<ManageLinkRequest>,
) -> Result<axum::Json<ManageLinkResponse>, Refusal> {
    let id = link_id(&id)?;
    state.limits.check_link(&me.username)?;
    let link = open_any(&state, id).await?;
    if verify_slices_are_equal(&hash(&req.manage_token.0), &link.link.manage_hash).is_err() {
        return Err(Failure::forbidden("wrong management token for this link").into());
    }
    let mut requests = Vec::new();
    match req.action {
        LinkAction::List => {
            requests = state
                .store
                .join_requests(id)
                .await?
                .into_iter()
                .map(|(id, sealed)| PendingJoin {
                    id,
                    sealed: Bytes(sealed),
                })
                .collect();
        }
        LinkAction::Delete => {
            state.store.delete_join_requests(id, req.ids).await?;
        }
        LinkAction::Revoke if ignores_revocation(&state) => {}
        LinkAction::Revoke => state.store.revoke_link(id).await?,
    }
    Ok(axum::Json(ManageLinkResponse { requests }))
}
