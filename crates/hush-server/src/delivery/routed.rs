//! A cluster node's send without a commit (decision 0046). Each recipient
//! is stored by the node that holds its connection, which numbers it in
//! memory and hands it over before the write, so that an acknowledgement
//! within the commit window spares the write there as on a node alone:
//!
//! - recipients connected here: [`store_early`] on this node;
//! - recipients connected elsewhere (up to [`MAX_FORWARDED`] per send): the
//!   send is asked of their node over NATS ([`Cluster::forward`]), which
//!   answers once it is stored there ([`take_forwarded`]);
//! - the others, those no node listens for (offline), and all of them
//!   while NATS is unreachable: written here with the queue counters
//!   ([`store_written`]), which takes the device's queue from a node that
//!   numbered it, after that node's writes under way. A node that does not
//!   answer in time makes the send "busy" (see
//!   [`crate::cluster::Forwarded`]).
//!
//! The sender hears "stored" only when every part is. A part that fails
//! fails the send: the sender sends it again, and a recipient that already
//! had it drops the copy by its message id.

use bytes::Bytes;
use futures_util::future::join_all;

use super::send::{Prepared, store_early, store_written};
use crate::app::AppState;
use crate::cluster::{Cluster, Forwarded, ForwardedSend};
use crate::error::Failure;
use crate::store::{DeviceKey, StoreError};

/// Recipients on other nodes asked to take one send; the rest of them are
/// written here (a large group's send would otherwise cost a request per
/// member), which takes their queues from the nodes that held them.
const MAX_FORWARDED: usize = 64;

/// Stores a send for every recipient, each where its connection is (see
/// the module). The outer error is the sealing's, the inner the store's.
pub(super) async fn store_routed(
    state: &AppState,
    cluster: &Cluster,
    recipients: &[DeviceKey],
    relay_tags: &[[u8; 32]],
    send: &Prepared<'_>,
) -> Result<Result<(), StoreError>, Failure> {
    let (mut here, mut away, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    // Without NATS no node can be asked: sends are written here meanwhile.
    let asking = cluster.is_connected();
    for (i, r) in recipients.iter().enumerate() {
        if state.hub.is_connected(r) {
            here.push(i);
        } else if asking && away.len() < MAX_FORWARDED {
            away.push(i);
        } else {
            rest.push(i);
        }
    }
    if here.len() == recipients.len() {
        return store_early(state, recipients, relay_tags, send).await;
    }
    let (near, near_tags) = pick(recipients, relay_tags, &here);
    let local = async {
        if near.is_empty() {
            return Ok(Ok(()));
        }
        store_early(state, &near, &near_tags, send).await
    };
    let (local, answers) = tokio::join!(
        local,
        forward_all(cluster, recipients, relay_tags, send, &away)
    );
    let mut outcome = local?;
    for (i, answer) in away.into_iter().zip(answers) {
        match answer {
            Forwarded::Stored => {}
            Forwarded::NotThere => rest.push(i),
            Forwarded::Busy => outcome = outcome.and(Err(StoreError::Busy)),
            Forwarded::Gone => outcome = outcome.and(Err(StoreError::NotFound)),
            Forwarded::Failed => {
                let e = StoreError::Backend("the recipient's node could not store it".into());
                outcome = outcome.and(Err(e));
            }
        }
    }
    if !rest.is_empty() {
        rest.sort_unstable();
        let (far, far_tags) = pick(recipients, relay_tags, &rest);
        outcome = outcome.and(store_written(state, &far, &far_tags, send, None).await?);
    }
    Ok(outcome)
}

/// Asks the nodes of the recipients at `away` to take the send, all at
/// once; their answers, in the same order.
async fn forward_all(
    cluster: &Cluster,
    recipients: &[DeviceKey],
    relay_tags: &[[u8; 32]],
    send: &Prepared<'_>,
    away: &[usize],
) -> Vec<Forwarded> {
    if away.is_empty() {
        return Vec::new();
    }
    let message = Bytes::copy_from_slice(send.message);
    join_all(away.iter().map(|&i| {
        let forwarded = ForwardedSend {
            message: message.clone(),
            relay_tag: relay_tags.get(i).copied(),
            received_at_ms: send.received_at_ms,
            expires_at_ms: send.expires_at_ms,
        };
        async move {
            match recipients.get(i) {
                Some(device) => cluster.forward(device, &forwarded).await,
                None => Forwarded::Failed,
            }
        }
    }))
    .await
}

/// The recipients at `at`, with their relay tags (none if the send has
/// none).
fn pick(
    recipients: &[DeviceKey],
    relay_tags: &[[u8; 32]],
    at: &[usize],
) -> (Vec<DeviceKey>, Vec<[u8; 32]>) {
    let devices = at
        .iter()
        .filter_map(|&i| recipients.get(i).cloned())
        .collect();
    let tags = at
        .iter()
        .filter_map(|&i| relay_tags.get(i).copied())
        .collect();
    (devices, tags)
}

/// Takes a send another node asked of this one for `device`: stored here
/// as a send made here would be, if the device is connected here.
pub async fn take_forwarded(state: &AppState, device: DeviceKey, send: ForwardedSend) -> Forwarded {
    if !state.hub.is_connected(&device) {
        return Forwarded::NotThere;
    }
    let prepared = Prepared {
        message: &send.message,
        claim: None,
        received_at_ms: send.received_at_ms,
        expires_at_ms: send.expires_at_ms,
    };
    let tags: Vec<[u8; 32]> = send.relay_tag.into_iter().collect();
    match store_early(state, &[device], &tags, &prepared).await {
        Ok(Ok(())) => Forwarded::Stored,
        Ok(Err(StoreError::Busy)) => Forwarded::Busy,
        Ok(Err(StoreError::NotFound)) => Forwarded::Gone,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a send asked of this node failed");
            Forwarded::Failed
        }
        Err(_) => Forwarded::Failed,
    }
}
