//! Sending: durable in every recipient's queue before the sender hears back.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_wire::api::{GroupEpochResponse, SendRequest, SendResponse};
use hush_wire::limits::{MAX_MESSAGE_LEN, MAX_RECIPIENTS};

use super::now_ms;
use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::error::{ApiResult, Failure};
use crate::extract::{Body, PathParams};
use crate::hub::Pushed;
use crate::metrics::METRICS;
use crate::store::{DeviceKey, EarlyAck, EpochClaim, NewEnvelope};

/// Longest MLS group id accepted.
const MAX_GROUP_ID_LEN: usize = 256;
/// Largest epoch a commit may claim: the stores keep the next epoch
/// (`epoch + 1`) as a signed 64-bit integer.
const MAX_EPOCH: u64 = i64::MAX as u64 - 1;

/// `POST /v1/messages`
pub async fn send(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    Body(req): Body<SendRequest>,
) -> ApiResult<axum::Json<SendResponse>> {
    accept(&state, &me, req).await.map(axum::Json)
}

/// A send from `me`, by HTTP or over its WebSocket: checks it, stores it
/// durably for every recipient (or hands an ephemeral one to the connected
/// ones) and hands it to the recipients connected here.
pub async fn accept(
    state: &AppState,
    me: &DeviceKey,
    req: SendRequest,
) -> Result<SendResponse, Failure> {
    if req.recipients.is_empty() {
        return Err(Failure::bad_request("no recipients"));
    }
    if req.recipients.len() > MAX_RECIPIENTS {
        return Err(Failure::bad_request(format!(
            "at most {MAX_RECIPIENTS} recipients"
        )));
    }
    if req.payload.0.is_empty() || req.payload.0.len() > MAX_MESSAGE_LEN {
        return Err(Failure::bad_request(format!(
            "payload must be 1 to {MAX_MESSAGE_LEN} bytes"
        )));
    }
    let mut seen = HashSet::with_capacity(req.recipients.len());
    let mut recipients = Vec::with_capacity(req.recipients.len());
    for r in &req.recipients {
        let key = DeviceKey::new(&r.username, r.device_id);
        if &key == me {
            return Err(Failure::bad_request(
                "the sending device cannot be a recipient",
            ));
        }
        if !seen.insert(key.clone()) {
            return Err(Failure::bad_request("a recipient is listed twice"));
        }
        recipients.push(key);
    }
    let commitment = crate::franking::send_commitment(&req)?;
    let received_at_ms = now_ms();
    if req.ephemeral {
        if req.commit.is_some() {
            return Err(Failure::bad_request("a commit cannot be ephemeral"));
        }
        let delivered = recipients
            .iter()
            .filter(|r| state.hub.send_ephemeral(r, req.payload.0.clone()))
            .count();
        METRICS.send(delivered, true);
        return Ok(SendResponse {
            received_at_ms,
            delivered_to: delivered,
        });
    }
    let claim = match req.commit {
        Some(c) if c.group_id.0.is_empty() || c.group_id.0.len() > MAX_GROUP_ID_LEN => {
            return Err(Failure::bad_request("group_id must be 1 to 256 bytes"));
        }
        Some(c) if c.epoch > MAX_EPOCH => {
            return Err(Failure::bad_request(format!(
                "epoch must be at most {MAX_EPOCH}"
            )));
        }
        Some(c) => Some(EpochClaim {
            group_id: c.group_id.0,
            epoch: c.epoch,
        }),
        None => None,
    };
    let retention_ms = u64::try_from(state.settings.retention.as_millis()).unwrap_or(u64::MAX);
    let relay_tags = match commitment {
        None => Vec::new(),
        Some(commitment) => {
            let key = crate::franking::franking_key(state).await?;
            recipients
                .iter()
                .map(|r| {
                    crate::franking::relay_tag(
                        &key,
                        &commitment,
                        &me.username,
                        &r.username,
                        received_at_ms,
                    )
                })
                .collect()
        }
    };
    #[cfg(feature = "fault-injection")]
    let relay_tags = if state.kt.faults.strips_relay_tags() {
        Vec::new()
    } else {
        relay_tags
    };
    // From here on only the sealed form exists: the MLS message and its
    // commitment are never stored or handed over in the clear.
    let sealed = crate::sealing::seal(state, &recipients, &req.payload.0, &relay_tags).await?;
    let shared: Arc<[u8]> = sealed.body.as_slice().into();
    let envelope = NewEnvelope {
        payload: sealed.body,
        relay_tags: sealed.headers,
        received_at_ms,
        expires_at_ms: received_at_ms.saturating_add(retention_ms),
    };
    let tags = envelope.relay_tags.clone();
    let Some(claim) = claim else {
        // No commit to order: hand the envelope to the recipients connected
        // here as soon as it has its numbers, and skip the write for those
        // that acknowledge it within the commit window.
        let early: Vec<Arc<EarlyAck>> = recipients.iter().map(|_| Arc::default()).collect();
        let outcome = state
            .store
            .enqueue_early(&recipients, envelope, &early, &mut |seqs| {
                for (i, (r, seq)) in recipients.iter().zip(seqs).enumerate() {
                    let taken = state.hub.deliver(
                        r,
                        Pushed {
                            seq: *seq,
                            received_at_ms,
                            relay_tag: tags.get(i).cloned(),
                            payload: shared.clone(),
                            early: early.get(i).cloned(),
                        },
                    );
                    if !taken && let Some(e) = early.get(i) {
                        // No connection here will acknowledge it early: the
                        // write need not wait for one.
                        e.take_for_write();
                    }
                }
            })
            .await?;
        // Readable now: a connection that did not send it (it was not next,
        // or the device connected again meanwhile) reads it.
        for ((r, wake), e) in recipients.iter().zip(&outcome.wake).zip(&early) {
            if *wake && !e.sent_on().is_some_and(|c| state.hub.is_current(r, c)) {
                state.hub.wake(r);
            }
        }
        METRICS.send(recipients.len(), false);
        return Ok(SendResponse {
            received_at_ms,
            delivered_to: recipients.len(),
        });
    };
    let seqs = state
        .store
        .enqueue(&recipients, envelope, Some(claim))
        .await?;
    // Durable now: hand each online recipient its envelope so that its
    // connection need not read it back. A commit is never handed over
    // before it is durable: it may still lose its epoch.
    for (i, (r, seq)) in recipients.iter().zip(seqs).enumerate() {
        state.hub.deliver(
            r,
            Pushed {
                seq,
                received_at_ms,
                relay_tag: tags.get(i).cloned(),
                payload: shared.clone(),
                early: None,
            },
        );
    }
    METRICS.send(recipients.len(), false);
    Ok(SendResponse {
        received_at_ms,
        delivered_to: recipients.len(),
    })
}

/// `GET /v1/groups/{group_id}` (group id in base64url without padding)
pub async fn group_epoch(
    State(state): State<AppState>,
    _auth: AuthDevice,
    PathParams(group_id): PathParams<String>,
) -> ApiResult<axum::Json<GroupEpochResponse>> {
    let id = URL_SAFE_NO_PAD
        .decode(group_id.as_bytes())
        .map_err(|_| Failure::bad_request("group id must be base64url without padding"))?;
    if id.is_empty() || id.len() > MAX_GROUP_ID_LEN {
        return Err(Failure::bad_request("group id must be 1 to 256 bytes"));
    }
    Ok(axum::Json(GroupEpochResponse {
        epoch: state.store.group_epoch(&id).await?,
    }))
}
