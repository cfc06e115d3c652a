//! Group admins and settings (decision 0032): `hush group info`, `hush
//! group admin add|remove`, `hush group settings`. The rules themselves are
//! in `hush_proto` (the group context carries them; every member's device
//! judges every commit it receives against them).

use hush_proto::{Conversation, GroupPolicy, Username};

use crate::client::{Client, now};
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::model::{ConversationView, Event};

/// A conversation's member accounts, the admins among them and whether only
/// admins send.
pub(crate) fn roles(conv: &Conversation) -> (Vec<String>, Vec<String>, bool) {
    let accounts = conv.accounts();
    let admins = accounts
        .iter()
        .filter(|u| conv.is_admin(u))
        .map(|u| u.to_string())
        .collect();
    let only_admins_send = matches!(conv.policy(), Ok(Some(p)) if p.only_admins_send);
    (
        accounts.into_iter().map(|u| u.to_string()).collect(),
        admins,
        only_admins_send,
    )
}

impl Client {
    /// A commit or post that breaks the group's rules was refused (and
    /// undone; the retry token it left is written with the queue position):
    /// the group goes on without it.
    pub(crate) fn not_allowed(
        &mut self,
        conversation: i64,
        seq: &str,
        why: &str,
    ) -> Result<Vec<Event>, ClientError> {
        self.persist(|tx| LocalStore::set_meta(tx, "last_seq", seq.as_bytes()))?;
        let message = format!(
            "SECURITY: refused a change or message in conversation {conversation} that only \
             admins may make ({why}); the group goes on without it"
        );
        tracing::warn!(%message, "refused a message");
        Ok(vec![Event::SecurityAlarm { message }])
    }

    /// The group `name`: members, admins and settings.
    pub fn group_info(&mut self, name: &str) -> Result<ConversationView, ClientError> {
        let row = self.group_by_name(name)?;
        self.view(&row)
    }

    /// Refuses, before anything is sent, what only admins of the group may
    /// do (the other members' devices would refuse it anyway).
    pub(crate) fn require_admin(&mut self, group_id: &[u8], name: &str) -> Result<(), ClientError> {
        let me = self.username.clone();
        if self.conv(group_id)?.is_admin(&me) || !self.device.checks_own_rules() {
            Ok(())
        } else {
            Err(ClientError::InvalidInput(format!(
                "only the admins of {name:?} may do this"
            )))
        }
    }

    /// Whether `who` may delete others' messages in the conversation: an
    /// admin of a group that has admins (not a 1:1 chat, nor a group made
    /// before admins existed, where everyone counts as one).
    pub(crate) fn moderates(
        &mut self,
        group_id: &[u8],
        who: &Username,
    ) -> Result<bool, ClientError> {
        let conv = self.conv(group_id)?;
        Ok(conv.policy()?.is_some() && conv.is_admin(who))
    }

    /// The policy to change: the group's, or (a group made before admins
    /// existed) one that starts with this account.
    fn policy_of(&mut self, group_id: &[u8]) -> Result<GroupPolicy, ClientError> {
        let me = self.username.clone();
        Ok(self
            .conv(group_id)?
            .policy()?
            .unwrap_or_else(|| GroupPolicy::new(me)))
    }

    async fn commit_policy(
        &mut self,
        group_id: &[u8],
        policy: GroupPolicy,
    ) -> Result<(), ClientError> {
        let now = now();
        self.commit_with(group_id, |c| c.set_policy(&policy, now))
            .await?;
        Ok(())
    }

    /// Makes `user` an admin of the group `name`, or no longer one.
    pub async fn group_set_admin(
        &mut self,
        name: &str,
        user: &str,
        admin: bool,
    ) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let who = Username::new(user).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        if !self.conv(&row.group_id)?.accounts().contains(&who) {
            return Err(ClientError::InvalidInput(format!(
                "{user} is not a member of {name:?}"
            )));
        }
        let mut policy = self.policy_of(&row.group_id)?;
        let listed = policy.admins.contains(&who);
        if admin == listed {
            return Err(ClientError::InvalidInput(format!(
                "{user} {} an admin of {name:?}",
                if admin { "is already" } else { "is not" }
            )));
        }
        if admin {
            policy.admins.push(who);
        } else {
            policy.admins.retain(|a| a != &who);
            let accounts = self.conv(&row.group_id)?.accounts();
            if !policy.admins.iter().any(|a| accounts.contains(a)) {
                return Err(ClientError::InvalidInput(format!(
                    "{name:?} would have no admin left: make someone else an admin first"
                )));
            }
        }
        self.commit_policy(&row.group_id, policy).await
    }

    /// Turns "only admins send" on or off in the group `name`.
    pub async fn group_set_only_admins_send(
        &mut self,
        name: &str,
        on: bool,
    ) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let mut policy = self.policy_of(&row.group_id)?;
        if policy.only_admins_send == on {
            return Ok(());
        }
        policy.only_admins_send = on;
        self.commit_policy(&row.group_id, policy).await
    }

    /// Before `who` is removed from the group: drops them from its admins,
    /// so that adding them back later does not make them an admin again.
    pub(crate) async fn unlist_admin(
        &mut self,
        group_id: &[u8],
        who: &Username,
    ) -> Result<(), ClientError> {
        let Some(mut policy) = self.conv(group_id)?.policy()? else {
            return Ok(());
        };
        if !policy.admins.contains(who) {
            return Ok(());
        }
        policy.admins.retain(|a| a != who);
        if policy.admins.is_empty() {
            // The last listed admin goes: this account (an admin, or it
            // could not remove them) takes over.
            policy.admins.push(self.username.clone());
        }
        self.commit_policy(group_id, policy).await
    }
}
