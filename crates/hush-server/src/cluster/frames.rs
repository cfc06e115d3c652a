//! The frames nodes send one another over NATS. They come from other nodes
//! of the same deployment, not from users; still, anything malformed
//! decodes to `None` and is dropped, never a panic.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use bytes::Bytes;

use super::forward::ForwardedSend;
use crate::hub::Pushed;

/// Bytes of the authentication tag a sealed forward ends with.
const TAG_LEN: usize = 16;

pub(super) const WAKE: u8 = 1;
pub(super) const EPHEMERAL: u8 = 2;
pub(super) const CLAIM: u8 = 3;
pub(super) const REVOKE: u8 = 4;
pub(super) const CHANNEL_POSTED: u8 = 5;
pub(super) const ENVELOPE: u8 = 6;
pub(super) const FORWARD: u8 = 7;

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

/// The frame that asks a device's node to take a send for it: tag, nonce,
/// then sealed under the cluster's key (bound to the device's subject): time
/// received, expiry, whether a relay tag follows (0 or 1), the relay tag,
/// the message. NATS sees its size, not the message's group or epoch.
pub(super) fn seal_forward(key: &ForwardKey, subject: &str, f: &ForwardedSend) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let mut frame = Vec::with_capacity(1 + NONCE_LEN + 50 + f.message.len() + TAG_LEN);
    frame.push(FORWARD);
    frame.extend_from_slice(&nonce);
    let mut body = Vec::with_capacity(50 + f.message.len() + TAG_LEN);
    body.extend_from_slice(&f.received_at_ms.to_be_bytes());
    body.extend_from_slice(&f.expires_at_ms.to_be_bytes());
    match &f.relay_tag {
        Some(tag) => {
            body.push(1);
            body.extend_from_slice(tag);
        }
        None => body.push(0),
    }
    body.extend_from_slice(&f.message);
    key.cipher()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(subject.as_bytes()),
            &mut body,
        )
        .ok()?;
    frame.extend_from_slice(&body);
    Some(frame)
}

/// Opens what [`seal_forward`] sealed for `subject`; `None` if it was not
/// sealed under `key` for that subject, or is malformed.
pub(super) fn open_forward(
    key: &ForwardKey,
    subject: &str,
    sealed: &[u8],
) -> Option<ForwardedSend> {
    let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key
        .cipher()?
        .open_in_place(nonce, Aad::from(subject.as_bytes()), &mut body)
        .ok()?;
    let (received, rest) = plain.split_at_checked(8)?;
    let (expires, rest) = rest.split_at_checked(8)?;
    let (&has_tag, rest) = rest.split_first()?;
    let (relay_tag, message) = match has_tag {
        0 => (None, rest),
        1 => {
            let (tag, message) = rest.split_at_checked(32)?;
            (Some(<[u8; 32]>::try_from(tag).ok()?), message)
        }
        _ => return None,
    };
    (!message.is_empty()).then(|| ForwardedSend {
        message: Bytes::copy_from_slice(message),
        relay_tag,
        received_at_ms: u64::from_be_bytes(received.try_into().unwrap_or_default()),
        expires_at_ms: u64::from_be_bytes(expires.try_into().unwrap_or_default()),
    })
}

/// The cluster's key for the sends nodes ask of one another, shared by
/// every node through the database (`server_secrets`).
#[derive(Clone)]
pub struct ForwardKey([u8; 32]);

impl ForwardKey {
    /// The key from its stored bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn cipher(&self) -> Option<LessSafeKey> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &self.0).ok()?;
        Some(LessSafeKey::new(key))
    }
}

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(..)")
    }
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
    Claim {
        at: u64,
        node: &'a [u8],
    },
    Envelope(Carried<'a>),
    /// A send asked of this node, sealed under the cluster's key.
    Forward(&'a [u8]),
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
        FORWARD => Some(Frame::Forward(rest)),
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
    fn a_forwarded_send_opens_only_with_its_key_and_subject() {
        let key = ForwardKey::new([9; 32]);
        for relay_tag in [Some([5u8; 32]), None] {
            let f = ForwardedSend {
                message: Bytes::from_static(b"mls"),
                relay_tag,
                received_at_ms: 3,
                expires_at_ms: 4,
            };
            let frame = seal_forward(&key, "p.d.u61.1", &f).expect("sealed");
            let Some(Frame::Forward(sealed)) = decode(&frame) else {
                panic!("a forward frame")
            };
            let back = open_forward(&key, "p.d.u61.1", sealed).expect("opens");
            assert_eq!(
                (
                    back.message,
                    back.relay_tag,
                    back.received_at_ms,
                    back.expires_at_ms
                ),
                (f.message.clone(), relay_tag, 3, 4)
            );
            // Another device's subject, another key, or a flipped byte: refused.
            assert!(open_forward(&key, "p.d.u62.1", sealed).is_none());
            assert!(open_forward(&ForwardKey::new([8; 32]), "p.d.u61.1", sealed).is_none());
            for i in 0..sealed.len() {
                let mut bad = sealed.to_vec();
                bad[i] ^= 1;
                assert!(open_forward(&key, "p.d.u61.1", &bad).is_none(), "byte {i}");
            }
            for cut in 0..sealed.len() {
                assert!(open_forward(&key, "p.d.u61.1", &sealed[..cut]).is_none());
            }
        }
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
            let _ = open_forward(&ForwardKey::new([1; 32]), "s", &bytes);
        }
    }
}
