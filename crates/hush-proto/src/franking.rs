//! Message franking: a sender's commitment to each message, so that a recipient
//! can later prove to the server what a sender wrote.
//!
//! The sender draws a fresh 32-byte franking key per message and computes
//! `commitment = HMAC-SHA256(key, "hush franking v1" || content)`. The key
//! travels inside the MLS ciphertext with the content; the commitment travels in
//! the MLS authenticated data, which the server sees and binds to the sender,
//! recipient and time with its own tag when it relays the message. Reporting
//! reveals `(content, key, commitment)`; [`verify_opening`] checks them.
//!
//! Without the key the commitment reveals nothing about the content; with it,
//! no other content matches (HMAC-SHA256 is collision resistant when keyed by a
//! key the committer chose, which is the "committing" property franking needs).

use std::fmt;

use aws_lc_rs::{constant_time, hmac};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

const FRANKING_CONTEXT: &[u8] = b"hush franking v1";

/// Length of a franking key.
pub const FRANKING_KEY_LEN: usize = 32;
/// Length of a commitment.
pub const COMMITMENT_LEN: usize = 32;

/// The report does not match its commitment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrankingError {
    /// The content and key do not produce the commitment.
    #[error("the reported message does not match its franking commitment")]
    CommitmentMismatch,
}

/// A per-message franking key. Wiped on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FrankingKey([u8; FRANKING_KEY_LEN]);

impl FrankingKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut key = [0u8; FRANKING_KEY_LEN];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// Wraps key bytes received in a message or a report.
    pub fn from_bytes(bytes: [u8; FRANKING_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key, for a report.
    pub fn as_bytes(&self) -> &[u8; FRANKING_KEY_LEN] {
        &self.0
    }

    /// Commits to `content`.
    pub fn commit(&self, content: &[u8]) -> Commitment {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(FRANKING_CONTEXT);
        ctx.update(content);
        let tag = ctx.sign();
        let mut out = [0u8; COMMITMENT_LEN];
        out.copy_from_slice(tag.as_ref());
        Commitment(out)
    }
}

impl fmt::Debug for FrankingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrankingKey(<redacted>)")
    }
}

/// A franking commitment, visible to the server.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment(pub [u8; COMMITMENT_LEN]);

impl Commitment {
    /// From a slice that must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; COMMITMENT_LEN]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// What a recipient reveals when reporting a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrankingOpening {
    /// The encoded content exactly as it was inside the ciphertext.
    pub content: Vec<u8>,
    /// The franking key that came with it.
    pub key: FrankingKey,
    /// The commitment that travelled in the clear.
    pub commitment: Commitment,
}

/// Checks that `opening.content` under `opening.key` yields `opening.commitment`,
/// in constant time.
pub fn verify_opening(opening: &FrankingOpening) -> Result<(), FrankingError> {
    let expected = opening.key.commit(&opening.content);
    constant_time::verify_slices_are_equal(&expected.0, &opening.commitment.0)
        .map_err(|_| FrankingError::CommitmentMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn opening_verifies_and_any_change_fails() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = FrankingKey::generate(&mut rng);
        let content = b"the reported words".to_vec();
        let opening = FrankingOpening {
            commitment: key.commit(&content),
            content,
            key,
        };
        verify_opening(&opening).unwrap();

        let mut altered = opening.clone();
        altered.content[0] ^= 1;
        assert_eq!(
            verify_opening(&altered),
            Err(FrankingError::CommitmentMismatch)
        );

        let mut other_key = opening.clone();
        other_key.key = FrankingKey::generate(&mut rng);
        assert_eq!(
            verify_opening(&other_key),
            Err(FrankingError::CommitmentMismatch)
        );

        let mut other_commitment = opening;
        other_commitment.commitment.0[31] ^= 0x80;
        assert_eq!(
            verify_opening(&other_commitment),
            Err(FrankingError::CommitmentMismatch)
        );
    }
}
