//! Self-monitoring of an account's key history against a server that tries
//! to switch it off: by lying about its latest epoch, or by failing the
//! history requests. Real server (test-only faults), real clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{sync, user};
use hush_client::Event;
use hush_testkit::TestServer;

fn kt_alarms(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::KeyTransparencyAlarm { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lying_about_its_latest_epoch_cannot_hide_a_published_ghost() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let _alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    assert!(kt_alarms(&sync(&mut bob).await).is_empty());
    let monitored = bob.kt_latest_root().unwrap().unwrap().epoch;

    // The server says the directory has not moved since bob last looked,
    // then publishes a ghost device for bob.
    let state = server.state().unwrap();
    state.kt.faults.state_latest_epoch(Some(monitored));
    state
        .kt
        .faults
        .publish_ghost(&state.kt, "bob")
        .await
        .unwrap();
    // Bob meets the new root in a signed answer (a lookup of alice).
    bob.kt_status("alice").await.unwrap();
    assert!(bob.kt_latest_root().unwrap().unwrap().epoch > monitored);

    let got = kt_alarms(&sync(&mut bob).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("SECURITY:"), "{}", got[0]);
    assert!(got[0].contains("bob"), "{}", got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_the_server_keeps_failing_past_the_grace_period_is_an_alarm() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut bob = user(&server, root.path(), "bob").await;
    assert_eq!(
        bob.kt_monitor_grace().unwrap(),
        Duration::from_secs(24 * 60 * 60)
    );
    // The directory moves on, so bob's monitor has work to do; then the
    // server fails every key-history request.
    let _carol = user(&server, root.path(), "carol").await;
    let state = server.state().unwrap();
    state.kt.faults.refuse_history(true);

    // Within the grace period: only a log line.
    assert!(kt_alarms(&sync(&mut bob).await).is_empty());

    // Past it: an alarm, on every sync until the monitor completes again.
    bob.set_kt_monitor_grace(Duration::from_secs(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..2 {
        let got = kt_alarms(&sync(&mut bob).await);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("SECURITY:"), "{}", got[0]);
        assert!(got[0].contains("could not be checked"), "{}", got[0]);
    }

    state.kt.faults.refuse_history(false);
    assert!(kt_alarms(&sync(&mut bob).await).is_empty());
}
