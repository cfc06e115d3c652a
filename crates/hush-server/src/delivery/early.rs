//! Early acknowledgement: an envelope handed to a recipient's connection
//! before its write may be acknowledged first, and then is never written
//! (decision 0008). One atomic per recipient decides which came first; the
//! store and the connection's state machine share it.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// An envelope handed to a recipient's connection before it was written:
/// whichever comes first, the device's acknowledgement or the write, decides
/// whether it is written at all. Shared by the store and the connection.
#[derive(Debug, Default)]
pub struct EarlyAck {
    state: AtomicU8,
    // The connection that sent it, plus one (0: none).
    sent_on: AtomicU64,
}

const EARLY_PENDING: u8 = 0;
const EARLY_WRITTEN: u8 = 1;
const EARLY_ACKED: u8 = 2;

impl EarlyAck {
    /// The device acknowledged the envelope. True if that came before the
    /// write, which then never happens: nothing is stored, nothing to delete.
    pub fn ack(&self) -> bool {
        self.state
            .compare_exchange(
                EARLY_PENDING,
                EARLY_ACKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The write takes the envelope. True if it must be written (the device
    /// has not acknowledged it); its acknowledgement is then a deletion.
    pub fn take_for_write(&self) -> bool {
        match self.state.compare_exchange(
            EARLY_PENDING,
            EARLY_WRITTEN,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => now == EARLY_WRITTEN,
        }
    }

    /// Taken by the write: the envelope is (being) written, never spared.
    pub fn is_written(&self) -> bool {
        self.state.load(Ordering::Acquire) == EARLY_WRITTEN
    }

    /// Neither acknowledged nor taken by the write yet.
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == EARLY_PENDING
    }

    /// The device's connection `conn` sent the envelope.
    pub fn mark_sent(&self, conn: u64) {
        self.sent_on
            .store(conn.saturating_add(1), Ordering::Release);
    }

    /// The connection that sent it, if one did (else the connection skipped
    /// it, and must read it back once it is written).
    pub fn sent_on(&self) -> Option<u64> {
        self.sent_on.load(Ordering::Acquire).checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_ack_and_write_wins() {
        let e = EarlyAck::default();
        assert!(e.is_pending());
        assert!(e.ack(), "acknowledged before the write");
        assert!(!e.take_for_write(), "then nothing to write");
        assert!(!e.ack(), "and only once");

        let e = EarlyAck::default();
        assert!(e.take_for_write());
        assert!(e.take_for_write(), "asking again changes nothing");
        assert!(!e.ack(), "written: the acknowledgement is a deletion");
        assert!(!e.is_pending());
    }

    #[test]
    fn remembers_the_connection_that_sent_it() {
        let e = EarlyAck::default();
        assert_eq!(e.sent_on(), None);
        e.mark_sent(0);
        assert_eq!(e.sent_on(), Some(0));
        e.mark_sent(41);
        assert_eq!(e.sent_on(), Some(41));
    }
}
