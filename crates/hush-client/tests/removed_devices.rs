//! A member vets the devices a commit adds against the key directory's
//! history, not only its latest version (decision 0035): a device the
//! account added and then removed again, before an offline member processed
//! the add, raises no alarm there; a device the directory never listed is
//! refused even when the account key certified it (a thief with the account
//! key cannot slip a device in unseen by the account's own monitor). Real
//! server, real clients, real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_client::Target;
use hush_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_processed_after_the_device_was_removed_raises_no_alarm() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    let mut carol = user(&server, dir.path(), "carol").await;
    alice
        .create_group("club", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bob).await), 1);
    assert_eq!(joined(&sync(&mut carol).await), 1);

    // Alice links a laptop (her phone adds it to the group), and removes it
    // again before carol's client has seen the add.
    let laptop = link(&mut alice, &server, &dir.path().join("laptop"), true).await;
    let gone = laptop.certificate_for_tests();
    drop(laptop);
    alice.remove_device(gone.device_id().0).await.unwrap();

    // Carol processes the add, then the removal: no alarm, and the group
    // goes on with alice's phone only.
    let events = sync(&mut carol).await;
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    carol
        .send_text(&Target::Group("club".into()), "still here")
        .await
        .unwrap();
    let got = sync(&mut alice).await;
    assert!(security_alarms(&got).is_empty(), "{got:?}");
    assert!(
        got.iter()
            .any(|e| matches!(e, hush_client::Event::Message(m)
            if m.text.as_deref() == Some("still here"))),
        "{got:?}"
    );
    // The removed device is accepted as once listed, and only that.
    assert_eq!(bob.vet_add_for_tests(&[gone]).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_the_directory_never_listed_is_refused_under_the_right_account_key() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    // Signed by alice's real account key, never published.
    let made_up = alice.unpublished_device_for_tests(7).unwrap();
    let why = bob
        .vet_add_for_tests(std::slice::from_ref(&made_up))
        .await
        .unwrap();
    let why = why.expect("a device the directory never listed was accepted");
    assert!(why.contains("device 7 of alice"), "{why}");
    assert!(why.contains("made it up"), "{why}");
    // Beside a listed device, it still fails the whole add.
    let listed = alice.certificate_for_tests();
    let why = bob
        .vet_add_for_tests(&[listed.clone(), made_up])
        .await
        .unwrap();
    assert!(
        why.is_some(),
        "the made-up device rode in beside a listed one"
    );
    assert_eq!(bob.vet_add_for_tests(&[listed]).await.unwrap(), None);
}
