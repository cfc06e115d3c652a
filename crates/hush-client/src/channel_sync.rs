//! Fetching channels' new posts (decision 0038), after the conversations
//! in every [`Client::sync`] (with the channel watch running, only those
//! it found news on, see [`crate::channel_watch`]).
//!
//! Per channel: the posts numbered above the newest read, a page at a
//! time. A post is taken in only if it opens under a key this device
//! holds and an admin key of the descriptor signed it; a post id taken in
//! before is not shown again (the server may replay a post under a new
//! number). A `Rotate` body signed by the owner key for the epoch after
//! the post's gives that epoch's key. A post of an epoch this device holds
//! no key for makes it read the descriptor once, in case it missed the
//! rotation; so does a post that does not open or whose signer it does
//! not know as an admin, in case the owner named that admin since.

use std::collections::HashSet;

use hush_proto::Content;
use hush_proto::channel::{Post, PostBody};
use hush_wire::api::{ChannelPost, ChannelPostsResponse, ChannelResponse};
use reqwest::Method;
use rusqlite::{OptionalExtension, params};

use crate::channel_watch::Due;
use crate::channels::{ChannelPostView, ChannelRow, channel_path, shown, store_key};
use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::model::Event;

/// Posts asked for per request (the server's most).
const PAGE: usize = 256;
/// Pages read per channel in one sync (the server keeps 4096 posts).
const MAX_PAGES: usize = 16;

/// What one fetched post came to.
enum Taken {
    /// Shown: a new post.
    Post(ChannelPostView),
    /// Nothing to show (a key, a post seen before, one refused).
    Nothing,
    /// Sealed in an epoch whose key this device does not hold (yet).
    NoKey(u32),
    /// Does not open, or is not signed by an admin the descriptor held
    /// lists (perhaps one the owner named since).
    Refused,
}

impl Client {
    /// Fetches the new posts of the channels due (all of them without the
    /// channel watch; with it, see [`Client::channels_due`]), then hands
    /// the watch the numbers read.
    pub(crate) async fn sync_channels_due(
        &mut self,
        on_event: &mut (dyn FnMut(&Event) + Send),
        events: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        let only = match self.channels_due() {
            Due::All => None,
            Due::Only(ids) if ids.is_empty() => return Ok(()),
            Due::Only(ids) => Some(ids),
        };
        let all = only.is_none();
        if let Err(e) = self.sync_channels(only, on_event, events).await {
            tracing::debug!(error = %e, "channels not fetched");
        }
        if let Some(w) = self.channel_watch.as_mut()
            && all
        {
            w.fetched_at = Some(std::time::Instant::now());
        }
        self.hand_channel_watch()
    }

    /// Fetches every channel's new posts (or those of `only`); a channel
    /// that fails (network, unknown to the server) is skipped until the
    /// next sync.
    async fn sync_channels(
        &mut self,
        only: Option<HashSet<[u8; 32]>>,
        on_event: &mut (dyn FnMut(&Event) + Send),
        events: &mut Vec<Event>,
    ) -> Result<(), ClientError> {
        for row in self.channel_rows()? {
            if only
                .as_ref()
                .is_some_and(|ids| !ids.contains(&row.channel_id()))
            {
                continue;
            }
            let name = row.name.clone();
            match self.sync_channel(row).await {
                Ok(posts) => {
                    for post in posts {
                        let ev = Event::ChannelPost(post);
                        on_event(&ev);
                        events.push(ev);
                    }
                }
                Err(e) => tracing::debug!(error = %e, channel = %name, "channel not fetched"),
            }
        }
        Ok(())
    }

    async fn sync_channel(
        &mut self,
        mut row: ChannelRow,
    ) -> Result<Vec<ChannelPostView>, ClientError> {
        let path = format!("{}/posts", channel_path(&row.channel_id()));
        let mut shown_posts = Vec::new();
        let mut descriptor_read = false;
        for _ in 0..MAX_PAGES {
            let resp: ChannelPostsResponse = self
                .transport
                .json::<(), _>(
                    Method::GET,
                    &format!("{path}?after={}&limit={PAGE}", row.read_up_to),
                    None,
                )
                .await?;
            let before = row.read_up_to;
            let full = resp.posts.len() >= PAGE;
            for p in resp.posts {
                // Numbers are stored as SQLite integers: one beyond them
                // is the server's nonsense, skipped without moving on.
                let Ok(number) = i64::try_from(p.number) else {
                    continue;
                };
                if p.number <= row.read_up_to {
                    continue;
                }
                let mut taken = self.take_post(&mut row, &p)?;
                let stale = match taken {
                    Taken::NoKey(epoch) => epoch > row.epoch,
                    Taken::Refused => true,
                    _ => false,
                };
                if stale && !descriptor_read {
                    descriptor_read = true;
                    self.read_descriptor(&mut row).await?;
                    taken = self.take_post(&mut row, &p)?;
                }
                if let Taken::Post(v) = taken {
                    shown_posts.push(v);
                }
                row.read_up_to = p.number;
                self.store.conn.execute(
                    "UPDATE channels SET read_up_to = ?2 WHERE id = ?1",
                    params![row.id, number],
                )?;
            }
            if !full || row.read_up_to == before {
                break;
            }
        }
        Ok(shown_posts)
    }

    /// Reads the channel's descriptor: if it verifies against the owner
    /// key of the link and names a newer epoch, its key and admins are
    /// kept (a subscriber who missed the rotation post); at the epoch
    /// this device is at, its admins are kept if they include every one
    /// held (an admin the owner named since; a replay of an older list
    /// changes nothing).
    async fn read_descriptor(&mut self, row: &mut ChannelRow) -> Result<(), ClientError> {
        let resp: ChannelResponse = self
            .transport
            .json::<(), _>(Method::GET, &channel_path(&row.channel_id()), None)
            .await?;
        let d = match row.secret.open_descriptor(&row.owner, &resp.descriptor.0) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, channel = %row.name, "a descriptor that does not verify");
                return Ok(());
            }
        };
        let grows = d.epoch == row.epoch
            && d.epoch >= row.descriptor.epoch
            && d.admins.len() > row.descriptor.admins.len()
            && row.descriptor.admins.iter().all(|a| d.admins.contains(a));
        if d.epoch < row.epoch || (d.epoch == row.epoch && !grows) {
            return Ok(());
        }
        let tx = self.store.conn.transaction()?;
        store_key(&tx, row.id, d.epoch, &d.key)?;
        tx.execute(
            "UPDATE channels SET descriptor = ?2 WHERE id = ?1",
            params![row.id, d.encode()],
        )?;
        tx.commit()?;
        row.epoch = d.epoch;
        row.descriptor = d;
        Ok(())
    }

    /// Opens, checks and stores one fetched post.
    fn take_post(&mut self, row: &mut ChannelRow, p: &ChannelPost) -> Result<Taken, ClientError> {
        let Ok(epoch) = Post::epoch_of(&p.post.0) else {
            tracing::warn!(channel = %row.name, number = p.number, "dropped a post that does not parse");
            return Ok(Taken::Nothing);
        };
        let Some(key) = self.channel_key(row.id, epoch)? else {
            return Ok(Taken::NoKey(epoch));
        };
        let id = row.channel_id();
        let post = match Post::open(&id, &key, &row.descriptor.admins, &p.post.0) {
            Ok(post) => post,
            Err(e) => {
                tracing::warn!(error = %e, channel = %row.name, number = p.number,
                    "dropped a post that does not open or is not signed by an admin");
                return Ok(Taken::Refused);
            }
        };
        match &post.body {
            PostBody::Rotate { epoch: next, key } => {
                if post.signer == row.owner && Some(*next) == epoch.checked_add(1) {
                    let tx = self.store.conn.transaction()?;
                    store_key(&tx, row.id, *next, key)?;
                    tx.commit()?;
                    row.epoch = row.epoch.max(*next);
                } else {
                    tracing::warn!(channel = %row.name, "dropped a key rotation not by the owner or not for the next epoch");
                }
                Ok(Taken::Nothing)
            }
            PostBody::Content(bytes) => self.take_content(row, p, epoch, &post, bytes),
        }
    }

    fn take_content(
        &mut self,
        row: &ChannelRow,
        p: &ChannelPost,
        epoch: u32,
        post: &Post,
        bytes: &[u8],
    ) -> Result<Taken, ClientError> {
        let seen: Option<i64> = self
            .store
            .conn
            .query_row(
                "SELECT number FROM channel_posts WHERE channel = ?1 AND post_id = ?2",
                params![row.id, post.id.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            return Ok(Taken::Nothing);
        }
        let Some(shown) = Content::decode(bytes).ok().as_ref().and_then(shown) else {
            tracing::debug!(channel = %row.name, "a post this build does not show");
            return Ok(Taken::Nothing);
        };
        let received_at = now_ms();
        self.store.conn.execute(
            "INSERT INTO channel_posts (channel, post_id, number, epoch, signer, content, \
             sent_at, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row.id,
                post.id.as_slice(),
                p.number as i64,
                epoch,
                post.signer.as_bytes().as_slice(),
                bytes,
                post.sent_at_ms as i64,
                received_at as i64,
            ],
        )?;
        Ok(Taken::Post(ChannelPostView::of(
            &row.name,
            &post.id,
            p.number,
            epoch,
            shown,
            (post.sent_at_ms, received_at),
        )))
    }
}
