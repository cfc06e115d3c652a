//! Frames of the per-device WebSocket, as binary WebSocket messages.
//!
//! Server to device:
//!
//! ```text
//! 0x01 envelope   u64 seq | u64 received_at_ms | u8 has_tag | [32] relay tag if has_tag | payload (rest)
//! 0x02 ephemeral  payload (rest)
//! 0x03 drained    (nothing: the stored queue has been sent; live traffic follows)
//! 0x04 sent       u64 id | u64 received_at_ms | u32 delivered_to
//!                 | if any recipient was missing: u16 count | count x (u8 len | username | u32 device id)
//! 0x05 refused    u64 id | the refusal as the JSON error body of the HTTP API (rest)
//! 0x06 envelopes  u16 count (2 to 256) | count x (u64 seq | u64 received_at_ms | u8 has_tag
//!                 | [32] relay tag if has_tag | u32 len | payload), seqs increasing
//! ```
//!
//! Envelopes that queue up for a connection go out together in one
//! `envelopes` frame; a lone one goes as `envelope`.
//!
//! Device to server:
//!
//! ```text
//! 0x01 ack        u16 count | count x u64 seq
//! 0x02 send       u64 id | u8 flags | u16 count | count x (u8 len | username | u32 device id)
//!                 | if flags & 2: u16 len | group id | u64 epoch | u8 len | token
//!                                 | u8 len | next token hash (32 bytes each when valid)
//!                 | if flags & 4: u8 len | franking commitment (32 bytes when valid)
//!                 | payload (rest)
//!                 flags: 1 ephemeral, 2 commit, 4 franking commitment
//! ```
//!
//! A send over the WebSocket means what `POST /v1/messages` with the same
//! body means, and is answered by `sent` or `refused` with the device's `id`
//! once it is durable for every recipient (or delivered, if ephemeral).
//! Several sends may be outstanding; answers come in any order.
//!
//! Decoders are bounded, reject trailing bytes and never panic.

use thiserror::Error;

use crate::api::{CommitClaim, SendRequest, SendResponse};
use crate::error::ApiError;
use crate::limits::{MAX_ACKS_PER_FRAME, MAX_ENVELOPES_PER_FRAME, MAX_FRAME_LEN, MAX_RECIPIENTS};
use crate::{Bytes, DeviceAddress};

const SEND_EPHEMERAL: u8 = 1;
const SEND_COMMIT: u8 = 2;
const SEND_FRANKING: u8 = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is empty or ends early.
    #[error("frame is truncated")]
    Truncated,
    /// The frame is larger than allowed.
    #[error("frame is {0} bytes, over the limit")]
    TooLarge(usize),
    /// The frame type is unknown.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// Bytes follow a complete frame.
    #[error("trailing bytes after the frame")]
    TrailingBytes,
    /// A field holds an impossible value.
    #[error("invalid frame: {0}")]
    Invalid(&'static str),
}

/// A stored message delivered to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Position in this device's queue; what the device acknowledges.
    pub seq: u64,
    /// When the server accepted the message, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// The server's franking tag binding the message's commitment to its
    /// sender, recipient and time.
    pub relay_tag: Option<[u8; 32]>,
    /// The MLS message.
    pub payload: Vec<u8>,
}

/// An envelope to encode without copying its parts first: the payload is
/// the concatenation of `payload` (parts may be empty).
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeRef<'a> {
    /// Position in the device's queue.
    pub seq: u64,
    /// When the server accepted the message.
    pub received_at_ms: u64,
    /// The franking tag, if the frame carries it.
    pub relay_tag: Option<&'a [u8; 32]>,
    /// The payload, in parts.
    pub payload: [&'a [u8]; 3],
}

impl<'a> EnvelopeRef<'a> {
    /// Borrows `e`.
    pub fn of(e: &'a Envelope) -> Self {
        Self {
            seq: e.seq,
            received_at_ms: e.received_at_ms,
            relay_tag: e.relay_tag.as_ref(),
            payload: [&e.payload, &[], &[]],
        }
    }

    fn payload_len(&self) -> usize {
        self.payload.iter().map(|p| p.len()).sum()
    }

    /// Bytes this envelope takes in an `envelopes` frame.
    pub fn batched_len(&self) -> usize {
        8 + 8 + 1 + if self.relay_tag.is_some() { 32 } else { 0 } + 4 + self.payload_len()
    }

    fn put_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.received_at_ms.to_be_bytes());
        match self.relay_tag {
            Some(tag) => {
                out.push(1);
                out.extend_from_slice(tag);
            }
            None => out.push(0),
        }
    }

    fn put_payload(&self, out: &mut Vec<u8>) {
        for p in self.payload {
            out.extend_from_slice(p);
        }
    }
}

/// The frame carrying `envelopes`: `envelope` for one, `envelopes` for
/// several. The caller keeps to [`MAX_ENVELOPES_PER_FRAME`], increasing
/// sequence numbers and [`MAX_FRAME_LEN`] in all (what is over is not
/// decodable); an empty slice makes an empty `envelopes` frame.
pub fn encode_envelopes(envelopes: &[EnvelopeRef<'_>]) -> Vec<u8> {
    if let [one] = envelopes {
        let mut out = Vec::with_capacity(1 + one.batched_len());
        out.push(0x01);
        one.put_head(&mut out);
        one.put_payload(&mut out);
        return out;
    }
    let len: usize = envelopes.iter().map(EnvelopeRef::batched_len).sum();
    let mut out = Vec::with_capacity(3 + len);
    out.push(0x06);
    out.extend_from_slice(&(envelopes.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    for e in envelopes {
        e.put_head(&mut out);
        let n = u32::try_from(e.payload_len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        e.put_payload(&mut out);
    }
    out
}

/// What the server sends a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// A stored message; delete it by acknowledging `seq`.
    Envelope(Envelope),
    /// Stored messages, in queue order, that queued up for the connection
    /// (2 to [`MAX_ENVELOPES_PER_FRAME`]); one `Ack` may cover them all.
    Envelopes(Vec<Envelope>),
    /// A message that is never stored (typing, presence).
    Ephemeral(Vec<u8>),
    /// Everything stored before the connection has been sent.
    Drained,
    /// The send `id` was accepted: durable for every recipient.
    Sent {
        /// The device's id for the send.
        id: u64,
        /// What `POST /v1/messages` would have answered.
        response: SendResponse,
    },
    /// The send `id` was refused; nothing was stored.
    Refused {
        /// The device's id for the send.
        id: u64,
        /// Why, as the HTTP API says it.
        error: ApiError,
    },
}

/// What a device sends the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// These envelopes are safe in the device's store; delete them.
    Ack(Vec<u64>),
    /// A send, answered by [`ServerFrame::Sent`] or [`ServerFrame::Refused`]
    /// with the same `id`.
    Send {
        /// The device's id for this send, echoed in the answer.
        id: u64,
        /// The same request as `POST /v1/messages` takes.
        request: SendRequest,
    },
}

impl ServerFrame {
    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerFrame::Envelope(e) => encode_envelopes(&[EnvelopeRef::of(e)]),
            ServerFrame::Envelopes(es) => {
                let refs: Vec<EnvelopeRef<'_>> = es.iter().map(EnvelopeRef::of).collect();
                encode_envelopes(&refs)
            }
            ServerFrame::Ephemeral(p) => {
                let mut out = Vec::with_capacity(1 + p.len());
                out.push(0x02);
                out.extend_from_slice(p);
                out
            }
            ServerFrame::Drained => vec![0x03],
            ServerFrame::Sent { id, response } => {
                let mut out = Vec::with_capacity(1 + 8 + 8 + 4);
                out.push(0x04);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&response.received_at_ms.to_be_bytes());
                let n = u32::try_from(response.delivered_to).unwrap_or(u32::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                if !response.missing.is_empty() {
                    put_addresses(&mut out, &response.missing);
                }
                out
            }
            ServerFrame::Refused { id, error } => {
                let mut out = vec![0x05];
                out.extend_from_slice(&id.to_be_bytes());
                // An ApiError always serializes.
                out.extend_from_slice(&serde_json::to_vec(error).unwrap_or_default());
                out
            }
        }
    }

    /// Decodes a frame from the server.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let (kind, rest) = bytes.split_first().ok_or(FrameError::Truncated)?;
        match kind {
            0x01 => {
                let (head, rest) = take_envelope_head(rest)?;
                Ok(ServerFrame::Envelope(Envelope {
                    payload: rest.to_vec(),
                    ..head
                }))
            }
            0x06 => decode_envelopes(rest),
            0x02 => Ok(ServerFrame::Ephemeral(rest.to_vec())),
            0x03 if rest.is_empty() => Ok(ServerFrame::Drained),
            0x03 => Err(FrameError::TrailingBytes),
            0x04 => {
                let (id, rest) = take_u64(rest)?;
                let (received_at_ms, rest) = take_u64(rest)?;
                let (n, rest) = take_u32(rest)?;
                let missing = if rest.is_empty() {
                    Vec::new()
                } else {
                    let (missing, rest) = take_addresses(rest)?;
                    if !rest.is_empty() {
                        return Err(FrameError::TrailingBytes);
                    }
                    missing
                };
                Ok(ServerFrame::Sent {
                    id,
                    response: SendResponse {
                        received_at_ms,
                        delivered_to: n as usize,
                        missing,
                    },
                })
            }
            0x05 => {
                let (id, rest) = take_u64(rest)?;
                let error = serde_json::from_slice(rest)
                    .map_err(|_| FrameError::Invalid("refusal is not an error body"))?;
                Ok(ServerFrame::Refused { id, error })
            }
            other => Err(FrameError::UnknownType(*other)),
        }
    }
}

impl ClientFrame {
    /// The binary encoding. At most [`MAX_ACKS_PER_FRAME`] sequence numbers
    /// are written; callers split larger batches.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientFrame::Ack(seqs) => {
                let seqs = seqs.get(..MAX_ACKS_PER_FRAME).unwrap_or(seqs);
                let mut out = Vec::with_capacity(3 + 8 * seqs.len());
                out.push(0x01);
                // MAX_ACKS_PER_FRAME fits in a u16.
                out.extend_from_slice(&(seqs.len() as u16).to_be_bytes());
                for s in seqs {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                out
            }
            ClientFrame::Send { id, request } => encode_send(*id, request),
        }
    }

    /// Decodes a frame from a device.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let (kind, rest) = bytes.split_first().ok_or(FrameError::Truncated)?;
        match kind {
            0x01 => {
                let (count, mut rest) = rest.split_at_checked(2).ok_or(FrameError::Truncated)?;
                let count = u16::from_be_bytes([
                    *count.first().ok_or(FrameError::Truncated)?,
                    *count.get(1).ok_or(FrameError::Truncated)?,
                ]) as usize;
                if count > MAX_ACKS_PER_FRAME {
                    return Err(FrameError::Invalid(
                        "too many acknowledgements in one frame",
                    ));
                }
                let mut seqs = Vec::with_capacity(count);
                for _ in 0..count {
                    let (s, r) = take_u64(rest)?;
                    seqs.push(s);
                    rest = r;
                }
                if !rest.is_empty() {
                    return Err(FrameError::TrailingBytes);
                }
                Ok(ClientFrame::Ack(seqs))
            }
            0x02 => decode_send(rest),
            other => Err(FrameError::UnknownType(*other)),
        }
    }
}

/// `u64 seq | u64 received_at_ms | u8 has_tag | [32] tag if has_tag`, as an
/// envelope with no payload yet, and the rest.
fn take_envelope_head(bytes: &[u8]) -> Result<(Envelope, &[u8]), FrameError> {
    let (seq, rest) = take_u64(bytes)?;
    let (received_at_ms, rest) = take_u64(rest)?;
    let (has_tag, rest) = rest.split_first().ok_or(FrameError::Truncated)?;
    let (relay_tag, rest) = match has_tag {
        0 => (None, rest),
        1 => {
            let (tag, rest) = rest.split_at_checked(32).ok_or(FrameError::Truncated)?;
            let tag = <[u8; 32]>::try_from(tag).map_err(|_| FrameError::Truncated)?;
            (Some(tag), rest)
        }
        _ => return Err(FrameError::Invalid("relay tag flag is neither 0 nor 1")),
    };
    let head = Envelope {
        seq,
        received_at_ms,
        relay_tag,
        payload: Vec::new(),
    };
    Ok((head, rest))
}

/// The body of an `envelopes` frame (the caller checked the frame's size).
fn decode_envelopes(bytes: &[u8]) -> Result<ServerFrame, FrameError> {
    let (count, mut rest) = take_u16(bytes)?;
    let count = usize::from(count);
    if count < 2 {
        return Err(FrameError::Invalid(
            "an envelopes frame holds two or more (one goes as an envelope frame)",
        ));
    }
    if count > MAX_ENVELOPES_PER_FRAME {
        return Err(FrameError::Invalid("too many envelopes in one frame"));
    }
    let mut envelopes: Vec<Envelope> = Vec::with_capacity(count);
    for _ in 0..count {
        let (head, r) = take_envelope_head(rest)?;
        if envelopes.last().is_some_and(|prev| prev.seq >= head.seq) {
            return Err(FrameError::Invalid(
                "envelopes of one frame must be in increasing seq order",
            ));
        }
        let (len, r) = take_u32(r)?;
        let (payload, r) = r
            .split_at_checked(len as usize)
            .ok_or(FrameError::Truncated)?;
        envelopes.push(Envelope {
            payload: payload.to_vec(),
            ..head
        });
        rest = r;
    }
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes);
    }
    Ok(ServerFrame::Envelopes(envelopes))
}

/// Encodes a send. What the frame cannot carry (over [`MAX_RECIPIENTS`]
/// recipients, usernames or a commitment over 255 bytes, a group id over
/// 65,535 bytes) is cut; all of it is over the limits the server enforces
/// anyway, so a caller that keeps to them loses nothing.
fn encode_send(id: u64, req: &SendRequest) -> Vec<u8> {
    let recipients = req
        .recipients
        .get(..MAX_RECIPIENTS)
        .unwrap_or(&req.recipients);
    let mut out =
        Vec::with_capacity(1 + 8 + 1 + 2 + recipients.len() * 24 + 32 + req.payload.0.len());
    out.push(0x02);
    out.extend_from_slice(&id.to_be_bytes());
    let mut flags = 0;
    if req.ephemeral {
        flags |= SEND_EPHEMERAL;
    }
    if req.commit.is_some() {
        flags |= SEND_COMMIT;
    }
    if req.franking_commitment.is_some() {
        flags |= SEND_FRANKING;
    }
    out.push(flags);
    put_addresses(&mut out, recipients);
    if let Some(c) = &req.commit {
        let g = c.group_id.as_slice();
        let g = g.get(..usize::from(u16::MAX)).unwrap_or(g);
        out.extend_from_slice(&(g.len() as u16).to_be_bytes());
        out.extend_from_slice(g);
        out.extend_from_slice(&c.epoch.to_be_bytes());
        put_short(&mut out, c.token.as_slice());
        put_short(&mut out, c.next_token_hash.as_slice());
    }
    if let Some(f) = &req.franking_commitment {
        put_short(&mut out, f.as_slice());
    }
    out.extend_from_slice(&req.payload.0);
    out
}

fn decode_send(rest: &[u8]) -> Result<ClientFrame, FrameError> {
    if rest.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(rest.len() + 1));
    }
    let (id, rest) = take_u64(rest)?;
    let (flags, rest) = rest.split_first().ok_or(FrameError::Truncated)?;
    if flags & !(SEND_EPHEMERAL | SEND_COMMIT | SEND_FRANKING) != 0 {
        return Err(FrameError::Invalid("unknown send flags"));
    }
    let (recipients, mut rest) = take_addresses(rest)?;
    let commit = if flags & SEND_COMMIT != 0 {
        let (len, r) = take_u16(rest)?;
        let (group_id, r) = r
            .split_at_checked(usize::from(len))
            .ok_or(FrameError::Truncated)?;
        let (epoch, r) = take_u64(r)?;
        let (token, r) = take_short(r)?;
        let (next_token_hash, r) = take_short(r)?;
        rest = r;
        Some(CommitClaim {
            group_id: Bytes(group_id.to_vec()),
            epoch,
            token: Bytes(token.to_vec()),
            next_token_hash: Bytes(next_token_hash.to_vec()),
        })
    } else {
        None
    };
    let franking_commitment = if flags & SEND_FRANKING != 0 {
        let (f, r) = take_short(rest)?;
        rest = r;
        Some(Bytes(f.to_vec()))
    } else {
        None
    };
    Ok(ClientFrame::Send {
        id,
        request: SendRequest {
            recipients,
            payload: Bytes(rest.to_vec()),
            ephemeral: flags & SEND_EPHEMERAL != 0,
            commit,
            franking_commitment,
        },
    })
}

/// Writes `u16 count | count x (u8 len | username | u32 device id)`; the
/// caller keeps to [`MAX_RECIPIENTS`] and usernames of at most 255 bytes
/// (longer ones are cut: the server refuses them anyway).
fn put_addresses(out: &mut Vec<u8>, addresses: &[DeviceAddress]) {
    let addresses = addresses.get(..MAX_RECIPIENTS).unwrap_or(addresses);
    // MAX_RECIPIENTS fits in a u16.
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    for r in addresses {
        let name = r.username.as_bytes();
        let name = name.get(..255).unwrap_or(name);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&r.device_id.to_be_bytes());
    }
}

fn take_addresses(bytes: &[u8]) -> Result<(Vec<DeviceAddress>, &[u8]), FrameError> {
    let (count, mut rest) = take_u16(bytes)?;
    let count = usize::from(count);
    if count > MAX_RECIPIENTS {
        return Err(FrameError::Invalid("too many recipients in one send"));
    }
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        let (name, r) = take_short(rest)?;
        let username = std::str::from_utf8(name)
            .map_err(|_| FrameError::Invalid("username is not UTF-8"))?
            .to_owned();
        let (device_id, r) = take_u32(r)?;
        addresses.push(DeviceAddress {
            username,
            device_id,
        });
        rest = r;
    }
    Ok((addresses, rest))
}

/// Writes `u8 len | bytes`, cut at 255 bytes (the server checks lengths,
/// as for HTTP).
fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = bytes.get(..255).unwrap_or(bytes);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn take_short(bytes: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (len, rest) = bytes.split_first().ok_or(FrameError::Truncated)?;
    rest.split_at_checked(usize::from(*len))
        .ok_or(FrameError::Truncated)
}

fn take_u16(bytes: &[u8]) -> Result<(u16, &[u8]), FrameError> {
    let (head, rest) = bytes.split_at_checked(2).ok_or(FrameError::Truncated)?;
    let head = <[u8; 2]>::try_from(head).map_err(|_| FrameError::Truncated)?;
    Ok((u16::from_be_bytes(head), rest))
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    let (head, rest) = bytes.split_at_checked(4).ok_or(FrameError::Truncated)?;
    let head = <[u8; 4]>::try_from(head).map_err(|_| FrameError::Truncated)?;
    Ok((u32::from_be_bytes(head), rest))
}

fn take_u64(bytes: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    let (head, rest) = bytes.split_at_checked(8).ok_or(FrameError::Truncated)?;
    let head = <[u8; 8]>::try_from(head).map_err(|_| FrameError::Truncated)?;
    Ok((u64::from_be_bytes(head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn envelopes_round_trip(seq: u64, at: u64, tag: Option<[u8; 32]>, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let f = ServerFrame::Envelope(Envelope { seq, received_at_ms: at, relay_tag: tag, payload });
            prop_assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn batches_round_trip(
            first: u64,
            entries in proptest::collection::vec((1u64..1000, any::<u64>(), any::<Option<[u8; 32]>>(), proptest::collection::vec(any::<u8>(), 0..256)), 2..40),
        ) {
            let mut seq = first % (u64::MAX / 2);
            let envelopes: Vec<Envelope> = entries
                .into_iter()
                .map(|(step, at, tag, payload)| {
                    seq += step;
                    Envelope { seq, received_at_ms: at, relay_tag: tag, payload }
                })
                .collect();
            let f = ServerFrame::Envelopes(envelopes);
            let bytes = f.encode();
            prop_assert_eq!(ServerFrame::decode(&bytes).unwrap(), f.clone());
            // The zero-copy encoder gives the same bytes from split payloads.
            let ServerFrame::Envelopes(es) = &f else { unreachable!() };
            let refs: Vec<EnvelopeRef<'_>> = es
                .iter()
                .map(|e| {
                    let (a, b) = e.payload.split_at(e.payload.len() / 2);
                    EnvelopeRef { payload: [a, &[], b], ..EnvelopeRef::of(e) }
                })
                .collect();
            prop_assert_eq!(encode_envelopes(&refs), bytes);
        }

        #[test]
        fn acks_round_trip(seqs in proptest::collection::vec(any::<u64>(), 0..MAX_ACKS_PER_FRAME)) {
            let f = ClientFrame::Ack(seqs);
            prop_assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn sends_round_trip(
            id: u64,
            names in proptest::collection::vec(("[a-z0-9_]{1,32}", any::<u32>()), 1..20),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            ephemeral: bool,
            commit in proptest::option::of((proptest::collection::vec(any::<u8>(), 1..64), any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>())),
            franking in proptest::option::of(any::<[u8; 32]>()),
        ) {
            let f = ClientFrame::Send {
                id,
                request: SendRequest {
                    recipients: names
                        .into_iter()
                        .map(|(username, device_id)| DeviceAddress { username, device_id })
                        .collect(),
                    payload: Bytes(payload),
                    ephemeral,
                    commit: commit.map(|(g, epoch, token, next)| CommitClaim {
                        group_id: Bytes(g),
                        epoch,
                        token: Bytes(token.to_vec()),
                        next_token_hash: Bytes(next.to_vec()),
                    }),
                    franking_commitment: franking.map(|f| Bytes(f.to_vec())),
                },
            };
            prop_assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn answers_round_trip(
            id: u64,
            at: u64,
            n in 0usize..100_000,
            message in ".{0,64}",
            missing in proptest::collection::vec(("[a-z0-9_]{1,32}", any::<u32>()), 0..5),
        ) {
            let missing = missing
                .into_iter()
                .map(|(username, device_id)| DeviceAddress { username, device_id })
                .collect();
            let f = ServerFrame::Sent { id, response: SendResponse { received_at_ms: at, delivered_to: n, missing } };
            prop_assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
            let f = ServerFrame::Refused {
                id,
                error: ApiError::new(crate::ErrorCode::EpochConflict, message),
            };
            prop_assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ServerFrame::decode(&bytes);
            let _ = ClientFrame::decode(&bytes);
        }
    }

    #[test]
    fn malformed_sends_are_refused() {
        let good = ClientFrame::Send {
            id: 7,
            request: SendRequest {
                recipients: vec![DeviceAddress {
                    username: "bob".into(),
                    device_id: 1,
                }],
                payload: Bytes(vec![1, 2, 3]),
                ephemeral: false,
                commit: Some(CommitClaim {
                    group_id: Bytes(vec![9; 4]),
                    epoch: 3,
                    token: Bytes(vec![6; 32]),
                    next_token_hash: Bytes(vec![8; 32]),
                }),
                franking_commitment: Some(Bytes(vec![5; 32])),
            },
        }
        .encode();
        // Every cut inside the header is refused; the payload is the rest.
        let header = 1 + 8 + 1 + 2 + (1 + 3 + 4) + (2 + 4 + 8 + 33 + 33) + (1 + 32);
        for cut in 1..header {
            assert!(ClientFrame::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flags = good.clone();
        flags[9] |= 0x80;
        assert_eq!(
            ClientFrame::decode(&flags),
            Err(FrameError::Invalid("unknown send flags"))
        );
        let mut many = good.clone();
        many[10..12].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            ClientFrame::decode(&many),
            Err(FrameError::Invalid("too many recipients in one send"))
        );
        let mut name = good;
        name[13] = 0xff;
        assert_eq!(
            ClientFrame::decode(&name),
            Err(FrameError::Invalid("username is not UTF-8"))
        );
        assert_eq!(
            ServerFrame::decode(&[5, 0, 0, 0, 0, 0, 0, 0, 1, b'{']),
            Err(FrameError::Invalid("refusal is not an error body"))
        );
        assert_eq!(
            ServerFrame::decode(&[4, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn malformed_batches_are_refused() {
        let e = |seq: u64| Envelope {
            seq,
            received_at_ms: 5,
            relay_tag: None,
            payload: vec![7; 3],
        };
        let good = ServerFrame::Envelopes(vec![e(1), e(2)]).encode();
        assert!(ServerFrame::decode(&good).is_ok());
        for cut in 1..good.len() {
            assert!(ServerFrame::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            ServerFrame::decode(&trailing),
            Err(FrameError::TrailingBytes)
        );
        // One envelope has one encoding: the envelope frame.
        assert_eq!(
            encode_envelopes(&[EnvelopeRef::of(&e(1))]),
            ServerFrame::Envelope(e(1)).encode()
        );
        let mut one = vec![6, 0, 1];
        one.extend_from_slice(&good[3..3 + 8 + 8 + 1 + 4 + 3]);
        assert!(matches!(
            ServerFrame::decode(&one),
            Err(FrameError::Invalid(_))
        ));
        let backwards = ServerFrame::Envelopes(vec![e(2), e(2)]).encode();
        assert_eq!(
            ServerFrame::decode(&backwards),
            Err(FrameError::Invalid(
                "envelopes of one frame must be in increasing seq order"
            ))
        );
        let mut many = good.clone();
        many[1..3].copy_from_slice(&((MAX_ENVELOPES_PER_FRAME + 1) as u16).to_be_bytes());
        assert_eq!(
            ServerFrame::decode(&many),
            Err(FrameError::Invalid("too many envelopes in one frame"))
        );
        // A length past the end is truncation, not an allocation.
        let mut long = good;
        long[3 + 17..3 + 21].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(ServerFrame::decode(&long), Err(FrameError::Truncated));
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert_eq!(ServerFrame::decode(&[]), Err(FrameError::Truncated));
        assert_eq!(ServerFrame::decode(&[9]), Err(FrameError::UnknownType(9)));
        assert_eq!(ServerFrame::decode(&[3, 0]), Err(FrameError::TrailingBytes));
        assert_eq!(
            ClientFrame::decode(&[1, 0, 1, 0]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            ClientFrame::decode(&[1, 0, 0, 7]),
            Err(FrameError::TrailingBytes)
        );
        assert_eq!(
            ClientFrame::decode(&[1, 0xff, 0xff]),
            Err(FrameError::Invalid(
                "too many acknowledgements in one frame"
            ))
        );
    }
}
