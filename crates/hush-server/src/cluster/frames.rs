//! The frames nodes send one another over NATS. They come from other nodes
//! of the same deployment, not from users; still, anything malformed
//! decodes to `None` and is dropped, never a panic.

use crate::hub::Pushed;

pub(super) const WAKE: u8 = 1;
pub(super) const EPHEMERAL: u8 = 2;
pub(super) const CLAIM: u8 = 3;
pub(super) const REVOKE: u8 = 4;
pub(super) const CHANNEL_POSTED: u8 = 5;
pub(super) const ENVELOPE: u8 = 6;

/// Largest payload carried with its wake-up; a larger envelope gets a plain
/// wake-up and is read from the database by the device's node.
pub(super) const CARRY_MAX: usize = 16 << 10;

/// The frame that carries a written envelope to the node of its device:
/// tag, sequence number, time received, relay tag length (0: none), relay
/// tag, payload. `None` when the payload is too large to carry.
pub(super) fn encode_envelope(e: &Pushed) -> Option<Vec<u8>> {
    let tag = e.relay_tag.as_deref().unwrap_or_default();
    let tag_len = u16::try_from(tag.len()).ok()?;
    if e.payload.len() > CARRY_MAX {
        return None;
    }
    let mut frame = Vec::with_capacity(19 + tag.len() + e.payload.len());
    frame.push(ENVELOPE);
    frame.extend_from_slice(&e.seq.to_be_bytes());
    frame.extend_from_slice(&e.received_at_ms.to_be_bytes());
    frame.extend_from_slice(&tag_len.to_be_bytes());
    frame.extend_from_slice(tag);
    frame.extend_from_slice(&e.payload);
    Some(frame)
}

fn decode_envelope(bytes: &[u8]) -> Option<Carried<'_>> {
    let (seq, rest) = bytes.split_at_checked(8)?;
    let (received, rest) = rest.split_at_checked(8)?;
    let (tag_len, rest) = rest.split_at_checked(2)?;
    let tag_len = usize::from(u16::from_be_bytes(tag_len.try_into().ok()?));
    let (tag, payload) = rest.split_at_checked(tag_len)?;
    Some(Carried {
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        received_at_ms: u64::from_be_bytes(received.try_into().ok()?),
        relay_tag: (!tag.is_empty()).then_some(tag),
        payload,
    })
}

/// Decodes a channel post's wake-up: the channel id and the post's number.
pub(super) fn decode_channel_posted(bytes: &[u8]) -> Option<([u8; 32], u64)> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != CHANNEL_POSTED {
        return None;
    }
    let (id, number) = rest.split_at_checked(32)?;
    Some((
        id.try_into().ok()?,
        u64::from_be_bytes(number.try_into().ok()?),
    ))
}

/// What arrives on a device subject.
pub(super) enum Frame<'a> {
    Wake,
    Revoke,
    Ephemeral(&'a [u8]),
    Claim { at: u64, node: &'a [u8] },
    Envelope(Carried<'a>),
}

/// A written envelope carried to the device's node.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Carried<'a> {
    pub seq: u64,
    pub received_at_ms: u64,
    /// The sealed header (or relay tag); `None` when it has none.
    pub relay_tag: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// Decodes what arrives on a device subject; `None` for anything malformed.
pub(super) fn decode(bytes: &[u8]) -> Option<Frame<'_>> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        WAKE if rest.is_empty() => Some(Frame::Wake),
        REVOKE if rest.is_empty() => Some(Frame::Revoke),
        EPHEMERAL => Some(Frame::Ephemeral(rest)),
        CLAIM => {
            let (at, node) = rest.split_at_checked(8)?;
            let at = u64::from_be_bytes(at.try_into().ok()?);
            (!node.is_empty()).then_some(Frame::Claim { at, node })
        }
        ENVELOPE => decode_envelope(rest).map(Frame::Envelope),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_posts_decode_only_whole() {
        let mut frame = vec![CHANNEL_POSTED];
        frame.extend_from_slice(&[7; 32]);
        frame.extend_from_slice(&9u64.to_be_bytes());
        assert_eq!(decode_channel_posted(&frame), Some(([7; 32], 9)));
        assert!(decode_channel_posted(&frame[..40]).is_none());
        assert!(decode_channel_posted(&[&frame[..], &[0][..]].concat()).is_none());
        assert!(decode_channel_posted(&[]).is_none());
        let mut wrong = frame.clone();
        wrong[0] = WAKE;
        assert!(decode_channel_posted(&wrong).is_none());
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[9]).is_none());
        assert!(decode(&[WAKE, 0]).is_none());
        assert!(decode(&[CLAIM, 1, 2, 3]).is_none());
        assert!(decode(&[CLAIM, 0, 0, 0, 0, 0, 0, 0, 1]).is_none());
        assert!(matches!(decode(&[WAKE]), Some(Frame::Wake)));
        assert!(matches!(decode(&[REVOKE]), Some(Frame::Revoke)));
        assert!(decode(&[REVOKE, 1]).is_none());
        assert!(matches!(
            decode(&[EPHEMERAL, 5]),
            Some(Frame::Ephemeral([5]))
        ));
        assert!(matches!(
            decode(&[CLAIM, 0, 0, 0, 0, 0, 0, 0, 2, b'n']),
            Some(Frame::Claim { at: 2, node: b"n" })
        ));
    }

    #[test]
    fn an_envelope_survives_the_trip_and_its_truncations_are_refused() {
        let pushed = Pushed {
            seq: 42,
            received_at_ms: 7,
            relay_tag: Some(vec![3; 40]),
            payload: vec![9u8; 100].into(),
            early: None,
        };
        let frame = encode_envelope(&pushed).expect("small enough");
        let Some(Frame::Envelope(c)) = decode(&frame) else {
            panic!("an envelope frame")
        };
        assert_eq!(
            c,
            Carried {
                seq: 42,
                received_at_ms: 7,
                relay_tag: Some(&[3; 40][..]),
                payload: &[9; 100][..],
            }
        );
        // Cut inside the fixed part or the tag: refused.
        for cut in 1..(19 + 40) {
            assert!(decode(&frame[..cut]).is_none(), "cut at {cut}");
        }
        let bare = Pushed {
            relay_tag: None,
            ..pushed.clone()
        };
        let frame = encode_envelope(&bare).expect("small enough");
        assert!(matches!(
            decode(&frame),
            Some(Frame::Envelope(Carried {
                relay_tag: None,
                ..
            }))
        ));
        let big = Pushed {
            payload: vec![0u8; CARRY_MAX + 1].into(),
            ..pushed
        };
        assert!(encode_envelope(&big).is_none(), "too large to carry");
    }

    #[test]
    fn random_bytes_never_panic_the_decoders() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if let Some(first) = bytes.first_mut() {
                *first %= 8;
            }
            let _ = decode(&bytes);
            let _ = decode_channel_posted(&bytes);
        }
    }
}
