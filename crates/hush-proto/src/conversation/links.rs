//! A group's invite links in its context (decision 0033): only admins
//! change them, like anything else in the group context (decision 0032).

use super::{Conversation, PendingCommit};
use crate::Timestamp;
use crate::error::ProtoError;
use crate::invite::{GroupLinks, MAX_LINKS};

impl Conversation {
    /// The group's active invite links (none for a 1:1 chat or a group
    /// that never had one).
    pub fn links(&self) -> Result<GroupLinks, ProtoError> {
        Ok(GroupLinks::from_extensions(
            &self.group.context().extensions,
        )?)
    }

    /// Replaces the group's invite links (admins only; the other members'
    /// devices refuse it from anyone else).
    pub fn set_links(
        &mut self,
        links: &GroupLinks,
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        if links.links.len() > MAX_LINKS {
            return Err(ProtoError::InvalidRequest("too many invite links"));
        }
        GroupLinks::decode(&links.encode())?;
        let mut extensions = self.group.context().extensions.clone();
        extensions.set(links.to_extension());
        let epoch = self.epoch();
        let out = self
            .group
            .commit_builder()
            .commit_time(now.mls())
            .set_group_context_ext(extensions)?
            .build()?;
        self.pending(epoch, out)
    }
}
