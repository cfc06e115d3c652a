//! The channel watch (decision 0038, addendum "posts pushed"): while a
//! front end stays online, one held fetch per followed channel
//! (`GET /v1/channels/{id}/posts?after=N&limit=1&wait_ms=30000`) waits on
//! the server for the next post, so a post reaches the device as the
//! server stores it, and a sync fetches channels only when one of them
//! has news instead of asking every channel each time.
//!
//! Started by [`Client::watch_channels`]; stopped when the [`Client`] is
//! dropped. Each channel's fetch runs in a task of its own holding a clone
//! of the transport (and so the device's token) and the newest post
//! number the client read. A fetch that returns a post raises the news
//! flag and wakes a listening sync, then waits until the client hands it
//! fresh numbers (after its sync fetched the channels) before waiting
//! again: the watch only says *that* there is news, the sync reads, checks
//! and stores the posts as before. A fetch that fails raises the failure
//! flag (the next sync fetches every channel) and is tried again after a
//! growing pause.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hush_wire::api::ChannelPostsResponse;
use reqwest::Method;
use rusqlite::params;
use tokio::sync::{Notify, watch};

use crate::channels::channel_path;
use crate::client::Client;
use crate::error::ClientError;
use crate::transport::Transport;

/// Most channels watched at once. Each holds an HTTP connection to the
/// server, and a request in progress takes one of the account's connection
/// slots there (32 by default, `--max-account-connections`, shared by all
/// its devices, WebSockets included): 8 and the WebSocket are 9 per
/// device, so three devices online leave room for their other requests. A
/// device following more has the first 8 it joined watched and the others
/// fetched at the routine interval ([`crate::sync::ROUTINE_EVERY`]).
pub const MAX_WATCHED: usize = 8;
/// How long each fetch is held by the server (its most).
const HOLD_MS: u64 = 30_000;
/// The first pause after a failed fetch; doubled after each failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest pause between tries.
const BACKOFF_MOST: Duration = Duration::from_secs(60);
/// An empty answer sooner than this (a server shutting down, or one that
/// does not hold fetches) is followed by a pause, so the watch never spins.
const TOO_SOON: Duration = Duration::from_secs(1);

/// What the client hands the watch: the channels to watch with the newest
/// post number read in each, and the transport to ask with.
#[derive(Debug, Clone)]
struct Handed {
    /// Bumped with every hand-over: a channel that reported news waits for
    /// the next one before it asks again.
    generation: u64,
    channels: HashMap<[u8; 32], u64>,
    transport: Transport,
}

/// What the watch found since the client last looked.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The channels whose fetch returned a post above the number read.
    pub(crate) news: HashSet<[u8; 32]>,
    /// A fetch failed (a post may have been missed meanwhile).
    pub(crate) failed: bool,
}

/// Which channels a sync fetches.
#[derive(Debug)]
pub(crate) enum Due {
    /// Every channel followed.
    All,
    /// These (the watch found news on them); none if empty.
    Only(HashSet<[u8; 32]>),
}

#[derive(Debug, Default)]
struct Shared {
    found: Mutex<Found>,
    /// Wakes a listening sync when news arrives (a permit is kept for the
    /// next one if none listens).
    news: Notify,
}

impl Shared {
    fn raise(&self, f: impl FnOnce(&mut Found)) {
        f(&mut self.found.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The watch's news, as a listening sync waits on it.
#[derive(Debug, Clone)]
pub(crate) struct News(Arc<Shared>);

impl News {
    /// Returns when a fetch found news; a wake-up left over from news a
    /// sync already took does not count.
    pub(crate) async fn arrived(&self) {
        loop {
            self.0.news.notified().await;
            if !self
                .0
                .found
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .news
                .is_empty()
            {
                return;
            }
        }
    }
}

/// Aborts its task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The watch: one task per watched channel.
#[derive(Debug)]
pub(crate) struct ChannelWatch {
    handed: watch::Sender<Handed>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    tasks: HashMap<[u8; 32], AbortOnDrop>,
    /// When the sync last fetched every channel (`None`: not since the
    /// watch started).
    pub(crate) fetched_at: Option<Instant>,
}

impl ChannelWatch {
    fn new(transport: Transport, runtime: tokio::runtime::Handle) -> Self {
        let (handed, _) = watch::channel(Handed {
            generation: 0,
            channels: HashMap::new(),
            transport,
        });
        ChannelWatch {
            handed,
            shared: Arc::default(),
            runtime,
            tasks: HashMap::new(),
            fetched_at: None,
        }
    }

    /// What was found since the last call, cleared (with a wake-up kept
    /// for a sync that was not listening: this sync handles the news).
    pub(crate) fn take_found(&self) -> Found {
        let _ = self.shared.news.notified().now_or_never();
        std::mem::take(&mut *self.shared.found.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// What a listening sync waits on.
    pub(crate) fn news_handle(&self) -> News {
        News(self.shared.clone())
    }

    /// How many channels are watched.
    pub(crate) fn watched(&self) -> usize {
        self.tasks.len()
    }

    /// Hands the watch the channels with their newest numbers read: a
    /// channel no longer listed stops, a new one starts, and those that
    /// reported news ask again from the new numbers.
    fn hand(&mut self, channels: HashMap<[u8; 32], u64>, transport: &Transport) {
        self.tasks.retain(|id, _| channels.contains_key(id));
        let ids: Vec<[u8; 32]> = channels.keys().copied().collect();
        // Handed before the new tasks start, which read it first.
        self.handed.send_modify(|h| {
            h.generation += 1;
            h.channels = channels;
            h.transport = transport.clone();
        });
        for id in ids {
            if !self.tasks.contains_key(&id) {
                let task = watch_one(id, self.handed.subscribe(), self.shared.clone());
                self.tasks.insert(id, AbortOnDrop(self.runtime.spawn(task)));
            }
        }
    }
}

/// One channel's held fetches, until its task is aborted or the watch is
/// dropped.
async fn watch_one(id: [u8; 32], mut handed: watch::Receiver<Handed>, shared: Arc<Shared>) {
    let path = format!("{}/posts", channel_path(&id));
    let mut backoff = BACKOFF_FIRST;
    loop {
        let (transport, after) = {
            let h = handed.borrow_and_update();
            match h.channels.get(&id) {
                Some(after) => (h.transport.clone(), *after),
                None => return,
            }
        };
        let asked = Instant::now();
        let fetched: Result<ChannelPostsResponse, ClientError> = transport
            .json::<(), _>(
                Method::GET,
                &format!("{path}?after={after}&limit=1&wait_ms={HOLD_MS}"),
                None,
            )
            .await;
        match fetched {
            Ok(resp) if resp.posts.iter().any(|p| p.number > after) => {
                backoff = BACKOFF_FIRST;
                // Numbers handed after the news, not while the fetch was
                // out (those may predate the post): the sync reads the
                // posts and hands them.
                let now = handed.borrow_and_update().generation;
                shared.raise(|f| {
                    f.news.insert(id);
                });
                shared.news.notify_one();
                if handed.wait_for(|h| h.generation > now).await.is_err() {
                    return;
                }
            }
            Ok(_) if asked.elapsed() >= TOO_SOON => backoff = BACKOFF_FIRST,
            Ok(_) => pause(&mut backoff).await,
            Err(e) => {
                tracing::debug!(error = %e, channel = %hex::encode(id), "channel watch failed");
                shared.raise(|f| f.failed = true);
                pause(&mut backoff).await;
            }
        }
    }
}

/// Sleeps `backoff` (with up to a quarter more, so many devices cut off
/// together do not come back together), then doubles it up to the most.
async fn pause(backoff: &mut Duration) {
    use rand::Rng;
    let jitter = rand::rngs::OsRng.gen_range(0..=backoff.as_millis() as u64 / 4);
    tokio::time::sleep(*backoff + Duration::from_millis(jitter)).await;
    *backoff = (*backoff * 2).min(BACKOFF_MOST);
}

impl Client {
    /// Starts watching the channels this device follows (at most
    /// [`MAX_WATCHED`]), for a front end that stays online (`hush chat`,
    /// `hush web`, `hush sync --wait`): a held fetch per channel waits on
    /// the server for its next post. While the watch runs, a sync's
    /// listening also ends when a post arrives (its posts then fetched and
    /// passed on as [`crate::Event::ChannelPost`]), and a sync fetches
    /// channels only when the watch found news or failed, on the first
    /// sync, and at the routine interval, instead of every time. Joining
    /// and leaving channels updates the watch; dropping the client stops
    /// it. Calling it again does nothing. Must be called within a Tokio
    /// runtime.
    pub fn watch_channels(&mut self) -> Result<(), ClientError> {
        if self.channel_watch.is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ClientError::InvalidInput("the channel watch needs a Tokio runtime".into())
        })?;
        self.channel_watch = Some(ChannelWatch::new(self.transport.clone(), runtime));
        self.hand_channel_watch()
    }

    /// How many channels the watch holds a fetch for (0 without a watch).
    pub fn channels_watched(&self) -> usize {
        self.channel_watch.as_ref().map_or(0, ChannelWatch::watched)
    }

    /// Hands the running watch (if any) the channels followed and the
    /// newest numbers read, after a sync fetched them or the list changed.
    pub(crate) fn hand_channel_watch(&mut self) -> Result<(), ClientError> {
        if self.channel_watch.is_none() {
            return Ok(());
        }
        let channels: HashMap<[u8; 32], u64> = self
            .store
            .conn
            .prepare("SELECT channel_id, read_up_to FROM channels ORDER BY id LIMIT ?1")?
            .query_map(params![MAX_WATCHED as i64], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })?
            .filter_map(|row| match row {
                Ok((id, n)) => Some(Ok((<[u8; 32]>::try_from(id).ok()?, n.max(0) as u64))),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        let transport = self.transport.clone();
        if let Some(w) = self.channel_watch.as_mut() {
            w.hand(channels, &transport);
        }
        Ok(())
    }

    /// Which channels this sync fetches: every one without a watch; with
    /// one, every one on the first sync since it started, after a fetch of
    /// it failed and at the routine interval, otherwise those it found
    /// news on.
    pub(crate) fn channels_due(&self) -> Due {
        let Some(w) = &self.channel_watch else {
            return Due::All;
        };
        let found = w.take_found();
        if found.failed
            || w.fetched_at
                .is_none_or(|t| t.elapsed() >= crate::sync::ROUTINE_EVERY)
        {
            Due::All
        } else {
            Due::Only(found.news)
        }
    }
}
