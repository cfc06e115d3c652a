//! Delivery: from a send to every recipient device's connection.
//!
//! - [`accept`] checks a send (by HTTP or over the sender's WebSocket),
//!   stores it (sealed) for every recipient, and hands it to the
//!   recipients connected to this node in one pass ([`crate::hub::Hub::deliver_all`]);
//!   a header is sealed only for an envelope written (decision 0013).
//! - [`Connection`] is one device connection's queue as a state machine with
//!   no I/O, in the style of quinn-proto: `handle_*` methods take what comes
//!   in (an envelope handed over, a wake-up, a store read's result, the
//!   device's acknowledgements and sends, a credentials check's result),
//!   `poll_*` methods give what must go out (frames to write, reads and
//!   deletions for the store, sends to start). Envelopes that queue up go
//!   out together in one `envelopes` frame. `api::ws` drives it with the
//!   socket, the hub and the store.
//! - [`EarlyAck`] decides, per recipient, whether the device's
//!   acknowledgement of a handed-over envelope came before its write
//!   (decision 0008).
//!
//! See `docs/decisions/0016-delivery-state-machine.md`.

mod conn;
mod early;
mod routed;
mod send;

use std::time::{SystemTime, UNIX_EPOCH};

pub use conn::{
    AUTH_RECHECK, BATCH_BYTES, Connection, FETCH_BATCH, Fetch, MAX_IN_FLIGHT,
    MAX_SEND_BYTES_IN_FLIGHT, MAX_SENDS_IN_FLIGHT, StartSend,
};
pub use early::EarlyAck;
pub use routed::take_forwarded;
pub use send::accept;

/// The server's clock, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
