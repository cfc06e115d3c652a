//! An account's devices stay in sync (decision 0025): sends from one show
//! as outgoing on the other, reads and settings follow through self-sync
//! frames (last writer wins), and a new device the directory vouches for
//! is added to shared conversations by whichever member notices first,
//! never one the account key did not certify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use hush_client::{Client, Event, MessageView, PresenceMode, Target};
use hush_testkit::TestServer;

const TIMEOUT: Duration = Duration::from_secs(60);

fn bob() -> Target {
    Target::User("bob".into())
}

async fn synced(c: &mut Client) -> Vec<Event> {
    tokio::time::timeout(TIMEOUT, c.sync(Duration::ZERO, |_| {}))
        .await
        .expect("sync timed out")
        .unwrap()
}

fn find<'a>(history: &'a [MessageView], text: &str) -> &'a MessageView {
    history
        .iter()
        .find(|m| m.text.as_deref() == Some(text))
        .unwrap_or_else(|| panic!("no {text:?} in {history:?}"))
}

fn contact(c: &Client, name: &str) -> hush_client::ContactView {
    c.contacts()
        .unwrap()
        .into_iter()
        .find(|x| x.username == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_reads_and_settings_are_the_same_on_both_devices() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut phone = user(&server, dir.path(), "alice").await;
    let mut bob_c = user(&server, dir.path(), "bob").await;
    phone.send_text(&bob(), "before the laptop").await.unwrap();
    synced(&mut bob_c).await;
    let mut laptop = link(&mut phone, &server, &dir.path().join("laptop"), true).await;
    assert_eq!(joined(&synced(&mut laptop).await), 1);
    synced(&mut bob_c).await;

    // What the phone sends shows on the laptop as sent by alice.
    phone.send_text(&bob(), "from the phone").await.unwrap();
    synced(&mut laptop).await;
    let history = laptop.history(&bob()).unwrap();
    let m = find(&history, "from the phone");
    assert!(m.outgoing, "{m:?}");
    assert_eq!(m.from, "alice");
    assert_eq!(m.status, "sent");

    // Reading on the phone clears unread on the laptop.
    bob_c
        .send_text(&Target::User("alice".into()), "unread")
        .await
        .unwrap();
    synced(&mut phone).await;
    synced(&mut laptop).await;
    assert_eq!(
        find(&laptop.history(&bob()).unwrap(), "unread").status,
        "received"
    );
    assert_eq!(phone.mark_read(&bob()).await.unwrap(), 1);
    let events = synced(&mut laptop).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ReadElsewhere { ids, .. } if ids.len() == 1)),
        "{events:?}"
    );
    assert_eq!(
        find(&laptop.history(&bob()).unwrap(), "unread").status,
        "read"
    );
    // Nothing is left to read there, so the laptop tells nobody again.
    assert_eq!(laptop.mark_read(&bob()).await.unwrap(), 0);

    // A block, a verification mark, presence, a device name and a
    // disappearing timer made on one device hold on the other.
    phone.set_blocked("bob", true).unwrap();
    let number = phone.safety_number("bob").await.unwrap();
    phone.mark_verified("bob", &number).unwrap();
    phone.set_presence_mode(PresenceMode::Nobody).unwrap();
    phone.rename_device(2, "work laptop").unwrap();
    phone.set_disappearing(&bob(), Some(3600)).await.unwrap();
    phone.flush_outbox().await.unwrap();
    synced(&mut laptop).await;
    let c = contact(&laptop, "bob");
    assert!(c.blocked && c.verified, "{c:?}");
    assert_eq!(laptop.presence_setting().unwrap(), PresenceMode::Nobody);
    let names: Vec<_> = laptop.devices().await.unwrap();
    assert_eq!(names[1].name.as_deref(), Some("work laptop"), "{names:?}");
    assert_eq!(names[0].name, None);
    let conv = laptop.conversations().unwrap();
    assert_eq!(conv[0].disappear_secs, Some(3600));

    // The laptop's later change wins on both, whichever arrives first.
    phone.set_blocked("bob", false).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    laptop.set_blocked("bob", true).unwrap();
    laptop.flush_outbox().await.unwrap();
    phone.flush_outbox().await.unwrap();
    synced(&mut phone).await;
    synced(&mut laptop).await;
    assert!(contact(&phone, "bob").blocked);
    assert!(contact(&laptop, "bob").blocked);
    // Bob's messages are dropped on both devices.
    phone.set_blocked("bob", true).unwrap();
    phone.flush_outbox().await.unwrap();
    bob_c
        .send_text(&Target::User("alice".into()), "blocked?")
        .await
        .unwrap();
    for d in [&mut phone, &mut laptop] {
        synced(d).await;
        let h = d.history(&bob()).unwrap();
        assert!(!h.iter().any(|m| m.text.as_deref() == Some("blocked?")));
    }
}

/// Bob links a laptop but his phone never adds it anywhere (as if it were
/// lost right after, or the laptop were restored from a backup): alice's
/// client notices the device the directory vouches for and adds it to
/// both conversations they share; carol sees alice's commit and adds
/// nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_new_device_is_added_once_by_whoever_notices_first() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob_phone = user(&server, dir.path(), "bob").await;
    let mut carol = user(&server, dir.path(), "carol").await;
    alice.send_text(&bob(), "hi bob").await.unwrap();
    alice
        .create_group("team", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    synced(&mut bob_phone).await;
    synced(&mut carol).await;
    let team = Target::Group("team".into());
    let before = alice.member_devices(&team).unwrap();

    let mut bob_laptop = link(&mut bob_phone, &server, &dir.path().join("bl"), false).await;
    assert_eq!(joined(&synced(&mut bob_laptop).await), 0);

    synced(&mut alice).await;
    let mut expected = before.clone();
    expected.push(("bob".into(), 2));
    expected.sort();
    assert_eq!(alice.member_devices(&team).unwrap(), expected);
    assert!(
        alice
            .member_devices(&bob())
            .unwrap()
            .contains(&("bob".into(), 2))
    );
    // Carol follows alice's commit and finds nothing left to add.
    let events = synced(&mut carol).await;
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    assert_eq!(carol.add_new_devices().await.unwrap(), 0);
    assert_eq!(carol.member_devices(&team).unwrap(), expected);
    assert_eq!(alice.add_new_devices().await.unwrap(), 0);

    // The laptop is in both, and reads what is sent there.
    assert_eq!(joined(&synced(&mut bob_laptop).await), 2);
    carol.send_text(&team, "hello team").await.unwrap();
    alice.send_text(&bob(), "to both of bob's").await.unwrap();
    let mut got: Vec<String> = synced(&mut bob_laptop)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text,
            _ => None,
        })
        .collect();
    got.sort();
    assert_eq!(got, ["hello team", "to both of bob's"]);
}

/// The server adds devices of its own: one it only publishes in the
/// directory, and one it stores with a certificate under an account key
/// it made (and KeyPackages for it). Neither is added anywhere, for a
/// contact or for this account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_the_account_key_did_not_certify_are_added_nowhere() {
    use hush_testkit::hush_server::store::{DeviceKey, NewDevice};
    let server = TestServer::start().await.unwrap();
    let state = server.state().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob_c = user(&server, dir.path(), "bob").await;
    alice.send_text(&bob(), "hi").await.unwrap();
    alice.create_group("team", &["bob".into()]).await.unwrap();
    synced(&mut bob_c).await;
    let team = Target::Group("team".into());
    let before = alice.member_devices(&team).unwrap();

    // Published in the directory only, under no certificate.
    state
        .kt
        .faults
        .publish_extra_device(&state.kt, "bob", 7, None)
        .await
        .unwrap();
    synced(&mut alice).await;
    assert_eq!(alice.add_new_devices().await.unwrap(), 0);
    assert_eq!(alice.member_devices(&team).unwrap(), before);

    // Stored as a device of bob and of alice, certified by keys the
    // server made, with KeyPackages ready to claim.
    for (name, id) in [("bob", 3), ("alice", 4)] {
        let forged = forge(name, id);
        state
            .store
            .add_device(
                name,
                NewDevice {
                    device_id: id,
                    certificate: forged.certificate().encode(),
                    token_hash: [id as u8; 32],
                },
                16,
            )
            .await
            .unwrap();
        let kps = (0..3)
            .map(|_| {
                forged
                    .generate_key_package(hush_proto::Suite::Hybrid, false, now())
                    .unwrap()
                    .message
            })
            .collect();
        state
            .store
            .put_key_packages(
                &DeviceKey {
                    username: name.into(),
                    device_id: id,
                },
                hush_proto::Suite::Hybrid.cipher_suite().raw_value(),
                kps,
                None,
            )
            .await
            .unwrap();
        state.kt.changed(name);
    }
    state.kt.publish_pending().await.unwrap();
    let _ = tokio::time::timeout(TIMEOUT, alice.sync(Duration::ZERO, |_| {}))
        .await
        .unwrap();
    assert_eq!(alice.add_new_devices().await.unwrap(), 0);
    assert_eq!(alice.member_devices(&team).unwrap(), before);
    assert_eq!(alice.member_devices(&bob()).unwrap().len(), 2);
    // Bob's own client adds neither either.
    let _ = tokio::time::timeout(TIMEOUT, bob_c.sync(Duration::ZERO, |_| {}))
        .await
        .unwrap();
    assert_eq!(bob_c.add_new_devices().await.unwrap(), 0);
    assert_eq!(bob_c.member_devices(&team).unwrap(), before);
}
