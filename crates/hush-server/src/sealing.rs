//! What the server stores of a message is sealed to its recipient devices
//! (see `hush_proto::sealed`), so that a copy of the database links no
//! envelope to its sender and no envelope to a group.
//!
//! At send time the message (and the franking commitment read from it) is
//! in memory only. The server encrypts it once under a fresh key (the body,
//! stored once in `payloads.body` for all the recipients) and seals that key
//! with the recipient's relay tag to each recipient device's key, derived
//! from its certificate (the header, stored in the recipient's
//! `envelopes.header`). Envelopes written before sealing (a 32-byte tag or
//! none, the bare MLS message) are still delivered as they are.
//!
//! Only what is written is sealed: a message without a commit is handed to
//! the recipients connected here as it is (the MLS message and the relay
//! tag, over the connection's TLS) and a recipient's header is sealed only
//! if its envelope is written, that is, if the device did not acknowledge
//! it within the early window ([`seal_lazily`], decision 0013's addendum).

use std::collections::HashMap;
use std::sync::Arc;

use hush_proto::DeviceCertificate;
use hush_proto::sealed::{RELAY_TAG_LEN, SealKey, SealedBody, seal_body};

use crate::app::AppState;
use crate::error::Failure;
use crate::store::{DeviceKey, SealLater, StoreError, StoreResult};

/// Above this many recipients, sealing runs off the async workers.
const INLINE_SEALS: usize = 32;

/// A message sealed for its recipients.
#[derive(Debug)]
pub struct Sealed {
    /// The body, stored once for every recipient.
    pub body: Vec<u8>,
    /// One header per recipient, in order; empty for a device the directory
    /// does not hold (the store refuses or skips it).
    pub headers: Vec<Vec<u8>>,
}

/// Seals `payload` and each recipient's relay tag (`relay_tags` is empty
/// when the message carries no franking commitment).
pub async fn seal(
    state: &AppState,
    recipients: &[DeviceKey],
    payload: &[u8],
    relay_tags: &[[u8; RELAY_TAG_LEN]],
) -> Result<Sealed, Failure> {
    let body = Arc::new(seal_body(payload, &mut rand::rngs::OsRng).map_err(internal)?);
    let tags = (0..recipients.len())
        .map(|i| relay_tags.get(i).copied())
        .collect();
    let headers = headers(state, body.clone(), recipients.to_vec(), tags).await?;
    Ok(Sealed {
        body: body.body.clone(),
        headers,
    })
}

/// Seals `payload` once, and the headers of the recipients marked in `now`
/// (those whose envelope is sure to be written); the others' headers are
/// left empty, for the store to seal with the [`SealLater`] returned, and
/// only for those of them it writes (an online device that acknowledges
/// the envelope first never costs a directory read or a seal).
pub async fn seal_lazily(
    state: &AppState,
    recipients: &[DeviceKey],
    payload: &[u8],
    relay_tags: &[[u8; RELAY_TAG_LEN]],
    now: &[bool],
) -> Result<(Sealed, SealLater), Failure> {
    let body = Arc::new(seal_body(payload, &mut rand::rngs::OsRng).map_err(internal)?);
    let recipients: Arc<[DeviceKey]> = recipients.into();
    let relay_tags: Arc<[[u8; RELAY_TAG_LEN]]> = relay_tags.into();
    let which: Vec<usize> = (0..recipients.len())
        .filter(|&i| now.get(i).is_some_and(|n| *n))
        .collect();
    let r: Vec<DeviceKey> = which.iter().map(|&i| recipients[i].clone()).collect();
    let t: Vec<_> = which.iter().map(|&i| relay_tags.get(i).copied()).collect();
    let sealed_now = headers(state, body.clone(), r, t).await?;
    let mut all = vec![Vec::new(); recipients.len()];
    for (i, h) in which.into_iter().zip(sealed_now) {
        all[i] = h;
    }
    let sealed = Sealed {
        body: body.body.clone(),
        headers: all,
    };
    let state = state.clone();
    let runtime = tokio::runtime::Handle::current();
    let later = move |which: &[usize]| -> StoreResult<Vec<Vec<u8>>> {
        let r: Vec<DeviceKey> = which.iter().map(|&i| recipients[i].clone()).collect();
        let t: Vec<_> = which.iter().map(|&i| relay_tags.get(i).copied()).collect();
        // Called by the store's writer thread, outside the runtime.
        runtime
            .block_on(headers(&state, body.clone(), r, t))
            .map_err(|e| StoreError::Backend(e.0.message))
    };
    Ok((sealed, SealLater(Arc::new(later))))
}

/// The header of each recipient (empty for a device the directory does not
/// hold), with its relay tag if any.
async fn headers(
    state: &AppState,
    body: Arc<SealedBody>,
    recipients: Vec<DeviceKey>,
    relay_tags: Vec<Option<[u8; RELAY_TAG_LEN]>>,
) -> Result<Vec<Vec<u8>>, Failure> {
    let keys = seal_keys(state, &recipients).await?;
    let plan: Vec<(Option<SealKey>, Option<[u8; RELAY_TAG_LEN]>)> = recipients
        .iter()
        .zip(relay_tags)
        .map(|(r, tag)| (keys.get(r).copied(), tag))
        .collect();
    let run = move || -> Result<Vec<Vec<u8>>, Failure> {
        plan.iter()
            .map(|(key, tag)| match key {
                Some(k) => body.header(k, tag.as_ref()).map(|h| h.to_vec()),
                None => Ok(Vec::new()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)
    };
    if recipients.len() <= INLINE_SEALS {
        return run();
    }
    tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| internal(format!("sealing task failed: {e}")))?
}

/// The sealing key of every recipient device the directory holds (one
/// directory read for them all).
async fn seal_keys(
    state: &AppState,
    recipients: &[DeviceKey],
) -> Result<HashMap<DeviceKey, SealKey>, Failure> {
    if recipients.is_empty() {
        return Ok(HashMap::new());
    }
    let certificates = state.store.device_certificates(recipients).await?;
    let mut keys = HashMap::with_capacity(recipients.len());
    for (key, certificate) in recipients.iter().zip(certificates) {
        // The directory holds only certificates it verified at
        // registration; one that no longer decodes is skipped like a
        // missing device.
        if let Some(seal) = certificate.and_then(|c| {
            DeviceCertificate::decode(&c)
                .map_err(hush_proto::ProtoError::from)
                .and_then(|c| SealKey::of(&c))
                .ok()
        }) {
            keys.insert(key.clone(), seal);
        }
    }
    Ok(keys)
}

fn internal(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "sealing a message failed");
    Failure::new(
        hush_wire::ErrorCode::Internal,
        "sealing failed; retry later",
    )
}
