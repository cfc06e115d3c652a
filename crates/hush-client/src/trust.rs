//! What a device checks before it lets anyone into a conversation: every
//! member of a Welcome and every device a commit adds must be vouched for by
//! key transparency (the same lookup proof a send needs), a 1:1 chat holds
//! exactly two accounts, and a Welcome may neither overwrite a conversation
//! this device is in nor bring it back into one it has ever been in (replays
//! to a last-resort KeyPackage). A refusal changes nothing but the queue position
//! and is shown as [`Event::SecurityAlarm`].

use std::collections::BTreeMap;

use hush_proto::{ConversationKind, DeviceCertificate, Username};
use rusqlite::{OptionalExtension, Transaction, params};

use hush_proto::kt::verify_history;
use hush_wire::kt::KtProofResponse;
use reqwest::Method;

use crate::client::{Client, now_ms};
use crate::directory::Refusal;
use crate::error::ClientError;
use crate::kt::wire_to_root;
use crate::local::LocalStore;
use crate::model::Event;

/// What the key directory said about new members.
pub(crate) enum Vetting {
    /// Every one is vouched for; these contacts' account keys changed.
    Vouched(Vec<String>),
    /// Refused, and why.
    Refused(String),
}

/// How a refusal by the directory is shown (as for a single lookup).
fn refusal_text(r: &Refusal) -> String {
    let user = &r.username;
    match &r.error {
        ClientError::Proto(e) => format!("the server's answer for {user} is invalid: {e}"),
        e => format!("the key directory does not vouch for {user}: {e}"),
    }
}

impl Client {
    /// Checks `certs` against the key directory. Refuses them when the
    /// directory does not vouch for one of them; errors only when the
    /// directory could not be asked (the message is then kept for later).
    pub(crate) async fn vet_members(
        &mut self,
        certs: &[DeviceCertificate],
    ) -> Result<Vetting, ClientError> {
        use Vetting::Refused;
        let mut by_account: BTreeMap<String, Vec<&DeviceCertificate>> = BTreeMap::new();
        for c in certs {
            by_account
                .entry(c.username().to_string())
                .or_default()
                .push(c);
        }
        // One batched lookup for every account (this one's own included:
        // its other devices must be listed too).
        let mut users: Vec<Username> = certs.iter().map(|c| c.username().clone()).collect();
        users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        users.dedup();
        let changed = match self.vouch_batch(&users).await? {
            Ok(changed) => changed,
            Err(refusal) => return Ok(Refused(refusal_text(&refusal))),
        };
        for (user, certs) in by_account {
            let Some(value) = self.kt_vouched.get(&user) else {
                return Ok(Refused(format!("the key directory does not list {user}")));
            };
            let unlisted: Vec<&DeviceCertificate> = certs
                .into_iter()
                .filter(|c| !value.vouches_for(c))
                .collect();
            let Some(first) = unlisted.first() else {
                continue;
            };
            // Under the account key it lists now, a device the directory
            // listed once and no longer does was removed after it was added
            // (decision 0035): the add stands, and the device is taken out
            // as departed. Anything else was made up.
            let same_key = unlisted
                .iter()
                .all(|c| value.account_key == Some(c.account_key()));
            if !same_key || !self.listed_once(&user, &unlisted).await? {
                return Ok(Refused(format!(
                    "device {} of {user} carries a key the key directory does not list \
                     (someone made it up)",
                    first.device_id().0
                )));
            }
        }
        Ok(Vetting::Vouched(changed))
    }

    /// Whether the directory's history of `user`, proven against a root
    /// this client accepts, listed every one of `certs` in some version.
    /// A history the server will not give or cannot prove says no.
    async fn listed_once(
        &mut self,
        user: &str,
        certs: &[&DeviceCertificate],
    ) -> Result<bool, ClientError> {
        let Ok(name) = Username::new(user) else {
            return Ok(false);
        };
        let config = self.kt_config().await?;
        let resp: KtProofResponse = match self
            .transport
            .json::<(), _>(Method::GET, &format!("/v1/kt/history/{name}"), None)
            .await
        {
            Ok(resp) => resp,
            Err(e) if e.code().is_some() => return Ok(false),
            Err(e) => return Err(e),
        };
        let Ok(root) = wire_to_root(&resp.root) else {
            return Ok(false);
        };
        self.accept_root(&config, &root).await?;
        let Ok(versions) = verify_history(&config, &root, &name, resp.proof.as_slice()) else {
            return Ok(false);
        };
        Ok(certs
            .iter()
            .all(|c| versions.iter().any(|v| v.value.vouches_for(c))))
    }

    /// Why a Welcome into `group_id` at `epoch` is refused, if it is: the
    /// group is one this device is in, or one it has ever been in (a replay
    /// to a last-resort KeyPackage, or someone reusing the id).
    /// `held` are the groups in this device's MLS state before the join.
    fn welcome_refusal(
        &self,
        group_id: &[u8],
        epoch: u64,
        held: &[Vec<u8>],
    ) -> Result<Option<String>, ClientError> {
        let active = self.conv_by_group_id(group_id)?.is_some()
            || held.iter().any(|g| g.as_slice() == group_id);
        if active {
            return Ok(Some(
                "an invitation reuses the id of a conversation you are in; it would have \
                 replaced that conversation"
                    .into(),
            ));
        }
        let known: Option<Option<i64>> = self
            .store
            .conn
            .query_row(
                "SELECT max_epoch FROM known_groups WHERE group_id = ?1",
                params![group_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(known.map(|seen| {
            let seen = seen.map_or_else(String::new, |e| format!(", where you saw epoch {e}"));
            format!(
                "an invitation (epoch {epoch}) to a conversation you have already been in{seen}: \
                 a replay or a reused id, which would have rolled you back into it. To rejoin a \
                 group you left, ask to be invited to a new one"
            )
        }))
    }

    /// Remembers that this device saw `group_id` at `epoch` (inside the
    /// caller's transaction); kept after leaving, so replays stay refused.
    pub(crate) fn note_group_epoch(
        tx: &Transaction<'_>,
        group_id: &[u8],
        epoch: u64,
    ) -> Result<(), ClientError> {
        tx.execute(
            "INSERT INTO known_groups (group_id, max_epoch, first_seen) VALUES (?1, ?2, ?3) \
             ON CONFLICT (group_id) DO UPDATE SET max_epoch = MAX(COALESCE(max_epoch, 0), excluded.max_epoch)",
            params![group_id, epoch as i64, now_ms() as i64],
        )?;
        Ok(())
    }

    /// Drops what the refused message did to the MLS state, moves the queue
    /// position past it, and returns the alarm to show.
    pub(crate) fn refuse(&mut self, seq: &str, what: &str) -> Result<Vec<Event>, ClientError> {
        self.reload_mls()?;
        LocalStore::set_meta(&self.store.conn, "last_seq", seq.as_bytes())?;
        let message = format!("SECURITY: refused {what}. Nothing was joined or changed");
        tracing::warn!(%message, "refused a message");
        Ok(vec![Event::SecurityAlarm { message }])
    }

    /// Joins the conversation of a Welcome once every check passes.
    pub(crate) async fn handle_welcome(
        &mut self,
        payload: &[u8],
        seq: &str,
        joined: &mut Vec<Vec<u8>>,
    ) -> Result<Vec<Event>, ClientError> {
        let held = self.device.conversation_ids();
        // Joined in memory only: nothing is stored until the checks pass.
        let conv = match self.join_welcome(payload).await {
            Ok(conv) => conv,
            Err(ClientError::Proto(hush_proto::ProtoError::Tampered)) => {
                return self.refuse(
                    seq,
                    "an invitation whose group tree was altered on the server",
                );
            }
            Err(e) => return Err(e),
        };
        let info = conv.info()?;
        let group_id = conv.id().to_vec();
        let epoch = conv.epoch();
        let members = conv.members();
        if let Some(why) = self.welcome_refusal(&group_id, epoch, &held)? {
            return self.refuse(seq, &format!("an invitation: {why}"));
        }
        if let Some(old) = self.announced_predecessor(&group_id)? {
            let events = self.follow_successor(conv, old, seq).await?;
            if self.conv_by_group_id(&group_id)?.is_some() {
                // Followed: a big successor's joiners fill its tree in as
                // any big group's (`self_update_after_join`).
                joined.push(group_id);
            }
            return Ok(events);
        }
        let me = self.username.clone();
        let mut others: Vec<String> = members
            .iter()
            .map(|c| c.username().to_string())
            .filter(|u| u != me.as_str())
            .collect();
        others.sort();
        others.dedup();
        if info.kind == ConversationKind::Direct && others.len() != 1 {
            return self.refuse(
                seq,
                &format!(
                    "an invitation to a 1:1 chat with {} other accounts",
                    others.len()
                ),
            );
        }
        let changed = match self.vet_members(&members).await {
            Ok(Vetting::Vouched(changed)) => changed,
            Ok(Vetting::Refused(why)) => {
                let from = others.join(", ");
                return self.refuse(seq, &format!("an invitation from {from}: {why}"));
            }
            Err(e) => {
                self.reload_mls()?;
                return Err(e);
            }
        };
        let peer = match info.kind {
            ConversationKind::Direct => others.first().cloned(),
            ConversationKind::Group => None,
        };
        // The lookups recorded (and compared) every member's account key.
        self.convs.insert(group_id.clone(), conv);
        let id = self.persist(|tx| {
            let id = Self::insert_conv(tx, &group_id, &info, peer.as_deref())?;
            Self::note_group_epoch(tx, &group_id, epoch)?;
            LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
            Ok(id)
        })?;
        joined.push(group_id.clone());
        let mut events: Vec<Event> = changed
            .into_iter()
            .map(|username| Event::KeyChanged { username })
            .collect();
        if let Some(row) = self.conv_by_id(id)? {
            events.push(Event::Joined {
                conversation: self.view(&row)?,
            });
        }
        Ok(events)
    }

    /// Checks the devices a received commit adds.
    pub(crate) async fn vet_commit(
        &mut self,
        group_id: &[u8],
        added: &[DeviceCertificate],
    ) -> Result<Vetting, ClientError> {
        if added.is_empty() {
            return Ok(Vetting::Vouched(Vec::new()));
        }
        let conv = self.conv(group_id)?;
        if conv.info()?.kind == ConversationKind::Direct && conv.accounts().len() > 2 {
            return Ok(Vetting::Refused(
                "a change that adds a third account to a 1:1 chat".into(),
            ));
        }
        Ok(match self.vet_members(added).await? {
            Vetting::Refused(why) => {
                Vetting::Refused(format!("a change that adds a member: {why}"))
            }
            ok => ok,
        })
    }
}

#[cfg(feature = "test-hooks")]
impl Client {
    /// This device's certificate.
    pub fn certificate_for_tests(&self) -> DeviceCertificate {
        self.device.certificate().clone()
    }

    /// Plays a thief who holds this account's key: a certificate for a new
    /// device `device_id` that the account never published in the directory.
    pub fn unpublished_device_for_tests(
        &self,
        device_id: u32,
    ) -> Result<DeviceCertificate, ClientError> {
        let key = hush_proto::DeviceSigningKey::generate(&mut rand::rngs::OsRng)?;
        Ok(DeviceCertificate::issue(
            &self.account,
            &self.username,
            hush_proto::DeviceId(device_id),
            &key,
            now_ms(),
        )?)
    }

    /// What this device concludes of a commit that adds `certs`: `None`
    /// when it accepts them, else why it refuses.
    pub async fn vet_add_for_tests(
        &mut self,
        certs: &[DeviceCertificate],
    ) -> Result<Option<String>, ClientError> {
        Ok(match self.vet_members(certs).await? {
            Vetting::Vouched(_) => None,
            Vetting::Refused(why) => Some(why),
        })
    }
}
