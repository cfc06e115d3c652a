//! The per-device WebSocket: drain the stored queue in order, then push new
//! envelopes as they arrive; delete each only when the device acknowledges it.
//! The device may also send over it: a send frame means what
//! `POST /v1/messages` means, and its answer comes back on the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use hush_wire::ErrorCode;
use hush_wire::api::SendResponse;
use hush_wire::limits::MAX_FRAME_LEN;
use hush_wire::ws::{ClientFrame, ServerFrame};

use super::now_ms;
use crate::app::AppState;
use crate::auth::{AuthDevice, token_hash};
use crate::error::Failure;
use crate::metrics::METRICS;
use crate::store::{DeviceKey, EarlyAck, FETCH_MAX_BYTES};

/// Envelopes fetched from the store per read.
const FETCH_BATCH: usize = 256;
/// Envelopes sent but not yet acknowledged before the server waits for acks:
/// flow control for slow devices.
const MAX_IN_FLIGHT: usize = 2048;
/// Write buffer of each WebSocket. tungstenite's default (128 KiB for each
/// buffer, the read buffer allocated up front) costs ~140 KB of RSS per idle
/// connection; 4 KiB holds a typical envelope, and larger frames still pass.
const WS_WRITE_BUFFER: usize = 4 * 1024;
/// Read buffer: a device sends mostly acknowledgements (11 bytes for one)
/// and small sends; a larger frame is read in several steps.
const WS_READ_BUFFER: usize = 1024;
/// Acknowledgement frames waiting for their deletion before the connection
/// stops reading more.
const ACK_QUEUE: usize = 16;
/// Sends over one connection waiting for their commit before the connection
/// stops reading more.
const MAX_SENDS_IN_FLIGHT: usize = 256;
/// Bytes of send frames over one connection waiting for their commit
/// before the connection stops reading more (one send always fits).
const MAX_SEND_BYTES_IN_FLIGHT: usize = 4 << 20;
/// How long a connection's credentials are trusted for its sends before
/// they are checked again (a removed device or a suspended account stops
/// sending within this).
const AUTH_RECHECK: Duration = Duration::from_secs(5);

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

async fn session(
    state: &AppState,
    me: &DeviceKey,
    token: [u8; 32],
    socket: WebSocket,
) -> anyhow::Result<()> {
    let mut reg = state.hub.register(me);
    // Sends waiting for their commit, answered as they complete.
    // Allocated at the first send: an idle connection should cost little.
    let mut sends: Option<Box<FuturesUnordered<SendFuture>>> = None;
    // Bytes of the frames of those sends.
    let mut sends_bytes = 0usize;
    let mut authenticated_at = Instant::now();
    let (mut sink, mut stream) = socket.split();
    // Deleting acknowledged envelopes waits for a commit; a task of its own
    // does it (started at the first acknowledgement, so that an idle
    // connection costs nothing for it) so that delivery goes on meanwhile.
    let mut acker: Option<Acker> = None;
    let mut last_sent = 0u64;
    // seq -> when the server accepted it (for the delivery latency metric),
    // and, for an envelope handed over before it was written, its early
    // acknowledgement.
    let mut in_flight: HashMap<u64, (u64, Option<Arc<EarlyAck>>)> = HashMap::new();
    let mut drained = false;
    // The store may hold envelopes this connection has not sent: read it.
    // Set at the start, by a wake-up, by a handed-over envelope that is not
    // the next one, and while flow control stopped a read.
    let mut need_read = true;
    let result: anyhow::Result<()> = async {
        loop {
            if reg.is_revoked() {
                let _ = sink.send(Message::Close(reg.close_frame())).await;
                return Ok(());
            }
            // Everything stored that this connection has not sent yet.
            while need_read && in_flight.len() < MAX_IN_FLIGHT {
                let batch = state.store.fetch(me, last_sent, FETCH_BATCH).await?;
                let bytes: u64 = batch.iter().map(|e| e.payload.len() as u64).sum();
                need_read = batch.len() >= FETCH_BATCH || bytes >= FETCH_MAX_BYTES;
                for env in batch {
                    last_sent = env.seq;
                    in_flight.insert(env.seq, (env.received_at_ms, None));
                    let frame = ServerFrame::Envelope(crate::sealing::envelope(
                        env.seq,
                        env.received_at_ms,
                        env.relay_tag.as_deref(),
                        &env.payload,
                    ));
                    sink.feed(Message::Binary(frame.encode().into())).await?;
                }
            }
            if !drained && !need_read {
                drained = true;
                sink.feed(Message::Binary(ServerFrame::Drained.encode().into()))
                    .await?;
            }
            sink.flush().await?;
            tokio::select! {
                _ = reg.wake.notified() => need_read = true,
                _ = reg.kick.notified() => {
                    let _ = sink.send(Message::Close(reg.close_frame())).await;
                    return Ok(());
                }
                Some(payload) = reg.ephemeral.recv() => {
                    if reg.is_revoked() {
                        continue;
                    }
                    sink.feed(Message::Binary(ServerFrame::Ephemeral(payload.to_vec()).encode().into())).await?;
                }
                Some(env) = reg.push.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    if reg.is_revoked() {
                        continue;
                    }
                    // Durable, or about to be. Sent as is only when it is the
                    // next in the queue and nothing before it waits in the
                    // store; otherwise the store is read, in order (an
                    // envelope not yet written is readable once it is, and
                    // its sender then wakes this connection). Whatever else
                    // was handed over goes out before the next flush.
                    let mut next = Some(env);
                    while let Some(env) = next.take() {
                        if !need_read && last_sent.checked_add(1) == Some(env.seq) {
                            last_sent = env.seq;
                            if let Some(e) = &env.early {
                                e.mark_sent(reg.id);
                            }
                            in_flight.insert(env.seq, (env.received_at_ms, env.early.clone()));
                            let frame = ServerFrame::Envelope(crate::sealing::envelope(
                                env.seq,
                                env.received_at_ms,
                                env.relay_tag.as_deref(),
                                &env.payload,
                            ));
                            sink.feed(Message::Binary(frame.encode().into())).await?;
                        } else if env.seq > last_sent {
                            need_read = true;
                        }
                        if in_flight.len() < MAX_IN_FLIGHT {
                            next = reg.push.try_recv().ok();
                        }
                    }
                }
                Some((id, len, result)) = next_answer(&mut sends), if in_progress(&sends) > 0 => {
                    sends_bytes -= len;
                    let frame = match result {
                        Ok(response) => ServerFrame::Sent { id, response },
                        Err(Failure(error)) => ServerFrame::Refused { id, error },
                    };
                    sink.feed(Message::Binary(frame.encode().into())).await?;
                }
                msg = stream.next(), if in_progress(&sends) < MAX_SENDS_IN_FLIGHT
                    && sends_bytes < MAX_SEND_BYTES_IN_FLIGHT => match msg {
                    Some(Ok(Message::Binary(bytes))) => match ClientFrame::decode(&bytes)? {
                    ClientFrame::Send { id, request } => {
                        if authenticated_at.elapsed() >= AUTH_RECHECK {
                            if let Err(Failure(error)) = recheck(state, me, &token).await {
                                let closing = error.code != ErrorCode::Internal;
                                let frame = ServerFrame::Refused { id, error };
                                sink.feed(Message::Binary(frame.encode().into())).await?;
                                if closing {
                                    let _ = sink.send(Message::Close(None)).await;
                                    return Ok(());
                                }
                                continue;
                            }
                            authenticated_at = Instant::now();
                        }
                        if let Err(Failure(error)) = state.limits.check_account(&me.username) {
                            let frame = ServerFrame::Refused { id, error };
                            sink.feed(Message::Binary(frame.encode().into())).await?;
                            continue;
                        }
                        let (state, me) = (state.clone(), me.clone());
                        let len = bytes.len();
                        sends_bytes += len;
                        sends.get_or_insert_default().push(Box::pin(async move {
                            (id, len, super::messages::accept(&state, &me, request).await)
                        }));
                    }
                    ClientFrame::Ack(mut seqs) => {
                        let now = now_ms();
                        // Acknowledged before their write: never written,
                        // nothing to delete.
                        let n = seqs.len();
                        seqs.retain(|s| match in_flight.remove(s) {
                            Some((at, early)) => {
                                METRICS.delivered(now.saturating_sub(at));
                                !early.is_some_and(|e| e.ack())
                            }
                            None => true,
                        });
                        METRICS.unwritten(n - seqs.len());
                        if seqs.is_empty() {
                            continue;
                        }
                        let acker = acker.get_or_insert_with(|| Acker::start(state, me));
                        if acker.queue.send(seqs).await.is_err() {
                            // The task ended: its error says why.
                            return Ok(());
                        }
                    }
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
                store.ack(&device, &seqs).await?;
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
