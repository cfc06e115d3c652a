//! The wake-up of held channel fetches (decision 0038): one in-memory watch
//! per channel id that fetches wait on, made by the first waiting fetch and
//! dropped with the last. A post on this node wakes every fetch waiting on
//! its channel here; in a cluster, a post on another node arrives over the
//! bus ([`crate::cluster`]) as the channel id and the post's number and
//! wakes them the same way. Nothing of it is written down, and nothing says
//! which account waits: the map is keyed by channel id alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;

type Watch = watch::Sender<u64>;

/// The watches of the channels that fetches wait on at the moment.
#[derive(Debug)]
pub struct ChannelWatches {
    watches: Mutex<HashMap<[u8; 32], Weak<Watch>>>,
    closed: watch::Sender<bool>,
}

impl Default for ChannelWatches {
    fn default() -> Self {
        Self {
            watches: Mutex::new(HashMap::new()),
            closed: watch::Sender::new(false),
        }
    }
}

/// A fetch's hold on a channel's watch: subscribed when made, so a post
/// stored after it was made wakes it. Dropping the last one forgets the
/// channel's watch.
#[derive(Debug)]
pub struct Waiting<'a> {
    owner: &'a ChannelWatches,
    channel_id: [u8; 32],
    watch: Option<Arc<Watch>>,
    posts: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChannelWatches {
    /// Starts waiting on `channel_id`: joins its watch, or makes it.
    pub fn wait(&self, channel_id: [u8; 32]) -> Waiting<'_> {
        let mut map = lock(&self.watches);
        let watch = match map.get(&channel_id).and_then(Weak::upgrade) {
            Some(w) => w,
            None => {
                let w = Arc::new(watch::Sender::new(0));
                map.insert(channel_id, Arc::downgrade(&w));
                w
            }
        };
        Waiting {
            owner: self,
            channel_id,
            posts: watch.subscribe(),
            watch: Some(watch),
            closed: self.closed.subscribe(),
        }
    }

    /// Wakes the fetches waiting on `channel_id`: post `number` was stored.
    pub fn posted(&self, channel_id: &[u8; 32], number: u64) {
        // Under the map's lock, so the last waiter's drop sees no other
        // hold on the watch and takes its entry away.
        let map = lock(&self.watches);
        if let Some(w) = map.get(channel_id).and_then(Weak::upgrade) {
            w.send_replace(number);
        }
    }

    /// Wakes every fetch waiting here, whatever its channel: each re-reads
    /// its channel and waits on if nothing is new (wake-ups from other
    /// nodes may have been lost while the bus was down).
    pub fn wake_all(&self) {
        let map = lock(&self.watches);
        for w in map.values().filter_map(Weak::upgrade) {
            w.send_modify(|_| {});
        }
    }

    /// Ends every wait, now and later (the node is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// How many channels fetches wait on at the moment.
    pub fn channels(&self) -> usize {
        lock(&self.watches)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl Waiting<'_> {
    /// Returns when a post arrives after this wait began (or since the last
    /// return), when the node shuts down, or at `deadline`; false for the
    /// last two.
    pub async fn next(&mut self, deadline: tokio::time::Instant) -> bool {
        if *self.closed.borrow() {
            return false;
        }
        tokio::select! {
            changed = self.posts.changed() => changed.is_ok(),
            _ = self.closed.wait_for(|c| *c) => false,
            () = tokio::time::sleep_until(deadline) => false,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.owner.watches);
        // Let go first: if that was the last hold, the watch is gone and its
        // entry goes with it.
        self.watch = None;
        if map
            .get(&self.channel_id)
            .is_some_and(|w| w.strong_count() == 0)
        {
            map.remove(&self.channel_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_post_wakes_every_waiter_and_the_last_drops_the_watch() {
        let w = ChannelWatches::default();
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut a = w.wait([1; 32]);
        let mut b = w.wait([1; 32]);
        let _other = w.wait([2; 32]);
        assert_eq!(w.channels(), 2);
        w.posted(&[1; 32], 1);
        assert!(a.next(far).await);
        assert!(b.next(far).await);
        drop((a, b));
        assert_eq!(w.channels(), 1);
        assert_eq!(
            lock(&w.watches).len(),
            1,
            "the entry went with its last waiter"
        );
        // A post nobody waits for costs a lookup.
        w.posted(&[3; 32], 1);
    }

    #[tokio::test]
    async fn wake_all_wakes_every_channel() {
        let w = ChannelWatches::default();
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut a = w.wait([1; 32]);
        let mut b = w.wait([2; 32]);
        w.wake_all();
        assert!(a.next(far).await);
        assert!(b.next(far).await);
        // Nothing since: the next wait runs to its deadline.
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(!a.next(soon).await);
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_or_on_close() {
        let w = ChannelWatches::default();
        let mut a = w.wait([1; 32]);
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(!a.next(soon).await);
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        w.close();
        assert!(!a.next(far).await);
        assert!(!w.wait([1; 32]).next(far).await);
    }
}
