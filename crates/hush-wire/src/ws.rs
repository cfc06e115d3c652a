//! Frames of the per-device WebSocket, as binary WebSocket messages.
//!
//! Server to device:
//!
//! ```text
//! 0x01 envelope   u64 seq | u64 received_at_ms | u8 has_tag | [32] relay tag if has_tag | payload (rest)
//! 0x02 ephemeral  payload (rest)
//! 0x03 drained    (nothing: the stored queue has been sent; live traffic follows)
//! ```
//!
//! Device to server:
//!
//! ```text
//! 0x01 ack        u16 count | count x u64 seq
//! ```
//!
//! Decoders are bounded, reject trailing bytes and never panic.

use thiserror::Error;

use crate::limits::{MAX_ACKS_PER_FRAME, MAX_FRAME_LEN};

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

/// What the server sends a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// A stored message; delete it by acknowledging `seq`.
    Envelope(Envelope),
    /// A message that is never stored (typing, presence).
    Ephemeral(Vec<u8>),
    /// Everything stored before the connection has been sent.
    Drained,
}

/// What a device sends the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// These envelopes are safe in the device's store; delete them.
    Ack(Vec<u64>),
}

impl ServerFrame {
    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerFrame::Envelope(e) => {
                let mut out = Vec::with_capacity(1 + 8 + 8 + 1 + 32 + e.payload.len());
                out.push(0x01);
                out.extend_from_slice(&e.seq.to_be_bytes());
                out.extend_from_slice(&e.received_at_ms.to_be_bytes());
                match &e.relay_tag {
                    Some(tag) => {
                        out.push(1);
                        out.extend_from_slice(tag);
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&e.payload);
                out
            }
            ServerFrame::Ephemeral(p) => {
                let mut out = Vec::with_capacity(1 + p.len());
                out.push(0x02);
                out.extend_from_slice(p);
                out
            }
            ServerFrame::Drained => vec![0x03],
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
                let (seq, rest) = take_u64(rest)?;
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
                Ok(ServerFrame::Envelope(Envelope {
                    seq,
                    received_at_ms,
                    relay_tag,
                    payload: rest.to_vec(),
                }))
            }
            0x02 => Ok(ServerFrame::Ephemeral(rest.to_vec())),
            0x03 if rest.is_empty() => Ok(ServerFrame::Drained),
            0x03 => Err(FrameError::TrailingBytes),
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
            other => Err(FrameError::UnknownType(*other)),
        }
    }
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
        fn acks_round_trip(seqs in proptest::collection::vec(any::<u64>(), 0..MAX_ACKS_PER_FRAME)) {
            let f = ClientFrame::Ack(seqs);
            prop_assert_eq!(ClientFrame::decode(&f.encode()).unwrap(), f);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ServerFrame::decode(&bytes);
            let _ = ClientFrame::decode(&bytes);
        }
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
