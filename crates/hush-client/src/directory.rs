//! Batched directory lookups (`POST /v1/kt/lookup`): the entries and lookup
//! proofs of many accounts against one signed root, so joining a group of
//! 1000 costs one request, one root check and 1000 proof checks instead of
//! 2000 requests and 1000 root checks. Each entry is checked exactly as a
//! single lookup is ([`Client::lookup_verified`]): its certificates against
//! its account key, its proof against the root, the proven value against the
//! entry. The answer must name exactly the accounts asked for, in order.
//!
//! An account already proven at the epoch the server answers at is not
//! asked for again: its proof would be the same.

use hush_proto::Username;
use hush_proto::kt::{KtConfig, KtError};
use hush_proto::kt_batch::{BatchAccount, BatchEntry, EntryCheck, check_batch};
use hush_wire::api::AccountResponse;
use hush_wire::kt::{KtBatchEntry, KtBatchLookupRequest, KtBatchLookupResponse, MAX_BATCH_LOOKUP};
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;
use crate::kt::wire_to_root;

/// Why the directory did not vouch for an account.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// Whose entry.
    pub username: String,
    /// What was wrong with it (a key-transparency, not-found or decoding
    /// error, as a single lookup reports it).
    pub error: ClientError,
}

/// What one entry of a batched answer showed.
enum Entry {
    /// Proven and recorded; whether the account key changed.
    Vouched(bool),
    /// The proof holds but the entry differs from the proven value (a
    /// change stored but not yet published, or a lie): asked again.
    Mismatch(String),
    /// Refused.
    Refused(ClientError),
}

/// How often a mismatching entry is asked for before it is refused (as a
/// single lookup retries).
const ATTEMPTS: u32 = 3;

impl Client {
    /// Proves every account of `users` against the key directory, in as few
    /// requests as [`MAX_BATCH_LOOKUP`] allows: afterwards `kt_vouched`
    /// holds each one's proven value. Returns the accounts whose key
    /// changed, or the first refusal. Errors only when the directory could
    /// not be asked.
    pub(crate) async fn vouch_batch(
        &mut self,
        users: &[Username],
    ) -> Result<Result<Vec<String>, Refusal>, ClientError> {
        let config = self.kt_config().await?;
        let known = self.kt_latest_root()?.map(|r| r.epoch);
        // Proven at the newest epoch this client accepted: reused if the
        // server answers at that epoch too.
        let (mut reused, mut ask): (Vec<Username>, Vec<Username>) = users
            .iter()
            .cloned()
            .partition(|u| known.is_some() && self.kt_vouched_at.get(u.as_str()).copied() == known);
        let mut changed = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut mismatched = Vec::new();
            let mut newest = 0;
            for chunk in chunks(&ask) {
                let answer = match self.ask_batch(&config, chunk).await {
                    Err(e) if e.code() == Some(hush_wire::ErrorCode::NotFound) => {
                        // A server without batched lookups (an older node).
                        return self.vouch_each(users).await;
                    }
                    answer => answer?,
                };
                let (epoch, outcome) = match answer {
                    Ok(answer) => answer,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                newest = newest.max(epoch);
                for (user, entry) in outcome {
                    match entry {
                        Entry::Vouched(true) => changed.push(user.to_string()),
                        Entry::Vouched(false) => {}
                        Entry::Mismatch(_) if attempt < ATTEMPTS => mismatched.push(user),
                        Entry::Mismatch(what) => {
                            let error = KtError::KeysNotInDirectory {
                                username: user.to_string(),
                                what,
                            };
                            return Ok(Err(Refusal {
                                username: user.to_string(),
                                error: error.into(),
                            }));
                        }
                        Entry::Refused(error) => {
                            return Ok(Err(Refusal {
                                username: user.to_string(),
                                error,
                            }));
                        }
                    }
                }
            }
            // A change stored but not yet published: give it a moment.
            if !mismatched.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            if known.is_some_and(|k| newest > k) {
                // The directory moved on: what was proven before is asked again.
                mismatched.append(&mut reused);
            }
            if mismatched.is_empty() {
                return Ok(Ok(changed));
            }
            ask = mismatched;
        }
    }

    /// [`Client::vouch_batch`] one lookup at a time.
    async fn vouch_each(
        &mut self,
        users: &[Username],
    ) -> Result<Result<Vec<String>, Refusal>, ClientError> {
        let mut changed = Vec::new();
        for user in users {
            match self.lookup(user.as_str()).await {
                Ok((_, true)) if user != &self.username => changed.push(user.to_string()),
                Ok(_) => {}
                Err(
                    error @ (ClientError::KeyTransparency(_)
                    | ClientError::NotFound(_)
                    | ClientError::Proto(_)),
                ) => {
                    return Ok(Err(Refusal {
                        username: user.to_string(),
                        error,
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(changed))
    }

    /// One request for `users`: accepts its root, checks that it answers
    /// exactly `users`, and checks each entry. Returns the root's epoch and
    /// each user's outcome, or the refusal of the whole answer.
    async fn ask_batch(
        &mut self,
        config: &KtConfig,
        users: &[Username],
    ) -> Result<Result<(u64, Vec<(Username, Entry)>), Refusal>, ClientError> {
        let resp: KtBatchLookupResponse = self
            .transport
            .json(
                Method::POST,
                "/v1/kt/lookup",
                Some(&KtBatchLookupRequest {
                    usernames: users.iter().map(|u| u.to_string()).collect(),
                }),
            )
            .await?;
        // A bad root refuses the answer; it is charged to the first name.
        let first = users.first().unwrap_or(&self.username).to_string();
        let root = match wire_to_root(&resp.root) {
            Ok(root) => root,
            Err(e) => {
                return Ok(Err(Refusal {
                    username: first,
                    error: e.into(),
                }));
            }
        };
        match self.accept_root(config, &root).await {
            Ok(()) => {}
            Err(error @ ClientError::KeyTransparency(_)) => {
                return Ok(Err(Refusal {
                    username: first,
                    error,
                }));
            }
            Err(e) => return Err(e),
        }
        let devices: Vec<Vec<(u32, &[u8])>> = resp
            .entries
            .iter()
            .map(|e| e.account.as_ref().map(device_list).unwrap_or_default())
            .collect();
        let entries: Vec<BatchEntry<'_>> = resp
            .entries
            .iter()
            .zip(&devices)
            .map(|(e, devices)| batch_entry(e, devices))
            .collect();
        let checks = match check_batch(config, &root, users, &entries) {
            Ok(checks) => checks,
            Err(bad) => {
                return Ok(Err(Refusal {
                    username: bad.username.clone(),
                    error: KtError::Malformed(bad.to_string()).into(),
                }));
            }
        };
        // Every key first seen or changed is recorded in one write, not one
        // per account.
        self.store.conn.execute_batch("BEGIN")?;
        let mut out = Vec::with_capacity(users.len());
        for (user, check) in users.iter().zip(checks) {
            match self.record_check(user, root.epoch, check) {
                Ok(entry) => out.push((user.clone(), entry)),
                Err(e) => {
                    self.store.conn.execute_batch("ROLLBACK")?;
                    return Err(e);
                }
            }
        }
        self.store.conn.execute_batch("COMMIT")?;
        Ok(Ok((root.epoch, out)))
    }

    /// Records what a checked entry proved (as a single lookup does).
    fn record_check(
        &mut self,
        user: &Username,
        epoch: u64,
        check: EntryCheck,
    ) -> Result<Entry, ClientError> {
        Ok(match check {
            EntryCheck::Vouched(verified, key) => {
                let key = verified.value.account_key.unwrap_or(key);
                self.kt_vouched.insert(user.to_string(), verified.value);
                self.kt_vouched_at.insert(user.to_string(), epoch);
                let changed = self.note_account_key(user.as_str(), key.as_bytes())?;
                Entry::Vouched(changed && user != &self.username)
            }
            EntryCheck::Mismatch(what) => Entry::Mismatch(what),
            EntryCheck::NoAccount => Entry::Refused(ClientError::NotFound(format!(
                "no account named {user} on this server"
            ))),
            EntryCheck::NotInDirectory => Entry::Refused(
                KtError::KeysNotInDirectory {
                    username: user.to_string(),
                    what: "the account is not in the key directory".into(),
                }
                .into(),
            ),
            EntryCheck::BadEntry(e) => Entry::Refused(e.into()),
            EntryCheck::BadProof(e) => Entry::Refused(e.into()),
        })
    }
}

/// The `(device id, certificate)` pairs of a directory entry.
pub(crate) fn device_list(account: &AccountResponse) -> Vec<(u32, &[u8])> {
    account
        .devices
        .iter()
        .map(|d| (d.device_id, d.certificate.as_slice()))
        .collect()
}

/// A directory entry as `hush_proto::kt_batch` checks it.
pub(crate) fn batch_account<'a>(
    account: &'a AccountResponse,
    devices: &'a [(u32, &'a [u8])],
) -> BatchAccount<'a> {
    BatchAccount {
        account_key: account.account_key.as_slice(),
        devices,
    }
}

fn batch_entry<'a>(e: &'a KtBatchEntry, devices: &'a [(u32, &'a [u8])]) -> BatchEntry<'a> {
    BatchEntry {
        username: &e.username,
        account: e.account.as_ref().map(|a| batch_account(a, devices)),
        proof: e.proof.as_ref().map(|p| p.as_slice()),
    }
}

/// `users` in requests of at most [`MAX_BATCH_LOOKUP`]; one empty request
/// when there are none (it still shows the newest root).
fn chunks(users: &[Username]) -> Vec<&[Username]> {
    if users.is_empty() {
        return vec![users];
    }
    users.chunks(MAX_BATCH_LOOKUP).collect()
}
