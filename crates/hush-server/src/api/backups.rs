//! Backups stored on the server (decision 0035).
//!
//! Each account has one slot: an opaque sealed blob under a 32-byte locator
//! the client derives from its recovery key (the server never sees the key).
//! Only the account's devices write, replace or delete it; anyone who knows
//! the locator may download it (a restoring machine has no device yet), so
//! downloads are rate limited per network like the other unauthenticated
//! costly requests, and a locator has 256 bits: it cannot be guessed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hush_wire::ErrorCode;
use hush_wire::api::{BACKUP_LOCATOR, BackupStatus};

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::delivery::now_ms;
use crate::error::{ApiResult, Failure};
use crate::extract::{PathParams, RawBody};

/// A locator (or another 32-byte value): 64 hexadecimal characters.
pub(crate) fn parse_locator(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// `PUT /v1/backup` with `Backup-Locator`: stores the caller's account's
/// backup, replacing the one it had.
pub async fn put(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let locator = headers
        .get(BACKUP_LOCATOR)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_locator)
        .ok_or_else(|| {
            Failure::bad_request("a Backup-Locator header of 64 hexadecimal characters is required")
        })?;
    let max = state.settings.max_backup_size;
    if body.is_empty() || body.len() as u64 > max {
        return Err(Failure::new(
            ErrorCode::TooLarge,
            format!("a backup is 1 to {max} bytes"),
        ));
    }
    state
        .store
        .put_backup(&me.username, locator, body.to_vec(), now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/backup`: the size and time of the caller's account's backup.
pub async fn status(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
) -> ApiResult<axum::Json<BackupStatus>> {
    let info = state
        .store
        .backup_info(&me.username)
        .await?
        .ok_or_else(|| Failure::not_found("this account has no backup on the server"))?;
    Ok(axum::Json(BackupStatus {
        size: info.size,
        updated_at_ms: info.updated_at_ms,
    }))
}

/// `DELETE /v1/backup`: deletes the caller's account's backup.
pub async fn delete(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
) -> ApiResult<StatusCode> {
    if state.store.delete_backup(&me.username).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure::not_found(
            "this account has no backup on the server",
        ))
    }
}

/// `GET /v1/backups/{locator}`: the backup under that locator (no
/// authentication; rate limited per network).
pub async fn download(
    State(state): State<AppState>,
    PathParams(locator): PathParams<String>,
) -> ApiResult<Response> {
    let none = || Failure::not_found("no backup is stored under this recovery key");
    let locator = parse_locator(&locator).ok_or_else(none)?;
    #[allow(unused_mut)]
    let mut blob = state.store.backup(locator).await?.ok_or_else(none)?;
    #[cfg(feature = "fault-injection")]
    if state.kt.faults.corrupting_blobs()
        && let Some(b) = blob.last_mut()
    {
        *b ^= 1;
    }
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], blob).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_locator;

    #[test]
    fn locators_are_64_hex_characters() {
        assert_eq!(parse_locator(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(parse_locator(&"ab".repeat(31)), None);
        assert_eq!(parse_locator(&"zz".repeat(32)), None);
        assert_eq!(parse_locator(&"a".repeat(65)), None);
        assert_eq!(parse_locator(&"+a".repeat(32)), None);
    }
}
