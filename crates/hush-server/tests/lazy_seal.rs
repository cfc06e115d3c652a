//! Sealing is for what is stored (decision 0013): a message without a
//! commit goes to the online devices as the sender made it (over the
//! connection), and a device's header is sealed only if its envelope is
//! written. On a real server over its real SQLite database, one send to
//! three devices: one online that acknowledges at once (never written,
//! never sealed), one offline (sealed before the write) and one online that
//! never acknowledges (its header sealed when the write takes it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_server::app::{MetricsToken, Settings};
use hush_server::store::DeviceKey;
use hush_wire::ws::ServerFrame;

const TOKEN: &str = "a-metrics-token-of-the-operator";
const TO: [(&str, u32); 3] = [("bob", 1), ("carol", 1), ("dave", 1)];

/// Envelopes acknowledged before their write, so far.
async fn unwritten(s: &TestServer) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hush_envelopes_unwritten_total "))
        .expect("the unwritten counter")
        .trim()
        .parse()
        .unwrap()
}

/// The next envelope on `ws`, as it came over the wire.
async fn next_envelope(ws: &mut Ws) -> hush_wire::ws::Envelope {
    match ws.next_frame(5000).await {
        Some(ServerFrame::Envelope(e)) => e,
        other => panic!("expected an envelope, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_is_written_is_sealed() {
    let s = TestServer::with_settings(Settings {
        metrics_token: Some(MetricsToken(TOKEN.into())),
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let carol = s.register("carol", 3).await;
    let dave = s.register("dave", 4).await;
    let mut b = s.connect(&bob.devices[0].token).await;
    let mut d = s.connect(&dave.devices[0].token).await;
    // What goes over the wire, not opened by the test.
    b.open = None;
    d.open = None;
    assert!(b.drain().await.is_empty());
    assert!(d.drain().await.is_empty());

    // Bob's acknowledgement must beat the write's window (10 ms); on a
    // loaded machine it may not every time, so up to 20 sends.
    let mut acked_early = false;
    for round in 0..20u8 {
        let msg = vec![0x40 + round; 300];
        let before = unwritten(&s).await;
        let send = {
            let (http, url) = (s.http.clone(), s.url("/v1/messages"));
            let (token, req) = (alice.devices[0].token.clone(), send_request(&TO, &msg));
            tokio::spawn(async move {
                let resp = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&req)
                    .send()
                    .await
                    .unwrap();
                (resp.status(), resp.text().await.unwrap())
            })
        };
        let got = next_envelope(&mut b).await;
        b.ack(&[got.seq]).await;
        // Handed over as the sender made it: not sealed.
        assert_eq!(got.payload, msg);
        assert!(!hush_proto::sealed::is_sealed(&got.payload));
        assert_eq!(got.relay_tag, None, "no franking commitment, no tag");
        let seen_by_dave = next_envelope(&mut d).await;
        assert_eq!(seen_by_dave.payload, msg);
        let (status, body) = send.await.unwrap();
        assert_eq!(status, 200, "{body}");

        // Durable now for the offline device and for the one that did not
        // acknowledge: sealed, and opened only with the device's key.
        for (user, seq) in [(&carol, None), (&dave, Some(seen_by_dave.seq))] {
            let key = DeviceKey::new(&user.name, 1);
            let rows = s.state.store.fetch(&key, 0, 100).await.unwrap();
            let row = rows.last().expect("a stored envelope");
            if let Some(seq) = seq {
                assert_eq!(row.seq, seq);
            }
            assert_ne!(row.payload, msg, "the stored body is sealed");
            assert!(!row.payload.windows(msg.len()).any(|w| w == msg));
            assert_eq!(
                row.relay_tag.as_ref().map(Vec::len),
                Some(hush_proto::sealed::HEADER_LEN),
                "{}'s row has a sealed header",
                user.name
            );
            assert_eq!(open_stored(&user.devices[0], row), msg);
        }
        if unwritten(&s).await > before {
            // Acknowledged before the write: nothing was ever stored for
            // bob, and his header was never sealed.
            let bob_key = DeviceKey::new("bob", 1);
            assert!(
                s.state
                    .store
                    .fetch(&bob_key, 0, 100)
                    .await
                    .unwrap()
                    .is_empty()
            );
            acked_early = true;
            break;
        }
    }
    assert!(acked_early, "no acknowledgement beat the write in 20 sends");
    s.stop().await;
}
