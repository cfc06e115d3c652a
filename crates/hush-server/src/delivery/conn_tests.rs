//! The connection state machine, driven by hand: no socket, no store.

use super::*;
use hush_wire::ws::Envelope;

fn stored(seq: u64) -> StoredEnvelope {
    StoredEnvelope {
        seq,
        payload: format!("stored {seq}").into_bytes(),
        relay_tag: None,
        received_at_ms: 1000 + seq,
    }
}

fn pushed(seq: u64, early: Option<Arc<EarlyAck>>) -> Pushed {
    Pushed {
        seq,
        received_at_ms: 2000 + seq,
        relay_tag: None,
        payload: format!("pushed {seq}").into_bytes().into(),
        early,
    }
}

/// Every frame the machine wants written, decoded.
fn frames(c: &mut Connection) -> Vec<ServerFrame> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|b| ServerFrame::decode(&b).unwrap())
        .collect()
}

/// The sequence numbers of envelope frames, one list per frame.
fn seqs(frames: &[ServerFrame]) -> Vec<Vec<u64>> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Envelope(e) => Some(vec![e.seq]),
            ServerFrame::Envelopes(es) => Some(es.iter().map(|e| e.seq).collect()),
            _ => None,
        })
        .collect()
}

/// A connection that has read an empty store and sent `drained`.
fn drained() -> Connection {
    let mut c = Connection::new(7, Instant::now());
    assert!(c.poll_fetch().is_some());
    c.handle_fetched(Vec::new());
    assert_eq!(frames(&mut c), vec![ServerFrame::Drained]);
    c
}

#[test]
fn reads_the_stored_queue_first_in_one_frame_then_drained() {
    let mut c = Connection::new(7, Instant::now());
    assert_eq!(
        c.poll_fetch(),
        Some(Fetch {
            after: 0,
            limit: FETCH_BATCH
        })
    );
    assert_eq!(c.poll_fetch(), None, "one read at a time");
    assert!(c.poll_transmit().is_none(), "nothing before the read");
    c.handle_fetched(vec![stored(3), stored(4), stored(9)]);
    let out = frames(&mut c);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        ServerFrame::Envelopes(
            [3, 4, 9]
                .map(|s| Envelope {
                    seq: s,
                    received_at_ms: 1000 + s,
                    relay_tag: None,
                    payload: format!("stored {s}").into_bytes(),
                })
                .to_vec()
        )
    );
    assert_eq!(out[1], ServerFrame::Drained);
    assert_eq!(c.in_flight(), 3);
    assert_eq!(c.poll_fetch(), None, "drained: nothing to read");
}

#[test]
fn a_full_read_asks_for_the_next_before_drained() {
    let mut c = Connection::new(7, Instant::now());
    c.poll_fetch();
    c.handle_fetched((1..=FETCH_BATCH as u64).map(stored).collect());
    let out = frames(&mut c);
    assert!(!out.contains(&ServerFrame::Drained));
    assert_eq!(
        seqs(&out),
        vec![
            (1..=MAX_ENVELOPES_PER_FRAME as u64).collect::<Vec<_>>(),
            ((MAX_ENVELOPES_PER_FRAME as u64 + 1)..=FETCH_BATCH as u64).collect(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        c.poll_fetch(),
        Some(Fetch {
            after: FETCH_BATCH as u64,
            limit: FETCH_BATCH
        })
    );
    c.handle_fetched(Vec::new());
    assert_eq!(frames(&mut c), vec![ServerFrame::Drained]);
}

#[test]
fn envelopes_handed_over_in_order_go_out_together_without_a_read() {
    let mut c = drained();
    let early: Vec<Arc<EarlyAck>> = (0..3).map(|_| Arc::default()).collect();
    for (seq, e) in (1..=3).zip(&early) {
        c.handle_pushed(pushed(seq, Some(e.clone())));
    }
    assert_eq!(c.poll_fetch(), None);
    let out = frames(&mut c);
    assert_eq!(seqs(&out), vec![vec![1, 2, 3]], "one frame for the three");
    for e in &early {
        assert_eq!(e.sent_on(), Some(7), "marked as sent by this connection");
        assert!(e.is_pending());
    }
    // A lone one goes as an envelope frame.
    c.handle_pushed(pushed(4, None));
    assert!(matches!(&frames(&mut c)[..], [ServerFrame::Envelope(e)] if e.seq == 4));
}

#[test]
fn one_ack_for_a_batch_spares_the_writes_or_deletes() {
    let mut c = drained();
    let early: Vec<Arc<EarlyAck>> = (0..2).map(|_| Arc::default()).collect();
    c.handle_pushed(pushed(1, Some(early[0].clone())));
    c.handle_pushed(pushed(2, Some(early[1].clone())));
    // The store wrote the second before the device acknowledged it.
    assert!(early[1].take_for_write());
    frames(&mut c);
    c.handle_ack(&[1, 2], 5000);
    assert_eq!(c.in_flight(), 0);
    assert!(
        !early[0].take_for_write(),
        "acknowledged first: never written"
    );
    assert_eq!(c.poll_delete(), Some(vec![2]), "written: deleted");
    assert_eq!(c.poll_delete(), None);
    // Acknowledgements of envelopes from an earlier connection are deleted.
    c.handle_ack(&[77], 5000);
    assert_eq!(c.poll_delete(), Some(vec![77]));
}

#[test]
fn an_envelope_out_of_order_is_read_back_from_the_store() {
    let mut c = drained();
    let early = Arc::new(EarlyAck::default());
    c.handle_pushed(pushed(2, Some(early.clone())));
    assert!(frames(&mut c).is_empty(), "1 comes first");
    assert_eq!(early.sent_on(), None);
    assert!(!early.is_pending(), "its write does not wait for an ack");
    assert_eq!(c.poll_fetch().map(|f| f.after), Some(0));
    c.handle_fetched(vec![stored(1), stored(2)]);
    assert_eq!(seqs(&frames(&mut c)), vec![vec![1, 2]]);
    // Handed over again (a slow hand-over): not sent twice.
    c.handle_pushed(pushed(2, None));
    assert!(frames(&mut c).is_empty());
}

#[test]
fn envelopes_handed_over_during_a_read_wait_for_it() {
    let mut c = drained();
    c.handle_wake();
    assert_eq!(c.poll_fetch().map(|f| f.after), Some(0));
    c.handle_pushed(pushed(1, None));
    c.handle_pushed(pushed(2, None));
    assert!(frames(&mut c).is_empty());
    // The read saw 1 only (2 was not written yet): 2 follows it.
    c.handle_fetched(vec![stored(1)]);
    let out = frames(&mut c);
    assert_eq!(seqs(&out), vec![vec![1, 2]]);
    let ServerFrame::Envelopes(es) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(es[0].payload, b"stored 1");
    assert_eq!(es[1].payload, b"pushed 2");
    assert_eq!(c.poll_fetch(), None);
}

#[test]
fn a_wake_up_during_a_read_reads_again() {
    let mut c = Connection::new(1, Instant::now());
    assert!(c.poll_fetch().is_some());
    c.handle_wake();
    c.handle_fetched(vec![stored(1)]);
    assert_eq!(seqs(&frames(&mut c)), vec![vec![1]], "no drained yet");
    assert_eq!(c.poll_fetch().map(|f| f.after), Some(1));
    c.handle_fetched(vec![]);
    assert_eq!(frames(&mut c), vec![ServerFrame::Drained]);
}

#[test]
fn flow_control_waits_for_acknowledgements() {
    let mut c = Connection::new(1, Instant::now());
    let mut seq = 0;
    while let Some(f) = c.poll_fetch() {
        assert_eq!(f.after, seq);
        c.handle_fetched((seq + 1..=seq + FETCH_BATCH as u64).map(stored).collect());
        seq += FETCH_BATCH as u64;
    }
    assert_eq!(c.in_flight(), MAX_IN_FLIGHT);
    assert!(!c.wants_pushes());
    // Over the limit, a hand-over is left to the store.
    c.handle_pushed(pushed(seq + 1, None));
    frames(&mut c);
    assert_eq!(c.in_flight(), MAX_IN_FLIGHT);
    c.handle_ack(&[1, 2], 0);
    assert!(c.wants_pushes());
    assert_eq!(c.poll_fetch().map(|f| f.after), Some(seq));
}

#[test]
fn batches_keep_to_the_frame_limits() {
    let mut c = drained();
    let big = vec![0u8; BATCH_BYTES / 2];
    for seq in 1..=3 {
        c.handle_pushed(Pushed {
            payload: big.clone().into(),
            ..pushed(seq, None)
        });
    }
    let out = frames(&mut c);
    assert_eq!(seqs(&out), vec![vec![1], vec![2], vec![3]]);
    for seq in 4..=4 + MAX_ENVELOPES_PER_FRAME as u64 {
        c.handle_pushed(pushed(seq, None));
    }
    let out = frames(&mut c);
    assert_eq!(
        out.iter()
            .map(|f| seqs(std::slice::from_ref(f))[0].len())
            .collect::<Vec<_>>(),
        vec![MAX_ENVELOPES_PER_FRAME, 1]
    );
}

#[test]
fn sealed_rows_go_out_sealed_and_old_rows_as_stored() {
    let mut c = Connection::new(1, Instant::now());
    c.poll_fetch();
    let header = vec![5u8; HEADER_LEN];
    c.handle_fetched(vec![
        StoredEnvelope {
            relay_tag: Some(header.clone()),
            ..stored(1)
        },
        StoredEnvelope {
            relay_tag: Some(vec![9; 32]),
            ..stored(2)
        },
    ]);
    let ServerFrame::Envelopes(es) = &frames(&mut c)[0] else {
        panic!("expected a batch")
    };
    assert_eq!(es[0].relay_tag, None);
    assert_eq!(
        es[0].payload,
        [&SEALED_MAGIC[..], &header, b"stored 1"].concat()
    );
    assert_eq!(es[1].relay_tag, Some([9; 32]));
    assert_eq!(es[1].payload, b"stored 2");
}

fn request() -> SendRequest {
    SendRequest {
        recipients: Vec::new(),
        payload: hush_wire::Bytes(vec![1]),
        ephemeral: false,
        commit: None,
        franking_commitment: None,
    }
}

#[test]
fn sends_start_at_once_and_are_answered_in_any_order() {
    let start = Instant::now();
    let mut c = Connection::new(1, start);
    c.handle_send(1, request(), 10, start);
    c.handle_send(2, request(), 20, start);
    assert!(!c.poll_recheck());
    let a = c.poll_send().unwrap();
    let b = c.poll_send().unwrap();
    assert_eq!((a.id, a.len, b.id, b.len), (1, 10, 2, 20));
    assert!(c.poll_send().is_none());
    let response = SendResponse {
        received_at_ms: 3,
        delivered_to: 1,
        missing: Vec::new(),
    };
    c.handle_sent(2, 20, Ok(response.clone()));
    c.handle_sent(
        1,
        10,
        Err(ApiError::new(ErrorCode::RateLimited, "slow down")),
    );
    let out = frames(&mut c);
    assert_eq!(out[0], ServerFrame::Sent { id: 2, response });
    assert!(
        matches!(&out[1], ServerFrame::Refused { id: 1, error } if error.code == ErrorCode::RateLimited)
    );
    assert!(!c.poll_close());
}

#[test]
fn too_many_sends_waiting_stop_reading_frames() {
    let now = Instant::now();
    let mut c = Connection::new(1, now);
    for id in 0..MAX_SENDS_IN_FLIGHT as u64 {
        assert!(c.wants_frames());
        c.handle_send(id, request(), 1, now);
    }
    assert!(!c.wants_frames());
    c.handle_sent(0, 1, Err(ApiError::new(ErrorCode::Internal, "x")));
    assert!(c.wants_frames());
    let mut c = Connection::new(1, now);
    c.handle_send(1, request(), MAX_SEND_BYTES_IN_FLIGHT, now);
    assert!(!c.wants_frames(), "bytes count too");
}

#[test]
fn stale_credentials_are_checked_before_a_send_starts() {
    let start = Instant::now();
    let later = start + AUTH_RECHECK;
    let mut c = Connection::new(1, start);
    c.handle_send(1, request(), 10, later);
    assert!(c.poll_send().is_none(), "held for the check");
    assert!(c.poll_recheck());
    assert!(!c.poll_recheck(), "one check at a time");
    c.handle_recheck(Ok(()), later);
    assert_eq!(c.poll_send().map(|s| s.id), Some(1));
    // Checked at `later`: no new check for a while.
    c.handle_send(2, request(), 10, later + AUTH_RECHECK / 2);
    assert!(!c.poll_recheck());
    assert_eq!(c.poll_send().map(|s| s.id), Some(2));
}

#[test]
fn revoked_credentials_refuse_the_send_and_close() {
    let start = Instant::now();
    let later = start + AUTH_RECHECK * 2;
    let mut c = Connection::new(1, start);
    c.handle_send(1, request(), 10, later);
    assert!(c.poll_recheck());
    c.handle_recheck(Err(ApiError::new(ErrorCode::Suspended, "suspended")), later);
    assert!(c.poll_send().is_none());
    assert!(!c.poll_close(), "the refusal goes out first");
    assert!(matches!(
        &frames(&mut c)[..],
        [ServerFrame::Refused { id: 1, error }] if error.code == ErrorCode::Suspended
    ));
    assert!(c.poll_close());
    assert!(!c.wants_frames());

    // A check that could not be made refuses the send but keeps the
    // connection, and checks again at the next send.
    let mut c = Connection::new(1, start);
    c.handle_send(1, request(), 10, later);
    assert!(c.poll_recheck());
    c.handle_recheck(Err(ApiError::new(ErrorCode::Internal, "db down")), later);
    frames(&mut c);
    assert!(!c.poll_close());
    c.handle_send(2, request(), 10, later);
    assert!(c.poll_recheck());
}

#[test]
fn ephemeral_payloads_go_out_in_order_with_the_rest() {
    let mut c = drained();
    c.handle_pushed(pushed(1, None));
    c.handle_ephemeral(b"typing");
    c.handle_pushed(pushed(2, None));
    let out = frames(&mut c);
    assert_eq!(out.len(), 3);
    assert_eq!(out[1], ServerFrame::Ephemeral(b"typing".to_vec()));
    assert_eq!(seqs(&out), vec![vec![1], vec![2]]);
}

#[test]
fn frames_waiting_to_be_written_keep_reading_until_far_too_many() {
    // A device that reads nothing still has its acknowledgements and sends
    // read while the answers wait; ephemeral payloads stop early.
    let now = Instant::now();
    let mut c = Connection::new(1, now);
    let mut id = 0;
    while c.wants_ephemeral() {
        c.handle_ephemeral(b"typing");
    }
    while c.wants_frames() {
        c.handle_send(id, request(), 1, now);
        c.poll_send();
        c.handle_sent(id, 1, Err(ApiError::new(ErrorCode::RateLimited, "x")));
        id += 1;
    }
    assert_eq!(MAX_UNWRITTEN_EPHEMERAL as u64 + id, MAX_UNWRITTEN as u64);
    c.poll_transmit();
    assert!(c.wants_frames(), "one frame written: reading again");
    assert!(!c.wants_ephemeral());
}
