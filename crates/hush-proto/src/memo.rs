//! A process-wide memo of proof checks that passed (decision 0024).
//!
//! A process that hosts many clients of one server (a bot host, the
//! benchmark's generator) has each of them check the same key-transparency
//! proofs: the same append-only step between two signed roots, the same
//! lookup proof of a group member at the same epoch, the same device
//! certificates. The checks are pure functions of their inputs, so a check
//! that passed once passes again on the same inputs. A [`Memo`] remembers
//! what a passed check returned, under the SHA-256 of every one of its
//! inputs (a domain name first, each input length-prefixed); a check whose
//! inputs differ in any byte is not found and runs. Failures are never
//! remembered. Each memo holds a bounded number of entries and forgets the
//! oldest first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock};

use aws_lc_rs::digest::{Context, SHA256};

/// The SHA-256 of a check's inputs, under a domain name that says which
/// check it is.
pub type MemoKey = [u8; 32];

/// Hashes `domain` and `parts`, each length-prefixed, so that no two
/// different input lists give the same bytes to hash.
pub fn memo_key(domain: &str, parts: &[&[u8]]) -> MemoKey {
    let mut ctx = Context::new(&SHA256);
    for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct Inner<V> {
    map: HashMap<MemoKey, V>,
    order: VecDeque<MemoKey>,
}

/// What passed checks returned, at most `capacity` of them, shared by the
/// whole process.
pub struct Memo<V> {
    inner: OnceLock<Mutex<Inner<V>>>,
    capacity: usize,
}

impl<V> std::fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<V: Clone> Memo<V> {
    /// An empty memo that keeps at most `capacity` entries.
    pub const fn new(capacity: usize) -> Self {
        Self {
            inner: OnceLock::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        let m = self.inner.get_or_init(|| {
            Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            })
        });
        // A panic elsewhere leaves the maps consistent between statements.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the check with inputs `key` returned, if it passed before.
    pub fn get(&self, key: &MemoKey) -> Option<V> {
        self.lock().map.get(key).cloned()
    }

    /// Whether the check with inputs `key` passed before.
    pub fn contains(&self, key: &MemoKey) -> bool {
        self.lock().map.contains_key(key)
    }

    /// Remembers that the check with inputs `key` passed and returned
    /// `value`; forgets the oldest entry when full.
    pub fn insert(&self, key: MemoKey, value: V) {
        let mut inner = self.lock();
        if inner.map.insert(key, value).is_some() {
            return;
        }
        inner.order.push_back(key);
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the memoized result of `check` on inputs `key`, running it
    /// (and remembering a success) when it has not passed before.
    pub fn get_or_check<E>(
        &self,
        key: MemoKey,
        check: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(v) = self.get(&key) {
            return Ok(v);
        }
        let v = check()?;
        self.insert(key, v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_when_any_input_differs_or_moves_between_parts() {
        let k = memo_key("d", &[b"ab", b"c"]);
        assert_eq!(k, memo_key("d", &[b"ab", b"c"]));
        assert_ne!(k, memo_key("d", &[b"a", b"bc"]));
        assert_ne!(k, memo_key("e", &[b"ab", b"c"]));
        assert_ne!(k, memo_key("d", &[b"ab", b"d"]));
        assert_ne!(k, memo_key("d", &[b"ab", b"c", b""]));
    }

    #[test]
    fn only_passed_checks_are_remembered_and_the_oldest_go_first() {
        let memo: Memo<u32> = Memo::new(2);
        let a = memo_key("t", &[b"a"]);
        let failed: Result<u32, ()> = memo.get_or_check(a, || Err(()));
        assert!(failed.is_err());
        assert!(!memo.contains(&a));
        let mut runs = 0;
        for _ in 0..3 {
            let v: Result<u32, ()> = memo.get_or_check(a, || {
                runs += 1;
                Ok(7)
            });
            assert_eq!(v, Ok(7));
        }
        assert_eq!(runs, 1, "a passed check runs once");
        memo.insert(memo_key("t", &[b"b"]), 8);
        memo.insert(memo_key("t", &[b"c"]), 9);
        assert_eq!(memo.len(), 2);
        assert!(!memo.contains(&a), "the oldest entry is forgotten");
    }
}
