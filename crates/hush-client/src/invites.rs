//! Invite links (decision 0033): `hush group invite`, `hush join`, `hush
//! group requests|approve|deny`, and the admins' devices admitting joiners.
//!
//! The link carries a secret the server never sees; the server keeps a
//! sealed preview and a mailbox of sealed join requests under a hash of it.
//! The group lists its links in its context (only admins change that), and
//! an admin's device admits a request only through a link the group lists,
//! before its expiry and within its use limit, whatever the server says; it
//! adds the joiner with an ordinary Add commit, as `hush group add` does.

use std::time::{Duration, Instant};

use hush_proto::invite::{GroupLinks, InviteLink, InviteSecret, JoinRequest, LinkPreview};
use hush_proto::{DeviceSigningKey, Suite, Username};
use hush_wire::Bytes;
use hush_wire::api::{
    CreateLinkRequest, JoinLinkRequest, LinkAction, LinkResponse, ManageLinkRequest,
    ManageLinkResponse, PendingJoin,
};
use rand::RngCore;
use reqwest::Method;
use serde::Serialize;

use crate::client::{Client, meta_required, now, now_ms, seed};
use crate::error::ClientError;
use crate::model::Event;

/// How often a device looks for join requests while it keeps syncing.
const LINKS_EVERY: Duration = Duration::from_secs(5);

/// What `hush group invite` makes.
#[derive(Debug, Clone, Default)]
pub struct InviteOptions {
    /// How long the link works; `None` for no limit.
    pub expires: Option<Duration>,
    /// How many joins it allows; 0 for no limit.
    pub max_uses: u32,
    /// Whether an admin approves each request.
    pub approve: bool,
}

/// What `hush join` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinOutcome {
    /// The group's name, as the link's preview shows it.
    pub group: String,
    /// How many accounts were in it when the link was made.
    pub size: u32,
    /// Whether an admin must approve the request first.
    pub needs_approval: bool,
}

/// A pending request to join a group, as its admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRequest {
    /// The account asking.
    pub user: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn path(link: &InviteLink) -> String {
    format!("/v1/links/{}", hex(&link.link_id()))
}

impl Client {
    /// After a sync: admits the join requests waiting on the groups'
    /// invite links, on every sync that did not listen and every few
    /// seconds while listening.
    pub(crate) async fn admit_by_links_if_due(
        &mut self,
        listened: bool,
        on_event: &mut (dyn FnMut(&Event) + Send),
        events: &mut Vec<Event>,
    ) {
        let due = self
            .links_checked_at
            .is_none_or(|t| t.elapsed() >= LINKS_EVERY);
        if (!listened || due)
            && let Err(e) = self.admit_by_links(on_event, events).await
        {
            tracing::debug!(error = %e, "join requests not processed yet");
        }
    }

    /// The invite links the group `name` lists (as this device knows it).
    pub fn group_links(&mut self, name: &str) -> Result<Vec<InviteLink>, ClientError> {
        let row = self.group_by_name(name)?;
        Ok(self.conv(&row.group_id)?.links()?.links)
    }

    /// Makes an invite link to the group `name` (admins only) and lists it
    /// in the group, so that members' devices admit joiners through it.
    pub async fn group_invite(
        &mut self,
        name: &str,
        options: &InviteOptions,
    ) -> Result<String, ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let mut links = self.conv(&row.group_id)?.links()?;
        if links.links.len() >= hush_proto::invite::MAX_LINKS {
            return Err(ClientError::InvalidInput(format!(
                "{name:?} has {} invite links: revoke them first",
                links.links.len()
            )));
        }
        let secret = InviteSecret::generate(&mut rand::rngs::OsRng);
        let mut manage_token = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut manage_token);
        let expires_at_ms = options
            .expires
            .map_or(0, |d| now_ms().saturating_add(d.as_millis() as u64));
        let link = InviteLink {
            secret: *secret.as_bytes(),
            manage_token,
            expires_at_ms,
            max_uses: options.max_uses,
            uses: 0,
            approve: options.approve,
        };
        let size = self.conv(&row.group_id)?.accounts().len() as u32;
        let preview = LinkPreview {
            name: name.to_owned(),
            size,
            approve: options.approve,
        };
        let blob = secret.seal_preview(&preview, &mut rand::rngs::OsRng)?;
        self.transport
            .call(
                Method::PUT,
                &path(&link),
                Some(&CreateLinkRequest {
                    blob: Bytes(blob),
                    manage_token: Bytes(manage_token.to_vec()),
                    expires_at_ms,
                    max_uses: options.max_uses,
                    approve: options.approve,
                }),
            )
            .await?;
        links.links.push(link);
        self.commit_links(&row.group_id, &links).await?;
        Ok(secret.to_link(self.transport.base()))
    }

    async fn commit_links(
        &mut self,
        group_id: &[u8],
        links: &GroupLinks,
    ) -> Result<(), ClientError> {
        let t = now();
        self.commit_with(group_id, |c| c.set_links(links, t))
            .await?;
        Ok(())
    }

    async fn manage(
        &mut self,
        link: &InviteLink,
        action: LinkAction,
        ids: Vec<i64>,
    ) -> Result<Vec<PendingJoin>, ClientError> {
        let resp: ManageLinkResponse = self
            .transport
            .json(
                Method::POST,
                &format!("{}/manage", path(link)),
                Some(&ManageLinkRequest {
                    manage_token: Bytes(link.manage_token.to_vec()),
                    action,
                    ids,
                }),
            )
            .await?;
        Ok(resp.requests)
    }

    /// Revokes every invite link of the group `name` (admins only): the
    /// server stops them, and the group no longer lists them, so members'
    /// devices admit nobody through them even if the server still did.
    /// Returns how many there were.
    pub async fn group_revoke_invites(&mut self, name: &str) -> Result<usize, ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let links = self.conv(&row.group_id)?.links()?;
        if links.links.is_empty() {
            return Ok(0);
        }
        // The group first: that is what members' devices go by.
        self.commit_links(&row.group_id, &GroupLinks::default())
            .await?;
        for link in &links.links {
            if let Err(e) = self.manage(link, LinkAction::Revoke, Vec::new()).await {
                tracing::warn!(error = %e, "the server did not confirm a revocation");
            }
        }
        Ok(links.links.len())
    }

    /// Asks to join the group behind `link`: files a request the group's
    /// admins' devices admit (at once, or once an admin approves). The
    /// Welcome arrives with a later sync.
    pub async fn join_link(&mut self, link: &str) -> Result<JoinOutcome, ClientError> {
        let (server, secret) =
            InviteSecret::parse_link(link).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        if server.trim_end_matches('/') != self.transport.base().trim_end_matches('/') {
            return Err(ClientError::InvalidInput(format!(
                "this link is for the server {server}, and this account is on {}",
                self.transport.base()
            )));
        }
        let id = hex(&secret.link_id());
        let resp: LinkResponse = self
            .transport
            .json::<(), _>(Method::GET, &format!("/v1/links/{id}"), None)
            .await?;
        let preview = secret.open_preview(&resp.blob.0)?;
        let key = DeviceSigningKey::from_seed(seed(&meta_required(&self.store, "device_seed")?)?)?;
        let request = JoinRequest::new(&secret.link_id(), self.device.certificate().clone(), &key)?;
        let sealed = secret.seal_request(&request, &mut rand::rngs::OsRng)?;
        self.transport
            .call(
                Method::POST,
                &format!("/v1/links/{id}/requests"),
                Some(&JoinLinkRequest {
                    sealed: Bytes(sealed),
                }),
            )
            .await?;
        Ok(JoinOutcome {
            group: preview.name,
            size: preview.size,
            needs_approval: preview.approve,
        })
    }

    /// The requests waiting for an admin of the group `name` to approve.
    pub async fn group_requests(&mut self, name: &str) -> Result<Vec<PendingRequest>, ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let mut out = Vec::new();
        let links = self.conv(&row.group_id)?.links()?.links;
        for link in links {
            if !link.approve {
                continue;
            }
            for (_, request) in self.open_requests(&link).await? {
                let user = request.certificate.username().to_string();
                if !out.iter().any(|p: &PendingRequest| p.user == user) {
                    out.push(PendingRequest { user });
                }
            }
        }
        Ok(out)
    }

    /// The link's pending requests that open and verify; the others are
    /// deleted (nobody can ever act on them).
    async fn open_requests(
        &mut self,
        link: &InviteLink,
    ) -> Result<Vec<(i64, JoinRequest)>, ClientError> {
        let secret = InviteSecret::from_bytes(link.secret);
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for p in self.manage(link, LinkAction::List, Vec::new()).await? {
            match secret.open_request(&p.sealed.0) {
                Ok(r) => good.push((p.id, r)),
                Err(e) => {
                    tracing::warn!(error = %e, "dropped a join request that does not open");
                    bad.push(p.id);
                }
            }
        }
        if !bad.is_empty() {
            self.manage(link, LinkAction::Delete, bad).await?;
        }
        Ok(good)
    }

    /// Approves (adds) or denies `user`'s request to join the group `name`.
    pub async fn group_settle(
        &mut self,
        name: &str,
        user: &str,
        approve: bool,
    ) -> Result<(), ClientError> {
        let row = self.group_by_name(name)?;
        self.require_admin(&row.group_id, name)?;
        let mut found = false;
        let links = self.conv(&row.group_id)?.links()?.links;
        for link in links {
            let mine: Vec<(i64, JoinRequest)> = self
                .open_requests(&link)
                .await?
                .into_iter()
                .filter(|(_, r)| r.certificate.username().as_str() == user)
                .collect();
            let Some((_, request)) = mine.first() else {
                continue;
            };
            found = true;
            let admission = if approve {
                self.admit(&row.group_id, &link, request).await?
            } else {
                Admission::AlreadyIn
            };
            let ids = mine.iter().map(|(id, _)| *id).collect();
            self.manage(&link, LinkAction::Delete, ids).await?;
            if let Admission::Refused(reason) = admission {
                return Err(ClientError::InvalidInput(reason));
            }
            break;
        }
        if found {
            Ok(())
        } else {
            Err(ClientError::NotFound(format!(
                "{user} has no pending request to join {name:?}"
            )))
        }
    }

    /// Adds the account of `request` through `link` if the group (as this
    /// device knows it) still lists the link, unexpired and not used up;
    /// then counts the use in the group. An error is a passing failure
    /// (network, no KeyPackages yet): the request stays for the next pass.
    async fn admit(
        &mut self,
        group_id: &[u8],
        link: &InviteLink,
        request: &JoinRequest,
    ) -> Result<Admission, ClientError> {
        let links = self.conv(group_id)?.links()?;
        let Some(listed) = links.find(&link.link_id()).cloned() else {
            return Ok(Admission::Refused(
                "the group no longer lists this invite link (revoked)".into(),
            ));
        };
        if !listed.admits(now_ms()) {
            return Ok(Admission::Refused(
                "this invite link has expired or is used up".into(),
            ));
        }
        let user = request.certificate.username().clone();
        if self.conv(group_id)?.accounts().contains(&user) {
            return Ok(Admission::AlreadyIn);
        }
        if let Some(reason) = self.check_requester(&user, request).await? {
            return Ok(Admission::Refused(reason));
        }
        let kps = self.claim(user.as_str(), Suite::Hybrid).await?;
        if kps.is_empty() {
            return Err(ClientError::NotFound(format!(
                "{user} has no device ready to receive (no KeyPackages on the server)"
            )));
        }
        self.add_in_batches(group_id, &kps).await?;
        let mut links = self.conv(group_id)?.links()?;
        if let Some(l) = links.links.iter_mut().find(|l| l.secret == link.secret) {
            l.uses = l.uses.saturating_add(1);
            self.commit_links(group_id, &links).await?;
        }
        Ok(Admission::Admitted)
    }

    /// The request's certificate must be of the account key the directory
    /// (key transparency) holds for its username. `Some(reason)` refuses
    /// the request for good; an error is a passing failure.
    async fn check_requester(
        &mut self,
        user: &Username,
        request: &JoinRequest,
    ) -> Result<Option<String>, ClientError> {
        let entry = match self.lookup(user.as_str()).await {
            Ok((entry, _)) => entry,
            Err(e @ (ClientError::NotFound(_) | ClientError::KeyTransparency(_))) => {
                return Ok(Some(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        if entry.account_key.0 != request.certificate.account_key().as_bytes() {
            return Ok(Some(format!(
                "the request of {user} is signed by a key the directory does not hold"
            )));
        }
        Ok(self
            .check_not_blocked_verified(user.as_str())
            .err()
            .map(|e| e.to_string()))
    }

    /// On an admin's device: admits the requests waiting on the group's
    /// links that need no approval. A request the group's rules refuse is
    /// dropped with a warning.
    async fn admit_by_links(
        &mut self,
        on_event: &mut (dyn FnMut(&Event) + Send),
        events: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        self.links_checked_at = Some(Instant::now());
        let me = self.username.clone();
        let groups: Vec<(i64, Vec<u8>)> = self
            .store
            .conn
            .prepare("SELECT id, group_id FROM conversations WHERE kind = 'group' AND active = 1")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (conversation, group_id) in groups {
            let Ok(conv) = self.conv(&group_id) else {
                continue;
            };
            if !conv.is_admin(&me) {
                continue;
            }
            let links = conv.links().unwrap_or_default();
            for link in links.links.into_iter().filter(|l| !l.approve) {
                let added = self.admit_waiting(&group_id, &link).await?;
                if !added.is_empty() {
                    let ev = Event::Members {
                        conversation,
                        added,
                        removed: Vec::new(),
                    };
                    on_event(&ev);
                    events.push(ev);
                }
            }
        }
        Ok(())
    }

    async fn admit_waiting(
        &mut self,
        group_id: &[u8],
        link: &InviteLink,
    ) -> Result<Vec<String>, ClientError> {
        let mut added = Vec::new();
        for (id, request) in self.open_requests(link).await? {
            match self.admit(group_id, link, &request).await {
                Ok(Admission::Admitted) => added.push(request.certificate.username().to_string()),
                Ok(Admission::AlreadyIn) => {}
                Ok(Admission::Refused(reason)) => {
                    tracing::warn!(%reason, "refused a join request");
                }
                Err(e) => {
                    // Kept on the server: the next pass tries again.
                    tracing::info!(error = %e, "a join request waits for the next pass");
                    continue;
                }
            }
            self.manage(link, LinkAction::Delete, vec![id]).await?;
        }
        Ok(added)
    }
}

/// What admitting one join request came to.
enum Admission {
    /// The joiner was added.
    Admitted,
    /// The joiner was in the group already (or nothing was asked).
    AlreadyIn,
    /// The group's rules refuse the request, for good.
    Refused(String),
}
