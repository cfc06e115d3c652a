//! Admins of a channel other than its owner (decision 0038, addendum
//! "Admins named by the owner"): `hush channel admin add NAME USER`.
//!
//! The owner's device makes an admin signing key for the account, files a
//! descriptor (signed by the owner key) that lists it, and sends the link,
//! the key's seed, the post token and that descriptor over the 1:1 MLS
//! conversation ([`Body::ChannelAdmin`]). The receiving device keeps the
//! grant only if the descriptor verifies against the owner key of the link
//! and lists the key it was handed; it then posts with `hush send
//! --channel`. Subscribers accept the post once they read the descriptor
//! that lists the key (see `channel_sync`).

use hush_proto::channel::{ChannelLink, Descriptor, MAX_ADMINS};
use hush_proto::{AccountKey, Body, ChannelGrant};
use hush_wire::Bytes;
use hush_wire::api::PutChannelRequest;
use reqwest::Method;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::channels::{ChannelRow, channel_path, store_key};
use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::model::Target;

impl ChannelRow {
    /// The owner key and post token, on the owner's device only (not on an
    /// admin's: an admin posts but does not sign descriptors or rotate).
    pub(crate) fn owner_poster(&self) -> Result<(AccountKey, Vec<u8>), ClientError> {
        let (key, token) = self.poster()?;
        if key.public() != self.owner {
            return Err(ClientError::InvalidInput(format!(
                "you are an admin of the channel {:?}, not its owner: only its owner's \
                 device does this (nothing was changed)",
                self.name
            )));
        }
        Ok((key, token))
    }

    /// Whether this device holds the channel's owner key.
    pub(crate) fn is_owner(&self) -> bool {
        self.owner_poster().is_ok()
    }
}

impl Client {
    /// Names `username` an admin of the channel `name` (owner's device
    /// only): files a descriptor listing a new admin key, then sends the
    /// account the link, the key, the post token and the descriptor over
    /// the 1:1 conversation.
    pub async fn add_channel_admin(
        &mut self,
        name: &str,
        username: &str,
    ) -> Result<(), ClientError> {
        let row = self.channel_by_name(name)?;
        let (owner, token) = row.owner_poster()?;
        if username == self.username.as_str() {
            return Err(ClientError::InvalidInput(
                "you own this channel already".into(),
            ));
        }
        self.check_not_blocked_verified(username)?;
        if row.descriptor.admins.len() >= MAX_ADMINS {
            return Err(ClientError::InvalidInput(format!(
                "a channel has at most {MAX_ADMINS} admin keys"
            )));
        }
        // The conversation first: an account that does not exist costs no
        // admin key on the server.
        let conv = self.resolve(&Target::User(username.to_owned())).await?;
        let mut rng = rand::rngs::OsRng;
        let admin = AccountKey::generate(&mut rng)?;
        let mut admins = row.descriptor.admins.clone();
        admins.push(admin.public());
        let d = &row.descriptor;
        let descriptor =
            Descriptor::new(&row.channel_id(), &owner, &d.name, d.epoch, d.key, admins)?;
        self.transport
            .call(
                Method::PUT,
                &channel_path(&row.channel_id()),
                Some(&PutChannelRequest {
                    descriptor: Bytes(row.secret.seal_descriptor(&descriptor, &mut rng)?),
                    post_token: Bytes(token.clone()),
                }),
            )
            .await?;
        self.store.conn.execute(
            "UPDATE channels SET descriptor = ?2 WHERE id = ?1",
            params![row.id, descriptor.encode()],
        )?;
        let grant = ChannelGrant {
            link: self.channel_link(name)?,
            admin_seed: *admin.to_seed(),
            post_token: token,
            descriptor: descriptor.encode(),
        };
        self.send_control(&conv.group_id, Body::ChannelAdmin { grant }, None)
            .await
            .map_err(|e| {
                ClientError::Network(format!(
                    "the new admin key is filed, but the message to {username} was not sent \
                 ({e}); run `hush channel admin add {name} {username}` again"
                ))
            })
    }

    /// Sends `body` to `username`'s 1:1 conversation as is: only for tests
    /// that play an account sending a forged grant.
    #[cfg(feature = "test-hooks")]
    pub async fn send_body_for_tests(
        &mut self,
        username: &str,
        body: Body,
    ) -> Result<(), ClientError> {
        let conv = self.resolve(&Target::User(username.to_owned())).await?;
        self.send_control(&conv.group_id, body, None).await
    }
}

/// A grant received from `sender` (inside the sync transaction): kept if
/// its descriptor verifies against the owner key of its link and lists the
/// key it hands over, dropped otherwise. Never fails on its contents.
pub(crate) fn take_grant(
    tx: &Transaction<'_>,
    sender: &str,
    grant: &ChannelGrant,
) -> Result<(), ClientError> {
    let Some((link, admin, descriptor)) = check_grant(grant) else {
        tracing::warn!(from = %sender, "dropped a channel admin grant that does not verify");
        return Ok(());
    };
    let id = link.secret.channel_id();
    let known: Option<(i64, Option<Vec<u8>>)> = tx
        .query_row(
            "SELECT id, owner_seed FROM channels WHERE channel_id = ?1",
            params![id.as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let channel = match known {
        // This device already posts (the owner's, or an admin's).
        Some((_, Some(_))) => return Ok(()),
        Some((channel, None)) => {
            tx.execute(
                "UPDATE channels SET owner_seed = ?2, post_token = ?3, \
                 descriptor = CASE WHEN epoch <= ?5 THEN ?4 ELSE descriptor END WHERE id = ?1",
                params![
                    channel,
                    admin.to_seed().as_slice(),
                    grant.post_token,
                    descriptor.encode(),
                    descriptor.epoch
                ],
            )?;
            channel
        }
        None => {
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT id FROM channels WHERE name = ?1",
                    params![descriptor.name],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                tracing::warn!(from = %sender, "dropped a channel admin grant: a channel of that name is here");
                return Ok(());
            }
            tx.execute(
                "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, \
                 owner_seed, post_token, joined_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    descriptor.name,
                    id.as_slice(),
                    link.secret.as_bytes().as_slice(),
                    link.owner.as_bytes().as_slice(),
                    descriptor.encode(),
                    descriptor.epoch,
                    admin.to_seed().as_slice(),
                    grant.post_token,
                    now_ms() as i64,
                ],
            )?;
            tx.last_insert_rowid()
        }
    };
    store_key(tx, channel, descriptor.epoch, &descriptor.key)
}

/// The grant's link, admin key and descriptor, if the descriptor is the
/// owner's and lists the key (and the key is not the owner's own).
fn check_grant(grant: &ChannelGrant) -> Option<(ChannelLink, AccountKey, Descriptor)> {
    let link = ChannelLink::parse(&grant.link).ok()?;
    let admin = AccountKey::from_seed(grant.admin_seed).ok()?;
    let descriptor = Descriptor::decode(&grant.descriptor).ok()?;
    descriptor
        .verify(&link.secret.channel_id(), &link.owner)
        .ok()?;
    let listed = descriptor.admins.contains(&admin.public()) && admin.public() != link.owner;
    let named = !descriptor.name.trim().is_empty() && !grant.post_token.is_empty();
    (listed && named).then_some((link, admin, descriptor))
}
