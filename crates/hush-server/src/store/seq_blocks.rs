//! Queue sequence numbers handed out per block, by the SQLite backend and
//! by a PostgreSQL node that serves its database alone
//! ([`super::postgres_alone`]): `devices.next_seq` is the durable ceiling
//! (every number in use is below it), raised a block at a time, and the
//! numbers of a block are assigned in memory. After a restart the rest of
//! each block is skipped: a device's numbers only grow, with gaps.
//!
//! One raise per device at a time: when many sends find a block used up at
//! once, one of them raises it and the others wait for that raise instead of
//! each burning a block of their own.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::DeviceKey;

/// Numbers per block.
pub(super) const SEQ_BLOCK: u64 = 1024;

/// A device's current block: `next` up to (not including) `ceiling`, which
/// is durable; on a cluster node, under its claim's fencing `token`.
#[derive(Debug, Clone, Copy)]
struct SeqBlock {
    next: u64,
    ceiling: u64,
    token: i64,
}

impl SeqBlock {
    fn used_up(&self) -> bool {
        self.next >= self.ceiling
    }
}

/// The blocks in memory and the raises under way.
#[derive(Debug, Default)]
pub(super) struct SeqState {
    blocks: HashMap<DeviceKey, SeqBlock>,
    raising: HashSet<DeviceKey>,
}

impl SeqState {
    fn needs_raise(&self, device: &DeviceKey) -> bool {
        self.blocks.get(device).is_none_or(SeqBlock::used_up)
    }

    /// The next number of every recipient, or None (nothing taken) if some
    /// recipient's block is used up or not loaded.
    pub(super) fn take(&mut self, recipients: &[DeviceKey]) -> Option<Vec<u64>> {
        let mut seqs = Vec::with_capacity(recipients.len());
        for (i, r) in recipients.iter().enumerate() {
            match self.blocks.get_mut(r).filter(|b| !b.used_up()) {
                Some(b) => {
                    seqs.push(b.next);
                    b.next += 1;
                }
                None => {
                    // Give back what this call took, latest first.
                    for (r, s) in recipients.iter().zip(&seqs).take(i).rev() {
                        if let Some(b) = self.blocks.get_mut(r) {
                            b.next = *s;
                        }
                    }
                    return None;
                }
            }
        }
        Some(seqs)
    }

    /// The fencing token of each recipient's block (0 for none).
    pub(super) fn tokens(&self, recipients: &[DeviceKey]) -> Vec<i64> {
        recipients
            .iter()
            .map(|r| self.blocks.get(r).map_or(0, |b| b.token))
            .collect()
    }
}

/// The blocks of every device this process has sent to.
#[derive(Debug, Default)]
pub(super) struct SeqBlocks {
    state: Mutex<SeqState>,
    raised: Notify,
}

/// What a caller has to do before its recipients have numbers again.
pub(super) enum RaiseTurn<'a> {
    /// Nothing: every block has numbers left.
    Ready,
    /// Wait: another task is raising one of the blocks.
    Wait,
    /// Raise these blocks, then commit the new ceilings.
    Raise(Raise<'a>),
}

impl SeqBlocks {
    pub(super) fn lock(&self) -> MutexGuard<'_, SeqState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the raise of every recipient whose block is used up and that
    /// no other task is raising.
    fn claim(&self, recipients: &[DeviceKey]) -> RaiseTurn<'_> {
        let mut state = self.lock();
        let mut need = Vec::new();
        let mut wait = false;
        for r in recipients {
            if !state.needs_raise(r) || need.contains(r) {
                continue;
            }
            if state.raising.contains(r) {
                wait = true;
            } else {
                need.push(r.clone());
            }
        }
        for r in &need {
            state.raising.insert(r.clone());
        }
        match (need.is_empty(), wait) {
            (false, _) => RaiseTurn::Raise(Raise { blocks: self, need }),
            (true, true) => RaiseTurn::Wait,
            (true, false) => RaiseTurn::Ready,
        }
    }

    /// Waits until every recipient has numbers or this caller holds the
    /// raise of the ones that have none (it must raise them and commit).
    pub(super) async fn turn(&self, recipients: &[DeviceKey]) -> Option<Raise<'_>> {
        loop {
            let raised = self.raised.notified();
            tokio::pin!(raised);
            raised.as_mut().enable();
            match self.claim(recipients) {
                RaiseTurn::Ready => return None,
                RaiseTurn::Raise(raise) => return Some(raise),
                RaiseTurn::Wait => raised.await,
            }
        }
    }

    /// Forgets the blocks that were numbered under a claim since lost: the
    /// next send to the device claims it again.
    pub(super) fn forget_claims(&self, lost: &[(DeviceKey, i64)]) {
        let mut state = self.lock();
        for (device, token) in lost {
            if state.blocks.get(device).is_some_and(|b| b.token == *token) {
                state.blocks.remove(device);
            }
        }
    }

    /// Forgets the blocks of deleted devices (`device_id` None: all of the
    /// account's).
    pub(super) fn forget(&self, username: &str, device_id: Option<u32>) {
        self.lock()
            .blocks
            .retain(|k, _| k.username != username || device_id.is_some_and(|d| d != k.device_id));
    }
}

/// A claimed raise. Dropped without `commit` (the write failed or the
/// caller went away), it gives the claim back and wakes the waiters, one of
/// whom then raises instead.
pub(super) struct Raise<'a> {
    blocks: &'a SeqBlocks,
    need: Vec<DeviceKey>,
}

impl Raise<'_> {
    /// The devices whose ceilings this raise must lift.
    pub(super) fn devices(&self) -> Vec<DeviceKey> {
        self.need.clone()
    }

    /// Records the ceilings once their raise has committed.
    pub(super) fn commit(self, ceilings: Vec<(DeviceKey, u64)>) {
        self.commit_claimed(ceilings.into_iter().map(|(r, c)| (r, c, 0)).collect());
    }

    /// Records the ceilings and claim tokens once their raise has
    /// committed: a block under another token than the one in memory is a
    /// new claim, and starts afresh a block below its ceiling.
    pub(super) fn commit_claimed(self, ceilings: Vec<(DeviceKey, u64, i64)>) {
        let mut state = self.blocks.lock();
        for (r, ceiling, token) in ceilings {
            let fresh = SeqBlock {
                next: ceiling - SEQ_BLOCK,
                ceiling,
                token,
            };
            let b = state.blocks.entry(r).or_insert(fresh);
            if b.token == token {
                b.ceiling = b.ceiling.max(ceiling);
            } else {
                *b = fresh;
            }
        }
    }
}

impl Drop for Raise<'_> {
    fn drop(&mut self) {
        let mut state = self.blocks.lock();
        for r in &self.need {
            state.raising.remove(r);
        }
        drop(state);
        self.blocks.raised.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u32) -> DeviceKey {
        DeviceKey::new("alice", n)
    }

    #[tokio::test]
    async fn one_raise_per_device_while_others_wait() {
        let blocks = SeqBlocks::default();
        let first = blocks.turn(&[dev(1)]).await.expect("first raises");
        assert!(matches!(blocks.claim(&[dev(1)]), RaiseTurn::Wait));
        // Another device is not held up by the raise of the first.
        assert!(matches!(blocks.claim(&[dev(2)]), RaiseTurn::Raise(_)));
        first.commit(vec![(dev(1), SEQ_BLOCK + 1)]);
        assert_eq!(blocks.lock().take(&[dev(1)]), Some(vec![1]));
        assert!(blocks.turn(&[dev(1)]).await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_raise_lets_a_waiter_raise() {
        let blocks = SeqBlocks::default();
        let first = blocks.turn(&[dev(1)]).await.expect("first raises");
        drop(first);
        let second = blocks.turn(&[dev(1)]).await;
        assert!(second.is_some());
    }

    #[test]
    fn a_failed_take_gives_back_what_it_took() {
        let blocks = SeqBlocks::default();
        let raise = match blocks.claim(&[dev(1)]) {
            RaiseTurn::Raise(r) => r,
            _ => panic!("nothing to raise"),
        };
        raise.commit(vec![(dev(1), SEQ_BLOCK + 1)]);
        let mut state = blocks.lock();
        assert_eq!(state.take(&[dev(1), dev(2)]), None);
        assert_eq!(state.take(&[dev(1)]), Some(vec![1]));
    }
}
