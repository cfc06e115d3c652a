//! Checking a batched directory answer: the entries and lookup proofs of
//! many accounts against one signed root. The answer must name exactly the
//! accounts asked for, in the order asked; each entry's device certificates
//! must be signed by its account key for its username and device ids; each
//! proof must verify against the root; and the proven value must be exactly
//! the entry (account key and devices). No I/O: the client fetches the
//! answer, accepts the root (signature, never older than one seen, proven to
//! extend it) and records what this module proves.

use crate::ProtoError;
use crate::identity::{AccountPublicKey, DeviceCertificate, IdentityError, Username};
use crate::kt::{KtConfig, KtError, KtValue, SignedRoot, VerifiedLookup, verify_lookup};
use crate::memo::{Memo, memo_key};

/// An account's directory entry as the server sent it.
#[derive(Debug, Clone, Copy)]
pub struct BatchAccount<'a> {
    /// The account key (32 bytes when well formed).
    pub account_key: &'a [u8],
    /// `(device id, encoded certificate)` of each device.
    pub devices: &'a [(u32, &'a [u8])],
}

/// One entry of a batched answer as the server sent it.
#[derive(Debug, Clone, Copy)]
pub struct BatchEntry<'a> {
    /// The username it is for.
    pub username: &'a str,
    /// Its directory entry; none when the server says there is no account.
    pub account: Option<BatchAccount<'a>>,
    /// Its lookup proof; none when the server says it is not in the
    /// directory.
    pub proof: Option<&'a [u8]>,
}

/// What one entry showed.
#[derive(Debug)]
pub enum EntryCheck {
    /// Proven: what the proof says, and the entry's account key.
    Vouched(VerifiedLookup, AccountPublicKey),
    /// The proof holds but the entry differs from the proven value (a
    /// change stored but not yet published, or a lie).
    Mismatch(String),
    /// The server says there is no such account.
    NoAccount,
    /// The server says the account is not in the directory.
    NotInDirectory,
    /// A certificate does not decode, verify or belong to the entry.
    BadEntry(ProtoError),
    /// The proof does not verify against the root.
    BadProof(KtError),
}

/// A batched answer that is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server's batched lookup {what}")]
pub struct BadBatch {
    /// The username concerned.
    pub username: String,
    /// What is wrong.
    pub what: String,
}

/// Checks the answer to a batched lookup of `asked` against `root` (whose
/// signature and place in the chain the caller checked). `Err` when it does
/// not answer exactly `asked` in order; otherwise one check per entry.
pub fn check_batch(
    config: &KtConfig,
    root: &SignedRoot,
    asked: &[Username],
    entries: &[BatchEntry<'_>],
) -> Result<Vec<EntryCheck>, BadBatch> {
    same_names(asked, entries)?;
    Ok(asked
        .iter()
        .zip(entries)
        .map(|(user, entry)| check_entry(config, root, user, entry))
        .collect())
}

fn bad(username: &str, what: String) -> BadBatch {
    BadBatch {
        username: username.to_owned(),
        what,
    }
}

fn same_names(asked: &[Username], entries: &[BatchEntry<'_>]) -> Result<(), BadBatch> {
    let unasked = |name: &str| {
        bad(
            name,
            format!("has an entry for {name}, which was not asked for"),
        )
    };
    for (i, user) in asked.iter().enumerate() {
        match entries.get(i) {
            Some(e) if e.username == user.as_str() => {}
            Some(e) if !asked.iter().any(|u| u.as_str() == e.username) => {
                return Err(unasked(e.username));
            }
            _ => return Err(bad(user.as_str(), format!("leaves out {user}"))),
        }
    }
    match entries.get(asked.len()) {
        Some(extra) => Err(unasked(extra.username)),
        None => Ok(()),
    }
}

fn check_entry(
    config: &KtConfig,
    root: &SignedRoot,
    user: &Username,
    entry: &BatchEntry<'_>,
) -> EntryCheck {
    let Some(account) = entry.account else {
        return EntryCheck::NoAccount;
    };
    let Some(proof) = entry.proof else {
        return EntryCheck::NotInDirectory;
    };
    let key = match checked_key(user, account) {
        Ok(key) => key,
        Err(e) => return EntryCheck::BadEntry(e),
    };
    let verified = match verify_lookup(config, root, user, proof) {
        Ok(v) => v,
        Err(e) => return EntryCheck::BadProof(e),
    };
    match matches_value(&verified.value, account) {
        Ok(()) => EntryCheck::Vouched(verified, key),
        Err(what) => EntryCheck::Mismatch(what),
    }
}

/// Checks every device certificate of `account` against its account key,
/// `user` and its device id; returns the key. An entry that passed once in
/// this process, byte for byte, is not checked again (decision 0024).
pub fn checked_key(
    user: &Username,
    account: BatchAccount<'_>,
) -> Result<AccountPublicKey, ProtoError> {
    static ENTRIES: Memo<AccountPublicKey> = Memo::new(8192);
    let ids: Vec<[u8; 4]> = account
        .devices
        .iter()
        .map(|(id, _)| id.to_be_bytes())
        .collect();
    let mut parts: Vec<&[u8]> = vec![user.as_str().as_bytes(), account.account_key];
    for ((_, cert), id) in account.devices.iter().zip(&ids) {
        parts.push(&id[..]);
        parts.push(cert);
    }
    let key = memo_key("hush directory entry v1", &parts);
    ENTRIES.get_or_check(key, || check_key(user, account))
}

fn check_key(user: &Username, account: BatchAccount<'_>) -> Result<AccountPublicKey, ProtoError> {
    let key = AccountPublicKey::from_slice(account.account_key)?;
    for (id, bytes) in account.devices {
        let cert = DeviceCertificate::decode(bytes)?;
        cert.verify()?;
        if cert.username() != user || cert.account_key() != key || cert.device_id().0 != *id {
            return Err(ProtoError::Identity(IdentityError::BadCertificateSignature));
        }
    }
    Ok(key)
}

/// Checks that `value` lists exactly the account key and devices of
/// `account`.
pub fn matches_value(value: &KtValue, account: BatchAccount<'_>) -> Result<(), String> {
    let Some(key) = value.account_key else {
        return Err("the directory says this account was deleted".into());
    };
    if key.as_bytes().as_slice() != account.account_key {
        return Err("the account key differs".into());
    }
    let mut certs = Vec::new();
    for (id, bytes) in account.devices {
        let cert = DeviceCertificate::decode(bytes).map_err(|e| format!("device {id}: {e}"))?;
        if !value.vouches_for(&cert) {
            return Err(format!("device {id} is not in the directory"));
        }
        certs.push(cert);
    }
    let served = KtValue::from_certificates(key, &certs);
    if served.devices != value.devices {
        return Err("the directory lists devices the server did not send".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<Username> {
        n.iter().map(|s| Username::new(s).unwrap()).collect()
    }

    fn entry(username: &str) -> BatchEntry<'_> {
        BatchEntry {
            username,
            account: None,
            proof: None,
        }
    }

    fn fixed() -> (KtConfig, SignedRoot) {
        (
            KtConfig {
                signing_key: [7; 32],
                vrf_public_key: vec![9; 32],
            },
            SignedRoot {
                epoch: 3,
                root_hash: [1; 32],
                signature: [2; 64],
            },
        )
    }

    #[test]
    fn an_answer_must_name_exactly_what_was_asked_in_order() {
        let (config, root) = fixed();
        let asked = names(&["alice", "bob"]);
        let check = |e: &[BatchEntry<'_>]| check_batch(&config, &root, &asked, e);
        let ok = check(&[entry("alice"), entry("bob")]).unwrap();
        assert!(
            matches!(
                ok.as_slice(),
                [EntryCheck::NoAccount, EntryCheck::NoAccount]
            ),
            "{ok:?}"
        );
        let left_out = check(&[entry("alice")]).unwrap_err();
        assert_eq!(left_out.username, "bob");
        assert!(left_out.what.contains("leaves out bob"), "{left_out}");
        let added = check(&[entry("alice"), entry("bob"), entry("carol")]).unwrap_err();
        assert_eq!(added.username, "carol");
        let swapped_in = check(&[entry("alice"), entry("carol")]).unwrap_err();
        assert_eq!(swapped_in.username, "carol");
        assert!(check(&[entry("bob"), entry("alice")]).is_err(), "order");
        assert!(check(&[entry("alice"), entry("alice")]).is_err(), "twice");
    }

    #[test]
    fn a_proof_must_verify_against_the_root() {
        let (config, root) = fixed();
        let asked = names(&["alice"]);
        let e = BatchEntry {
            username: "alice",
            account: Some(BatchAccount {
                account_key: &[0; 32],
                devices: &[],
            }),
            proof: Some(&[0x0a, 0x00]),
        };
        let checks = check_batch(&config, &root, &asked, &[e]).unwrap();
        assert!(
            matches!(checks[0], EntryCheck::BadProof(_) | EntryCheck::BadEntry(_)),
            "{checks:?}"
        );
    }
}
