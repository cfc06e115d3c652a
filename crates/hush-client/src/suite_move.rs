//! Moving conversations of the legacy suite 65100 to the current X-Wing
//! suite 0x004D (decision 0031).
//!
//! The server hands out no 65100 KeyPackages any more, so a 65100
//! conversation could take no new device or member. Every client, on its
//! routine sync, moves each 65100 conversation it is in:
//!
//! 1. it claims 0x004D KeyPackages of exactly the conversation's other
//!    devices and starts the successor ([`hush_proto::Device::start_successor`])
//!    with all of them in its first commit;
//! 2. it commits in the old conversation a key update whose authenticated
//!    data names the successor (sealed under the epoch, so the server does
//!    not learn which group replaces which). The server orders commits
//!    first come, first served: of members moving at once, one wins the
//!    epoch and the others drop their successor and follow it;
//! 3. it sends the successor's Welcome, and points the conversation's row
//!    at the successor: history stays under the same conversation, and
//!    everything this device sends goes to the successor.
//!
//! A big conversation (more than `BIG_GROUP_LEAVES` devices, up to
//! `MAX_GROUP_DEVICES`) moves the same way, as big groups are made: the
//! successor's tree goes to the blob store, and its Welcome in parts of at
//! most `WELCOME_PART_DEVICES` devices, each sent to its devices. Unlike a
//! new big group, the devices are not added in batches: every device joins
//! at the successor's first epoch, so that each can check it holds exactly
//! the old conversation's devices before following it.
//!
//! A member follows when the Welcome of an announced successor arrives and
//! [`hush_proto::migration::check_successor`] finds the same devices with
//! the same keys, name and kind, and the key directory vouches for them as
//! for any Welcome. Anything else is refused with an alarm and joins
//! nothing: a hostile member or server cannot bring anyone in through a
//! "migration". Messages still arriving on the old group (sent before its
//! sender followed) are shown in the same conversation; nothing is sent on
//! it any more.

use hush_proto::{
    Conversation, DeviceCertificate, PendingCommit, Suite, TreeSlot, inspect_key_package,
};
use hush_wire::DeviceAddress;
use rusqlite::{OptionalExtension, params};

use crate::client::{Client, now, now_ms};
use crate::convs::ConvRow;
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::Event;

/// How long after a failed attempt (a member without 0x004D KeyPackages,
/// one not upgraded yet) a conversation's move is tried again: each
/// attempt uses up a KeyPackage of every other device.
const RETRY_AFTER_MS: u64 = 60 * 60 * 1000;

/// The mark of a move under way (followed, once announced, by the
/// successor's id in hex); a failed attempt's mark is its time instead.
const UNDER_WAY: &str = "under way:";

/// The successor an interrupted attempt announced, from its mark.
fn under_way(mark: &str) -> Option<Vec<u8>> {
    hex::decode(mark.strip_prefix(UNDER_WAY)?)
        .ok()
        .filter(|id| !id.is_empty())
}

/// A part of a successor's Welcome and the devices it goes to.
type Welcome = (Vec<u8>, Vec<DeviceAddress>);

/// An announced successor whose Welcome is still to be sent.
struct Successor {
    old_id: Vec<u8>,
    new_id: Vec<u8>,
    epoch: u64,
    welcomes: Vec<Welcome>,
}

fn address(c: &DeviceCertificate) -> DeviceAddress {
    DeviceAddress {
        username: c.username().to_string(),
        device_id: c.device_id().0,
    }
}

type DeviceKey = (String, u32, [u8; 32]);

fn device_key(c: &DeviceCertificate) -> DeviceKey {
    (
        c.username().to_string(),
        c.device_id().0,
        *c.signature_key(),
    )
}

impl Client {
    /// The conversation row a group's messages belong to: the row of the
    /// group, or of the conversation that moved from it (a message sent on
    /// the old group before its sender followed).
    pub(crate) fn row_for_group(&self, group_id: &[u8]) -> Result<Option<ConvRow>, ClientError> {
        if let Some(row) = self.conv_by_group_id(group_id)? {
            return Ok(Some(row));
        }
        let moved: Option<i64> = self
            .store
            .conn
            .query_row(
                "SELECT conversation FROM successors WHERE old_group_id = ?1 AND done = 1",
                params![group_id],
                |r| r.get(0),
            )
            .optional()?;
        match moved {
            Some(id) => self.conv_by_id(id),
            None => Ok(None),
        }
    }

    /// Moves every active conversation of the legacy suite to the current
    /// one (see the module documentation). Failures are logged and retried
    /// after [`RETRY_AFTER_MS`]; an attempt a crash interrupted, at the next
    /// sync.
    pub(crate) async fn move_legacy_conversations(&mut self) {
        if self.hold_suite_moves || self.no_legacy_left {
            return;
        }
        let rows = match self.legacy_rows() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list conversations to move");
                return;
            }
        };
        for row in rows {
            if let Err(e) = self.move_conversation(&row, None).await {
                tracing::info!(error = %e, "a conversation of the legacy suite was not moved yet");
            }
        }
    }

    /// Active conversations of the legacy suite due for a move: none
    /// announced in the group's current epoch, no failed attempt in the last
    /// [`RETRY_AFTER_MS`]. Loads every active group once a session.
    fn legacy_rows(&mut self) -> Result<Vec<ConvRow>, ClientError> {
        let ids: Vec<i64> = self
            .store
            .conn
            .prepare("SELECT id FROM conversations WHERE active = 1 ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut due = Vec::new();
        let mut any_legacy = false;
        for id in ids {
            let Some(row) = self.conv_by_id(id)? else {
                continue;
            };
            let Ok(conv) = self.conv(&row.group_id) else {
                continue;
            };
            if conv.suite() != Some(Suite::LegacyHybrid) {
                continue;
            }
            any_legacy = true;
            let epoch = conv.epoch() as i64;
            let announced: bool = self.store.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM successors WHERE old_group_id = ?1 AND done = 0 \
                 AND epoch = ?2)",
                params![row.group_id, epoch],
                |r| r.get(0),
            )?;
            let tried = self
                .store
                .meta_str(&tried_key(&row.group_id))?
                .and_then(|s| s.parse::<u64>().ok());
            let recent = tried.is_some_and(|t| now_ms().saturating_sub(t) < RETRY_AFTER_MS);
            if !announced && !recent {
                due.push(row);
            }
        }
        // Nothing of the legacy suite is left (nobody makes new ones): later
        // routine syncs of this session skip loading every group.
        self.no_legacy_left = !any_legacy;
        Ok(due)
    }

    /// Moves one conversation. `stranger`: only for the test that plays a
    /// hostile member, who brings that account's devices in as well
    /// (bypassing `migrate_conversation`'s check, as a modified client would).
    ///
    /// An attempt is marked under way while it runs, and with its time once
    /// it failed (retried after [`RETRY_AFTER_MS`]). A process that dies
    /// between the announcement and the Welcome leaves the mark under way:
    /// its next sync moves the conversation again at once (the members
    /// waiting for the lost Welcome follow the new announcement), and drops
    /// the successor the lost Welcome was for.
    pub(crate) async fn move_conversation(
        &mut self,
        row: &ConvRow,
        stranger: Option<&str>,
    ) -> Result<(), ClientError> {
        let key = tried_key(&row.group_id);
        if let Some(lost) = self.store.meta_str(&key)?.as_deref().and_then(under_way) {
            self.forget_lost_successor(&lost)?;
        }
        LocalStore::set_meta(&self.store.conn, &key, UNDER_WAY.as_bytes())?;
        let started = self.start_successor(row, stranger).await;
        let Ok(Some(successor)) = started else {
            LocalStore::set_meta(&self.store.conn, &key, now_ms().to_string().as_bytes())?;
            return started.map(|_| ());
        };
        #[cfg(feature = "test-hooks")]
        if std::mem::take(&mut self.crash_after_announcement) {
            return Err(ClientError::Store(
                "simulated crash between the announcement and the Welcome".into(),
            ));
        }
        self.finish_move(row, successor).await
    }

    /// A successor whose Welcome an interrupted attempt never sent: nobody
    /// joined it, and no conversation points at it.
    fn forget_lost_successor(&mut self, lost: &[u8]) -> Result<(), ClientError> {
        if self.conv_by_group_id(lost)?.is_none() {
            self.convs.remove(lost);
            self.device.forget(lost);
            self.persist(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Claims the KeyPackages, starts the successor and announces it in the
    /// old group: the successor, its first epoch and commit, or `None` when
    /// another member's move won.
    async fn start_successor(
        &mut self,
        row: &ConvRow,
        stranger: Option<&str>,
    ) -> Result<Option<Successor>, ClientError> {
        let old_id = row.group_id.clone();
        let members = self.conv(&old_id)?.members();
        let kps = self.successor_key_packages(&members, stranger).await?;
        let t = now();
        let (conv, mut commit, welcomes) = match stranger {
            None => self.successor_of(&old_id, &kps, t).await?,
            Some(_) => {
                let info = self.conv(&old_id)?.info()?;
                let (conv, commit) =
                    self.device
                        .create_conversation(Suite::Hybrid, &info, &kps, t)?;
                let to = self.recipients_for(&conv);
                let welcomes = commit.as_ref().and_then(|c| c.welcome.clone());
                (
                    conv,
                    commit,
                    welcomes.map(|w| (w, to)).into_iter().collect(),
                )
            }
        };
        let new_id = conv.id().to_vec();
        let epoch = conv.epoch();
        self.convs.insert(new_id.clone(), conv);
        LocalStore::set_meta(
            &self.store.conn,
            &tried_key(&old_id),
            format!("{UNDER_WAY}{}", hex::encode(&new_id)).as_bytes(),
        )?;
        // A big successor's tree goes to the blob store before anyone
        // learns of the successor.
        let uploaded = match commit.as_mut() {
            Some(c) => self.upload_commit_parts(&new_id, c).await,
            None => Ok(()),
        };
        let announced = match uploaded {
            Ok(()) => self.announce(&old_id, &new_id, commit.as_ref(), t).await,
            Err(e) => Err(e),
        };
        if !matches!(announced, Ok(true)) {
            // Another member's move won, or this one failed: drop the
            // successor before anyone learns of it.
            self.convs.remove(&new_id);
            self.device.forget(&new_id);
            self.persist(|_| Ok(()))?;
            return announced.map(|_| None);
        }
        Ok(Some(Successor {
            old_id,
            new_id,
            epoch,
            welcomes,
        }))
    }

    /// The successor of `old_id` with the devices of `kps` (checked by
    /// [`hush_proto::Device::start_successor`]), all added in its first
    /// commit: with the tree in a slot reserved on the server when the
    /// group is too big for it to travel in the Welcome, and the Welcome in
    /// parts of at most [`hush_proto::migration::WELCOME_PART_DEVICES`]
    /// devices, each with the devices it goes to.
    async fn successor_of(
        &mut self,
        old_id: &[u8],
        kps: &[Vec<u8>],
        t: hush_proto::Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>, Vec<Welcome>), ClientError> {
        self.conv(old_id)?;
        let old = self
            .convs
            .get(old_id)
            .ok_or_else(|| ClientError::NotFound("conversation".into()))?;
        let started = self.device.start_successor(old, kps, t)?;
        let new_id = started.id().to_vec();
        let moved = match self.commit_successor(started, t).await {
            Ok(moved) => moved,
            Err(e) => {
                self.device.forget(&new_id);
                self.persist(|_| Ok(()))?;
                return Err(e);
            }
        };
        let welcomes = moved
            .welcomes
            .into_iter()
            .map(|part| (part.welcome, part.devices.iter().map(address).collect()))
            .collect();
        Ok((moved.conversation, moved.commit, welcomes))
    }

    async fn commit_successor(
        &mut self,
        started: hush_proto::migration::Successor,
        t: hush_proto::Timestamp,
    ) -> Result<hush_proto::migration::Moved, ClientError> {
        let slot = match started.tree_blob_len()? {
            Some(len) => Some(TreeSlot {
                blob_id: self.reserve_blob_slot(len).await?,
                len,
            }),
            None => None,
        };
        Ok(started.commit(t, slot.as_ref())?)
    }

    /// Points the conversation's row at an announced successor and sends
    /// its Welcome.
    async fn finish_move(&mut self, row: &ConvRow, s: Successor) -> Result<(), ClientError> {
        let Successor {
            old_id,
            new_id,
            epoch,
            welcomes,
        } = s;
        self.persist(|tx| {
            tx.execute(
                "UPDATE conversations SET group_id = ?2 WHERE id = ?1",
                params![row.id, new_id],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO successors (old_group_id, new_group_id, conversation, \
                 epoch, done) VALUES (?1, ?2, ?3, ?4, 1)",
                params![old_id, new_id, row.id, epoch as i64],
            )?;
            Self::note_group_epoch(tx, &new_id, epoch)?;
            for (welcome, recipients) in welcomes {
                Self::queue_welcome(tx, Some(welcome), recipients)?;
            }
            tx.execute(
                "DELETE FROM meta WHERE key = ?1",
                params![tried_key(&old_id)],
            )?;
            Ok(())
        })?;
        self.flush_outbox().await
    }

    /// 0x004D KeyPackages of exactly `members` other than this device
    /// (claimed per account; those of devices outside the conversation are
    /// left unused), or an error naming a device that has none.
    async fn successor_key_packages(
        &mut self,
        members: &[DeviceCertificate],
        stranger: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let me = (self.username.to_string(), self.device_id);
        let wanted: Vec<DeviceKey> = members
            .iter()
            .map(device_key)
            .filter(|k| (k.0.clone(), k.1) != me)
            .collect();
        let mut users: Vec<String> = wanted.iter().map(|k| k.0.clone()).collect();
        users.sort();
        users.dedup();
        let mut kps = Vec::new();
        let mut found = Vec::new();
        for user in &users {
            for kp in self.claim(user, Suite::Hybrid).await? {
                let key = device_key(&inspect_key_package(&kp)?.certificate);
                if wanted.contains(&key) && !found.contains(&key) {
                    found.push(key);
                    kps.push(kp);
                }
            }
        }
        if let Some(missing) = wanted.iter().find(|k| !found.contains(k)) {
            return Err(ClientError::NotFound(format!(
                "{} device {} has no KeyPackage of the current suite yet",
                missing.0, missing.1
            )));
        }
        if let Some(stranger) = stranger {
            kps.extend(self.claim(stranger, Suite::Hybrid).await?);
        }
        Ok(kps)
    }

    /// Registers the successor's first epoch and commits the announcement
    /// in the old group: `Ok(false)` when another commit won the old
    /// group's epoch (this device has caught up) or the commit changed the
    /// old group's members (proposals it carried), so the successor no
    /// longer matches.
    async fn announce(
        &mut self,
        old_id: &[u8],
        new_id: &[u8],
        first: Option<&hush_proto::PendingCommit>,
        t: hush_proto::Timestamp,
    ) -> Result<bool, ClientError> {
        self.persist(|_| Ok(()))?;
        if let Some(c) = first {
            self.send_commit(new_id, Vec::new(), c).await?;
        }
        let mut build = |c: &mut Conversation| c.announce_successor(new_id, t);
        match self.commit_once(old_id, &mut build).await? {
            Some(change) => Ok(change.added.is_empty() && change.removed.is_empty()),
            None => Ok(false),
        }
    }

    /// Records a successor a commit in `old_id` announced (inside the
    /// caller's transaction): its Welcome is followed if it passes the
    /// checks.
    pub(crate) fn note_successor(
        tx: &rusqlite::Transaction<'_>,
        old_id: &[u8],
        new_id: &[u8],
        conversation: i64,
        epoch: u64,
    ) -> Result<(), ClientError> {
        tx.execute(
            "INSERT INTO successors (old_group_id, new_group_id, conversation, epoch, done) \
             VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT (old_group_id) DO UPDATE SET \
             new_group_id = excluded.new_group_id, epoch = excluded.epoch WHERE done = 0",
            params![old_id, new_id, conversation, epoch as i64],
        )?;
        Ok(())
    }

    /// The old group and conversation row of an announced successor whose
    /// Welcome has not been followed yet.
    pub(crate) fn announced_predecessor(
        &self,
        new_id: &[u8],
    ) -> Result<Option<(Vec<u8>, i64)>, ClientError> {
        Ok(self
            .store
            .conn
            .query_row(
                "SELECT s.old_group_id, s.conversation FROM successors s JOIN conversations c \
                 ON c.id = s.conversation AND c.group_id = s.old_group_id \
                 WHERE s.new_group_id = ?1 AND s.done = 0 AND c.active = 1",
                params![new_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Follows the Welcome of an announced successor: checks it against
    /// the old conversation and the key directory, then points the row at
    /// it. A successor that fails a check is refused with an alarm, joins
    /// nothing, and is forgotten (so this device may move the
    /// conversation itself later).
    pub(crate) async fn follow_successor(
        &mut self,
        conv: Conversation,
        (old_id, conversation): (Vec<u8>, i64),
        seq: &str,
    ) -> Result<Vec<Event>, ClientError> {
        let new_id = conv.id().to_vec();
        let epoch = conv.epoch();
        let checked = hush_proto::migration::check_successor(self.conv(&old_id)?, &conv);
        if let Err(e) = checked {
            let events = self.refuse(
                seq,
                &format!("a move of a conversation to the current suite: {e}"),
            )?;
            self.store.conn.execute(
                "DELETE FROM successors WHERE old_group_id = ?1 AND done = 0",
                params![old_id],
            )?;
            return Ok(events);
        }
        let changed = match self.vet_members(&conv.members()).await {
            Ok(crate::trust::Vetting::Vouched(changed)) => changed,
            Ok(crate::trust::Vetting::Refused(why)) => {
                return self.refuse(seq, &format!("a move of a conversation: {why}"));
            }
            Err(e) => {
                self.reload_mls()?;
                return Err(e);
            }
        };
        self.convs.insert(new_id.clone(), conv);
        self.persist(|tx| {
            tx.execute(
                "UPDATE conversations SET group_id = ?2 WHERE id = ?1",
                params![conversation, new_id],
            )?;
            tx.execute(
                "UPDATE successors SET done = 1 WHERE old_group_id = ?1",
                params![old_id],
            )?;
            Self::note_group_epoch(tx, &new_id, epoch)?;
            LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
            Ok(())
        })?;
        Ok(changed
            .into_iter()
            .map(|username| Event::KeyChanged { username })
            .collect())
    }
}

fn tried_key(group_id: &[u8]) -> String {
    format!("suite_move_tried:{}", hex::encode(group_id))
}

#[cfg(feature = "test-hooks")]
impl Client {
    /// A KeyPackage of the legacy suite, as releases before decision 0031
    /// made them (the server no longer takes them: the test hands it to
    /// [`Client::create_legacy_group_for_tests`] directly).
    pub fn legacy_key_package_for_tests(&mut self) -> Result<Vec<u8>, ClientError> {
        self.device.allow_legacy_writes_for_tests();
        let kp = self
            .device
            .generate_key_package(Suite::LegacyHybrid, false, now())?;
        self.persist(|_| Ok(()))?;
        Ok(kp.message)
    }

    /// A group of the legacy suite with the devices of `key_packages`, as
    /// releases before decision 0031 made them; its Welcome goes through the
    /// server as any.
    pub async fn create_legacy_group_for_tests(
        &mut self,
        name: &str,
        key_packages: Vec<Vec<u8>>,
    ) -> Result<(), ClientError> {
        self.device.allow_legacy_writes_for_tests();
        let info = hush_proto::ConversationInfo::group(name);
        self.create_in(Suite::LegacyHybrid, info, None, key_packages)
            .await?;
        Ok(())
    }

    /// The next move of a conversation fails right after its announcement
    /// was committed, before the successor's Welcome is queued, as a process
    /// killed at that point would (the caller then drops this client and
    /// opens the store again).
    pub fn crash_after_next_announcement_for_tests(&mut self) {
        self.crash_after_announcement = true;
    }

    /// Whether this client moves conversations of the legacy suite (as
    /// every release since decision 0031 does) or not (as earlier ones).
    pub fn hold_suite_moves_for_tests(&mut self, hold: bool) {
        self.hold_suite_moves = hold;
    }

    /// The suite of the group `name` as this device holds it.
    pub fn group_suite_for_tests(&mut self, name: &str) -> Result<Option<Suite>, ClientError> {
        let row = self.group_by_name(name)?;
        Ok(self.conv(&row.group_id)?.suite())
    }

    /// Plays a hostile member: "moves" the group `name` to a successor that
    /// also holds `stranger`'s devices.
    pub async fn hostile_move_for_tests(
        &mut self,
        name: &str,
        stranger: &str,
    ) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        self.move_conversation(&row, Some(stranger)).await
    }
}
