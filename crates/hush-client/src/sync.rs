//! Receiving: drain the device's queue over the WebSocket, open the messages
//! that arrive together as one batch (see [`crate::batch`]), store their
//! effects together with the MLS state and the queue position in one
//! transaction, and only then acknowledge them to the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use hush_proto::{Body, MessageId, MessageKind, ProtoError, ReceiptKind, peek_message};
use hush_wire::ws::{ClientFrame, Envelope, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

use crate::batch::{Batch, MAX_BATCH};
use crate::client::{Client, now};
use crate::commit_blobs::Fetched;
use crate::error::ClientError;
use crate::link::Link;
use crate::local::LocalStore;
use crate::model::Event;

/// How long a sync waits for the server's next frame while the server sends
/// the stored queue. It bounds the server's silence, not the whole drain: a
/// queue whose commits take this device longer than that to process (a late
/// joiner of a group of 1000 on a busy machine) is not cut off while the
/// server keeps sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a client listening on a kept connection asks whether the key
/// directory moved and how many KeyPackages the server holds (a sync that
/// connects afresh always asks; a checkpoint newer than the last
/// self-check, or a Welcome, makes them due at once).
pub(crate) const ROUTINE_EVERY: Duration = Duration::from_secs(60);

mod group;

/// One sync's receiving: what it produced and the batch not yet written.
struct Receiving<'a> {
    /// Ends a listening wait early (the batch written first), see
    /// [`Client::sync_until_woken`].
    wake: Option<&'a tokio::sync::Notify>,
    /// The channel watch's news, which ends it too (see
    /// [`Client::watch_channels`]).
    news: Option<crate::channel_watch::News>,
    events: Vec<Event>,
    batch: Batch,
    follow: &'a mut FollowUp,
    on_event: &'a mut (dyn FnMut(&Event) + Send),
}

impl Receiving<'_> {
    fn emit(&mut self, ev: Event) {
        (self.on_event)(&ev);
        self.events.push(ev);
    }
}

/// Acknowledges `seqs`; frames the server pushes meanwhile wait in the
/// link for the sync to handle.
async fn send_ack(link: &mut Link, seqs: Vec<u64>) -> Result<(), ClientError> {
    let frame = Message::Binary(ClientFrame::Ack(seqs).encode().into());
    crate::link::write_reading(&mut link.ws, &mut link.buffered, frame).await
}

/// What receiving left to do once the connection is closed.
#[derive(Default)]
struct FollowUp {
    /// Delivery receipts to send, per conversation and original sender.
    receipts: BTreeMap<(Vec<u8>, String), Vec<MessageId>>,
    /// Conversations with proposals (members leaving) waiting for a commit.
    proposals: Vec<Vec<u8>>,
    /// Conversations joined in this sync: each gets one self-update, so
    /// the joiner's leaf and path are fresh and the tree stays populated.
    joined: Vec<Vec<u8>>,
    /// Contacts' key-transparency checkpoints to compare with this view.
    checkpoints: Vec<(String, hush_proto::kt::KtCheckpoint)>,
    /// This sync listened on the connection kept open.
    listened: bool,
    /// A Welcome arrived (it used up one of this device's KeyPackages).
    welcomed: bool,
}

/// Returns when `notify` is notified; never without one.
async fn notified(notify: Option<&tokio::sync::Notify>) {
    match notify {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

impl Client {
    /// Connects, receives everything waiting (and whatever arrives within
    /// `wait` after that), stores it and acknowledges it. Each event is
    /// passed to `on_event` as it happens and returned at the end. Then sends
    /// delivery receipts, commits members' pending departures, and tops up
    /// KeyPackages.
    pub async fn sync(
        &mut self,
        wait: Duration,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<Vec<Event>, ClientError> {
        self.sync_inner(wait, None, on_event).await
    }

    /// [`Client::sync`], whose listening on the kept connection also ends
    /// when `wake` is notified (a front end with a command to run: `hush
    /// web`'s client task). Only the idle wait is cut short: what arrived
    /// is stored and acknowledged and the follow-ups run as after any sync.
    /// A notification given while no sync listens is kept for the next one
    /// (tokio's `Notify::notify_one`).
    pub async fn sync_until_woken(
        &mut self,
        wait: Duration,
        wake: &tokio::sync::Notify,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<Vec<Event>, ClientError> {
        self.sync_inner(wait, Some(wake), on_event).await
    }

    async fn sync_inner(
        &mut self,
        wait: Duration,
        wake: Option<&tokio::sync::Notify>,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<Vec<Event>, ClientError> {
        self.flush_outbox().await?;
        let mut follow = FollowUp::default();
        let mut events = self.receive(wait, wake, &mut follow, &mut on_event).await?;
        // Checkpoints first: one that moves this client's view of the
        // directory makes the self-monitoring check due at once.
        let mut found = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (from, cp) in std::mem::take(&mut follow.checkpoints) {
            if !seen.insert((cp.epoch, cp.root_hash))
                || self.kt_agreed.contains(&(cp.epoch, cp.root_hash))
            {
                continue;
            }
            match self.kt_check_checkpoint(&from, &cp).await {
                Ok(Some(alarm)) => found.push(alarm),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "checkpoint not compared"),
            }
        }
        let routine = self.routine_due(&follow);
        let mut alarms = if routine || self.kt_monitor_due()? {
            self.kt_monitor_alarms().await?
        } else {
            Vec::new()
        };
        alarms.extend(found);
        for message in alarms {
            self.raise_kt_alarm(&message)?;
            let ev = Event::KeyTransparencyAlarm { message };
            on_event(&ev);
            events.push(ev);
        }
        // One receipt frame per conversation and original sender, to that
        // sender's devices only (decision 0017).
        let receipts = std::mem::take(&mut follow.receipts);
        for ((group_id, sender), ids) in &receipts {
            if let Err(e) = self.queue_receipts(group_id, sender, ReceiptKind::Delivered, ids) {
                tracing::debug!(error = %e, "delivery receipt not queued");
            }
        }
        if !receipts.is_empty()
            && let Err(e) = self.flush_outbox().await
        {
            tracing::debug!(error = %e, "delivery receipts not sent yet");
        }
        for group_id in std::mem::take(&mut follow.joined) {
            self.self_update_after_join(&group_id).await;
        }
        for group_id in std::mem::take(&mut follow.proposals) {
            if self.conv_by_group_id(&group_id)?.is_none() {
                continue;
            }
            let t = now();
            match self.commit_with(&group_id, |c| c.self_update(t)).await {
                Ok(change) if !change.added.is_empty() || !change.removed.is_empty() => {
                    let ev = self.members_event(&group_id, &change)?;
                    on_event(&ev);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not commit pending proposals"),
            }
        }
        if routine || follow.welcomed {
            self.top_up_key_packages(false).await?;
            if routine {
                self.routine_at = Some(Instant::now());
            }
        }
        // Conversations of the legacy suite move to the current one
        // (decision 0031) before new devices are added to them.
        // Boxed, as the steps below: each keeps a large future, and the sync
        // future must stay small enough for a worker thread's stack.
        if routine {
            Box::pin(self.move_legacy_conversations()).await;
        }
        // The directory moved: new devices of this account and its contacts
        // join the conversations they lack (decision 0025).
        if routine
            && self.new_devices_due()?
            && let Err(e) = Box::pin(self.add_new_devices()).await
        {
            tracing::debug!(error = %e, "new devices not added yet");
        }
        Box::pin(self.admit_by_links_if_due(follow.listened, &mut on_event, &mut events)).await;
        // Channels after the conversations (decision 0038): with the
        // channel watch running, only when it has news (or failed, or at
        // the routine interval).
        Box::pin(self.sync_channels_due(&mut on_event, &mut events)).await?;
        self.expire_messages()?;
        Ok(events)
    }

    /// Whether this sync runs the routine requests (the self-monitoring
    /// check's "did the directory move", the KeyPackage count): always
    /// after connecting; while listening on a kept connection, at most every
    /// [`ROUTINE_EVERY`].
    fn routine_due(&self, follow: &FollowUp) -> bool {
        !follow.listened || self.routine_at.is_none_or(|t| t.elapsed() >= ROUTINE_EVERY)
    }

    /// Receives what is waiting without follow-ups (used while retrying a
    /// commit that lost its epoch).
    pub(crate) async fn sync_quietly(&mut self) -> Result<(), ClientError> {
        let mut follow = FollowUp::default();
        self.receive(Duration::ZERO, None, &mut follow, &mut |_| {})
            .await?;
        Ok(())
    }

    async fn receive(
        &mut self,
        wait: Duration,
        wake: Option<&tokio::sync::Notify>,
        follow: &mut FollowUp,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Vec<Event>, ClientError> {
        let mut r = Receiving {
            wake,
            news: self.channel_watch.as_ref().map(|w| w.news_handle()),
            events: Vec::new(),
            batch: Batch::default(),
            follow,
            on_event,
        };
        let mut link = None;
        let result = match self.receive_kept(&mut r).await {
            // The server sent the stored queue on the connection kept open
            // and pushes each envelope as it is stored: listen on it, as
            // `hush chat` does, instead of connecting again.
            Ok(Some(mut kept)) if !wait.is_zero() => {
                r.follow.listened = true;
                match self.listen_on(&mut kept, wait, &mut r).await {
                    Ok(()) if kept.up => {
                        link = Some(kept);
                        Ok(())
                    }
                    // Closed, broken or silent: connect again and take in
                    // what it did not deliver.
                    Ok(()) => self.receive_fresh(Duration::ZERO, &mut r, &mut link).await,
                    Err(e) => Err(e),
                }
            }
            Ok(_) => self.receive_fresh(wait, &mut r, &mut link).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if !r.batch.is_empty() {
                // The batch was not written: drop what it changed in memory,
                // so memory never runs ahead of the store (nothing of it was
                // acknowledged).
                let _ = self.reload_mls();
            }
            return Err(e);
        }
        // Kept open: the next send goes on it.
        if let Some(link) = link {
            self.transport.keep_link(link).await;
        }
        Ok(r.events)
    }

    /// Handles what arrived on the socket kept since the last sync or send
    /// (acknowledged on it when it is still up; otherwise the server sends
    /// those envelopes again, and they are skipped as handled). Returns the
    /// socket when it can be listened on: up, its stored queue sent, and
    /// everything that came on it handled and acknowledged.
    async fn receive_kept(&mut self, r: &mut Receiving<'_>) -> Result<Option<Link>, ClientError> {
        let Some(mut kept) = self.transport.take_kept_link().await else {
            return Ok(None);
        };
        let mut deadline = Some(Instant::now());
        let mut result = Ok(false);
        while let Some(frame) = kept.buffered.pop_front() {
            if matches!(frame, ServerFrame::Drained) {
                kept.drained = true;
            } else {
                result = self
                    .handle_frame(&mut kept, frame, Duration::ZERO, &mut deadline, r)
                    .await;
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() {
            result = self.finish_batch(&mut kept, r).await.map(|()| true);
        }
        match result {
            Ok(_) if kept.up && kept.drained => Ok(Some(kept)),
            // The socket is down or the envelope must wait (it stays queued
            // and comes again on the fresh connection); any batch was
            // written before an acknowledgement was tried.
            Err(ClientError::Network(_)) | Ok(_) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives on a new connection, which is then kept in `link`.
    async fn receive_fresh(
        &mut self,
        wait: Duration,
        r: &mut Receiving<'_>,
        link: &mut Option<Link>,
    ) -> Result<(), ClientError> {
        let mut fresh = self.transport.open_link().await?;
        let received = self.receive_on(&mut fresh, wait, None, r).await;
        *link = Some(fresh);
        received
    }

    /// Listens on a kept connection for `wait`. A ping goes first: a
    /// connection that answers nothing in that time, or breaks, is left
    /// with `up` false.
    async fn listen_on(
        &mut self,
        link: &mut Link,
        wait: Duration,
        r: &mut Receiving<'_>,
    ) -> Result<(), ClientError> {
        link.up = false;
        let ping = Message::Ping(Vec::new().into());
        if crate::link::write_reading(&mut link.ws, &mut link.buffered, ping)
            .await
            .is_err()
        {
            return Ok(());
        }
        self.receive_on(link, wait, Some(Instant::now() + wait), r)
            .await
    }

    /// Receives on `link` until the server says the stored queue is sent
    /// (and `wait` after that), or, with a `deadline`, until then.
    async fn receive_on(
        &mut self,
        link: &mut Link,
        wait: Duration,
        mut deadline: Option<Instant>,
        r: &mut Receiving<'_>,
    ) -> Result<(), ClientError> {
        loop {
            if let Some(frame) = link.buffered.pop_front() {
                if self
                    .handle_frame(link, frame, wait, &mut deadline, r)
                    .await?
                {
                    break;
                }
                continue;
            }
            let ws = &mut link.ws;
            // Write the batch once nothing more is ready (or it is full).
            let ready = if r.batch.is_empty() {
                None
            } else if r.batch.len() >= MAX_BATCH {
                Some(None)
            } else {
                Some(ws.next().now_or_never())
            };
            let next = match ready {
                Some(Some(next)) => next,
                Some(None) => {
                    self.finish_batch(link, r).await?;
                    continue;
                }
                None => {
                    let limit = match deadline {
                        Some(d) => d.saturating_duration_since(Instant::now()),
                        None => DRAIN_TIMEOUT,
                    };
                    // Only a connection known to be up is left early: one
                    // that has not answered yet is judged at the deadline.
                    let woken = deadline.is_some() && link.up;
                    let wake = r.wake.filter(|_| woken);
                    let news = r.news.as_ref().filter(|_| woken);
                    let next = tokio::select! {
                        n = tokio::time::timeout(limit, ws.next()) => n,
                        () = notified(wake) => break,
                        () = async {
                            match news {
                                Some(n) => n.arrived().await,
                                None => std::future::pending().await,
                            }
                        } => break,
                    };
                    match next {
                        Ok(n) => n,
                        Err(_) if deadline.is_some() => break,
                        Err(_) => {
                            return Err(ClientError::Network(
                                "the server did not finish sending the queue in time".into(),
                            ));
                        }
                    }
                }
            };
            if matches!(next, Some(Ok(ref m)) if !m.is_close()) {
                // The server answers: the connection is up.
                link.up = true;
            }
            let bytes = match next {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(_))) | None => {
                    link.up = false;
                    if deadline.is_some() {
                        break;
                    }
                    return Err(ClientError::Network(
                        "the server closed the connection during sync".into(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    link.up = false;
                    // Once the queue was sent, a broken connection ends the
                    // wait: what it did not deliver stays queued.
                    if deadline.is_some() {
                        break;
                    }
                    return Err(ClientError::Network(e.to_string()));
                }
            };
            let frame = ServerFrame::decode(&bytes).map_err(|e| {
                ClientError::Network(format!("malformed frame from the server: {e}"))
            })?;
            if self
                .handle_frame(link, frame, wait, &mut deadline, r)
                .await?
            {
                break;
            }
        }
        self.finish_batch(link, r).await
    }

    /// One frame from the server; `true` when the sync is done.
    async fn handle_frame(
        &mut self,
        link: &mut Link,
        frame: ServerFrame,
        wait: Duration,
        deadline: &mut Option<Instant>,
        r: &mut Receiving<'_>,
    ) -> Result<bool, ClientError> {
        match frame {
            ServerFrame::Envelope(env) => self.take_envelope(link, env, r).await?,
            ServerFrame::Envelopes(envs) => {
                for env in envs {
                    self.take_envelope(link, env, r).await?;
                }
            }
            ServerFrame::Ephemeral(payload) => {
                if let Some(ev) = self.handle_ephemeral(&payload) {
                    r.emit(ev);
                }
            }
            // Answers to sends given up on; this loop sends none.
            ServerFrame::Sent { .. } | ServerFrame::Refused { .. } => {}
            ServerFrame::Drained => {
                link.drained = true;
                self.finish_batch(link, r).await?;
                if deadline.is_none() {
                    if wait.is_zero() {
                        return Ok(true);
                    }
                    *deadline = Some(Instant::now() + wait);
                }
            }
        }
        Ok(false)
    }

    /// One envelope: an application message joins the batch; anything else
    /// (a commit, a Welcome) waits for the batch's write, then is handled
    /// and acknowledged on its own.
    async fn take_envelope(
        &mut self,
        link: &mut Link,
        env: Envelope,
        r: &mut Receiving<'_>,
    ) -> Result<(), ClientError> {
        if env.seq <= self.handled_up_to(&r.batch)? {
            // Handled before (its acknowledgement was lost): acknowledge again.
            r.batch.acks.push(env.seq);
            return Ok(());
        }
        if let Some(opened) = self.batchable(&env) {
            for ev in self.open_into(&opened, &mut r.batch)? {
                r.emit(ev);
            }
            return Ok(());
        }
        self.finish_batch(link, r).await?;
        for ev in self.handle_envelope(&env, r.follow).await? {
            r.emit(ev);
        }
        send_ack(link, vec![env.seq]).await
    }

    /// Writes the batch in one transaction, then acknowledges all of it.
    async fn finish_batch(
        &mut self,
        link: &mut Link,
        r: &mut Receiving<'_>,
    ) -> Result<(), ClientError> {
        if r.batch.is_empty() {
            return Ok(());
        }
        let written = self.write_batch(&mut r.batch)?;
        for (group_id, sender, id) in written.delivered {
            r.follow
                .receipts
                .entry((group_id, sender))
                .or_default()
                .push(id);
        }
        r.follow.checkpoints.extend(written.checkpoints);
        for ev in written.events {
            r.emit(ev);
        }
        send_ack(link, std::mem::take(&mut r.batch.acks)).await
    }

    fn last_seq(&self) -> Result<u64, ClientError> {
        Ok(self
            .store
            .meta_str("last_seq")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Opens one envelope and stores its effect with the new queue position.
    /// An envelope already handled (its acknowledgement was lost) is skipped.
    async fn handle_envelope(
        &mut self,
        env: &Envelope,
        follow: &mut FollowUp,
    ) -> Result<Vec<Event>, ClientError> {
        if env.seq <= self.last_seq()? {
            return Ok(Vec::new());
        }
        let seq = env.seq.to_string();
        let result = match self.unseal(env) {
            Err(e) => Err(e),
            Ok(env) if hush_proto::receipt::is_receipt(&env.payload) => {
                self.handle_receipt(&env.payload, &seq)
            }
            Ok(env) if hush_proto::commit_blob::is_commit_pointer(&env.payload) => {
                self.handle_commit_pointer(env, &seq, follow).await
            }
            Ok(env) if hush_proto::device_link::is_link_frame(&env.payload) => {
                self.handle_link_frame(&env.payload, &seq)
            }
            Ok(env) if hush_proto::self_sync::is_self_sync(&env.payload) => {
                self.handle_self_sync(&env.payload, &seq).await
            }
            Ok(env) => match peek_message(&env.payload) {
                Ok(MessageKind::Welcome) => {
                    follow.welcomed = true;
                    self.handle_welcome(&env.payload, &seq, &mut follow.joined)
                        .await
                }
                Ok(MessageKind::Group { group_id, .. }) => {
                    self.handle_group(&group_id, &env, &seq, follow, false)
                        .await
                }
                Ok(_) | Err(_) => Err(ClientError::Proto(ProtoError::InvalidRequest(
                    "not a message for this device",
                ))),
            },
        };
        match result {
            Ok(events) => Ok(events),
            Err(ClientError::Store(e)) => Err(ClientError::Store(e)),
            // The key directory could not be asked about new members: keep
            // the message queued and try again next time.
            Err(e @ (ClientError::Network(_) | ClientError::Server(_))) => {
                self.reload_mls()?;
                Err(e)
            }
            Err(e) => {
                // Undecryptable, replayed or foreign: nothing to keep. Record
                // the position so it is not retried, and move on.
                tracing::warn!(seq = env.seq, error = %e, "dropped a message that could not be opened");
                self.reload_mls()?;
                LocalStore::set_meta(&self.store.conn, "last_seq", seq.as_bytes())?;
                Ok(Vec::new())
            }
        }
    }

    /// The server stores and relays every message sealed to the recipient
    /// device (see `hush_proto::sealed`): open it with this device's key. A
    /// bare MLS message (queued before the server sealed) comes as it is.
    pub(crate) fn unseal(&self, env: &Envelope) -> Result<Envelope, ClientError> {
        if !hush_proto::sealed::is_sealed(&env.payload) {
            return Ok(env.clone());
        }
        let key = match self.open_key.get() {
            Some(key) => key,
            None => {
                let seed = crate::client::seed(&crate::client::meta_required(
                    &self.store,
                    "device_seed",
                )?)?;
                let key = hush_proto::sealed::OpenKey::of(
                    &hush_proto::DeviceSigningKey::from_seed(seed)?,
                )?;
                self.open_key.get_or_init(|| key)
            }
        };
        let opened = hush_proto::sealed::open_envelope(key, &env.payload)?;
        Ok(Envelope {
            seq: env.seq,
            received_at_ms: env.received_at_ms,
            relay_tag: opened.relay_tag,
            payload: opened.message,
        })
    }

    /// A commit that travelled out of band (decision 0021): fetched,
    /// checked, then handled as if it had come in the envelope.
    async fn handle_commit_pointer(
        &mut self,
        env: Envelope,
        seq: &str,
        follow: &mut FollowUp,
    ) -> Result<Vec<Event>, ClientError> {
        match self.fetch_commit(&env.payload).await? {
            Fetched::Commit { group_id, commit } => {
                let env = Envelope {
                    payload: commit,
                    ..env
                };
                self.handle_group(&group_id, &env, seq, follow, true).await
            }
            Fetched::Refused(why) => self.refuse(seq, &why),
        }
    }

    fn handle_ephemeral(&mut self, payload: &[u8]) -> Option<Event> {
        let header = hush_proto::ephemeral_header(payload).ok()?;
        let row = self.conv_by_group_id(&header.group_id).ok()??;
        let (sender, content) = self
            .conv(&header.group_id)
            .ok()?
            .open_ephemeral(payload)
            .ok()?;
        match content.body {
            Body::Typing { started } => Some(Event::Typing {
                conversation: row.id,
                from: sender.username().to_string(),
                started,
            }),
            Body::Presence { online, .. } => Some(Event::Presence {
                from: sender.username().to_string(),
                online,
            }),
            _ => None,
        }
    }
}
