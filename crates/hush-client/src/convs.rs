//! Conversations: 1:1 chats created on first send, groups, and the commit
//! flow the server orders.

use hush_proto::{ConversationInfo, ConversationKind, PendingCommit, Suite, Username};
use hush_wire::api::{CommitClaim, SendRequest};
use hush_wire::{Bytes, DeviceAddress, ErrorCode};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::client::{Client, now, now_ms};
use crate::error::ClientError;
use crate::model::{ConversationView, Target};

/// How often a commit is rebuilt after losing its epoch to another member's.
pub(crate) const COMMIT_ATTEMPTS: usize = 5;

/// A conversation row.
#[derive(Debug, Clone)]
pub(crate) struct ConvRow {
    pub id: i64,
    pub group_id: Vec<u8>,
    pub kind: String,
    pub peer: Option<String>,
    pub name: Option<String>,
    pub disappear_secs: Option<u32>,
    /// Muted until then (ms since the Unix epoch), see [`crate::mute`].
    pub muted_until: Option<u64>,
}

const CONV_COLUMNS: &str = "id, group_id, kind, peer, name, disappear_secs, muted_until";

fn conv_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConvRow> {
    Ok(ConvRow {
        id: r.get(0)?,
        group_id: r.get(1)?,
        kind: r.get(2)?,
        peer: r.get(3)?,
        name: r.get(4)?,
        disappear_secs: r.get::<_, Option<i64>>(5)?.map(|s| s as u32),
        muted_until: r.get::<_, Option<i64>>(6)?.map(|t| t.max(0) as u64),
    })
}

impl Client {
    pub(crate) fn conv_by_group_id(&self, group_id: &[u8]) -> Result<Option<ConvRow>, ClientError> {
        Ok(self
            .store
            .conn
            .query_row(
                &format!(
                    "SELECT {CONV_COLUMNS} FROM conversations WHERE group_id = ?1 AND active = 1"
                ),
                params![group_id],
                conv_row,
            )
            .optional()?)
    }

    pub(crate) fn conv_by_id(&self, id: i64) -> Result<Option<ConvRow>, ClientError> {
        Ok(self
            .store
            .conn
            .query_row(
                &format!("SELECT {CONV_COLUMNS} FROM conversations WHERE id = ?1"),
                params![id],
                conv_row,
            )
            .optional()?)
    }

    /// The active direct conversations with `peer`, oldest first: new
    /// messages go to the first, the one this device created or joined
    /// first. (Not the smallest group id: whoever makes a group picks its
    /// id, so that order would be the other side's to choose.)
    pub(crate) fn direct_convs(&self, peer: &str) -> Result<Vec<ConvRow>, ClientError> {
        let mut stmt = self.store.conn.prepare(&format!(
            "SELECT {CONV_COLUMNS} FROM conversations WHERE kind = 'direct' AND peer = ?1 \
             AND active = 1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(params![peer], conv_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub(crate) fn group_by_name(&self, name: &str) -> Result<ConvRow, ClientError> {
        self.store
            .conn
            .query_row(
                &format!(
                    "SELECT {CONV_COLUMNS} FROM conversations WHERE kind = 'group' AND name = ?1 AND active = 1"
                ),
                params![name],
                conv_row,
            )
            .optional()?
            .ok_or_else(|| ClientError::NotFound(format!("no group named {name:?}")))
    }

    /// The conversation a target names, creating a 1:1 chat if needed.
    pub(crate) async fn resolve(&mut self, target: &Target) -> Result<ConvRow, ClientError> {
        match target {
            Target::Group(name) => self.group_by_name(name),
            Target::User(user) => {
                if let Some(c) = self.direct_convs(user)?.into_iter().next() {
                    return Ok(c);
                }
                self.start_direct(user).await
            }
        }
    }

    /// The conversation a target names, if it exists.
    pub(crate) fn find(&self, target: &Target) -> Result<Vec<ConvRow>, ClientError> {
        match target {
            Target::Group(name) => Ok(vec![self.group_by_name(name)?]),
            Target::User(user) => {
                let rows = self.direct_convs(user)?;
                if rows.is_empty() {
                    return Err(ClientError::NotFound(format!(
                        "no conversation with {user}"
                    )));
                }
                Ok(rows)
            }
        }
    }

    /// [`Client::find`] for reading history: without an active
    /// conversation, the ones this device is no longer or not yet in (a
    /// restored or linked device's history before it is re-added).
    pub(crate) fn find_with_archived(&self, target: &Target) -> Result<Vec<ConvRow>, ClientError> {
        let found = self.find(target);
        if !matches!(found, Err(ClientError::NotFound(_))) {
            return found;
        }
        let (sql, key) = match target {
            Target::User(user) => ("kind = 'direct' AND peer = ?1 ORDER BY id", user.as_str()),
            Target::Group(name) => (
                "kind = 'group' AND name = ?1 ORDER BY id DESC LIMIT 1",
                name.as_str(),
            ),
        };
        let rows = self
            .store
            .conn
            .prepare(&format!(
                "SELECT {CONV_COLUMNS} FROM conversations WHERE active = 0 AND {sql}"
            ))?
            .query_map(params![key], conv_row)?
            .collect::<Result<Vec<_>, _>>()?;
        if rows.is_empty() {
            return found;
        }
        Ok(rows)
    }

    pub(crate) fn insert_conv(
        tx: &Transaction<'_>,
        group_id: &[u8],
        info: &ConversationInfo,
        peer: Option<&str>,
    ) -> Result<i64, ClientError> {
        let kind = match info.kind {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        };
        tx.execute(
            "INSERT INTO conversations (group_id, kind, peer, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (group_id) DO UPDATE SET active = 1",
            params![group_id, kind, peer, info.name, now_ms() as i64],
        )?;
        Ok(tx.query_row(
            "SELECT id FROM conversations WHERE group_id = ?1",
            params![group_id],
            |r| r.get(0),
        )?)
    }

    /// Devices to invite with `users`: every device of each, and this
    /// account's other devices.
    async fn invitations(&mut self, users: &[String]) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut kps = Vec::new();
        let mut listed = 0;
        // Every account proven in one batched lookup; the claims below use
        // what it proved.
        let names = users
            .iter()
            .map(|u| Username::new(u).map_err(|e| ClientError::InvalidInput(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = names;
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        if let Err(refusal) = self.vouch_batch(&names).await? {
            return Err(refusal.error);
        }
        for user in users {
            let devices = self.kt_vouched.get(user).map_or(0, |v| v.devices.len());
            listed += devices;
            if listed + 1 > hush_proto::MAX_GROUP_DEVICES {
                return Err(crate::big_groups::too_large(listed + 1));
            }
            self.check_not_blocked_verified(user)?;
            let claimed = self.claim(user, Suite::Hybrid).await?;
            if claimed.is_empty() && devices > 0 {
                return Err(ClientError::NotFound(format!(
                    "{user} has no device ready to receive (no KeyPackages on the server)"
                )));
            }
            kps.extend(claimed);
        }
        let me = self.username.to_string();
        kps.extend(self.claim(&me, Suite::Hybrid).await?);
        Ok(kps)
    }

    /// Refuses to talk to a contact whose key changed after the user
    /// verified them, until they verify again.
    pub(crate) fn check_not_blocked_verified(&self, user: &str) -> Result<(), ClientError> {
        let changed: Option<i64> = self
            .store
            .conn
            .query_row(
                "SELECT key_changed FROM contacts WHERE username = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?;
        if changed == Some(2) {
            return Err(ClientError::KeyChanged(user.to_owned()));
        }
        Ok(())
    }

    async fn start_direct(&mut self, peer: &str) -> Result<ConvRow, ClientError> {
        if peer == self.username.as_str() {
            return Err(ClientError::InvalidInput(
                "a 1:1 chat needs another account".into(),
            ));
        }
        Username::new(peer).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let kps = self.invitations(&[peer.to_owned()]).await?;
        self.create(ConversationInfo::direct(), Some(peer), kps)
            .await
    }

    async fn create(
        &mut self,
        info: ConversationInfo,
        peer: Option<&str>,
        kps: Vec<Vec<u8>>,
    ) -> Result<ConvRow, ClientError> {
        self.create_in(Suite::Hybrid, info, peer, kps).await
    }

    /// [`Client::create`] in `suite` (only tests make one of the legacy
    /// suite).
    pub(crate) async fn create_in(
        &mut self,
        suite: Suite,
        info: ConversationInfo,
        peer: Option<&str>,
        mut kps: Vec<Vec<u8>>,
    ) -> Result<ConvRow, ClientError> {
        if kps.len() + 1 > hush_proto::MAX_GROUP_DEVICES {
            return Err(crate::big_groups::too_large(kps.len() + 1));
        }
        // The first commit keeps the tree in the Welcome; a big group's
        // other devices follow in batches (see `big_groups`).
        let first = kps.len().min(hush_proto::big_group::BIG_GROUP_LEAVES - 1);
        let first = hush_proto::big_group::add_batches(&kps[..first], 1)
            .first()
            .map_or(0, |b| b.len());
        let rest = kps.split_off(first);
        let (conv, commit) = self.device.create_conversation(suite, &info, &kps, now())?;
        let group_id = conv.id().to_vec();
        let epoch = conv.epoch();
        let recipients = self.recipients_for(&conv);
        self.convs.insert(group_id.clone(), conv);
        if let Some(c) = &commit {
            // Registers the group and the next epoch's token hash before
            // anyone else can learn its id. The commit itself goes to nobody.
            // If this fails, the group's first later commit registers it.
            if let Err(e) = self.send_commit(&group_id, Vec::new(), c).await {
                tracing::warn!(error = %e, "could not register a new group's first epoch");
            }
        }
        let id = self.persist(|tx| {
            let id = Self::insert_conv(tx, &group_id, &info, peer)?;
            Self::note_group_epoch(tx, &group_id, epoch)?;
            Self::queue_welcome(tx, commit.and_then(|c| c.welcome), recipients)?;
            Ok(id)
        })?;
        self.flush_outbox().await?;
        if !rest.is_empty() {
            self.add_in_batches(&group_id, &rest).await?;
        }
        self.share_profile_key(&group_id).await?;
        self.conv_by_id(id)?
            .ok_or_else(|| ClientError::Store("conversation vanished".into()))
    }

    /// Queues a new group's Welcome, when its first commit made one, to the
    /// devices that commit adds, in the transaction that records the group.
    pub(crate) fn queue_welcome(
        tx: &Transaction<'_>,
        welcome: Option<Vec<u8>>,
        recipients: Vec<DeviceAddress>,
    ) -> Result<(), ClientError> {
        let Some(welcome) = welcome else {
            return Ok(());
        };
        let request = SendRequest {
            recipients,
            payload: Bytes(welcome),
            ephemeral: false,
            commit: None,
            franking_commitment: None,
        };
        Self::queue_send(tx, &request, None)
    }

    pub(crate) fn recipients_for(&self, conv: &hush_proto::Conversation) -> Vec<DeviceAddress> {
        conv.members()
            .into_iter()
            .filter(|c| !(c.username() == &self.username && c.device_id().0 == self.device_id))
            .map(|c| DeviceAddress {
                username: c.username().to_string(),
                device_id: c.device_id().0,
            })
            .collect()
    }

    /// Creates a group called `name` with `members` (and this account's
    /// other devices).
    pub async fn create_group(
        &mut self,
        name: &str,
        members: &[String],
    ) -> Result<ConversationView, ClientError> {
        if name.is_empty() || name.len() > hush_proto::conversation::MAX_NAME_LEN {
            return Err(ClientError::InvalidInput(
                "a group name is 1 to 128 bytes".into(),
            ));
        }
        if self.group_by_name(name).is_ok() {
            return Err(ClientError::InvalidInput(format!(
                "you already have a group named {name:?}"
            )));
        }
        let mut users: Vec<String> = members
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty() && m != self.username.as_str())
            .collect();
        users.sort();
        users.dedup();
        let kps = self.invitations(&users).await?;
        let row = self
            .create(ConversationInfo::group(name), None, kps)
            .await?;
        self.view(&row)
    }

    /// Sends a commit built by `build` to the group's other devices, in the
    /// epoch the server orders; when another member's commit won the epoch,
    /// catches up and builds it again. Then sends the Welcome, if any, to the
    /// devices it adds.
    pub(crate) async fn commit_with<F>(
        &mut self,
        group_id: &[u8],
        mut build: F,
    ) -> Result<hush_proto::MembershipChange, ClientError>
    where
        F: FnMut(&mut hush_proto::Conversation) -> Result<PendingCommit, hush_proto::ProtoError>,
    {
        for _ in 0..COMMIT_ATTEMPTS {
            if let Some(change) = self.commit_once(group_id, &mut build).await? {
                return Ok(change);
            }
        }
        Err(ClientError::Network(
            "the group kept changing under this commit; try again".into(),
        ))
    }

    /// One attempt of [`Client::commit_with`]: `None` when another commit
    /// won the epoch (this device has caught up; build again). A tree that
    /// travels out of band, and a commit too large for a message, are
    /// uploaded before the commit (or its pointer) is sent.
    pub(crate) async fn commit_once<F>(
        &mut self,
        group_id: &[u8],
        build: &mut F,
    ) -> Result<Option<hush_proto::MembershipChange>, ClientError>
    where
        F: FnMut(&mut hush_proto::Conversation) -> Result<PendingCommit, hush_proto::ProtoError>,
    {
        let recipients = self.recipients_of(group_id)?;
        let mut pending = build(self.conv(group_id)?)?;
        self.persist(|_| Ok(()))?;
        // A big group's tree, and a commit too large for a message (an
        // update path in a sparse tree), go to the blob store first.
        let uploaded = self.upload_commit_parts(group_id, &mut pending).await;
        // Sent even with nobody else in the group: the server must see
        // every epoch change to check the next commit's token.
        let sent = match uploaded {
            Ok(()) => self
                .send_commit(group_id, recipients, &pending)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            self.conv(group_id)?.discard_commit()?;
            self.persist(|_| Ok(()))?;
            if matches!(
                e.code(),
                Some(ErrorCode::EpochConflict | ErrorCode::Forbidden)
            ) {
                // Someone else's commit took this epoch (or this
                // device is behind): catch up.
                self.sync_quietly().await?;
                return Ok(None);
            }
            return Err(e);
        }
        let change = self.conv(group_id)?.confirm_commit()?;
        let new_devices: Vec<DeviceAddress> = change
            .added
            .iter()
            .map(|c| DeviceAddress {
                username: c.username().to_string(),
                device_id: c.device_id().0,
            })
            .collect();
        let info = change.info.clone();
        self.persist(|tx| {
            if let Some(info) = &info {
                tx.execute(
                    "UPDATE conversations SET name = ?2 WHERE group_id = ?1",
                    params![group_id, info.name],
                )?;
            }
            if let Some(welcome) = &pending.welcome
                && !new_devices.is_empty()
            {
                Self::queue_send(
                    tx,
                    &SendRequest {
                        recipients: new_devices.clone(),
                        payload: Bytes(welcome.clone()),
                        ephemeral: false,
                        commit: None,
                        franking_commitment: None,
                    },
                    None,
                )?;
            }
            Ok(())
        })?;
        self.flush_outbox().await?;
        Ok(Some(change))
    }

    /// Sends a commit with its claim on the epoch (see
    /// `hush_proto::commit_token`).
    pub(crate) async fn send_commit(
        &mut self,
        group_id: &[u8],
        recipients: Vec<DeviceAddress>,
        pending: &PendingCommit,
    ) -> Result<hush_wire::api::SendResponse, ClientError> {
        self.transport
            .send_message(&SendRequest {
                recipients,
                payload: Bytes(pending.commit.clone()),
                ephemeral: false,
                commit: Some(CommitClaim {
                    group_id: Bytes(group_id.to_vec()),
                    epoch: pending.epoch,
                    token: Bytes(pending.token.to_vec()),
                    next_token_hash: Bytes(pending.next_token_hash.to_vec()),
                }),
                franking_commitment: None,
            })
            .await
    }

    /// Removes, from every conversation that still lists them, the devices
    /// the server reported missing, once the key directory confirms they are
    /// gone (the account is gone, or its verified entry no longer lists the
    /// device). A device the directory still lists is kept.
    pub(crate) async fn remove_departed(
        &mut self,
        missing: Vec<DeviceAddress>,
    ) -> Result<(), ClientError> {
        let mut users: Vec<String> = missing.iter().map(|m| m.username.clone()).collect();
        users.sort();
        users.dedup();
        let mut gone: Vec<(String, u32)> = Vec::new();
        for user in users {
            let listed: Option<Vec<u32>> = match self.lookup(&user).await {
                Ok((entry, _)) => Some(entry.devices.iter().map(|d| d.device_id).collect()),
                Err(ClientError::NotFound(_)) => None,
                Err(e) => {
                    tracing::warn!(error = %e, %user, "cannot check a missing device with the directory");
                    continue;
                }
            };
            for m in missing.iter().filter(|m| m.username == user) {
                if listed.as_ref().is_none_or(|l| !l.contains(&m.device_id)) {
                    gone.push((user.clone(), m.device_id));
                } else {
                    tracing::warn!(%user, device = m.device_id,
                        "the server says a device is missing that the directory still lists; keeping it");
                }
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        let is_gone = |c: &hush_proto::DeviceCertificate| {
            gone.iter()
                .any(|(u, d)| c.username().as_str() == u && c.device_id().0 == *d)
        };
        let group_ids: Vec<Vec<u8>> = self
            .store
            .conn
            .prepare("SELECT group_id FROM conversations WHERE active = 1")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for group_id in group_ids {
            let holds = match self.conv(&group_id) {
                Ok(conv) => conv.members().iter().any(is_gone),
                Err(_) => false,
            };
            if !holds {
                continue;
            }
            let now = now();
            if let Err(e) = self
                .commit_with(&group_id, |c| c.remove_devices(is_gone, now))
                .await
            {
                tracing::warn!(error = %e, "could not remove a departed device from a conversation");
            }
        }
        Ok(())
    }

    /// Adds every device of `user` to the group `name`.
    pub async fn group_add(&mut self, name: &str, user: &str) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let already = self.conv(&row.group_id)?.accounts();
        if already.iter().any(|u| u.as_str() == user) {
            return Err(ClientError::InvalidInput(format!(
                "{user} is already in {name:?}"
            )));
        }
        let (entry, _) = self.lookup(user).await?;
        let devices = self.conv(&row.group_id)?.members().len() + entry.devices.len();
        if devices > hush_proto::MAX_GROUP_DEVICES {
            return Err(crate::big_groups::too_large(devices));
        }
        self.check_not_blocked_verified(user)?;
        let kps = self.claim(user, Suite::Hybrid).await?;
        if kps.is_empty() {
            return Err(ClientError::NotFound(format!(
                "{user} has no device ready to receive (no KeyPackages on the server)"
            )));
        }
        self.add_in_batches(&row.group_id, &kps).await?;
        Ok(())
    }

    /// Removes every device of `user` from the group `name`.
    pub async fn group_remove(&mut self, name: &str, user: &str) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        let who = Username::new(user).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        if who == self.username {
            return Err(ClientError::InvalidInput(
                "to remove yourself, leave the group".into(),
            ));
        }
        self.require_admin(&row.group_id, name)?;
        self.unlist_admin(&row.group_id, &who).await?;
        let now = now();
        self.commit_with(&row.group_id, |c| c.remove_account(&who, now))
            .await?;
        Ok(())
    }

    /// Renames the group `name`.
    pub async fn group_rename(&mut self, name: &str, new_name: &str) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        if self.group_by_name(new_name).is_ok() {
            return Err(ClientError::InvalidInput(format!(
                "you already have a group named {new_name:?}"
            )));
        }
        self.require_admin(&row.group_id, name)?;
        let now = now();
        let new_name = new_name.to_owned();
        self.commit_with(&row.group_id, |c| c.rename(&new_name, now))
            .await?;
        Ok(())
    }

    /// Leaves the group `name`: proposes the removal of every device of this
    /// account (the remaining members commit it) and forgets the group here.
    pub async fn group_leave(&mut self, name: &str) -> Result<(), ClientError> {
        self.group_by_name(name)?;
        // Catch up first: a proposal made in an epoch the group has left is
        // dropped by every member, and the departure would be lost.
        self.sync_quietly().await?;
        let row = self.group_by_name(name)?;
        let recipients = self.recipients_of(&row.group_id)?;
        let proposals = self.conv(&row.group_id)?.leave()?;
        let group_id = row.group_id.clone();
        self.convs.remove(&group_id);
        self.device.forget(&group_id);
        self.persist(|tx| {
            for p in &proposals {
                if !recipients.is_empty() {
                    Self::queue_send(
                        tx,
                        &SendRequest {
                            recipients: recipients.clone(),
                            payload: Bytes(p.clone()),
                            ephemeral: false,
                            commit: None,
                            franking_commitment: None,
                        },
                        None,
                    )?;
                }
            }
            tx.execute(
                "UPDATE conversations SET active = 0 WHERE group_id = ?1",
                params![group_id],
            )?;
            Ok(())
        })?;
        self.flush_outbox().await
    }

    /// The member accounts of the group `name`.
    pub fn group_members(&mut self, name: &str) -> Result<Vec<String>, ClientError> {
        let row = self.group_by_name(name)?;
        Ok(self
            .conv(&row.group_id)?
            .accounts()
            .into_iter()
            .map(|u| u.to_string())
            .collect())
    }

    /// Every active conversation.
    pub fn conversations(&mut self) -> Result<Vec<ConversationView>, ClientError> {
        let rows: Vec<ConvRow> = {
            let mut stmt = self.store.conn.prepare(&format!(
                "SELECT {CONV_COLUMNS} FROM conversations WHERE active = 1 ORDER BY id"
            ))?;
            stmt.query_map([], conv_row)?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut out = Vec::new();
        let mut peers_seen = std::collections::HashSet::new();
        for row in rows {
            // Chats started by both sides at once show as one.
            if let Some(peer) = &row.peer
                && !peers_seen.insert(peer.clone())
            {
                continue;
            }
            out.push(self.view(&row)?);
        }
        Ok(out)
    }

    /// The groups.
    pub fn groups(&mut self) -> Result<Vec<ConversationView>, ClientError> {
        Ok(self
            .conversations()?
            .into_iter()
            .filter(|c| c.kind == "group")
            .collect())
    }

    pub(crate) fn view(&mut self, row: &ConvRow) -> Result<ConversationView, ClientError> {
        let (members, admins, only_admins_send) = match self.conv(&row.group_id) {
            Ok(c) => crate::admins::roles(c),
            Err(_) => (Vec::new(), Vec::new(), false),
        };
        Ok(ConversationView {
            id: row.id,
            kind: row.kind.clone(),
            name: row
                .name
                .clone()
                .or_else(|| row.peer.clone())
                .unwrap_or_default(),
            members,
            admins,
            only_admins_send,
            disappear_secs: row.disappear_secs,
            muted_until: crate::mute::still_muted(row.muted_until),
            other_chats: match &row.peer {
                Some(peer) => self.direct_convs(peer)?.len().saturating_sub(1),
                None => 0,
            },
        })
    }
}
