//! The server's half of message franking.
//!
//! When a send carries a franking commitment, the server binds it to the
//! sender's account, each recipient's account and the time it relayed the
//! message with an HMAC under a server secret:
//!
//! ```text
//! tag = HMAC-SHA256(server_key, "hush relay tag v1" || len||commitment || len||sender || len||recipient || received_at_ms)
//! ```
//!
//! The tag travels with the envelope; the server keeps nothing about the
//! message. A recipient who reports reveals the content and franking key; the
//! server checks the commitment against them, then recomputes the tag with
//! the reporter as recipient. Only a message this server relayed from that
//! sender to that reporter at that time passes.

use aws_lc_rs::{constant_time, hmac};
use hush_proto::{Framing, read_framing};
use hush_wire::ErrorCode;
use hush_wire::api::SendRequest;

use crate::app::AppState;
use crate::error::Failure;
use crate::store::StoreResult;

const CONTEXT: &[u8] = b"hush relay tag v1";

/// The relay tag of one delivery.
pub fn relay_tag(
    key: &[u8; 32],
    commitment: &[u8; 32],
    sender: &str,
    recipient: &str,
    received_at_ms: u64,
) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(CONTEXT);
    for part in [
        commitment.as_slice(),
        sender.as_bytes(),
        recipient.as_bytes(),
    ] {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&received_at_ms.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Whether `tag` is this server's tag for that delivery (constant time).
pub fn check_relay_tag(
    key: &[u8; 32],
    tag: &[u8],
    commitment: &[u8; 32],
    sender: &str,
    recipient: &str,
    received_at_ms: u64,
) -> bool {
    let expected = relay_tag(key, commitment, sender, recipient, received_at_ms);
    constant_time::verify_slices_are_equal(&expected, tag).is_ok()
}

/// The commitment a send is tagged with: the one in the MLS application
/// message's authenticated data, which the request must repeat. A sender
/// cannot skip franking by leaving the request's commitment out, nor get
/// another message's commitment tagged: an application message with no
/// commitment, a request whose commitment differs from the message's, and a
/// commitment on anything that is not an application message are refused
/// with `franking_mismatch`. Payloads that are not MLS messages (no member
/// opens them) carry none.
pub fn send_commitment(req: &SendRequest) -> Result<Option<[u8; 32]>, Failure> {
    let requested = match &req.franking_commitment {
        None => None,
        Some(c) => Some(
            <[u8; 32]>::try_from(c.as_slice())
                .map_err(|_| Failure::bad_request("franking_commitment must be 32 bytes"))?,
        ),
    };
    let framed = match (req.ephemeral, read_framing(&req.payload.0)) {
        (false, Ok(Framing::Application { commitment: None })) => {
            return Err(mismatch(
                "an application message must carry its franking commitment in its authenticated data",
            ));
        }
        (
            false,
            Ok(Framing::Application {
                commitment: Some(c),
            }),
        ) => Some(c.0),
        _ => None,
    };
    match (requested, framed) {
        (None, None) => Ok(None),
        (Some(r), Some(f)) if constant_time::verify_slices_are_equal(&r, &f).is_ok() => Ok(Some(f)),
        (None, Some(_)) => Err(mismatch(
            "franking_commitment is missing: send the commitment from the message's authenticated data",
        )),
        (Some(_), None) => Err(mismatch(
            "franking_commitment is only for application messages; this payload carries none",
        )),
        (Some(_), Some(_)) => Err(mismatch(
            "franking_commitment differs from the commitment in the message's authenticated data",
        )),
    }
}

fn mismatch(message: &str) -> Failure {
    Failure::new(ErrorCode::FrankingMismatch, message)
}

/// The server's franking key, created on first use and shared by every node
/// through the database.
pub async fn franking_key(state: &AppState) -> StoreResult<[u8; 32]> {
    state
        .franking
        .get_or_try_init(|| async {
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
            let stored = state
                .store
                .server_secret("franking", fresh.to_vec())
                .await?;
            <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| {
                crate::store::StoreError::Backend("the stored franking key is corrupt".into())
            })
        })
        .await
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_bind_every_field() {
        let key = [1; 32];
        let c = [2; 32];
        let tag = relay_tag(&key, &c, "alice", "bob", 5);
        assert!(check_relay_tag(&key, &tag, &c, "alice", "bob", 5));
        assert!(!check_relay_tag(&key, &tag, &[3; 32], "alice", "bob", 5));
        assert!(!check_relay_tag(&key, &tag, &c, "mallory", "bob", 5));
        assert!(!check_relay_tag(&key, &tag, &c, "alice", "eve", 5));
        assert!(!check_relay_tag(&key, &tag, &c, "alice", "bob", 6));
        assert!(!check_relay_tag(&[9; 32], &tag, &c, "alice", "bob", 5));
        // Length prefixes: moving a byte between fields changes the tag.
        assert_ne!(
            relay_tag(&key, &c, "ab", "c", 5),
            relay_tag(&key, &c, "a", "bc", 5)
        );
    }
}
