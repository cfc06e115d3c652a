//! This account's devices through the library (decision 0023): the limit
//! on linked devices, and a device link's half-made registration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_client::MAX_LINKED_DEVICES;
use hush_proto::DeviceSigningKey;
use hush_proto::device_link::LinkCode;
use hush_testkit::TestServer;

fn code() -> String {
    let key = DeviceSigningKey::generate(&mut rand::rngs::OsRng).unwrap();
    LinkCode::generate(key.public(), &mut rand::rngs::OsRng).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_links_at_most_eight_devices() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut ids = Vec::new();
    for _ in 1..MAX_LINKED_DEVICES {
        ids.push(alice.approve_link(&code()).await.unwrap());
    }
    // Ids are fresh and never reused.
    assert_eq!(ids, (2..=8).collect::<Vec<u32>>());
    assert_eq!(alice.devices().await.unwrap().len(), MAX_LINKED_DEVICES);
    let err = alice.approve_link(&code()).await.unwrap_err().to_string();
    assert!(err.contains("already has 8 devices"), "{err}");
    assert!(err.contains("remove one first"), "{err}");
    assert_eq!(alice.devices().await.unwrap().len(), MAX_LINKED_DEVICES);

    // Removing one makes room; the next device gets a new id, not the
    // removed one's.
    alice.remove_device(8).await.unwrap();
    let next = alice.approve_link(&code()).await.unwrap();
    assert_eq!(next, 9);
    let listed: Vec<u32> = alice
        .devices()
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, [1, 2, 3, 4, 5, 6, 7, 9]);
}

/// A device removed here that the server publishes again (replaying its
/// key) is an alarm on this device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_published_again_is_an_alarm() {
    let server = TestServer::start().await.unwrap();
    let state = server.state().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let key = DeviceSigningKey::generate(&mut rand::rngs::OsRng).unwrap();
    let code = LinkCode::generate(key.public(), &mut rand::rngs::OsRng).encode();
    let id = alice.approve_link(&code).await.unwrap();
    assert!(alice.kt_monitor(true).await.unwrap().is_empty());
    alice.remove_device(id).await.unwrap();
    assert!(alice.kt_monitor(true).await.unwrap().is_empty());
    state
        .kt
        .faults
        .publish_extra_device(&state.kt, "alice", id, Some(key.public()))
        .await
        .unwrap();
    let alarms = alice.kt_monitor(true).await.unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert!(alarms[0].contains("device(s) 2 again"), "{alarms:?}");
    assert!(alarms[0].contains("which you removed"), "{alarms:?}");
}
