//! Accounts, devices, the directory and encrypted profiles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hush_proto::{AccountPublicKey, DeviceCertificate, Username};
use hush_wire::api::{
    AccountResponse, AddDeviceRequest, DeviceEntry, NewDeviceBody, RegisterRequest,
    RegisterResponse, RemoveDeviceRequest, device_request_message,
};
use hush_wire::{Bytes, ErrorCode};

use super::now_ms;
use crate::app::AppState;
use crate::auth::{AuthDevice, new_token, token_hash};
use crate::error::{ApiResult, Failure};
use crate::extract::{Body, PathParams, RawBody};
use crate::store::{DeviceKey, NewAccount, NewDevice};

/// How far a signed device request's timestamp may be from the server clock.
const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

fn username(name: &str) -> ApiResult<Username> {
    Username::new(name).map_err(|e| Failure::bad_request(e.to_string()))
}

fn account_key(bytes: &Bytes) -> ApiResult<AccountPublicKey> {
    AccountPublicKey::from_slice(bytes.as_slice())
        .map_err(|_| Failure::bad_request("account_key must be a 32-byte Ed25519 public key"))
}

/// Checks that `device` carries a certificate by `key` for `user` and its id,
/// and returns the record to store with a fresh token.
fn new_device(
    device: &NewDeviceBody,
    user: &Username,
    key: &AccountPublicKey,
) -> ApiResult<(NewDevice, String)> {
    let cert = DeviceCertificate::decode(device.certificate.as_slice())
        .map_err(|e| Failure::bad_request(format!("device certificate: {e}")))?;
    cert.verify()
        .map_err(|e| Failure::bad_request(format!("device certificate: {e}")))?;
    if cert.username() != user
        || cert.account_key() != *key
        || cert.device_id().0 != device.device_id
    {
        return Err(Failure::bad_request(
            "the device certificate names another account, key or device id",
        ));
    }
    let token = new_token();
    Ok((
        NewDevice {
            device_id: device.device_id,
            certificate: device.certificate.0.clone(),
            token_hash: token_hash(&token),
        },
        token,
    ))
}

/// `POST /v1/accounts`
pub async fn register(
    State(state): State<AppState>,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let user = username(&req.username)?;
    let key = account_key(&req.account_key)?;
    let (device, token) = new_device(&req.device, &user, &key)?;
    state
        .store
        .create_account(NewAccount {
            username: user.to_string(),
            account_key: key.as_bytes().to_vec(),
            device,
            now_ms: now_ms(),
        })
        .await?;
    tracing::info!(username = %user, "account registered");
    // Answer once the new keys are in a published epoch, so a contact who
    // looks this account up right away gets a proof for them.
    let ticket = state.kt.changed(user.as_str());
    state.kt.wait_published(ticket).await;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { token })))
}

/// `GET /v1/accounts/{username}`
pub async fn directory(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(name): PathParams<String>,
) -> ApiResult<axum::Json<AccountResponse>> {
    #[cfg(feature = "fault-injection")]
    if let Some(ghost) = state.kt.faults.ghost(&name) {
        return Ok(axum::Json(AccountResponse {
            username: name,
            account_key: Bytes(ghost.account_key),
            devices: vec![DeviceEntry {
                device_id: 1,
                certificate: Bytes(ghost.certificate),
            }],
        }));
    }
    let account = state
        .store
        .account(&name)
        .await?
        .ok_or_else(|| Failure::not_found("no such account"))?;
    Ok(axum::Json(AccountResponse {
        username: account.username,
        account_key: Bytes(account.account_key),
        devices: account
            .devices
            .into_iter()
            .map(|d| DeviceEntry {
                device_id: d.device_id,
                certificate: Bytes(d.certificate),
            })
            .collect(),
    }))
}

fn check_signed_request(
    key: &AccountPublicKey,
    action: &str,
    user: &str,
    device_id: u32,
    timestamp_ms: u64,
    signature: &Bytes,
) -> ApiResult<()> {
    if now_ms().abs_diff(timestamp_ms) > MAX_CLOCK_SKEW_MS {
        return Err(Failure::bad_request(
            "timestamp_ms is more than five minutes from the server's clock",
        ));
    }
    let message = device_request_message(action, user, device_id, timestamp_ms);
    if !key.verify(&message, signature.as_slice()) {
        return Err(Failure::new(
            ErrorCode::Forbidden,
            "the signature is not by this account's key",
        ));
    }
    Ok(())
}

async fn account_key_of(state: &AppState, name: &str) -> ApiResult<AccountPublicKey> {
    let account = state
        .store
        .account(name)
        .await?
        .ok_or_else(|| Failure::not_found("no such account"))?;
    AccountPublicKey::from_slice(&account.account_key)
        .map_err(|_| Failure::new(ErrorCode::Internal, "stored account key is corrupt"))
}

/// `POST /v1/accounts/{username}/devices`
pub async fn add_device(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    Body(req): Body<AddDeviceRequest>,
) -> ApiResult<impl IntoResponse> {
    let user = username(&name)?;
    let key = account_key_of(&state, user.as_str()).await?;
    check_signed_request(
        &key,
        "add",
        user.as_str(),
        req.device.device_id,
        req.timestamp_ms,
        &req.signature,
    )?;
    let (device, token) = new_device(&req.device, &user, &key)?;
    state
        .store
        .add_device(user.as_str(), device, state.settings.max_devices)
        .await?;
    let ticket = state.kt.changed(user.as_str());
    state.kt.wait_published(ticket).await;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { token })))
}

/// `DELETE /v1/accounts/{username}/devices/{device_id}`
pub async fn remove_device(
    State(state): State<AppState>,
    PathParams((name, device_id)): PathParams<(String, u32)>,
    Body(req): Body<RemoveDeviceRequest>,
) -> ApiResult<StatusCode> {
    let user = username(&name)?;
    let key = account_key_of(&state, user.as_str()).await?;
    check_signed_request(
        &key,
        "remove",
        user.as_str(),
        device_id,
        req.timestamp_ms,
        &req.signature,
    )?;
    state
        .store
        .remove_device(&DeviceKey::new(user.as_str(), device_id))
        .await?;
    let ticket = state.kt.changed(user.as_str());
    state.kt.wait_published(ticket).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/profile`: the caller's encrypted profile (opaque bytes).
pub async fn put_profile(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    if body.is_empty() {
        return Err(Failure::bad_request("the profile is empty"));
    }
    state.store.put_profile(&me.username, body.to_vec()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/accounts/{username}/profile`
pub async fn profile(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(name): PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let blob = state
        .store
        .profile(&name)
        .await?
        .ok_or_else(|| Failure::not_found("no profile for this account"))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        blob,
    ))
}
