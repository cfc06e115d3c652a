//! New devices of the accounts this device talks with (decision 0025): a
//! device the key directory vouches for, certified by the account key this
//! device already holds for that account, is added to the conversations
//! this device shares with the account, by whichever member's client
//! notices first. The others see its commit and find nothing left to add
//! (an add commit leaves out devices already in the group, see
//! `big_groups`). A device certified by another account key is a key
//! change, reported as before, and added nowhere.
//!
//! A client looks when the directory moved since it last looked (the
//! self-monitoring check of the sync routine accepted a newer signed
//! root): for its own account in every conversation, and for the other
//! accounts of conversations of at most [`CHECKED_GROUP_DEVICES`] devices.
//! In a bigger group an account's new device is added by the account's own
//! other devices, or by the members who share a smaller conversation with
//! it.

use std::collections::{BTreeMap, BTreeSet};

use hush_proto::{DeviceCertificate, Suite, Username};
use rusqlite::{OptionalExtension, params};

use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;

/// Conversations with more devices than this are looked at for this
/// account's own new devices only (a lookup of every member of a big group
/// whenever the directory moves would cost more than it saves).
pub const CHECKED_GROUP_DEVICES: usize = 64;

impl Client {
    /// Whether the directory moved since this device last looked for new
    /// devices.
    pub(crate) fn new_devices_due(&self) -> Result<bool, ClientError> {
        let checked: Option<u64> = self
            .store
            .meta_str("devices_checked_epoch")?
            .and_then(|s| s.parse().ok());
        let latest = self.kt_latest_root()?.map(|r| r.epoch);
        Ok(latest.is_some_and(|l| checked.is_none_or(|c| l > c)))
    }

    /// Adds every device the key directory vouches for, certified by the
    /// account key this device holds for its account, to the active
    /// conversations this device shares with that account and that lack
    /// it (see the module documentation for which accounts are looked at).
    /// Returns how many devices were added, counted per conversation.
    pub async fn add_new_devices(&mut self) -> Result<usize, ClientError> {
        let epoch = self.kt_latest_root()?.map(|r| r.epoch);
        let shared = self.shared_conversations()?;
        let users: Vec<Username> = shared
            .keys()
            .filter_map(|u| Username::new(u).ok())
            .collect();
        let vouched = self.vouch_each_of(users).await?;
        let mut added = 0;
        for (user, groups) in shared {
            if !vouched.contains(&user) {
                continue;
            }
            for group_id in groups {
                match self.add_devices_of(&user, &group_id).await {
                    Ok(n) => added += n,
                    Err(e) => {
                        tracing::warn!(error = %e, %user, "could not add a new device to a conversation");
                    }
                }
            }
        }
        if let Some(epoch) = epoch {
            LocalStore::set_meta(
                &self.store.conn,
                "devices_checked_epoch",
                epoch.to_string().as_bytes(),
            )?;
        }
        Ok(added)
    }

    /// The devices in the conversation `target` names (its first, for a
    /// contact with several chats), as (account, device id), sorted.
    pub fn member_devices(
        &mut self,
        target: &crate::model::Target,
    ) -> Result<Vec<(String, u32)>, ClientError> {
        let row = self
            .find(target)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        let mut out: Vec<(String, u32)> = self
            .conv(&row.group_id)?
            .members()
            .iter()
            .map(|c| (c.username().to_string(), c.device_id().0))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Per account to look at, the active conversations shared with it.
    fn shared_conversations(&mut self) -> Result<BTreeMap<String, Vec<Vec<u8>>>, ClientError> {
        let me = self.username.to_string();
        let mut shared: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for group_id in self.active_groups()? {
            let Ok(conv) = self.conv(&group_id) else {
                continue;
            };
            let members = conv.members();
            let small = members.len() <= CHECKED_GROUP_DEVICES;
            let mut accounts: BTreeSet<String> = members
                .iter()
                .map(|c| c.username().to_string())
                .filter(|u| small || u == &me)
                .collect();
            accounts.insert(me.clone());
            for a in accounts {
                shared.entry(a).or_default().push(group_id.clone());
            }
        }
        Ok(shared)
    }

    /// Proves `users` against the directory (in batches); returns those it
    /// vouched for. An account the directory answers wrongly for (say, a
    /// device the server published without a certificate) is left out and
    /// the rest asked again.
    async fn vouch_each_of(
        &mut self,
        mut users: Vec<Username>,
    ) -> Result<BTreeSet<String>, ClientError> {
        for _ in 0..=users.len() {
            if users.is_empty() {
                break;
            }
            match self.vouch_batch(&users).await? {
                Ok(_) => break,
                Err(refusal) => {
                    tracing::warn!(error = %refusal.error, user = %refusal.username,
                        "the directory's answer for an account was refused; its devices are not added");
                    users.retain(|u| u.as_str() != refusal.username);
                }
            }
        }
        Ok(users.iter().map(|u| u.to_string()).collect())
    }

    /// The account key this device holds for `user` (its own for itself).
    fn known_account_key(&self, user: &str) -> Result<Option<Vec<u8>>, ClientError> {
        if user == self.username.as_str() {
            return Ok(Some(self.account.public().as_bytes().to_vec()));
        }
        Ok(self
            .store
            .conn
            .query_row(
                "SELECT account_key FROM contacts WHERE username = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Devices of `user` this device must not add: for its own account,
    /// itself, those it removed and those it is linking (the link adds
    /// them).
    fn not_to_add(&self, user: &str) -> Result<BTreeSet<u32>, ClientError> {
        let mut out = BTreeSet::new();
        if user != self.username.as_str() {
            return Ok(out);
        }
        out.insert(self.device_id);
        for (c, removed) in crate::devices::roster(&self.store.conn)? {
            if removed {
                out.insert(c.device_id().0);
            }
        }
        let pending: Vec<u32> = self
            .store
            .conn
            .prepare("SELECT device_id FROM pending_links")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        out.extend(pending);
        Ok(out)
    }

    /// Adds to `group_id` the devices of `user` the directory vouches for
    /// (as last proven) that the group lacks; returns how many.
    async fn add_devices_of(&mut self, user: &str, group_id: &[u8]) -> Result<usize, ClientError> {
        let Some(value) = self.kt_vouched.get(user).cloned() else {
            return Ok(0);
        };
        let Some(known) = self.known_account_key(user)? else {
            return Ok(0);
        };
        // A different key is a key change (reported where it was found):
        // none of its devices is added.
        if value.account_key.map(|k| k.as_bytes().to_vec()) != Some(known.clone()) {
            return Ok(0);
        }
        let skip = self.not_to_add(user)?;
        let conv = self.conv(group_id)?;
        let present: BTreeSet<u32> = conv
            .members()
            .iter()
            .filter(|c| c.username().as_str() == user)
            .map(|c| c.device_id().0)
            .collect();
        let suite = conv.suite().unwrap_or(Suite::Hybrid);
        let missing: BTreeSet<u32> = value
            .devices
            .iter()
            .map(|d| d.device_id)
            .filter(|d| !present.contains(d) && !skip.contains(d))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let kps: Vec<Vec<u8>> = self
            .claim(user, suite)
            .await?
            .into_iter()
            .filter(|kp| {
                hush_proto::inspect_key_package(kp).is_ok_and(|i| {
                    certified_by(&i.certificate, user, &known)
                        && missing.contains(&i.certificate.device_id().0)
                        && value.vouches_for(&i.certificate)
                })
            })
            .collect();
        if kps.is_empty() {
            return Ok(0);
        }
        tracing::info!(%user, devices = kps.len(), "adding an account's new devices to a conversation");
        self.add_in_batches(group_id, &kps).await
    }
}

/// Whether `cert` is a device of `user` certified by the account key
/// `known`.
fn certified_by(cert: &DeviceCertificate, user: &str, known: &[u8]) -> bool {
    cert.username().as_str() == user
        && cert.account_key().as_bytes() == known
        && cert.verify().is_ok()
}
