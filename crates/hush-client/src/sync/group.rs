//! A group's message on the receive path, when it is not part of a batch:
//! an application message handled on its own (a batch of one), or a commit,
//! vetted against the key directory and stored with the new epoch.

use hush_proto::{Incoming, MembershipChange, ProtoError, Received};
use hush_wire::ws::Envelope;
use rusqlite::params;

use super::FollowUp;
use crate::client::{Client, now};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::Event;
use crate::trust::Vetting;

impl Client {
    /// A message of a group. `from_blob`: a commit a pointer named, which
    /// a member of the epoch vouched for, so one MLS refuses is an alarm.
    pub(super) async fn handle_group(
        &mut self,
        group_id: &[u8],
        env: &Envelope,
        seq: &str,
        follow: &mut FollowUp,
        from_blob: bool,
    ) -> Result<Vec<Event>, ClientError> {
        let row = self.row_for_group(group_id)?.ok_or_else(|| {
            ClientError::NotFound("message for a conversation this device is not in".into())
        })?;
        let incoming = match self.conv(group_id)?.process(&env.payload, now()) {
            Ok(Incoming::Commit(change)) => Incoming::Commit(change),
            Err(ProtoError::NotAllowed(why)) => return self.not_allowed(row.id, seq, &why),
            Ok(_) | Err(_) if from_blob => {
                return self.refuse(seq, "an out-of-band group change that MLS does not accept");
            }
            other => other?,
        };
        match incoming {
            Incoming::Message(received) => {
                self.group_message(group_id, row.id, &received, env, seq, follow)
            }
            Incoming::Commit(change) => self.group_commit(group_id, row.id, change, seq).await,
            Incoming::Proposal { .. } => {
                follow.proposals.push(group_id.to_vec());
                self.persist(|tx| LocalStore::set_meta(tx, "last_seq", seq.as_bytes()))?;
                Ok(Vec::new())
            }
            _ => {
                self.persist(|tx| LocalStore::set_meta(tx, "last_seq", seq.as_bytes()))?;
                Ok(Vec::new())
            }
        }
    }

    /// An application message handled on its own: normally they arrive
    /// through a batch, and one handled alone is a batch of one.
    fn group_message(
        &mut self,
        group_id: &[u8],
        conversation: i64,
        received: &Received,
        env: &Envelope,
        seq: &str,
        follow: &mut FollowUp,
    ) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        let o = self.opened(group_id, conversation, received, env, &mut events)?;
        let mut shown = false;
        let effect = self.persist(|tx| {
            let ev = o.apply(tx, &mut shown)?;
            LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
            Ok(ev)
        })?;
        if let Some(cp) = &o.content.kt_checkpoint
            && !o.outgoing
        {
            follow.checkpoints.push((o.sender.clone(), *cp));
        }
        if shown && !o.outgoing {
            follow
                .receipts
                .entry((group_id.to_vec(), o.sender.clone()))
                .or_default()
                .push(o.content.id);
        }
        if shown {
            if let Some(m) = self.message(&o.content.id.to_hex())? {
                events.push(Event::Message(m));
            }
        } else if let Some(ev) = effect {
            events.push(ev);
        }
        Ok(events)
    }

    /// A commit MLS accepted: its added devices vetted (a refusal raises the
    /// alarm and stores nothing), then the epoch, a successor, a rename or
    /// this device's removal stored with the queue position.
    async fn group_commit(
        &mut self,
        group_id: &[u8],
        conversation: i64,
        change: MembershipChange,
        seq: &str,
    ) -> Result<Vec<Event>, ClientError> {
        let mut events = Vec::new();
        if !change.removed_self {
            match self.vet_commit(group_id, &change.added).await? {
                Vetting::Refused(why) => return self.refuse(seq, &why),
                Vetting::Vouched(changed) => events.extend(
                    changed
                        .into_iter()
                        .map(|username| Event::KeyChanged { username }),
                ),
            }
        }
        let removed_self = change.removed_self;
        let name = change.info.as_ref().and_then(|i| i.name.clone());
        let gid = group_id.to_vec();
        if removed_self {
            self.convs.remove(group_id);
            self.device.forget(group_id);
        }
        let ev = self.members_event(group_id, &change)?;
        let (epoch, successor) = (change.epoch, change.successor.clone());
        self.persist(|tx| {
            Self::note_group_epoch(tx, &gid, epoch)?;
            if let Some(new_id) = &successor {
                Self::note_successor(tx, &gid, new_id, conversation, epoch)?;
            }
            if removed_self {
                tx.execute(
                    "UPDATE conversations SET active = 0 WHERE group_id = ?1",
                    params![gid],
                )?;
            }
            if let Some(n) = &name {
                tx.execute(
                    "UPDATE conversations SET name = ?2 WHERE group_id = ?1",
                    params![gid, n],
                )?;
            }
            LocalStore::set_meta(tx, "last_seq", seq.as_bytes())?;
            Ok(())
        })?;
        if removed_self {
            events.push(Event::Removed { conversation });
            return Ok(events);
        }
        if let Some(n) = name {
            events.push(Event::Renamed {
                conversation,
                name: n,
            });
        }
        // A plain key update changes no membership: nothing to show.
        if !change_is_empty(&ev) {
            events.push(ev);
        }
        Ok(events)
    }

    pub(crate) fn members_event(
        &mut self,
        group_id: &[u8],
        change: &hush_proto::MembershipChange,
    ) -> Result<Event, ClientError> {
        let id = self
            .store
            .conn
            .query_row(
                "SELECT id FROM conversations WHERE group_id = ?1",
                params![group_id],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let accounts = |certs: &[hush_proto::DeviceCertificate]| {
            let mut v: Vec<String> = certs.iter().map(|c| c.username().to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        Ok(Event::Members {
            conversation: id,
            added: accounts(&change.added),
            removed: accounts(&change.removed),
        })
    }
}

fn change_is_empty(ev: &Event) -> bool {
    matches!(ev, Event::Members { added, removed, .. } if added.is_empty() && removed.is_empty())
}
