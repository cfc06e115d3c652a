//! Nonces of signed device requests, remembered while their requests are
//! valid, so that a captured request cannot be sent again.
//!
//! A signed request is valid while its timestamp is within
//! [`crate::api::accounts::MAX_CLOCK_SKEW_MS`] of the server's clock; its
//! nonce is remembered until that window has passed, after which the
//! timestamp alone refuses it. Memory is bounded: at most
//! [`MAX_REMEMBERED`] nonces (about 8 MB); when that many valid requests
//! were signed within the window, new ones are refused (503) rather than
//! accepted unremembered. The memory is this node's: in a cluster a request
//! replayed to another node within the window is not recognised there (see
//! docs/decisions/0011-access-and-abuse-limits.md for what still holds).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};

/// Most nonces remembered at once.
pub const MAX_REMEMBERED: usize = 100_000;

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The nonce was used already: a replay.
    #[error("this signed request was used already; sign a new one with a fresh nonce")]
    Replayed,
    /// Too many nonces are remembered to take another one now.
    #[error("too many signed device requests in the last minutes; retry later")]
    Full,
}

/// The remembered nonces of this node: key -> when it may be forgotten.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<HashMap<[u8; 32], u64>>,
}

impl Nonces {
    /// Remembers `nonce` of `account` until `forget_at_ms`, or refuses it if
    /// it was seen before.
    pub fn remember(
        &self,
        account: &str,
        nonce: &[u8],
        now_ms: u64,
        forget_at_ms: u64,
    ) -> Result<(), NonceError> {
        let mut input = Vec::with_capacity(account.len() + 1 + nonce.len());
        input.extend_from_slice(account.as_bytes());
        input.push(0);
        input.extend_from_slice(nonce);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, &input).as_ref());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&key).is_some_and(|&until| until >= now_ms) {
            return Err(NonceError::Replayed);
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, until| *until >= now_ms);
            if seen.len() >= MAX_REMEMBERED {
                return Err(NonceError::Full);
            }
        }
        seen.insert(key, forget_at_ms);
        Ok(())
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_the_second_time_until_forgotten() {
        let n = Nonces::default();
        assert_eq!(n.remember("alice", b"0123456789abcdef", 1000, 5000), Ok(()));
        assert_eq!(
            n.remember("alice", b"0123456789abcdef", 2000, 6000),
            Err(NonceError::Replayed)
        );
        // Another account's identical nonce is its own.
        assert_eq!(n.remember("bob", b"0123456789abcdef", 2000, 6000), Ok(()));
        // Past its window the timestamp refuses the request; the slot is free.
        assert_eq!(n.remember("alice", b"0123456789abcdef", 5001, 9000), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let n = Nonces::default();
        for i in 0..MAX_REMEMBERED as u64 {
            n.remember("a", &i.to_be_bytes(), 0, 100).unwrap();
        }
        assert_eq!(n.remember("a", b"one more", 50, 150), Err(NonceError::Full));
        // Once the window passed, the old ones go and room is made.
        assert_eq!(n.remember("a", b"one more", 101, 200), Ok(()));
        assert_eq!(n.len(), 1);
    }
}
