//! Who may win a group's epoch, shared by every backend.
//!
//! The server keeps, per group id, the epoch the next commit must claim and
//! the hash of that epoch's commit token (see `hush_proto::commit_token`),
//! plus the hash of the previous epoch's token, which only serves to tell a
//! member that lost a race for the epoch (`EpochConflict`) from anyone else
//! (`CommitRefused`). Nothing else: the server never learns the members.

use super::backend;
use hush_proto::commit_token::{TOKEN_LEN, token_hash};
use rusqlite::{Connection, OptionalExtension, params};

use super::{EpochClaim, StoreError, StoreResult};

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRow {
    /// The epoch the next commit must claim.
    pub epoch: u64,
    /// The hash of that epoch's token; `None` for a group last committed
    /// before commit tokens (schema version 1).
    pub token_hash: Option<Vec<u8>>,
    /// The hash of the previous epoch's token.
    pub prev_token_hash: Option<Vec<u8>>,
}

/// What an accepted claim stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advance {
    /// The group's new epoch (`claim.epoch + 1`).
    pub epoch: i64,
    /// The hash of the new epoch's token, from the commit.
    pub token_hash: [u8; TOKEN_LEN],
    /// The hash of the token the commit presented.
    pub prev_token_hash: [u8; TOKEN_LEN],
}

/// Judges `claim` against the stored group: accepted if the group is
/// unknown (its first claim registers it), if the claim is for the group's
/// current epoch and its token matches, if it claims an earlier epoch with
/// the current token (the members refused the commits that won since,
/// decision 0032), or (once, for groups stored before tokens) if the claim
/// is not behind the stored epoch.
pub(crate) fn judge(current: Option<&GroupRow>, claim: &EpochClaim) -> StoreResult<Advance> {
    let epoch = claim
        .epoch
        .checked_add(1)
        .and_then(|e| i64::try_from(e).ok())
        .ok_or_else(|| StoreError::Backend("epoch out of range".into()))?;
    let presented = token_hash(&claim.token);
    let advance = Advance {
        epoch,
        token_hash: claim.next_token_hash,
        prev_token_hash: presented,
    };
    let Some(group) = current else {
        return Ok(advance);
    };
    let conflict = StoreError::EpochConflict {
        current: group.epoch,
    };
    match &group.token_hash {
        // Stored before commit tokens: the first token-bearing commit sets
        // the hash (docs/decisions/0012-commit-tokens.md).
        None if claim.epoch >= group.epoch => Ok(advance),
        None => Err(conflict),
        Some(h) if h.as_slice() == presented && claim.epoch == group.epoch => Ok(advance),
        // The members refused the commits that won since their epoch (a
        // non-admin's change, and any built on it): they stayed there, and
        // show the token those commits led to, which they derived from
        // them. Only a holder of the current token gets here, who could win
        // the current epoch anyway; the epoch goes back to theirs.
        Some(h) if h.as_slice() == presented && claim.epoch < group.epoch => Ok(advance),
        // A member of the previous epoch: another commit won it.
        Some(_)
            if group.prev_token_hash.as_deref() == Some(presented.as_slice())
                && claim.epoch.checked_add(1) == Some(group.epoch) =>
        {
            Err(conflict)
        }
        Some(_) => Err(StoreError::CommitRefused),
    }
}

/// Applies `claim` on SQLite inside the caller's transaction (the single
/// writer serialises claims).
pub(super) fn claim_sqlite(conn: &Connection, claim: &EpochClaim) -> StoreResult<()> {
    let current = conn
        .query_row(
            "SELECT epoch, token_hash, prev_token_hash FROM groups WHERE group_id = ?1",
            params![claim.group_id],
            |r| {
                Ok(GroupRow {
                    epoch: r.get::<_, i64>(0)? as u64,
                    token_hash: r.get(1)?,
                    prev_token_hash: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(backend)?;
    let a = judge(current.as_ref(), claim)?;
    conn.execute(
        "INSERT INTO groups (group_id, epoch, token_hash, prev_token_hash) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, \
         token_hash = excluded.token_hash, prev_token_hash = excluded.prev_token_hash",
        params![
            claim.group_id,
            a.epoch,
            a.token_hash.as_slice(),
            a.prev_token_hash.as_slice()
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Applies `claim` on PostgreSQL inside the caller's transaction: the
/// group's row is locked (`FOR UPDATE`), so of concurrent claims on any
/// number of nodes one is judged at a time.
pub(super) async fn claim_postgres(
    tx: &mut sqlx::PgConnection,
    claim: &EpochClaim,
) -> StoreResult<()> {
    use sqlx::Row;
    // A row to lock; epoch -1 marks one this transaction just made (it is
    // gone again if the claim is refused and the transaction rolls back).
    sqlx::query("INSERT INTO groups (group_id, epoch) VALUES ($1, -1) ON CONFLICT DO NOTHING")
        .bind(&claim.group_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let row = sqlx::query(
        "SELECT epoch, token_hash, prev_token_hash FROM groups WHERE group_id = $1 FOR UPDATE",
    )
    .bind(&claim.group_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    let epoch: i64 = row.get(0);
    let current = u64::try_from(epoch).ok().map(|epoch| GroupRow {
        epoch,
        token_hash: row.get(1),
        prev_token_hash: row.get(2),
    });
    let a = judge(current.as_ref(), claim)?;
    sqlx::query(
        "UPDATE groups SET epoch = $2, token_hash = $3, prev_token_hash = $4 WHERE group_id = $1",
    )
    .bind(&claim.group_id)
    .bind(a.epoch)
    .bind(a.token_hash.as_slice())
    .bind(a.prev_token_hash.as_slice())
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(epoch: u64, token: u8, next: u8) -> EpochClaim {
        EpochClaim {
            group_id: b"g".to_vec(),
            epoch,
            token: [token; TOKEN_LEN],
            next_token_hash: token_hash(&[next; TOKEN_LEN]),
        }
    }

    fn row(epoch: u64, token: u8, prev: u8) -> GroupRow {
        GroupRow {
            epoch,
            token_hash: Some(token_hash(&[token; TOKEN_LEN]).to_vec()),
            prev_token_hash: Some(token_hash(&[prev; TOKEN_LEN]).to_vec()),
        }
    }

    #[test]
    fn only_the_current_epochs_token_wins_it() {
        let g = row(5, 5, 4);
        let a = judge(Some(&g), &claim(5, 5, 6)).unwrap();
        assert_eq!(a.epoch, 6);
        assert_eq!(a.token_hash, token_hash(&[6; TOKEN_LEN]));
        // A stranger's far-future claim, a wrong token, an old token for the
        // current epoch: refused without saying the epoch.
        for c in [
            claim(1 << 40, 9, 9),
            claim(5, 9, 9),
            claim(5, 4, 9),
            claim(6, 5, 9),
        ] {
            assert!(matches!(
                judge(Some(&g), &c),
                Err(StoreError::CommitRefused)
            ));
        }
        // The previous epoch's members lost a race: they hear the epoch.
        assert!(matches!(
            judge(Some(&g), &claim(4, 4, 9)),
            Err(StoreError::EpochConflict { current: 5 })
        ));
    }

    #[test]
    fn the_current_token_may_claim_an_earlier_epoch() {
        // Epoch 4 was won by a commit the members refused; it led to a
        // token (5) they derived from it, and they commit epoch 4 again.
        let g = row(5, 5, 4);
        let a = judge(Some(&g), &claim(4, 5, 7)).unwrap();
        assert_eq!(a.epoch, 5);
        assert_eq!(a.token_hash, token_hash(&[7; TOKEN_LEN]));
        assert_eq!(a.prev_token_hash, token_hash(&[5; TOKEN_LEN]));
        // Two refused commits on top of each other: epoch 3 again.
        assert_eq!(judge(Some(&g), &claim(3, 5, 7)).unwrap().epoch, 4);
        // Once that won, the same token only loses the race.
        let again = row(5, 7, 5);
        assert!(matches!(
            judge(Some(&again), &claim(4, 5, 9)),
            Err(StoreError::EpochConflict { current: 5 })
        ));
        // No claim ahead of the group, whatever its token.
        assert!(matches!(
            judge(Some(&g), &claim(6, 5, 9)),
            Err(StoreError::CommitRefused)
        ));
    }

    #[test]
    fn unknown_and_legacy_groups() {
        assert!(judge(None, &claim(7, 1, 2)).is_ok());
        let legacy = GroupRow {
            epoch: 3,
            token_hash: None,
            prev_token_hash: None,
        };
        assert!(judge(Some(&legacy), &claim(3, 1, 2)).is_ok());
        assert!(judge(Some(&legacy), &claim(9, 1, 2)).is_ok());
        assert!(matches!(
            judge(Some(&legacy), &claim(2, 1, 2)),
            Err(StoreError::EpochConflict { current: 3 })
        ));
        assert!(judge(None, &claim(u64::MAX, 1, 2)).is_err());
    }
}
