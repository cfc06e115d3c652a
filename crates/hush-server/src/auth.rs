//! Bearer tokens: random, shown once, stored only as SHA-256.

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_wire::ErrorCode;
use rand::RngCore;

use crate::app::AppState;
use crate::error::Failure;
use crate::store::{AccountState, DeviceKey};

/// A new random token: 32 bytes, base64url.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// What the server stores of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = digest(&SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 of a device certificate, as signed device requests cover it.
pub fn certificate_hash(certificate: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, certificate);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The authenticated device of a request (`Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct AuthDevice(pub DeviceKey);

impl FromRequestParts<AppState> for AuthDevice {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let token = bearer(&parts.headers).ok_or_else(Failure::unauthorized)?;
        let auth = state
            .store
            .authenticate(&token_hash(token))
            .await?
            .ok_or_else(Failure::unauthorized)?;
        if auth.state == AccountState::Suspended {
            return Err(Failure::new(
                ErrorCode::Suspended,
                "this account is suspended by the server's operator",
            ));
        }
        state.limits.check_account(&auth.device.username)?;
        if let Some(slot) = parts.extensions.get::<crate::quota::SlotCell>() {
            slot.fill(&state.quotas, &auth.device.username)?;
        }
        Ok(AuthDevice(auth.device))
    }
}
