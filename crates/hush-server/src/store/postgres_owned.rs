//! The queues a cluster node numbers in memory (decision 0046): those of
//! the devices connected to it. A node alone numbers every queue under the
//! `queues` lease ([`super::postgres_alone`]); a cluster node takes one
//! device at a time, with a claim in the device's row: `devices.owner`
//! names the node and `devices.owner_token` fences the claim.
//!
//! - **Claim.** When a node first numbers a send to a device connected to
//!   it (or the device's block is used up), one statement raises the
//!   device's ceiling and, unless the node still holds the claim under the
//!   token it knows, takes it with a new token. A new claim starts a fresh
//!   block: every number of an earlier one is below it.
//! - **Fence.** Every write of the node's writer share-locks the rows of
//!   the devices it numbered and writes nothing unless each still names
//!   this node under the token its numbers were taken with (the same check
//!   runs when every copy was acknowledged early).
//! - **Losing a claim.** A send written by its node's counters (a device
//!   not connected there, or a commit) takes the claim away in the same
//!   statement that numbers it ([`super::postgres_writer`]): above every
//!   number of the claim, and after the claim's writes under way, which it
//!   waits for. The node's later writes under that claim fail; their
//!   senders hear "busy" and send again, the node forgets the block, and
//!   its next send to the device claims it anew.

use rand::RngCore as _;
use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool};

use super::postgres_alone::EarlyJob;
use super::seq_blocks::SEQ_BLOCK;
use super::{DeviceKey, StoreError, StoreResult, backend};

/// A name for this node's claims, new every time it starts: a node started
/// again takes its devices anew, fencing off whatever it wrote before.
pub(super) fn node_name() -> String {
    let mut raw = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Raises the ceilings of `need` (rows locked in key order) and claims for
/// `node` each device it does not hold under the token `believed` says;
/// per device, its new ceiling and the token of the claim.
pub(super) async fn raise_claims(
    pool: &PgPool,
    node: &str,
    need: &[DeviceKey],
    believed: &[i64],
) -> StoreResult<Vec<(DeviceKey, u64, i64)>> {
    let names: Vec<&str> = need.iter().map(|d| d.username.as_str()).collect();
    let ids: Vec<i64> = need.iter().map(|d| i64::from(d.device_id)).collect();
    let rows = sqlx::query(
        "WITH k AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS k(u, i, t)), \
         locked AS MATERIALIZED (SELECT d.username AS u, d.device_id AS i FROM devices d \
           JOIN k ON d.username = k.u AND d.device_id = k.i \
           ORDER BY d.username, d.device_id FOR NO KEY UPDATE OF d) \
         UPDATE devices d SET next_seq = d.next_seq + $4, owner = $5, \
           owner_token = CASE WHEN d.owner = $5 AND d.owner_token = k.t \
             THEN d.owner_token ELSE d.owner_token + 1 END \
         FROM locked l JOIN k ON k.u = l.u AND k.i = l.i \
         WHERE d.username = l.u AND d.device_id = l.i \
         RETURNING d.username, d.device_id, d.next_seq, d.owner_token",
    )
    .bind(&names)
    .bind(&ids)
    .bind(believed)
    .bind(SEQ_BLOCK as i64)
    .bind(node)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    if rows.len() != need.len() {
        return Err(StoreError::NotFound);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let key = DeviceKey::new(&r.get::<String, _>(0), r.get::<i64, _>(1) as u32);
            (key, r.get::<i64, _>(2) as u64, r.get::<i64, _>(3))
        })
        .collect())
}

/// The claims a batch's numbers were taken under: each device and token
/// once, as the columns of the fence's `unnest`.
pub(super) fn claims_of<'a>(jobs: &[&'a EarlyJob]) -> (Vec<&'a str>, Vec<i64>, Vec<i64>) {
    let mut pairs: Vec<(&str, i64, i64)> = jobs
        .iter()
        .flat_map(|j| j.recipients.iter().zip(&j.tokens))
        .map(|(r, t)| (r.username.as_str(), i64::from(r.device_id), *t))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut names = Vec::with_capacity(pairs.len());
    let mut ids = Vec::with_capacity(pairs.len());
    let mut tokens = Vec::with_capacity(pairs.len());
    for (u, i, t) in pairs {
        names.push(u);
        ids.push(i);
        tokens.push(t);
    }
    (names, ids, tokens)
}

/// Of the claims `jobs` were numbered under, those `node` no longer holds.
pub(super) async fn lost_claims(
    conn: &mut PgConnection,
    node: &str,
    jobs: &[&EarlyJob],
) -> Vec<(DeviceKey, i64)> {
    let (names, ids, tokens) = claims_of(jobs);
    let rows = sqlx::query(
        "SELECT k.u, k.i, k.t FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS k(u, i, t) \
         LEFT JOIN devices d ON d.username = k.u AND d.device_id = k.i \
         WHERE d.owner IS DISTINCT FROM $4 OR d.owner_token <> k.t",
    )
    .bind(&names)
    .bind(&ids)
    .bind(&tokens)
    .bind(node)
    .fetch_all(conn)
    .await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|r| {
                let key = DeviceKey::new(&r.get::<String, _>(0), r.get::<i64, _>(1) as u32);
                (key, r.get::<i64, _>(2))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell which claims were lost; forgetting all");
            jobs.iter()
                .flat_map(|j| j.recipients.iter().cloned().zip(j.tokens.iter().copied()))
                .collect()
        }
    }
}
