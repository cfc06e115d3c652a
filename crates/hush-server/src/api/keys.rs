//! KeyPackages: upload, count, claim.

use axum::extract::State;
use axum::http::StatusCode;
use hush_proto::{Suite, inspect_key_package};
use hush_wire::Bytes;
use hush_wire::api::{
    ClaimResponse, ClaimedKeyPackage, KeyPackageCountResponse, SuiteCount, UploadKeyPackagesRequest,
};
use hush_wire::limits::{MAX_KEY_PACKAGE_LEN, MAX_KEY_PACKAGES_PER_UPLOAD};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::error::{ApiResult, Failure, Refusal};
use crate::extract::{Body, PathParams, QueryParams};
use crate::metrics::METRICS;
use crate::store::DeviceKey;

fn suite(n: u16) -> ApiResult<Suite> {
    Suite::ALL
        .into_iter()
        .find(|s| s.cipher_suite().raw_value() == n)
        .ok_or_else(|| Failure::bad_request(format!("suite {n} takes no KeyPackages (1 or 77)")))
}

/// Checks that a KeyPackage is for `suite`, belongs to `me` and has the
/// expected last-resort flag.
fn check(kp: &Bytes, suite: Suite, me: &DeviceKey, last_resort: bool) -> ApiResult<Vec<u8>> {
    if kp.0.len() > MAX_KEY_PACKAGE_LEN {
        return Err(Failure::bad_request("a KeyPackage is too large"));
    }
    let info = inspect_key_package(kp.as_slice())
        .map_err(|e| Failure::bad_request(format!("invalid KeyPackage: {e}")))?;
    if info.suite != suite {
        return Err(Failure::bad_request("a KeyPackage is for another suite"));
    }
    if info.certificate.username().as_str() != me.username
        || info.certificate.device_id().0 != me.device_id
    {
        return Err(Failure::forbidden(
            "a KeyPackage belongs to another device; upload only your own",
        ));
    }
    if info.last_resort != last_resort {
        return Err(Failure::bad_request(if last_resort {
            "last_resort must carry the last_resort extension"
        } else {
            "a one-time KeyPackage carries the last_resort extension"
        }));
    }
    Ok(kp.0.clone())
}

/// `PUT /v1/key-packages`
pub async fn upload(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    Body(req): Body<UploadKeyPackagesRequest>,
) -> ApiResult<StatusCode> {
    let suite = suite(req.suite)?;
    if req.key_packages.len() > MAX_KEY_PACKAGES_PER_UPLOAD {
        return Err(Failure::bad_request(format!(
            "at most {MAX_KEY_PACKAGES_PER_UPLOAD} KeyPackages per upload"
        )));
    }
    if req.key_packages.is_empty() && req.last_resort.is_none() {
        return Err(Failure::bad_request("nothing to upload"));
    }
    let kps = req
        .key_packages
        .iter()
        .map(|kp| check(kp, suite, &me, false))
        .collect::<ApiResult<Vec<_>>>()?;
    let last_resort = req
        .last_resort
        .as_ref()
        .map(|kp| check(kp, suite, &me, true))
        .transpose()?;
    // Counted and stored under the device's turn, so that two uploads at
    // once cannot both fit in the last room.
    let _turn = state.quotas.key_package_turn(&me).await;
    let held = state
        .store
        .key_package_counts(&me)
        .await?
        .into_iter()
        .find(|(suite, _)| *suite == req.suite)
        .map_or(0, |(_, n)| n);
    state.quotas.check_key_packages(held, kps.len() as u64)?;
    state
        .store
        .put_key_packages(&me, req.suite, kps, last_resort)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/key-packages/count`
pub async fn count(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
) -> ApiResult<axum::Json<KeyPackageCountResponse>> {
    let stored = state.store.key_package_counts(&me).await?;
    let counts = Suite::ALL
        .into_iter()
        .map(|s| {
            let n = s.cipher_suite().raw_value();
            SuiteCount {
                suite: n,
                count: stored
                    .iter()
                    .find(|(suite, _)| *suite == n)
                    .map_or(0, |(_, c)| *c),
            }
        })
        .collect();
    Ok(axum::Json(KeyPackageCountResponse { counts }))
}

/// Query of a claim.
#[derive(Debug, Deserialize)]
pub struct ClaimQuery {
    /// The suite wanted.
    pub suite: u16,
}

/// `POST /v1/accounts/{username}/key-packages/claim?suite=N`
///
/// Limited per (claimer, target) and per target, so that nobody can drain
/// another account's one-time KeyPackages onto its last resort (429 with
/// `Retry-After`).
pub async fn claim(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<ClaimQuery>,
) -> Result<axum::Json<ClaimResponse>, Refusal> {
    suite(q.suite)?;
    #[cfg(feature = "fault-injection")]
    if let Some(ghost) = state.kt.faults.ghost(&name) {
        return Ok(axum::Json(ClaimResponse {
            key_packages: ghost
                .key_packages
                .get(&q.suite)
                .map(|kp| ClaimedKeyPackage {
                    device_id: 1,
                    key_package: Bytes(kp.clone()),
                })
                .into_iter()
                .collect(),
        }));
    }
    if state.store.account(&name).await?.is_none() {
        return Err(Failure::not_found("no such account").into());
    }
    if let Err((limit, refusal)) = state.limits.check_claim(&me.username, &name) {
        METRICS.claim_refused(limit);
        // No names in the log: who claims whose KeyPackages is the social graph.
        tracing::debug!(?limit, "KeyPackage claim refused");
        return Err(refusal);
    }
    let claimed = state.store.claim_key_packages(&name, q.suite).await?;
    Ok(axum::Json(ClaimResponse {
        key_packages: claimed
            .into_iter()
            .map(|(device_id, kp)| ClaimedKeyPackage {
                device_id,
                key_package: Bytes(kp),
            })
            .collect(),
    }))
}
