//! Commit tokens: how the server lets only members of an epoch win it,
//! without knowing who the members are.
//!
//! Every member of epoch `n` derives the same 32-byte token,
//! `MLS-Exporter("hush commit token v1", "", 32)`; nobody else can. A commit
//! that applies to epoch `n` carries that token and the hash of the token of
//! epoch `n + 1` (which its committer computes from the pending commit). The
//! server keeps only the hash of the next epoch's token and accepts a commit
//! only if the hash of its token matches: the token is a one-time password
//! for the epoch, and each winner sets the next one. A device that joins by
//! Welcome derives the token of the epoch it joins. See
//! docs/decisions/0012-commit-tokens.md.

use aws_lc_rs::digest::{SHA256, digest};

/// The MLS exporter label of the commit token.
pub const EXPORTER_LABEL: &str = "hush commit token v1";
/// Length of a commit token and of its hash.
pub const TOKEN_LEN: usize = 32;
/// Domain separation for the hash the server stores.
const HASH_LABEL: &[u8] = b"hush commit token hash v1\0";

/// The hash of an epoch's token, which the server stores and compares.
pub fn token_hash(token: &[u8; TOKEN_LEN]) -> [u8; TOKEN_LEN] {
    let mut input = Vec::with_capacity(HASH_LABEL.len() + TOKEN_LEN);
    input.extend_from_slice(HASH_LABEL);
    input.extend_from_slice(token);
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(digest(&SHA256, &input).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_every_token_byte() {
        let a = token_hash(&[1; TOKEN_LEN]);
        let mut other = [1; TOKEN_LEN];
        other[31] = 2;
        assert_ne!(a, token_hash(&other));
        assert_eq!(a, token_hash(&[1; TOKEN_LEN]));
        assert_ne!(a, [1; TOKEN_LEN]);
    }
}
