//! Sends: checked, durable (sealed) in every recipient's queue before the
//! sender hears back, and handed to the recipients connected here.

use std::collections::HashSet;
use std::sync::Arc;

use hush_wire::DeviceAddress;
use hush_wire::api::{CommitClaim, SendRequest, SendResponse};
use hush_wire::limits::{MAX_MESSAGE_LEN, MAX_RECIPIENTS};

use super::{EarlyAck, now_ms};
use crate::app::AppState;
use crate::error::Failure;
use crate::hub::Pushed;
use crate::metrics::METRICS;
use crate::store::{DeviceKey, EpochClaim, NewEnvelope, StoreError};

/// Longest MLS group id accepted.
const MAX_GROUP_ID_LEN: usize = 256;
/// Largest epoch a commit may claim: the stores keep the next epoch
/// (`epoch + 1`) as a signed 64-bit integer.
const MAX_EPOCH: u64 = i64::MAX as u64 - 1;
/// Tries of a send whose recipients keep disappearing under it.
const SEND_ATTEMPTS: usize = 3;

/// A send from `me`, by HTTP or over its WebSocket: checks it, stores it
/// durably for every recipient (or hands an ephemeral one to the connected
/// ones) and hands it to the recipients connected here.
pub async fn accept(
    state: &AppState,
    me: &DeviceKey,
    req: SendRequest,
) -> Result<SendResponse, Failure> {
    // A commit of a device alone in its group has nobody to go to, but
    // must still win its epoch.
    if req.recipients.is_empty() && req.commit.is_none() {
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
    #[cfg(feature = "fault-injection")]
    let req = match state.kt.faults.swapped_link_frame(&req.payload.0) {
        Some(swapped) => SendRequest {
            payload: hush_wire::Bytes(swapped),
            ..req
        },
        None => req,
    };
    let commitment = crate::franking::send_commitment(&req)?;
    let received_at_ms = now_ms();
    if req.ephemeral {
        if req.commit.is_some() {
            return Err(Failure::bad_request("a commit cannot be ephemeral"));
        }
        // One buffer for every recipient.
        let payload = crate::hub::Ephemeral::new(req.payload.0.into());
        let delivered = recipients
            .iter()
            .filter(|r| state.hub.send_ephemeral(r, &payload))
            .count();
        METRICS.send(delivered, true);
        return Ok(SendResponse {
            received_at_ms,
            delivered_to: delivered,
            missing: Vec::new(),
        });
    }
    let claim = req.commit.map(epoch_claim).transpose()?;
    // Counted in every recipient's queue, or refused with nothing queued.
    let reservation = state
        .quotas
        .reserve_queue(&*state.store, &recipients, req.payload.0.len())
        .await?;
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
    let send = Prepared {
        message: &req.payload.0,
        claim,
        received_at_ms,
        expires_at_ms: received_at_ms.saturating_add(retention_ms),
    };
    let (recipients, missing) = store_to_those_present(state, recipients, relay_tags, send).await?;
    // Stored: the queue bytes it counted stay counted.
    reservation.keep();
    METRICS.send(recipients.len(), false);
    Ok(SendResponse {
        received_at_ms,
        delivered_to: recipients.len(),
        missing,
    })
}

/// A send checked and ready to store.
pub(super) struct Prepared<'a> {
    /// The MLS message as the sender made it.
    pub(super) message: &'a [u8],
    pub(super) claim: Option<EpochClaim>,
    pub(super) received_at_ms: u64,
    pub(super) expires_at_ms: u64,
}

/// Seals the message and stores it for every recipient. A recipient whose
/// device is gone is dropped and named among the missing, and the send goes
/// to the others (up to [`SEND_ATTEMPTS`] tries while recipients keep
/// disappearing). Returns the recipients it was stored for and the missing.
async fn store_to_those_present(
    state: &AppState,
    mut recipients: Vec<DeviceKey>,
    mut relay_tags: Vec<[u8; 32]>,
    send: Prepared<'_>,
) -> Result<(Vec<DeviceKey>, Vec<DeviceAddress>), Failure> {
    let mut missing = Vec::new();
    for attempt in 1..=SEND_ATTEMPTS {
        let stored = match &send.claim {
            Some(claim) => {
                store_written(state, &recipients, &relay_tags, &send, Some(claim)).await?
            }
            None => match state.cluster.as_ref().filter(|c| c.asks_other_nodes()) {
                Some(cluster) => {
                    super::routed::store_routed(state, cluster, &recipients, &relay_tags, &send)
                        .await?
                }
                None => store_early(state, &recipients, &relay_tags, &send).await?,
            },
        };
        match stored {
            Err(StoreError::NotFound) if attempt < SEND_ATTEMPTS => {
                let gone = missing_devices(state, &recipients).await?;
                if gone.is_empty() {
                    return Err(StoreError::NotFound.into());
                }
                if !relay_tags.is_empty() {
                    relay_tags = recipients
                        .iter()
                        .zip(relay_tags)
                        .filter_map(|(r, t)| (!gone.contains(r)).then_some(t))
                        .collect();
                }
                recipients.retain(|r| !gone.contains(r));
                missing.extend(gone.into_iter().map(|d| DeviceAddress {
                    username: d.username,
                    device_id: d.device_id,
                }));
                if recipients.is_empty() && send.claim.is_none() {
                    break;
                }
            }
            Err(e) => return Err(e.into()),
            Ok(()) => break,
        }
    }
    Ok((recipients, missing))
}

/// Checks a commit claim's fields.
fn epoch_claim(c: CommitClaim) -> Result<EpochClaim, Failure> {
    if c.group_id.0.is_empty() || c.group_id.0.len() > MAX_GROUP_ID_LEN {
        return Err(Failure::bad_request("group_id must be 1 to 256 bytes"));
    }
    if c.epoch > MAX_EPOCH {
        return Err(Failure::bad_request(format!(
            "epoch must be at most {MAX_EPOCH}"
        )));
    }
    let token = <[u8; 32]>::try_from(c.token.as_slice())
        .map_err(|_| Failure::bad_request("the commit token must be 32 bytes"))?;
    let next_token_hash = <[u8; 32]>::try_from(c.next_token_hash.as_slice())
        .map_err(|_| Failure::bad_request("next_token_hash must be 32 bytes"))?;
    Ok(EpochClaim {
        group_id: c.group_id.0,
        epoch: c.epoch,
        token,
        next_token_hash,
    })
}

/// The recipients whose device does not exist (any more).
async fn missing_devices(
    state: &AppState,
    recipients: &[DeviceKey],
) -> Result<Vec<DeviceKey>, Failure> {
    let mut users: Vec<&str> = recipients.iter().map(|r| r.username.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let mut gone = Vec::new();
    for user in users {
        let devices: HashSet<u32> = match state.store.account(user).await? {
            Some(a) => a.devices.iter().map(|d| d.device_id).collect(),
            None => HashSet::new(),
        };
        gone.extend(
            recipients
                .iter()
                .filter(|r| r.username == user && !devices.contains(&r.device_id))
                .cloned(),
        );
    }
    Ok(gone)
}

/// Stores a message with no commit for every recipient and hands it to the
/// recipients connected here as soon as it has its numbers, all in one
/// pass, skipping the write for those that acknowledge it within the
/// commit window. What is handed over is the message as the sender made it
/// (and the recipient's relay tag), over the connection's TLS; what is
/// written is sealed, and a recipient connected here has its header sealed
/// only if its envelope is written (decision 0013). The outer error is the
/// sealing's, the inner the store's.
pub(super) async fn store_early(
    state: &AppState,
    recipients: &[DeviceKey],
    relay_tags: &[[u8; 32]],
    send: &Prepared<'_>,
) -> Result<Result<(), StoreError>, Failure> {
    let lazy = state.store.seals_lazily();
    // Not connected here: written for sure, so sealed now (off the writer).
    let now: Vec<bool> = recipients
        .iter()
        .map(|r| !lazy || !state.hub.is_connected(r))
        .collect();
    let (sealed, later) =
        crate::sealing::seal_lazily(state, recipients, send.message, relay_tags, &now).await?;
    let sealed_body: Arc<[u8]> = sealed.body.as_slice().into();
    let bare: Arc<[u8]> = send.message.into();
    let headers = sealed.headers.clone();
    let envelope = NewEnvelope {
        payload: sealed.body,
        relay_tags: sealed.headers,
        received_at_ms: send.received_at_ms,
        expires_at_ms: send.expires_at_ms,
        seal_later: lazy.then_some(later),
    };
    let received_at_ms = send.received_at_ms;
    let early: Vec<Arc<EarlyAck>> = recipients.iter().map(|_| Arc::default()).collect();
    let outcome = state
        .store
        .enqueue_early(recipients, envelope, &early, &mut |seqs| {
            let taken = state.hub.deliver_all(recipients, seqs, |i, seq| {
                let (relay_tag, payload) = match headers.get(i).filter(|h| !h.is_empty()) {
                    Some(h) => (Some(h.clone()), sealed_body.clone()),
                    None => (relay_tags.get(i).map(|t| t.to_vec()), bare.clone()),
                };
                Pushed {
                    seq,
                    received_at_ms,
                    relay_tag,
                    payload,
                    early: early.get(i).cloned(),
                }
            });
            for (taken, e) in taken.iter().zip(&early) {
                if !taken {
                    // No connection here will acknowledge it early: the
                    // write need not wait for one.
                    e.take_for_write();
                }
            }
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Ok(Err(e)),
    };
    // Readable now: a connection that did not send it (it was not next,
    // or the device connected again meanwhile) reads it.
    for ((r, wake), e) in recipients.iter().zip(&outcome.wake).zip(&early) {
        if *wake && !e.sent_on().is_some_and(|c| state.hub.is_current(r, c)) {
            state.hub.wake(r);
        }
    }
    Ok(Ok(()))
}

/// Writes a send for every recipient (a commit only if it wins its epoch),
/// sealed, then hands it to the recipients connected here and carries it to
/// the others' nodes. The outer error is the sealing's, the inner the
/// store's.
pub(super) async fn store_written(
    state: &AppState,
    recipients: &[DeviceKey],
    relay_tags: &[[u8; 32]],
    send: &Prepared<'_>,
    claim: Option<&EpochClaim>,
) -> Result<Result<(), StoreError>, Failure> {
    let sealed = crate::sealing::seal(state, recipients, send.message, relay_tags).await?;
    let shared: Arc<[u8]> = sealed.body.as_slice().into();
    let tags = sealed.headers.clone();
    let envelope = NewEnvelope {
        payload: sealed.body,
        relay_tags: sealed.headers,
        received_at_ms: send.received_at_ms,
        expires_at_ms: send.expires_at_ms,
        seal_later: None,
    };
    let seqs = match state
        .store
        .enqueue(recipients, envelope, claim.cloned())
        .await
    {
        Ok(seqs) => seqs,
        Err(e) => return Ok(Err(e)),
    };
    // Durable now: hand each online recipient its envelope so that its
    // connection need not read it back. A commit is never handed over
    // before it is durable: it may still lose its epoch.
    state.hub.deliver_all(recipients, &seqs, |i, seq| Pushed {
        seq,
        received_at_ms: send.received_at_ms,
        relay_tag: tags.get(i).cloned(),
        payload: shared.clone(),
        early: None,
    });
    Ok(Ok(()))
}
