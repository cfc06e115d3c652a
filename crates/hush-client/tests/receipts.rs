//! Receipts to the sender (decision 0017), against a real server: delivery
//! and read receipts reach only the devices of the member who wrote the
//! message, the sender counts them per member, and a receipt from outside
//! the group, forged, replayed, altered or about someone else's message
//! changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Raw, joined, now, sync, user};
use hush_client::{Client, Event, Target};
use hush_proto::receipt::Receipt;
use hush_proto::{DeviceCertificate, DeviceId, MessageId, ReceiptKind, Username};
use hush_testkit::TestServer;

fn team() -> Target {
    Target::Group("team".into())
}

/// The receipt events in `events`: (from, status, ids).
fn receipts(events: &[Event]) -> Vec<(String, String, Vec<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Receipt { ids, status, from } => {
                Some((from.clone(), status.clone(), ids.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Who alice's message `id` was delivered to and read by, as she sees it.
fn lists(c: &mut Client, id: &str) -> (Vec<String>, Vec<String>, Option<u32>) {
    let m = c
        .history(&team())
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap();
    let r = *m.receipts;
    (r.delivered_to, r.read_by, r.recipients)
}

/// A Raw member joins the group it was invited to; returns the group id
/// and the certificates of the member devices it sees.
async fn raw_join(raw: &mut Raw) -> (Vec<u8>, Vec<DeviceCertificate>) {
    let welcome = raw.receive().await.pop().unwrap();
    let conv = raw.device.join(&welcome, now()).unwrap();
    (conv.id().to_vec(), conv.members())
}

/// A receipt frame signed by `by` claiming to come from `from` device 1.
fn frame(
    by: &Raw,
    from: &str,
    group_id: &[u8],
    to: &DeviceCertificate,
    kind: ReceiptKind,
    ids: &[&str],
) -> Vec<u8> {
    Receipt {
        group_id: group_id.to_vec(),
        from: Username::new(from).unwrap(),
        from_device: DeviceId(1),
        to: to.username().clone(),
        kind,
        sent_at_ms: now().as_millis(),
        ids: ids
            .iter()
            .map(|i| MessageId::from_hex(i).unwrap())
            .collect(),
    }
    .seal(&by.key, std::slice::from_ref(to), &mut rand::rngs::OsRng)
    .unwrap()
}

fn cert_of<'a>(members: &'a [DeviceCertificate], name: &str) -> &'a DeviceCertificate {
    members
        .iter()
        .find(|c| c.username().as_str() == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_reach_only_the_sender_and_are_counted_per_member() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut carol = Raw::register(&server, "carol").await;
    alice
        .create_group("team", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bob).await), 1);
    let (group_id, members) = raw_join(&mut carol).await;
    let alice_cert = cert_of(&members, "alice").clone();

    let first = alice.send_text(&team(), "hello").await.unwrap();
    let second = alice.send_text(&team(), "again").await.unwrap();
    assert_eq!(first.receipts.recipients, Some(2));
    // Bob receives both and acknowledges them in one frame, to alice only:
    // carol's queue holds alice's two messages and nothing from bob.
    sync(&mut bob).await;
    assert_eq!(carol.receive().await.len(), 2);
    let events = sync(&mut alice).await;
    assert_eq!(
        receipts(&events),
        [(
            "bob".to_string(),
            "delivered".to_string(),
            vec![first.id.clone(), second.id.clone()]
        )]
    );
    assert_eq!(
        lists(&mut alice, &first.id),
        (vec!["bob".into()], vec![], Some(2))
    );

    // Bob reads: one read frame; alice counts him as reader.
    assert_eq!(bob.mark_read(&team()).await.unwrap(), 2);
    assert_eq!(receipts(&sync(&mut alice).await).len(), 1);
    assert_eq!(
        lists(&mut alice, &second.id),
        (vec!["bob".into()], vec!["bob".into()], Some(2))
    );

    // Carol, driving her device by hand, sends a genuine delivery receipt.
    let delivered = frame(
        &carol,
        "carol",
        &group_id,
        &alice_cert,
        ReceiptKind::Delivered,
        &[&first.id],
    );
    carol.post(&["alice"], delivered.clone()).await;
    assert_eq!(receipts(&sync(&mut alice).await).len(), 1);
    assert_eq!(
        lists(&mut alice, &first.id),
        (
            vec!["bob".into(), "carol".into()],
            vec!["bob".into()],
            Some(2)
        )
    );
    // Then she reads it; an old delivery receipt replayed afterwards (by
    // the server or anyone who kept it) undoes nothing and says nothing.
    let read = frame(
        &carol,
        "carol",
        &group_id,
        &alice_cert,
        ReceiptKind::Read,
        &[&first.id],
    );
    carol.post(&["alice"], read.clone()).await;
    assert_eq!(receipts(&sync(&mut alice).await).len(), 1);
    carol.post(&["alice"], delivered).await;
    carol.post(&["alice"], read).await;
    assert!(receipts(&sync(&mut alice).await).is_empty());
    let after = (
        vec!["bob".to_string(), "carol".into()],
        vec!["bob".to_string(), "carol".into()],
        Some(2),
    );
    assert_eq!(lists(&mut alice, &first.id), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_from_outside_forged_altered_or_about_others_change_nothing() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut carol = Raw::register(&server, "carol").await;
    let mallory = Raw::register(&server, "mallory").await;
    alice
        .create_group("team", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    sync(&mut bob).await;
    let (group_id, members) = raw_join(&mut carol).await;
    let alice_cert = cert_of(&members, "alice").clone();
    let mine = alice.send_text(&team(), "mine").await.unwrap();
    // Bob's own message, which alice received.
    let bobs = bob.send_text(&team(), "bob's").await.unwrap();
    sync(&mut alice).await;
    sync(&mut bob).await;
    sync(&mut alice).await;
    let before = lists(&mut alice, &mine.id);
    assert_eq!(before.0, ["bob"]);

    let attacks = [
        // Mallory is not in the group.
        frame(
            &mallory,
            "mallory",
            &group_id,
            &alice_cert,
            ReceiptKind::Read,
            &[&mine.id],
        ),
        // Mallory claims to be carol: her key did not sign carol's certificate.
        frame(
            &mallory,
            "carol",
            &group_id,
            &alice_cert,
            ReceiptKind::Read,
            &[&mine.id],
        ),
        // Carol's receipt about a group alice is not in.
        frame(
            &carol,
            "carol",
            &[9; 32],
            &alice_cert,
            ReceiptKind::Read,
            &[&mine.id],
        ),
        // Carol's receipt for bob's message, sent to alice.
        frame(
            &carol,
            "carol",
            &group_id,
            &alice_cert,
            ReceiptKind::Read,
            &[&bobs.id],
        ),
    ];
    for (i, attack) in attacks.into_iter().enumerate() {
        carol.post(&["alice"], attack).await;
        let events = sync(&mut alice).await;
        assert!(receipts(&events).is_empty(), "attack {i}: {events:?}");
        assert_eq!(lists(&mut alice, &mine.id), before, "attack {i}");
    }
    // A genuine receipt the server altered, byte by byte in each part:
    // header, sealed key, body.
    let genuine = frame(
        &carol,
        "carol",
        &group_id,
        &alice_cert,
        ReceiptKind::Read,
        &[&mine.id],
    );
    for at in [6, 40, 100, genuine.len() - 1] {
        let mut altered = genuine.clone();
        altered[at] ^= 1;
        carol.post(&["alice"], altered).await;
        assert!(receipts(&sync(&mut alice).await).is_empty(), "byte {at}");
    }
    assert_eq!(lists(&mut alice, &mine.id), before);
    // Nothing above stopped the genuine one from counting.
    carol.post(&["alice"], genuine).await;
    assert_eq!(receipts(&sync(&mut alice).await).len(), 1);
    assert_eq!(lists(&mut alice, &mine.id).1, ["carol"]);

    // Once carol is removed, her receipts no longer count.
    alice.group_remove("team", "carol").await.unwrap();
    let late = frame(
        &carol,
        "carol",
        &group_id,
        &alice_cert,
        ReceiptKind::Delivered,
        &[&bobs.id, &mine.id],
    );
    let other = alice.send_text(&team(), "after carol").await.unwrap();
    let late_other = frame(
        &carol,
        "carol",
        &group_id,
        &alice_cert,
        ReceiptKind::Read,
        &[&other.id],
    );
    carol.post(&["alice"], late).await;
    carol.post(&["alice"], late_other).await;
    assert!(receipts(&sync(&mut alice).await).is_empty());
    assert!(lists(&mut alice, &other.id).0.is_empty());
    assert_eq!(lists(&mut alice, &other.id).2, Some(1));
}
