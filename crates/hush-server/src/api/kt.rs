//! Key transparency: the pinned keys, signed epoch roots, lookup and
//! key-history proofs, and append-only proofs for auditors.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use hush_proto::Username;
use hush_proto::kt::SignedRoot;
use hush_wire::kt::{
    KtAuditResponse, KtBatchEntry, KtBatchLookupRequest, KtBatchLookupResponse, KtConfigResponse,
    KtProofResponse, KtRoot, KtRootsResponse, MAX_AUDIT_SPAN, MAX_BATCH_LOOKUP,
    MAX_ROOTS_PER_REQUEST,
};
use hush_wire::{Bytes, ErrorCode};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::error::{ApiResult, Failure};
use crate::extract::{Body, PathParams, QueryParams};
use crate::kt::KtError;

impl From<KtError> for Failure {
    fn from(e: KtError) -> Self {
        match e {
            KtError::UnknownUser(u) => {
                Failure::not_found(format!("{u} is not in the key directory"))
            }
            KtError::NoSuchEpoch(n) => {
                Failure::not_found(format!("epoch {n} has not been published"))
            }
            e @ KtError::BadRange { .. } => Failure::bad_request(e.to_string()),
            KtError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "key directory failure");
                Failure::new(ErrorCode::Internal, "key directory failure; retry later")
            }
        }
    }
}

/// The wire form of a signed root.
pub fn wire_root(root: &SignedRoot) -> KtRoot {
    KtRoot {
        epoch: root.epoch,
        root_hash: Bytes(root.root_hash.to_vec()),
        signature: Bytes(root.signature.to_vec()),
    }
}

/// The account asking, when a request carries a valid token. Only test
/// builds look: a real server shows everyone the same directory.
async fn viewer(state: &AppState, headers: &HeaderMap) -> Option<String> {
    #[cfg(feature = "fault-injection")]
    {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        let auth = state
            .store
            .authenticate(&crate::auth::token_hash(token.trim()))
            .await
            .ok()??;
        Some(auth.device.username)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (state, headers);
        None
    }
}

/// `GET /v1/kt/config`
pub async fn config(State(state): State<AppState>) -> ApiResult<Json<KtConfigResponse>> {
    let c = state.kt.config().await?;
    Ok(Json(KtConfigResponse {
        signing_key: Bytes(c.signing_key.to_vec()),
        vrf_public_key: Bytes(c.vrf_public_key),
    }))
}

/// Query of `GET /v1/kt/roots`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootsQuery {
    /// First epoch wanted (default: the newest).
    pub from: Option<u64>,
    /// Last epoch wanted (default: from + 999, at most the newest).
    pub to: Option<u64>,
}

/// `GET /v1/kt/roots?from=A&to=B`
pub async fn roots(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<RootsQuery>,
) -> ApiResult<Json<KtRootsResponse>> {
    let who = viewer(&state, &headers).await;
    let latest = state.kt.latest_epoch_for(who.as_deref()).await?;
    let from = q.from.unwrap_or(latest);
    let to =
        q.to.unwrap_or(from.saturating_add(MAX_ROOTS_PER_REQUEST - 1))
            .min(latest)
            .min(from.saturating_add(MAX_ROOTS_PER_REQUEST - 1));
    let roots = if from > to {
        Vec::new()
    } else {
        state.kt.roots(who.as_deref(), from, to).await?
    };
    #[cfg(feature = "fault-injection")]
    let latest = state.kt.faults.stated_latest_epoch().unwrap_or(latest);
    Ok(Json(KtRootsResponse {
        latest_epoch: latest,
        roots: roots.iter().map(wire_root).collect(),
    }))
}

fn username(name: &str) -> ApiResult<Username> {
    Username::new(name).map_err(|e| Failure::bad_request(e.to_string()))
}

/// `GET /v1/kt/lookup/{username}`
pub async fn lookup(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<KtProofResponse>> {
    let user = username(&name)?;
    let (root, proof) = state.kt.lookup(Some(&me.username), &user).await?;
    Ok(Json(KtProofResponse {
        root: wire_root(&root),
        proof: Bytes(proof),
    }))
}

/// How many usernames of a batched lookup count as one request against the
/// per-account limit (a per-name lookup is two requests per account).
pub const BATCH_NAMES_PER_REQUEST: usize = 10;

/// `POST /v1/kt/lookup`: directory entries and lookup proofs of many
/// accounts against one root.
pub async fn batch_lookup(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    Body(req): Body<KtBatchLookupRequest>,
) -> ApiResult<Json<KtBatchLookupResponse>> {
    let n = req.usernames.len();
    if n > MAX_BATCH_LOOKUP {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!(
                "a batched lookup names at most {MAX_BATCH_LOOKUP} accounts ({n} asked); ask in several"
            ),
        ));
    }
    let mut users = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::with_capacity(n);
    for name in &req.usernames {
        if !seen.insert(name.as_str()) {
            return Err(Failure::bad_request(format!("{name} is asked for twice")));
        }
        users.push(username(name)?);
    }
    // The AuthDevice extractor took one request; the names take the rest.
    state
        .limits
        .check_account_cost(&me.username, n.div_ceil(BATCH_NAMES_PER_REQUEST))?;
    let (root, proofs) = state.kt.batch_lookup(Some(&me.username), &users).await?;
    let mut entries = Vec::with_capacity(n);
    for (user, proof) in users.iter().zip(proofs) {
        entries.push(KtBatchEntry {
            username: user.to_string(),
            account: crate::api::accounts::directory_entry(&state, user.as_str()).await?,
            proof: proof.map(|p| Bytes(p.to_vec())),
        });
    }
    #[allow(unused_mut)]
    let mut resp = KtBatchLookupResponse {
        root: wire_root(&root),
        entries,
    };
    #[cfg(feature = "fault-injection")]
    state.kt.faults.tampered(&state.kt, &mut resp).await?;
    Ok(Json(resp))
}

/// `GET /v1/kt/history/{username}`: the account monitors its own history;
/// other accounts check that a device a commit added was listed once
/// (decision 0035).
pub async fn history(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<KtProofResponse>> {
    let user = username(&name)?;
    #[cfg(feature = "fault-injection")]
    if state.kt.faults.history_refused() {
        return Err(Failure::new(
            ErrorCode::Unavailable,
            "key directory unavailable; retry later",
        ));
    }
    let (root, proof) = state.kt.history(Some(&me.username), &user).await?;
    Ok(Json(KtProofResponse {
        root: wire_root(&root),
        proof: Bytes(proof),
    }))
}

/// Query of `GET /v1/kt/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Older epoch.
    pub from: u64,
    /// Newer epoch (at most from + 100).
    pub to: u64,
}

/// `GET /v1/kt/audit?from=A&to=B`
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<KtAuditResponse>> {
    if q.to.saturating_sub(q.from) > MAX_AUDIT_SPAN {
        return Err(Failure::bad_request(format!(
            "an audit proof spans at most {MAX_AUDIT_SPAN} epochs; ask in steps"
        )));
    }
    let who = viewer(&state, &headers).await;
    let proof = state.kt.audit(who.as_deref(), q.from, q.to).await?;
    Ok(Json(KtAuditResponse {
        from: q.from,
        to: q.to,
        proof: Bytes(proof),
    }))
}
