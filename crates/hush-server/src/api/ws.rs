//! The per-device WebSocket: drain the stored queue in order, then push new
//! envelopes as they arrive; delete each only when the device acknowledges it.
//! The device may also send over it: a send frame means what
//! `POST /v1/messages` means, and its answer comes back on the socket.
//!
//! This module is the adapter between the socket, the hub and the store on
//! one side and the connection's state machine
//! ([`crate::delivery::Connection`]) on the other.

use std::task::{Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use hush_wire::ErrorCode;
use hush_wire::api::SendResponse;
use hush_wire::limits::MAX_FRAME_LEN;
use hush_wire::ws::ClientFrame;

use crate::app::AppState;
use crate::auth::{AuthDevice, token_hash};
use crate::delivery::{Connection, StartSend, now_ms};
use crate::error::Failure;
use crate::metrics::METRICS;
use crate::store::{DeviceKey, when_free};

/// Write buffer of each WebSocket. tungstenite's default (128 KiB for each
/// buffer, the read buffer allocated up front) costs ~140 KB of RSS per idle
/// connection; 4 KiB holds a typical envelope, and larger frames still pass.
const WS_WRITE_BUFFER: usize = 4 * 1024;
/// Read buffer, allocated up front and kept for the connection's life: a
/// device sends mostly acknowledgements (11 bytes for one) and small sends;
/// a larger frame is read in steps of this size into a buffer reserved for
/// its whole length. 512 rather than 1024 saved ~590 B per idle connection
/// with no relay throughput difference above the noise (BENCHMARKS.md,
/// "Idle connections at 19,000").
const WS_READ_BUFFER: usize = 512;
/// Acknowledgement frames waiting for their deletion before the connection
/// stops reading more.
const ACK_QUEUE: usize = 16;

/// How long a closing connection waits for the device to take its close
/// frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

type Sink = SplitSink<WebSocket, Message>;
type SendFuture = BoxFuture<'static, (u64, usize, Result<SendResponse, Failure>)>;

/// `GET /v1/ws`
pub async fn connect(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    headers: HeaderMap,
    slot: Option<axum::Extension<crate::quota::SlotCell>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.is_draining() {
        return Failure::new(
            hush_wire::ErrorCode::Unavailable,
            "this node is shutting down: connect again (to another node)",
        )
        .into_response();
    }
    // axum refuses a request that is not an upgrade in plain text; answer in
    // JSON like every other refusal.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return Failure::bad_request(format!(
                "not a WebSocket upgrade request: {}",
                rejection.body_text()
            ))
            .into_response();
        }
    };
    // AuthDevice accepted this header.
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| token_hash(t.trim()))
        .unwrap_or_default();
    ws.max_message_size(MAX_FRAME_LEN)
        .max_frame_size(MAX_FRAME_LEN)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            // The socket holds the account's connection slot while open.
            let _slot = slot.and_then(|s| s.take());
            METRICS.connection(1);
            if let Err(e) = session(&state, &me, token, socket).await {
                tracing::debug!(device = ?me, error = %e, "connection ended");
            }
            METRICS.connection(-1);
        })
}

/// Drives the connection's [`Connection`] state machine: feeds it what
/// comes from the socket, the hub and the store, and does what it asks.
async fn session(
    state: &AppState,
    me: &DeviceKey,
    token: [u8; 32],
    socket: WebSocket,
) -> anyhow::Result<()> {
    let reg = state.hub.register(me);
    let mut conn = Connection::new(reg.id, Instant::now());
    // Sends waiting for their commit, answered as they complete.
    // Allocated at the first send: an idle connection should cost little.
    let mut sends: Option<Box<FuturesUnordered<SendFuture>>> = None;
    let (mut sink, mut stream) = socket.split();
    // Deleting acknowledged envelopes waits for a commit; a task of its own
    // does it (started at the first acknowledgement, so that an idle
    // connection costs nothing for it) so that delivery goes on meanwhile.
    let mut acker: Option<Acker> = None;
    // The frame being written, taken from `conn` one at a time so that the
    // socket is read while a slow device holds a write back.
    let mut out = Outgoing::default();
    let result: anyhow::Result<()> = async {
        loop {
            if reg.is_revoked() {
                close(&mut sink, reg.close_frame()).await;
                return Ok(());
            }
            while let Some(f) = conn.poll_fetch() {
                let batch =
                    when_free(|| state.store.fetch(me, f.after, f.limit)).await?;
                conn.handle_fetched(batch);
            }
            if let Some(seqs) = conn.poll_delete() {
                let acker = acker.get_or_insert_with(|| Acker::start(state, me));
                if acker.queue.send(seqs).await.is_err() {
                    // The task ended: its error says why.
                    return Ok(());
                }
            }
            if conn.poll_recheck() {
                let checked = recheck(state, me, &token).await.map_err(|f| f.0);
                conn.handle_recheck(checked, Instant::now());
            }
            while let Some(send) = conn.poll_send() {
                start_send(state, me, &mut conn, &mut sends, send);
            }
            out.refill(&mut conn);
            if conn.poll_close() && !out.has_frame() {
                close(&mut sink, None).await;
                return Ok(());
            }
            tokio::select! {
                written = out.step(&mut sink), if out.busy() => written?,
                _ = reg.wake.notified() => conn.handle_wake(),
                _ = reg.kick.notified() => {
                    close(&mut sink, reg.close_frame()).await;
                    return Ok(());
                }
                payload = reg.ephemeral.recv(), if conn.wants_ephemeral() => {
                    if !reg.is_revoked() {
                        conn.handle_ephemeral(&payload);
                    }
                }
                env = reg.push.recv(), if conn.wants_pushes() => {
                    // Everything handed over meanwhile goes out in one frame.
                    let mut next = Some(env);
                    while let Some(env) = next.take() {
                        if !reg.is_revoked() {
                            conn.handle_pushed(*env);
                        }
                        if conn.wants_pushes() {
                            next = reg.push.try_recv();
                        }
                    }
                }
                Some((id, len, result)) = next_answer(&mut sends), if in_progress(&sends) > 0 => {
                    conn.handle_sent(id, len, result.map_err(|f| f.0));
                }
                msg = stream.next(), if conn.wants_frames() => match msg {
                    Some(Ok(Message::Binary(bytes))) => match ClientFrame::decode(&bytes)? {
                        ClientFrame::Send { id, request } => {
                            conn.handle_send(id, request, bytes.len(), Instant::now());
                        }
                        ClientFrame::Ack(seqs) => conn.handle_ack(&seqs, now_ms()),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(_))) => anyhow::bail!("text frames are not part of the protocol"),
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        }
    }
    .await;
    if let Err(e) = &result {
        // Closed with a reason rather than dropped: a busy database says
        // "try again later" (1013), anything else "server error" (1011).
        let busy = matches!(e.downcast_ref(), Some(crate::store::StoreError::Busy));
        let (code, reason) = if busy {
            (1013, "the server is busy: connect again in a moment")
        } else {
            (1011, "the server ended this connection: connect again")
        };
        let frame = axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        };
        close(&mut sink, Some(frame)).await;
    }
    state.hub.unregister(me, reg.id);
    // Sends already taken are completed (the device hears of them when it
    // looks for its message on its next connection, as after a lost HTTP
    // answer).
    if let Some(mut sends) = sends {
        while sends.next().await.is_some() {}
    }
    // Acknowledgements already received are still deleted.
    let acked = match acker {
        Some(a) => a.finish().await,
        None => Ok(()),
    };
    result.and(acked)
}

/// The write side of a connection, in steps that can be interrupted: the
/// session reads the socket, and takes pushes and answers, while a device
/// that is slow to read holds a write back. A frame leaves `next` only when
/// the socket takes it, so dropping a step loses nothing.
#[derive(Default)]
struct Outgoing {
    next: Option<Message>,
    unflushed: bool,
}

impl Outgoing {
    /// Takes the next frame to write from `conn` if none is waiting.
    fn refill(&mut self, conn: &mut Connection) {
        if self.next.is_none() {
            self.next = conn
                .poll_transmit()
                .map(|frame| Message::Binary(frame.into()));
        }
    }

    fn has_frame(&self) -> bool {
        self.next.is_some()
    }

    /// Something is left to write or to flush.
    fn busy(&self) -> bool {
        self.next.is_some() || self.unflushed
    }

    /// Hands the waiting frame to the socket once it has room, or, with
    /// none waiting, flushes what it holds.
    async fn step(&mut self, sink: &mut Sink) -> Result<(), axum::Error> {
        std::future::poll_fn(|cx| {
            if self.next.is_some() {
                ready!(sink.poll_ready_unpin(cx))?;
                if let Some(frame) = self.next.take() {
                    sink.start_send_unpin(frame)?;
                }
                self.unflushed = true;
            } else {
                ready!(sink.poll_flush_unpin(cx))?;
                self.unflushed = false;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

/// Sends a close frame, giving a device that reads nothing [`CLOSE_WAIT`]
/// to take it.
async fn close(sink: &mut Sink, frame: Option<axum::extract::ws::CloseFrame>) {
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(frame))).await;
}

/// Starts a send the state machine let through, unless the account's rate
/// limit refuses it.
fn start_send(
    state: &AppState,
    me: &DeviceKey,
    conn: &mut Connection,
    sends: &mut Option<Box<FuturesUnordered<SendFuture>>>,
    send: StartSend,
) {
    if let Err(Failure(error)) = state.limits.check_account(&me.username) {
        conn.handle_sent(send.id, send.len, Err(error));
        return;
    }
    let (state, me) = (state.clone(), me.clone());
    let StartSend { id, request, len } = send;
    // A task of its own: the send runs to its end while this connection
    // waits on its socket. Polled only by the session loop, a send held
    // what it had taken from the database (a pooled connection, locks)
    // while the loop waited for a slow device to read, and other sends
    // queued behind it.
    let task = tokio::spawn(async move { crate::delivery::accept(&state, &me, request).await });
    sends.get_or_insert_default().push(Box::pin(async move {
        let result = task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a send task failed");
            Err(Failure::new(ErrorCode::Internal, "the send failed; retry"))
        });
        (id, len, result)
    }));
}

/// Sends of a connection waiting for their commit.
fn in_progress(sends: &Option<Box<FuturesUnordered<SendFuture>>>) -> usize {
    sends.as_ref().map_or(0, |s| s.len())
}

/// The next send of the connection to complete (pending while there is none).
async fn next_answer(
    sends: &mut Option<Box<FuturesUnordered<SendFuture>>>,
) -> Option<(u64, usize, Result<SendResponse, Failure>)> {
    match sends {
        Some(s) if !s.is_empty() => s.next().await,
        _ => std::future::pending().await,
    }
}

/// Checks again that the connection's token still names this device and
/// that its account may send.
async fn recheck(state: &AppState, me: &DeviceKey, token: &[u8; 32]) -> Result<(), Failure> {
    match state.store.authenticate(token).await? {
        Some(auth) if &auth.device == me => {
            if auth.state == crate::store::AccountState::Suspended {
                return Err(Failure::new(
                    ErrorCode::Suspended,
                    "this account is suspended by the server's operator",
                ));
            }
            Ok(())
        }
        _ => Err(Failure::unauthorized()),
    }
}

/// Deletes a connection's acknowledged envelopes, merging acknowledgements
/// that arrive during a commit into the next one.
struct Acker {
    queue: tokio::sync::mpsc::Sender<Vec<u64>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Acker {
    fn start(state: &AppState, me: &DeviceKey) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Vec<u64>>(ACK_QUEUE);
        let store = state.store.clone();
        let device = me.clone();
        let task = tokio::spawn(async move {
            while let Some(mut seqs) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    seqs.extend(more);
                }
                when_free(|| store.ack(&device, &seqs)).await?;
            }
            anyhow::Ok(())
        });
        Self { queue, task }
    }

    /// Waits until everything queued is deleted.
    async fn finish(self) -> anyhow::Result<()> {
        drop(self.queue);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        }
    }
}
