//! Accounts, devices, the directory and encrypted profiles.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hush_proto::{AccountPublicKey, DeviceCertificate, Username};
use hush_wire::api::{
    AccountResponse, AddDeviceRequest, DEVICE_REQUEST_NONCE_LEN, DeviceEntry, NewDeviceBody,
    RegisterRequest, RegisterResponse, RemoveDeviceRequest, RotateTokenResponse,
    device_request_message,
};
use hush_wire::{Bytes, ErrorCode};

use crate::app::AppState;
use crate::auth::{AuthDevice, bearer, certificate_hash, new_token, token_hash};
use crate::delivery::now_ms;
use crate::error::{ApiResult, Failure, Refusal};
use crate::extract::{Body, PathParams, RawBody};
use crate::metrics::METRICS;
use crate::store::{AccountRecord, DeviceKey, NewAccount, NewDevice};

/// How far a signed device request's timestamp may be from the server clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

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
    let entry = directory_entry(&state, &name)
        .await?
        .ok_or_else(|| Failure::not_found("no such account"))?;
    Ok(axum::Json(entry))
}

/// The directory entry of `name` as the server shows it, if it exists.
pub(crate) async fn directory_entry(
    state: &AppState,
    name: &str,
) -> ApiResult<Option<AccountResponse>> {
    #[cfg(feature = "fault-injection")]
    if let Some(ghost) = state.kt.faults.ghost(name) {
        return Ok(Some(AccountResponse {
            username: name.to_owned(),
            account_key: Bytes(ghost.account_key),
            devices: vec![DeviceEntry {
                device_id: 1,
                certificate: Bytes(ghost.certificate),
            }],
        }));
    }
    let Some(account) = state.store.account(name).await? else {
        return Ok(None);
    };
    Ok(Some(AccountResponse {
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

/// A signed device request as received.
struct Signed<'a> {
    action: &'a str,
    user: &'a str,
    device_id: u32,
    timestamp_ms: u64,
    nonce: &'a Bytes,
    /// The certificate the request is about: the new one, or the removed
    /// one as stored.
    certificate: &'a [u8],
    signature: &'a Bytes,
}

/// Checks the time, the signature (over the nonce and the certificate), the
/// account's limit of signed requests and that the nonce is fresh,
/// remembering it. Only validly signed requests count against the account
/// (a stranger cannot use up its owner's share); the rest are held back by
/// the per-network limit.
///
/// The nonce is remembered in the store, shared by every node, until the
/// request's window has passed (after which the timestamp alone refuses
/// it), so a captured request is refused on whichever node it is replayed
/// to. It is remembered under a hash of the account and the nonce, so one
/// account cannot use up another's nonces.
async fn check_signed_request(
    state: &AppState,
    key: &AccountPublicKey,
    req: Signed<'_>,
) -> Result<(), Refusal> {
    let now = now_ms();
    if now.abs_diff(req.timestamp_ms) > MAX_CLOCK_SKEW_MS {
        return Err(Failure::bad_request(
            "timestamp_ms is more than five minutes from the server's clock",
        )
        .into());
    }
    if req.nonce.0.len() != DEVICE_REQUEST_NONCE_LEN {
        return Err(Failure::bad_request(format!(
            "nonce must be {DEVICE_REQUEST_NONCE_LEN} fresh random bytes"
        ))
        .into());
    }
    let message = device_request_message(
        req.action,
        req.user,
        req.device_id,
        req.timestamp_ms,
        req.nonce.as_slice(),
        &certificate_hash(req.certificate),
    );
    if !key.verify(&message, req.signature.as_slice()) {
        return Err(Failure::new(
            ErrorCode::Forbidden,
            "the signature is not by this account's key over this request \
             (version 2: with its nonce and certificate)",
        )
        .into());
    }
    state.limits.check_signed(req.user)?;
    let forget_at = req.timestamp_ms.saturating_add(MAX_CLOCK_SKEW_MS);
    let fresh = state
        .store
        .remember_nonce(nonce_key(req.user, req.nonce.as_slice()), forget_at, now)
        .await?;
    if !fresh {
        METRICS.signed_replay();
        return Err(Failure::new(
            ErrorCode::Forbidden,
            "this signed request was used already; sign a new one with a fresh nonce",
        )
        .into());
    }
    Ok(())
}

/// The key a nonce is remembered under: SHA-256 of the account name, a zero
/// byte and the nonce.
fn nonce_key(account: &str, nonce: &[u8]) -> [u8; 32] {
    use aws_lc_rs::digest::{SHA256, digest};
    let mut input = Vec::with_capacity(account.len() + 1 + nonce.len());
    input.extend_from_slice(account.as_bytes());
    input.push(0);
    input.extend_from_slice(nonce);
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, &input).as_ref());
    key
}

async fn account_of(state: &AppState, name: &str) -> ApiResult<(AccountPublicKey, AccountRecord)> {
    let account = state
        .store
        .account(name)
        .await?
        .ok_or_else(|| Failure::not_found("no such account"))?;
    let key = AccountPublicKey::from_slice(&account.account_key)
        .map_err(|_| Failure::new(ErrorCode::Internal, "stored account key is corrupt"))?;
    Ok((key, account))
}

/// `POST /v1/accounts/{username}/devices`
pub async fn add_device(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    Body(req): Body<AddDeviceRequest>,
) -> Result<impl IntoResponse, Refusal> {
    let user = username(&name)?;
    let (key, _) = account_of(&state, user.as_str()).await?;
    check_signed_request(
        &state,
        &key,
        Signed {
            action: "add",
            user: user.as_str(),
            device_id: req.device.device_id,
            timestamp_ms: req.timestamp_ms,
            nonce: &req.nonce,
            certificate: req.device.certificate.as_slice(),
            signature: &req.signature,
        },
    )
    .await?;
    let (mut device, mut token) = new_device(&req.device, &user, &key)?;
    if let Some(hash) = &req.token_hash {
        device.token_hash = hash
            .as_slice()
            .try_into()
            .map_err(|_| Failure::bad_request("token_hash must be 32 bytes"))?;
        token = String::new();
    }
    state
        .store
        .add_device(user.as_str(), device, state.settings.max_devices)
        .await?;
    let ticket = state.kt.changed(user.as_str());
    state.kt.wait_published(ticket).await;
    Ok((StatusCode::CREATED, axum::Json(RegisterResponse { token })))
}

/// `DELETE /v1/accounts/{username}/devices/{device_id}`: the device's
/// connection closes at once, on whichever node holds it.
pub async fn remove_device(
    State(state): State<AppState>,
    PathParams((name, device_id)): PathParams<(String, u32)>,
    Body(req): Body<RemoveDeviceRequest>,
) -> Result<StatusCode, Refusal> {
    let user = username(&name)?;
    let (key, account) = account_of(&state, user.as_str()).await?;
    let certificate = account
        .devices
        .into_iter()
        .find(|d| d.device_id == device_id)
        .ok_or_else(|| Failure::not_found("no such device"))?
        .certificate;
    check_signed_request(
        &state,
        &key,
        Signed {
            action: "remove",
            user: user.as_str(),
            device_id,
            timestamp_ms: req.timestamp_ms,
            nonce: &req.nonce,
            certificate: &certificate,
            signature: &req.signature,
        },
    )
    .await?;
    let device = DeviceKey::new(user.as_str(), device_id);
    state.store.remove_device(&device).await?;
    state.hub.revoke(&device);
    let ticket = state.kt.changed(user.as_str());
    state.kt.wait_published(ticket).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/token/rotate`: a new token for the calling device; the one it
/// called with stops working, and connections opened with it close.
pub async fn rotate_token(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    headers: HeaderMap,
) -> ApiResult<axum::Json<RotateTokenResponse>> {
    let old = token_hash(bearer(&headers).ok_or_else(Failure::unauthorized)?);
    let token = new_token();
    state
        .store
        .replace_token(&me, &old, &token_hash(&token))
        .await
        .map_err(|e| match e {
            // Rotated by a concurrent request with the same token.
            crate::store::StoreError::NotFound => Failure::unauthorized(),
            e => e.into(),
        })?;
    state.hub.revoke(&me);
    tracing::debug!("device token rotated");
    Ok(axum::Json(RotateTokenResponse { token }))
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
