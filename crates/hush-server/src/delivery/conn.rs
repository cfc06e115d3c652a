//! One device connection's delivery queue, as a state machine with no I/O.
//!
//! What comes in goes to a `handle_*` method; what must go out is taken
//! from the `poll_*` methods until they return nothing, after every
//! `handle_*` call. The driver (`api::ws`) owns the socket, the hub's
//! channels and the store, and does what the machine asks, in any order
//! except that frames go out in the order `poll_transmit` gives them.
//!
//! The queue: the store is the source of truth. At the start, after a
//! wake-up, after an envelope handed over out of order and while flow
//! control held a read back, the machine asks for a store read
//! ([`Connection::poll_fetch`]) after the last sequence number it sent.
//! An envelope handed over by a send ([`Connection::handle_pushed`]) is sent
//! as it is when it is the next one and nothing waits in the store; else
//! it is dropped and the store read again once it is written. Envelopes
//! that queue up before the next write go out in one frame.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_proto::sealed::{HEADER_LEN, SEALED_MAGIC};
use hush_wire::api::{SendRequest, SendResponse};
use hush_wire::limits::MAX_ENVELOPES_PER_FRAME;
use hush_wire::ws::{EnvelopeRef, ServerFrame, encode_envelopes};
use hush_wire::{ApiError, ErrorCode};

use super::EarlyAck;
use crate::hub::Pushed;
use crate::metrics::METRICS;
use crate::store::{FETCH_MAX_BYTES, StoredEnvelope};

/// Envelopes fetched from the store per read.
pub const FETCH_BATCH: usize = 256;
/// Envelopes sent but not yet acknowledged before the server waits for acks:
/// flow control for slow devices.
pub const MAX_IN_FLIGHT: usize = 2048;
/// Sends over one connection waiting for their commit before the connection
/// stops reading more.
pub const MAX_SENDS_IN_FLIGHT: usize = 256;
/// Bytes of send frames over one connection waiting for their commit
/// before the connection stops reading more (one send always fits).
pub const MAX_SEND_BYTES_IN_FLIGHT: usize = 4 << 20;
/// How long a connection's credentials are trusted for its sends before
/// they are checked again (a removed device or a suspended account stops
/// sending within this).
pub const AUTH_RECHECK: Duration = Duration::from_secs(5);
/// Bytes of envelopes batched into one frame before the next frame starts
/// (a larger envelope goes alone).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Frames waiting to be written beyond which the connection takes no more
/// ephemeral payloads (typing, presence: dropped at the hub meanwhile).
pub const MAX_UNWRITTEN_EPHEMERAL: usize = 64;
/// Frames waiting to be written beyond which the connection stops reading
/// the device: only a device that sends and never reads the answers gets
/// there (envelopes stop at [`MAX_IN_FLIGHT`] and sends at
/// [`MAX_SENDS_IN_FLIGHT`] before that). Below it the connection reads
/// while its writes wait, so that a device writing to it while the server
/// writes to the device never stalls both.
pub const MAX_UNWRITTEN: usize = 4096;

/// A store read the machine asks for: up to `limit` envelopes with a
/// sequence number above `after`; its result goes to
/// [`Connection::handle_fetched`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    /// The last sequence number sent.
    pub after: u64,
    /// The most envelopes to read.
    pub limit: usize,
}

/// A send to start: the driver runs `delivery::accept` (or refuses it, say
/// for the rate limit) and reports its outcome to
/// [`Connection::handle_sent`] with the same `id` and `len`.
#[derive(Debug)]
pub struct StartSend {
    /// The device's id for the send.
    pub id: u64,
    /// What it asks.
    pub request: SendRequest,
    /// Its frame's length, counted until it is answered.
    pub len: usize,
}

/// An envelope's stored bytes: shared by every recipient of a send (handed
/// over), or read from the store for this device.
#[derive(Debug)]
enum Body {
    Shared(Arc<[u8]>),
    Read(Vec<u8>),
}

/// An envelope waiting to be written to the socket.
#[derive(Debug)]
struct Ready {
    seq: u64,
    received_at_ms: u64,
    relay_tag: Option<Vec<u8>>,
    body: Body,
}

impl Ready {
    /// How it goes out: a sealed row as one sealed envelope (magic, header,
    /// body, see [`crate::sealing`]); a row from before sealing as stored.
    fn as_wire(&self) -> EnvelopeRef<'_> {
        let body: &[u8] = match &self.body {
            Body::Shared(b) => b,
            Body::Read(b) => b,
        };
        match self.relay_tag.as_deref() {
            Some(header) if header.len() == HEADER_LEN => EnvelopeRef {
                seq: self.seq,
                received_at_ms: self.received_at_ms,
                relay_tag: None,
                payload: [&SEALED_MAGIC, header, body],
            },
            tag => EnvelopeRef {
                seq: self.seq,
                received_at_ms: self.received_at_ms,
                relay_tag: tag.and_then(|t| <&[u8; 32]>::try_from(t).ok()),
                payload: [body, &[], &[]],
            },
        }
    }
}

/// A frame waiting to be written.
#[derive(Debug)]
enum Out {
    /// Envelopes in queue order, and their bytes in a batch.
    Envelopes(Vec<Ready>, usize),
    /// Any other frame, encoded.
    Frame(Vec<u8>),
}

/// A sent envelope waiting for its acknowledgement.
#[derive(Debug)]
struct InFlight {
    received_at_ms: u64,
    /// Set when it was handed over before its write.
    early: Option<Arc<EarlyAck>>,
}

/// Where the credentials check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recheck {
    Idle,
    Wanted,
    Running,
}

/// One device connection's delivery state (see the module documentation).
#[derive(Debug)]
pub struct Connection {
    /// The hub's id of this connection (marks what it sent early).
    id: u64,
    last_sent: u64,
    /// The store may hold envelopes not sent yet.
    need_read: bool,
    /// A read was asked for and has not answered.
    fetching: bool,
    /// Envelopes handed over while a read was running: looked at after it.
    parked: Vec<Pushed>,
    /// `drained` was queued.
    drained: bool,
    in_flight: HashMap<u64, InFlight>,
    out: VecDeque<Out>,
    /// Acknowledged envelopes to delete from the store.
    deletes: Vec<u64>,
    /// Sends received and not answered yet, and their frames' bytes.
    sends: usize,
    send_bytes: usize,
    /// Sends waiting for the credentials check before they start.
    held: VecDeque<StartSend>,
    recheck: Recheck,
    authenticated_at: Instant,
    /// Close once the frames queued are written.
    closing: bool,
}

impl Connection {
    /// A connection that authenticated at `now`, with hub id `id`; it starts
    /// by reading the stored queue.
    pub fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            last_sent: 0,
            need_read: true,
            fetching: false,
            parked: Vec::new(),
            drained: false,
            in_flight: HashMap::new(),
            out: VecDeque::new(),
            deletes: Vec::new(),
            sends: 0,
            send_bytes: 0,
            held: VecDeque::new(),
            recheck: Recheck::Idle,
            authenticated_at: now,
            closing: false,
        }
    }

    // ------------------------------------------------------------ in

    /// The device's queue has grown.
    pub fn handle_wake(&mut self) {
        self.need_read = true;
    }

    /// An envelope a send handed to this connection (durable, or about to
    /// be when `early` is set).
    pub fn handle_pushed(&mut self, env: Pushed) {
        if self.fetching {
            self.parked.push(env);
        } else {
            self.offer(env);
        }
    }

    /// The result of the read [`Connection::poll_fetch`] asked for.
    pub fn handle_fetched(&mut self, batch: Vec<StoredEnvelope>) {
        self.fetching = false;
        let bytes: u64 = batch.iter().map(|e| e.payload.len() as u64).sum();
        if batch.len() >= FETCH_BATCH || bytes >= FETCH_MAX_BYTES {
            self.need_read = true;
        }
        for env in batch {
            if env.seq <= self.last_sent {
                continue;
            }
            self.last_sent = env.seq;
            self.in_flight.insert(
                env.seq,
                InFlight {
                    received_at_ms: env.received_at_ms,
                    early: None,
                },
            );
            self.queue_envelope(Ready {
                seq: env.seq,
                received_at_ms: env.received_at_ms,
                relay_tag: env.relay_tag,
                body: Body::Read(env.payload),
            });
        }
        for env in std::mem::take(&mut self.parked) {
            self.offer(env);
        }
        if !self.need_read && !self.drained {
            self.drained = true;
            self.out
                .push_back(Out::Frame(ServerFrame::Drained.encode()));
        }
    }

    /// The device acknowledged `seqs` (at `now_ms`): safe in its store.
    pub fn handle_ack(&mut self, seqs: &[u64], now_ms: u64) {
        let mut unwritten = 0;
        for &seq in seqs {
            if let Some(f) = self.in_flight.remove(&seq) {
                METRICS.delivered(now_ms.saturating_sub(f.received_at_ms));
                // Acknowledged before its write: never written, nothing to
                // delete.
                if f.early.is_some_and(|e| e.ack()) {
                    unwritten += 1;
                    continue;
                }
            }
            self.deletes.push(seq);
        }
        METRICS.unwritten(unwritten);
    }

    /// An ephemeral payload for the device.
    pub fn handle_ephemeral(&mut self, payload: &[u8]) {
        let mut frame = Vec::with_capacity(1 + payload.len());
        frame.push(0x02);
        frame.extend_from_slice(payload);
        self.out.push_back(Out::Frame(frame));
    }

    /// The device sent `request` as send `id` in a frame of `len` bytes, at
    /// `now`. It starts at once ([`Connection::poll_send`]) unless the
    /// credentials are due for a check ([`Connection::poll_recheck`]).
    pub fn handle_send(&mut self, id: u64, request: SendRequest, len: usize, now: Instant) {
        self.sends += 1;
        self.send_bytes += len;
        self.held.push_back(StartSend { id, request, len });
        if self.recheck == Recheck::Idle
            && now.saturating_duration_since(self.authenticated_at) >= AUTH_RECHECK
        {
            self.recheck = Recheck::Wanted;
        }
    }

    /// The check [`Connection::poll_recheck`] asked for answered, at `now`:
    /// the held sends start, or are refused with its error (and, unless
    /// the check itself failed, the connection closes).
    pub fn handle_recheck(&mut self, result: Result<(), ApiError>, now: Instant) {
        self.recheck = Recheck::Idle;
        match result {
            Ok(()) => self.authenticated_at = now,
            Err(error) => {
                for send in std::mem::take(&mut self.held) {
                    self.handle_sent(send.id, send.len, Err(error.clone()));
                }
                // Only a verdict on the token or the account closes the
                // connection; a failed or busy database is checked again.
                if !matches!(error.code, ErrorCode::Internal | ErrorCode::Unavailable) {
                    self.closing = true;
                }
            }
        }
    }

    /// Send `id` (a frame of `len` bytes) was accepted or refused.
    pub fn handle_sent(&mut self, id: u64, len: usize, result: Result<SendResponse, ApiError>) {
        self.sends = self.sends.saturating_sub(1);
        self.send_bytes = self.send_bytes.saturating_sub(len);
        let frame = match result {
            Ok(response) => ServerFrame::Sent { id, response },
            Err(error) => ServerFrame::Refused { id, error },
        };
        self.out.push_back(Out::Frame(frame.encode()));
    }

    // ------------------------------------------------------------ out

    /// The next frame to write, encoded.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        Some(match self.out.pop_front()? {
            Out::Envelopes(batch, _) => {
                let wire: Vec<EnvelopeRef<'_>> = batch.iter().map(Ready::as_wire).collect();
                encode_envelopes(&wire)
            }
            Out::Frame(frame) => frame,
        })
    }

    /// A store read to do, if one is due and flow control allows it.
    pub fn poll_fetch(&mut self) -> Option<Fetch> {
        if !self.need_read || self.fetching || self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        self.need_read = false;
        self.fetching = true;
        Some(Fetch {
            after: self.last_sent,
            limit: FETCH_BATCH,
        })
    }

    /// Acknowledged envelopes to delete from the store.
    pub fn poll_delete(&mut self) -> Option<Vec<u64>> {
        (!self.deletes.is_empty()).then(|| std::mem::take(&mut self.deletes))
    }

    /// Whether to check the connection's credentials again now; the answer
    /// goes to [`Connection::handle_recheck`].
    pub fn poll_recheck(&mut self) -> bool {
        if self.recheck != Recheck::Wanted {
            return false;
        }
        self.recheck = Recheck::Running;
        true
    }

    /// A send to start.
    pub fn poll_send(&mut self) -> Option<StartSend> {
        if self.recheck != Recheck::Idle {
            return None;
        }
        self.held.pop_front()
    }

    /// Whether to close the connection (once the frames before are written).
    pub fn poll_close(&self) -> bool {
        self.closing && self.out.is_empty()
    }

    /// Whether to take more envelopes handed over (flow control: the device
    /// has not acknowledged too many).
    pub fn wants_pushes(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Whether to read more frames from the device: not while too many of
    /// its sends wait for their commit or too many frames wait to be
    /// written, nor while closing.
    pub fn wants_frames(&self) -> bool {
        !self.closing
            && self.sends < MAX_SENDS_IN_FLIGHT
            && self.send_bytes < MAX_SEND_BYTES_IN_FLIGHT
            && self.out.len() < MAX_UNWRITTEN
    }

    /// Whether to take an ephemeral payload: not while the device is slow
    /// to read what is already waiting (typing and presence are not worth
    /// queueing behind it).
    pub fn wants_ephemeral(&self) -> bool {
        self.out.len() < MAX_UNWRITTEN_EPHEMERAL
    }

    /// Envelopes sent and not acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // ------------------------------------------------------------ inside

    /// Sends a handed-over envelope if it is the next one and nothing waits
    /// in the store; otherwise leaves it to a store read.
    fn offer(&mut self, env: Pushed) {
        let next = self.last_sent.checked_add(1) == Some(env.seq);
        if next && !self.need_read && self.in_flight.len() < MAX_IN_FLIGHT {
            self.last_sent = env.seq;
            if let Some(e) = &env.early {
                e.mark_sent(self.id);
            }
            self.in_flight.insert(
                env.seq,
                InFlight {
                    received_at_ms: env.received_at_ms,
                    early: env.early,
                },
            );
            self.queue_envelope(Ready {
                seq: env.seq,
                received_at_ms: env.received_at_ms,
                relay_tag: env.relay_tag,
                body: Body::Shared(env.payload),
            });
            return;
        }
        if env.seq > self.last_sent {
            // Readable once written; its sender then wakes this connection.
            self.need_read = true;
        }
        if let Some(e) = &env.early {
            // Not sent here, so not acknowledged early: its write need not
            // wait for an acknowledgement.
            e.take_for_write();
        }
    }

    /// Appends an envelope to the last batch waiting, or starts one.
    fn queue_envelope(&mut self, ready: Ready) {
        let len = ready.as_wire().batched_len();
        if let Some(Out::Envelopes(batch, bytes)) = self.out.back_mut()
            && batch.len() < MAX_ENVELOPES_PER_FRAME
            && bytes.saturating_add(len) <= BATCH_BYTES
        {
            batch.push(ready);
            *bytes += len;
            return;
        }
        self.out.push_back(Out::Envelopes(vec![ready], len));
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
