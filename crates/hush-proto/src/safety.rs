//! Safety numbers: what two people compare to know they hold each other's keys.
//!
//! Each party's half is derived from its account key and username by iterated
//! SHA-512 (5200 rounds, as Signal does, so that finding a key with a chosen
//! number is expensive), and rendered as 30 digits. The two halves are ordered
//! so that both people see the same 60 digits, shown as 12 groups of 5. The QR
//! payload carries the same two fingerprints in the same order, so scanning
//! the other's code is a byte comparison.

use std::fmt;

use aws_lc_rs::digest::{SHA512, digest};

use crate::identity::{AccountPublicKey, Username};

const VERSION: u16 = 0;
const ITERATIONS: usize = 5200;
const QR_PREFIX: &[u8] = b"HUSHSN1";

/// A safety number for a pair of accounts.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
    halves: [[u8; 32]; 2],
}

impl SafetyNumber {
    /// The safety number between two accounts; symmetric in its arguments.
    pub fn new(
        a: (&Username, &AccountPublicKey),
        b: (&Username, &AccountPublicKey),
    ) -> SafetyNumber {
        let fa = fingerprint(a.0, a.1);
        let fb = fingerprint(b.0, b.1);
        let (da, db) = (digits(&fa), digits(&fb));
        let (first, second) = if da <= db {
            ((da, fa), (db, fb))
        } else {
            ((db, fb), (da, fa))
        };
        SafetyNumber {
            digits: format!("{}{}", first.0, second.0),
            halves: [first.1, second.1],
        }
    }

    /// The 60 digits with no separators.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The 12 groups of 5 digits.
    pub fn groups(&self) -> Vec<&str> {
        (0..12)
            .filter_map(|i| self.digits.get(i * 5..i * 5 + 5))
            .collect()
    }

    /// The bytes to put in a QR code.
    pub fn qr_payload(&self) -> Vec<u8> {
        let mut out = QR_PREFIX.to_vec();
        out.extend_from_slice(&self.halves[0]);
        out.extend_from_slice(&self.halves[1]);
        out
    }

    /// Whether a scanned QR payload shows the same safety number.
    pub fn matches_qr(&self, scanned: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.qr_payload(), scanned).is_ok()
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

fn fingerprint(username: &Username, key: &AccountPublicKey) -> [u8; 32] {
    let mut input = Vec::with_capacity(2 + 32 + username.as_str().len());
    input.extend_from_slice(&VERSION.to_be_bytes());
    input.extend_from_slice(key.as_bytes());
    input.extend_from_slice(username.as_str().as_bytes());
    let mut hash = digest(&SHA512, &input);
    for _ in 0..ITERATIONS {
        let mut next = Vec::with_capacity(64 + 32);
        next.extend_from_slice(hash.as_ref());
        next.extend_from_slice(key.as_bytes());
        hash = digest(&SHA512, &next);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hash.as_ref()[..32]);
    out
}

/// 30 digits: six 5-byte chunks, each read as a 40-bit number mod 100000.
fn digits(fp: &[u8; 32]) -> String {
    fp.chunks_exact(5)
        .take(6)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AccountKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn both_sides_compute_the_same_number() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let a = AccountKey::generate(&mut rng).unwrap().public();
        let b = AccountKey::generate(&mut rng).unwrap().public();
        let alice = Username::new("alice").unwrap();
        let bob = Username::new("bob").unwrap();
        let ab = SafetyNumber::new((&alice, &a), (&bob, &b));
        let ba = SafetyNumber::new((&bob, &b), (&alice, &a));
        assert_eq!(ab, ba);
        assert_eq!(ab.digits().len(), 60);
        assert!(ab.digits().chars().all(|c| c.is_ascii_digit()));
        assert_eq!(ab.groups().len(), 12);
        assert!(ab.matches_qr(&ba.qr_payload()));

        let c = AccountKey::generate(&mut rng).unwrap().public();
        let ac = SafetyNumber::new((&alice, &a), (&bob, &c));
        assert_ne!(ab, ac);
        assert!(!ab.matches_qr(&ac.qr_payload()));
    }
}
