//! Channels (decision 0038): `hush channel create|invite|list|leave|rotate`,
//! `hush join` with a channel link, `hush send --channel`, `hush history
//! --channel`.
//!
//! A channel is not a conversation: no MLS, no member list. The device
//! keeps per channel the link's secret and owner key, the newest
//! descriptor that verified against the owner key, the key of each epoch
//! it held, the newest post number read and the posts taken in; on the
//! owner's device also the owner key and the post token. New posts are
//! fetched by [`Client::sync`] (see `channel_sync`).

use hush_proto::channel::{ChannelLink, ChannelSecret, Descriptor, MAX_NAME, Post, PostBody};
use hush_proto::{AccountKey, AccountPublicKey, Body, Content, MessageId, PostMeta};
use hush_wire::Bytes;
use hush_wire::api::{ChannelPostRequest, ChannelPostResponse, ChannelResponse, PutChannelRequest};
use rand::RngCore;
use reqwest::Method;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::{Client, now_ms};
use crate::error::ClientError;

/// A channel this device follows or owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelView {
    /// Its name (the owner's, as the descriptor says).
    pub name: String,
    /// Whether this device holds the owner key and post token.
    pub owner: bool,
    /// Whether this device posts: the owner's, or one of an account the
    /// owner named an admin (`hush channel admin add`).
    pub admin: bool,
    /// The newest epoch whose key this device holds.
    pub epoch: u32,
    /// How many posts this device took in.
    pub posts: u64,
}

/// A post of a channel, as this device took it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelPostView {
    /// The channel's name.
    pub channel: String,
    /// The post's id (hex): the same post delivered again is not shown again.
    pub id: String,
    /// The server's number for it, per channel, in the order it took posts.
    pub number: u64,
    /// The epoch it was sealed in.
    pub epoch: u32,
    /// Its text (a file's caption, if any).
    pub text: String,
    /// A file's name, when the post is a file.
    pub file: Option<String>,
    /// A file's size in bytes (plaintext).
    pub size: Option<u64>,
    /// A file's media type, as the owner declared it.
    pub media_type: Option<String>,
    /// When the owner posted it (their clock), ms since the Unix epoch.
    pub sent_at: u64,
    /// When this device took it in, ms since the Unix epoch.
    pub received_at: u64,
}

/// A channel's row in the local store.
pub(crate) struct ChannelRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) secret: ChannelSecret,
    pub(crate) owner: AccountPublicKey,
    pub(crate) descriptor: Descriptor,
    pub(crate) epoch: u32,
    pub(crate) read_up_to: u64,
    pub(crate) owner_seed: Option<Zeroizing<Vec<u8>>>,
    pub(crate) post_token: Option<Zeroizing<Vec<u8>>>,
}

impl ChannelRow {
    pub(crate) fn channel_id(&self) -> [u8; 32] {
        self.secret.channel_id()
    }

    /// The signing key and post token, on the owner's device or an
    /// admin's (the `owner_seed` column holds the admin key there).
    pub(crate) fn poster(&self) -> Result<(AccountKey, Vec<u8>), ClientError> {
        match (&self.owner_seed, &self.post_token) {
            (Some(seed), Some(token)) => {
                let seed = <[u8; 32]>::try_from(seed.as_slice())
                    .map_err(|_| ClientError::Store("a stored channel key is corrupt".into()))?;
                Ok((AccountKey::from_seed(seed)?, token.to_vec()))
            }
            _ => Err(ClientError::InvalidInput(format!(
                "you follow the channel {:?} but are not its owner or an admin: only its \
                 owner's and its admins' devices post to it (nothing was sent)",
                self.name
            ))),
        }
    }
}

const CHANNEL_COLUMNS: &str =
    "id, name, secret, owner, descriptor, epoch, read_up_to, owner_seed, post_token";

type RawRow = (
    i64,
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    u32,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn corrupt() -> ClientError {
    ClientError::Store("a stored channel is corrupt".into())
}

fn channel_row(raw: RawRow) -> Result<ChannelRow, ClientError> {
    let (id, name, secret, owner, descriptor, epoch, read, seed, token) = raw;
    let secret = <[u8; 32]>::try_from(secret.as_slice()).map_err(|_| corrupt())?;
    Ok(ChannelRow {
        id,
        name,
        secret: ChannelSecret::from_bytes(secret),
        owner: AccountPublicKey::from_slice(&owner).map_err(|_| corrupt())?,
        descriptor: Descriptor::decode(&descriptor).map_err(|_| corrupt())?,
        epoch,
        read_up_to: u64::try_from(read).unwrap_or(0),
        owner_seed: seed.map(Zeroizing::new),
        post_token: token.map(Zeroizing::new),
    })
}

/// A post's message content, made now.
pub(crate) fn content_of(body: Body) -> Content {
    Content {
        id: MessageId::generate(&mut rand::rngs::OsRng),
        sent_at_ms: now_ms(),
        expire_timer_secs: None,
        body,
        kt_checkpoint: None,
        meta: PostMeta::default(),
    }
}

/// Refuses a post's content over [`hush_proto::channel::MAX_BODY`].
pub(crate) fn check_body_size(len: usize) -> Result<(), ClientError> {
    if len > hush_proto::channel::MAX_BODY {
        return Err(ClientError::InvalidInput(format!(
            "a channel post is at most {} bytes",
            hush_proto::channel::MAX_BODY
        )));
    }
    Ok(())
}

/// The path of a channel on the server.
pub(crate) fn channel_path(channel_id: &[u8; 32]) -> String {
    format!("/v1/channels/{}", hex::encode(channel_id))
}

/// Stores the key of `epoch` (kept if held already: a key is only ever
/// learnt from the owner's signature over this channel and epoch).
pub(crate) fn store_key(
    tx: &Transaction<'_>,
    channel: i64,
    epoch: u32,
    key: &[u8; 32],
) -> Result<(), ClientError> {
    tx.execute(
        "INSERT OR IGNORE INTO channel_keys (channel, epoch, key) VALUES (?1, ?2, ?3)",
        params![channel, epoch, key.as_slice()],
    )?;
    tx.execute(
        "UPDATE channels SET epoch = MAX(epoch, ?2) WHERE id = ?1",
        params![channel, epoch],
    )?;
    Ok(())
}

/// What a post's content shows: its text (a file's caption) and a file.
pub(crate) struct Shown {
    pub(crate) text: String,
    pub(crate) file: Option<(String, u64, String)>,
}

/// What a post's content shows; `None` for content a channel does not
/// show (receipts, edits and the like).
pub(crate) fn shown(content: &Content) -> Option<Shown> {
    match &content.body {
        Body::Text { text, .. } => Some(Shown {
            text: text.clone(),
            file: None,
        }),
        Body::Attachment {
            pointer, caption, ..
        } => Some(Shown {
            text: caption.clone().unwrap_or_default(),
            file: Some((
                pointer.file_name.clone(),
                pointer.size,
                pointer.media_type.clone(),
            )),
        }),
        _ => None,
    }
}

impl ChannelPostView {
    /// The view of a post taken in: `times` are (sent, received).
    pub(crate) fn of(
        channel: &str,
        id: &[u8],
        number: u64,
        epoch: u32,
        shown: Shown,
        (sent_at, received_at): (u64, u64),
    ) -> Self {
        let (file, size, media_type) = match shown.file {
            Some((name, size, media)) => (Some(name), Some(size), Some(media)),
            None => (None, None, None),
        };
        ChannelPostView {
            channel: channel.to_owned(),
            id: hex::encode(id),
            number,
            epoch,
            text: shown.text,
            file,
            size,
            media_type,
            sent_at,
            received_at,
        }
    }
}

impl Client {
    pub(crate) fn channel_by_name(&self, name: &str) -> Result<ChannelRow, ClientError> {
        let raw = self
            .store
            .conn
            .query_row(
                &format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE name = ?1"),
                params![name],
                raw_row,
            )
            .optional()?
            .ok_or_else(|| ClientError::NotFound(format!("no channel named {name:?}")))?;
        channel_row(raw)
    }

    pub(crate) fn channel_rows(&self) -> Result<Vec<ChannelRow>, ClientError> {
        let raws: Vec<RawRow> = self
            .store
            .conn
            .prepare(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY id"
            ))?
            .query_map([], raw_row)?
            .collect::<Result<_, _>>()?;
        raws.into_iter().map(channel_row).collect()
    }

    /// The key of `epoch` of channel `channel`, if held.
    pub(crate) fn channel_key(
        &self,
        channel: i64,
        epoch: u32,
    ) -> Result<Option<[u8; 32]>, ClientError> {
        let key: Option<Vec<u8>> = self
            .store
            .conn
            .query_row(
                "SELECT key FROM channel_keys WHERE channel = ?1 AND epoch = ?2",
                params![channel, epoch],
                |r| r.get(0),
            )
            .optional()?;
        key.map(|k| <[u8; 32]>::try_from(k.as_slice()).map_err(|_| corrupt()))
            .transpose()
    }

    /// The channels this device follows or owns.
    pub fn channels(&self) -> Result<Vec<ChannelView>, ClientError> {
        let mut out = Vec::new();
        for row in self.channel_rows()? {
            let posts: i64 = self.store.conn.query_row(
                "SELECT COUNT(*) FROM channel_posts WHERE channel = ?1",
                params![row.id],
                |r| r.get(0),
            )?;
            out.push(ChannelView {
                owner: row.is_owner(),
                admin: row.poster().is_ok(),
                name: row.name,
                epoch: row.epoch,
                posts: u64::try_from(posts).unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn check_channel_name_free(&self, name: &str) -> Result<(), ClientError> {
        if self.channel_by_name(name).is_ok() {
            return Err(ClientError::InvalidInput(format!(
                "you already have a channel named {name:?} (`hush channel leave {name}` \
                 forgets it)"
            )));
        }
        Ok(())
    }

    /// Creates the channel `name`: an owner key made for it alone, a
    /// secret, the first epoch's key; files the signed descriptor with a
    /// fresh post token, and keeps all of it. Returns the link that
    /// subscribes (`hush join LINK`).
    pub async fn create_channel(&mut self, name: &str) -> Result<String, ClientError> {
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(ClientError::InvalidInput(format!(
                "a channel name is 1 to {MAX_NAME} bytes"
            )));
        }
        self.check_channel_name_free(name)?;
        let mut rng = rand::rngs::OsRng;
        let owner = AccountKey::generate(&mut rng)?;
        let secret = ChannelSecret::generate(&mut rng);
        let id = secret.channel_id();
        let key = hush_proto::channel::new_key(&mut rng);
        let descriptor = Descriptor::new(&id, &owner, name, 0, key, vec![owner.public()])?;
        let mut token = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *token);
        self.transport
            .call(
                Method::PUT,
                &channel_path(&id),
                Some(&PutChannelRequest {
                    descriptor: Bytes(secret.seal_descriptor(&descriptor, &mut rng)?),
                    post_token: Bytes(token.to_vec()),
                }),
            )
            .await?;
        let tx = self.store.conn.transaction()?;
        tx.execute(
            "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, \
             owner_seed, post_token, joined_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
            params![
                name,
                id.as_slice(),
                secret.as_bytes().as_slice(),
                owner.public().as_bytes().as_slice(),
                descriptor.encode(),
                owner.to_seed().as_slice(),
                token.as_slice(),
                now_ms() as i64,
            ],
        )?;
        store_key(&tx, tx.last_insert_rowid(), 0, &key)?;
        tx.commit()?;
        self.hand_channel_watch()?;
        self.channel_link(name)
    }

    /// The link that subscribes to the channel `name` (any holder of it
    /// reads the channel).
    pub fn channel_link(&self, name: &str) -> Result<String, ClientError> {
        let row = self.channel_by_name(name)?;
        Ok(ChannelLink {
            server: self.transport.base().to_owned(),
            secret: row.secret,
            owner: row.owner,
        }
        .to_link())
    }

    /// Subscribes to the channel behind `link`: fetches its descriptor,
    /// opens it with the link's secret and checks the owner's signature
    /// against the key in the link, then keeps it. Returns the channel's
    /// name. Its posts arrive with [`Client::sync`].
    pub async fn join_channel(&mut self, link: &str) -> Result<String, ClientError> {
        let link =
            ChannelLink::parse(link).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        if link.server.trim_end_matches('/') != self.transport.base().trim_end_matches('/') {
            return Err(ClientError::InvalidInput(format!(
                "this link is for the server {}, and this account is on {}",
                link.server,
                self.transport.base()
            )));
        }
        let id = link.secret.channel_id();
        let known: Option<String> = self
            .store
            .conn
            .query_row(
                "SELECT name FROM channels WHERE channel_id = ?1",
                params![id.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(name) = known {
            return Err(ClientError::InvalidInput(format!(
                "you already follow this channel, as {name:?}"
            )));
        }
        let resp: ChannelResponse = self
            .transport
            .json::<(), _>(Method::GET, &channel_path(&id), None)
            .await?;
        let descriptor = link
            .secret
            .open_descriptor(&link.owner, &resp.descriptor.0)
            .map_err(|_| {
                ClientError::InvalidInput(
                    "SECURITY: the channel's descriptor does not open or is not signed by the \
                     key in the link (the server or someone else changed it); nothing was stored"
                        .into(),
                )
            })?;
        if descriptor.name.trim().is_empty() {
            return Err(ClientError::InvalidInput(
                "the channel has no name; nothing was stored".into(),
            ));
        }
        self.check_channel_name_free(&descriptor.name)?;
        let tx = self.store.conn.transaction()?;
        tx.execute(
            "INSERT INTO channels (name, channel_id, secret, owner, descriptor, epoch, joined_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                descriptor.name,
                id.as_slice(),
                link.secret.as_bytes().as_slice(),
                link.owner.as_bytes().as_slice(),
                descriptor.encode(),
                descriptor.epoch,
                now_ms() as i64,
            ],
        )?;
        store_key(
            &tx,
            tx.last_insert_rowid(),
            descriptor.epoch,
            &descriptor.key,
        )?;
        tx.commit()?;
        self.hand_channel_watch()?;
        Ok(descriptor.name)
    }

    /// Posts `text` to the channel `name`: only the device holding the
    /// owner key and the post token can; on any other, nothing is sent.
    pub async fn post_to_channel(
        &mut self,
        name: &str,
        text: &str,
    ) -> Result<ChannelPostView, ClientError> {
        if text.is_empty() {
            return Err(ClientError::InvalidInput("nothing to post".into()));
        }
        let row = self.channel_by_name(name)?;
        let body = Body::Text {
            text: text.to_owned(),
            reply_to: None,
        };
        self.post_content(&row, body).await
    }

    /// Posts a message content with `body` to the channel of `row` (the
    /// owner's device only) and keeps it as taken in.
    pub(crate) async fn post_content(
        &mut self,
        row: &ChannelRow,
        body: Body,
    ) -> Result<ChannelPostView, ClientError> {
        let (owner, token) = row.poster()?;
        let content = content_of(body);
        let encoded = content.encode();
        check_body_size(encoded.len())?;
        let (post, number) = self
            .post_sealed(row, &owner, &token, PostBody::Content(encoded.clone()))
            .await?;
        let received_at = now_ms();
        self.store.conn.execute(
            "INSERT OR IGNORE INTO channel_posts (channel, post_id, number, epoch, signer, \
             content, sent_at, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row.id,
                post.id.as_slice(),
                number as i64,
                row.epoch,
                owner.public().as_bytes().as_slice(),
                encoded,
                post.sent_at_ms as i64,
                received_at as i64,
            ],
        )?;
        let shown = shown(&content).ok_or_else(|| ClientError::Store("a post not shown".into()))?;
        Ok(ChannelPostView::of(
            &row.name,
            &post.id,
            number,
            row.epoch,
            shown,
            (post.sent_at_ms, received_at),
        ))
    }

    /// Seals `body` under the current epoch's key, signed by `owner`, and
    /// posts it with the token. Returns the post and its number.
    async fn post_sealed(
        &mut self,
        row: &ChannelRow,
        owner: &AccountKey,
        token: &[u8],
        body: PostBody,
    ) -> Result<(Post, u64), ClientError> {
        let id = row.channel_id();
        let key = self
            .channel_key(row.id, row.epoch)?
            .ok_or_else(|| ClientError::Store("the channel's current key is missing".into()))?;
        let sealed = Post::seal(
            &id,
            row.epoch,
            &key,
            owner,
            body,
            now_ms(),
            &mut rand::rngs::OsRng,
        )?;
        let post = Post::open(&id, &key, &[owner.public()], &sealed)?;
        let resp: ChannelPostResponse = self
            .transport
            .json(
                Method::POST,
                &format!("{}/posts", channel_path(&id)),
                Some(&ChannelPostRequest {
                    post_token: Bytes(token.to_vec()),
                    post: Bytes(sealed),
                }),
            )
            .await?;
        Ok((post, resp.number))
    }

    /// Moves the channel `name` to a new key (owner only): the key is
    /// posted sealed under the current one, so subscribers reading on
    /// learn it, then a descriptor at the new epoch is filed, so later
    /// subscribers start there and cannot read the posts before it.
    /// Returns the new epoch.
    pub async fn rotate_channel(&mut self, name: &str) -> Result<u32, ClientError> {
        let row = self.channel_by_name(name)?;
        let (owner, token) = row.owner_poster()?;
        let epoch = row
            .epoch
            .checked_add(1)
            .ok_or_else(|| ClientError::InvalidInput("the channel has no epochs left".into()))?;
        let mut rng = rand::rngs::OsRng;
        let key = hush_proto::channel::new_key(&mut rng);
        let id = row.channel_id();
        let descriptor = Descriptor::new(
            &id,
            &owner,
            &row.descriptor.name,
            epoch,
            key,
            row.descriptor.admins.clone(),
        )?;
        self.post_sealed(&row, &owner, &token, PostBody::Rotate { epoch, key })
            .await?;
        // Kept at once: subscribers reading on hold the key from now on.
        let tx = self.store.conn.transaction()?;
        store_key(&tx, row.id, epoch, &key)?;
        tx.execute(
            "UPDATE channels SET descriptor = ?2 WHERE id = ?1",
            params![row.id, descriptor.encode()],
        )?;
        tx.commit()?;
        self.transport
            .call(
                Method::PUT,
                &channel_path(&id),
                Some(&PutChannelRequest {
                    descriptor: Bytes(row.secret.seal_descriptor(&descriptor, &mut rng)?),
                    post_token: Bytes(token),
                }),
            )
            .await
            .map_err(|e| {
                ClientError::Network(format!(
                    "the new key was posted, but the server did not take the new descriptor \
                     ({e}); run `hush channel rotate {name}` again"
                ))
            })?;
        Ok(epoch)
    }

    /// Forgets the channel `name` on this device: its keys, posts and (on
    /// the owner's device) the owner key and post token. The server is
    /// not told: it never knew who follows.
    pub fn leave_channel(&mut self, name: &str) -> Result<(), ClientError> {
        let row = self.channel_by_name(name)?;
        let tx = self.store.conn.transaction()?;
        tx.execute(
            "DELETE FROM channel_posts WHERE channel = ?1",
            params![row.id],
        )?;
        tx.execute(
            "DELETE FROM channel_keys WHERE channel = ?1",
            params![row.id],
        )?;
        tx.execute("DELETE FROM channels WHERE id = ?1", params![row.id])?;
        tx.commit()?;
        // Its held fetch ends now: the server sees no more of this device
        // on the channel.
        self.hand_channel_watch()
    }

    /// The posts of the channel `name` this device took in, oldest first.
    pub fn channel_history(&self, name: &str) -> Result<Vec<ChannelPostView>, ClientError> {
        let row = self.channel_by_name(name)?;
        type Raw = (Vec<u8>, i64, u32, Vec<u8>, i64, i64);
        let raws: Vec<Raw> = self
            .store
            .conn
            .prepare(
                "SELECT post_id, number, epoch, content, sent_at, received_at FROM channel_posts \
                 WHERE channel = ?1 ORDER BY number, sent_at",
            )?
            .query_map(params![row.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for (id, number, epoch, content, sent_at, received_at) in raws {
            let Some(shown) = Content::decode(&content).ok().as_ref().and_then(shown) else {
                continue;
            };
            out.push(ChannelPostView::of(
                &row.name,
                &id,
                u64::try_from(number).unwrap_or(0),
                epoch,
                shown,
                (
                    u64::try_from(sent_at).unwrap_or(0),
                    u64::try_from(received_at).unwrap_or(0),
                ),
            ));
        }
        Ok(out)
    }

    /// The post token the owner's device holds for the channel `name`:
    /// only for tests that play someone who got hold of it.
    #[cfg(feature = "test-hooks")]
    pub fn channel_post_token_for_tests(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let row = self.channel_by_name(name)?;
        Ok(row.poster()?.1)
    }
}
