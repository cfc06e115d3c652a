//! End to end through the library: real clients, a real server on a loopback
//! port (hush-testkit), real MLS, real SQLCipher stores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use hush_client::{Client, ClientError, Event, Target};
use hush_testkit::TestServer;

const PASS: &str = "correct horse battery staple";

async fn user(server: &TestServer, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, &server.url(), name, None)
        .await
        .unwrap()
}

async fn sync(c: &mut Client) -> Vec<Event> {
    c.sync(Duration::ZERO, |_| {}).await.unwrap()
}

fn texts(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.from.clone(), m.text.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

fn dm(name: &str) -> Target {
    Target::User(name.into())
}

fn group(name: &str) -> Target {
    Target::Group(name.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_both_ways_with_receipts() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;

    let sent = alice.send_text(&dm("bob"), "hi bob").await.unwrap();
    assert_eq!(sent.status, "sent");
    let got = sync(&mut bob).await;
    assert_eq!(texts(&got), vec![("alice".into(), "hi bob".into())]);
    bob.send_text(&dm("alice"), "hi alice").await.unwrap();
    let got = sync(&mut alice).await;
    assert_eq!(texts(&got), vec![("bob".into(), "hi alice".into())]);
    // Bob's device sent a delivery receipt when it stored the message.
    let history = alice.history(&dm("bob")).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].text.as_deref(), Some("hi bob"));
    assert_eq!(history[0].status, "delivered");
    // Reading it sends a read receipt.
    assert_eq!(bob.mark_read(&dm("alice")).await.unwrap(), 1);
    sync(&mut alice).await;
    assert_eq!(alice.history(&dm("bob")).unwrap()[0].status, "read");
    // Each message is stored once, however often one syncs.
    sync(&mut bob).await;
    sync(&mut bob).await;
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_four_with_add_remove_and_leave() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut a = user(&server, root.path(), "anna").await;
    let mut b = user(&server, root.path(), "bert").await;
    let mut c = user(&server, root.path(), "cara").await;
    let mut d = user(&server, root.path(), "dave").await;
    a.create_group("crew", &["bert".into(), "cara".into(), "dave".into()])
        .await
        .unwrap();
    for x in [&mut b, &mut c, &mut d] {
        let ev = sync(x).await;
        assert!(
            ev.iter().any(|e| matches!(e, Event::Joined { .. })),
            "{ev:?}"
        );
    }
    assert_eq!(
        b.group_members("crew").unwrap(),
        vec!["anna", "bert", "cara", "dave"]
    );
    b.send_text(&group("crew"), "hello crew").await.unwrap();
    for x in [&mut a, &mut c, &mut d] {
        assert_eq!(
            texts(&sync(x).await),
            vec![("bert".into(), "hello crew".into())]
        );
    }

    // Remove dave: he reads nothing sent after.
    a.group_remove("crew", "dave").await.unwrap();
    let ev = sync(&mut d).await;
    assert!(
        ev.iter().any(|e| matches!(e, Event::Removed { .. })),
        "{ev:?}"
    );
    for x in [&mut b, &mut c] {
        sync(x).await;
    }
    c.send_text(&group("crew"), "dave is gone").await.unwrap();
    assert!(texts(&sync(&mut d).await).is_empty());
    // He keeps what he had, read-only, as in Signal and WhatsApp.
    let kept = d.history(&group("crew")).unwrap();
    assert!(
        kept.iter()
            .all(|m| m.text.as_deref() != Some("dave is gone")),
        "{kept:?}"
    );
    assert!(
        kept.iter().any(|m| m.text.as_deref() == Some("hello crew")),
        "{kept:?}"
    );
    assert_eq!(texts(&sync(&mut a).await).len(), 1);
    assert_eq!(texts(&sync(&mut b).await).len(), 1);

    // Add erin.
    let mut e = user(&server, root.path(), "erin").await;
    a.group_add("crew", "erin").await.unwrap();
    sync(&mut e).await;
    for x in [&mut b, &mut c] {
        sync(x).await;
    }
    e.send_text(&group("crew"), "hi, I'm erin").await.unwrap();
    assert_eq!(
        texts(&sync(&mut c).await),
        vec![("erin".into(), "hi, I'm erin".into())]
    );

    // Cara leaves: the others commit her departure on their next sync.
    c.group_leave("crew").await.unwrap();
    sync(&mut a).await;
    for x in [&mut b, &mut e, &mut a] {
        sync(x).await;
    }
    assert_eq!(
        a.group_members("crew").unwrap(),
        vec!["anna", "bert", "erin"]
    );
    assert_eq!(
        e.group_members("crew").unwrap(),
        vec!["anna", "bert", "erin"]
    );
    b.send_text(&group("crew"), "three of us").await.unwrap();
    assert!(texts(&sync(&mut c).await).is_empty());
    assert_eq!(texts(&sync(&mut e).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_delivery_across_a_server_restart_and_a_reopen() {
    let mut server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let bob = user(&server, root.path(), "bob").await;
    drop(bob); // bob is offline
    for i in 0..5 {
        alice.send_text(&dm("bob"), &format!("m{i}")).await.unwrap();
    }
    server.restart().await.unwrap();
    alice.send_text(&dm("bob"), "after restart").await.unwrap();

    // A wrong passphrase does not open, and changes nothing.
    assert!(matches!(
        Client::open(&root.path().join("bob"), "wrong"),
        Err(ClientError::WrongPassphrase)
    ));
    let mut bob = Client::open(&root.path().join("bob"), PASS).unwrap();
    let got = texts(&sync(&mut bob).await);
    let want: Vec<(String, String)> = (0..5)
        .map(|i| ("alice".to_string(), format!("m{i}")))
        .chain([("alice".to_string(), "after restart".to_string())])
        .collect();
    assert_eq!(got, want);
    drop(bob);
    let mut bob = Client::open(&root.path().join("bob"), PASS).unwrap();
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 6);
    assert!(sync(&mut bob).await.is_empty());
    bob.send_text(&dm("alice"), "got them").await.unwrap();
    assert_eq!(texts(&sync(&mut alice).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_arrive_intact_and_tampering_is_caught() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let file = root.path().join("photo.png");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let mut last = (0, 0);
    let sent = alice
        .send_file(&dm("bob"), &file, |done, total| last = (done, total))
        .await
        .unwrap();
    assert_eq!(last.0, last.1);
    assert_eq!(sent.kind, "file");
    assert_eq!(sent.file_name.as_deref(), Some("photo.png"));
    let got = sync(&mut bob).await;
    let m = got
        .iter()
        .find_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .expect("the file message");
    assert_eq!(m.size, Some(300_000));
    let out = root.path().join("received.png");
    bob.download(&m.id, &out, |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // Tamper with the stored blob: the download fails and writes nothing.
    let blobs = server.data_dir().join("blobs").join("blobs");
    for dir in std::fs::read_dir(&blobs).unwrap() {
        for part in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = part.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("part-")
            {
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[100] ^= 1;
                std::fs::write(&p, bytes).unwrap();
            }
        }
    }
    let out2 = root.path().join("tampered.png");
    assert!(matches!(
        bob.download(&m.id, &out2, |_, _| {}).await,
        Err(ClientError::AttachmentTampered)
    ));
    assert!(!out2.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_and_disappearing_messages() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let m1 = alice.send_text(&dm("bob"), "teh typo").await.unwrap();
    let m2 = alice.send_text(&dm("bob"), "regret").await.unwrap();
    alice.edit(&m1.id, "the typo").await.unwrap();
    alice.delete(&m2.id).await.unwrap();
    sync(&mut bob).await;
    let h = bob.history(&dm("alice")).unwrap();
    assert_eq!(h[0].text.as_deref(), Some("the typo"));
    assert!(h[0].edited);
    assert!(h[1].deleted);
    assert_eq!(h[1].text, None);
    // Bob cannot edit alice's message.
    assert!(bob.edit(&m1.id, "hacked").await.is_err());
    // Nor can alice put text back on a message she deleted.
    assert!(matches!(
        alice.edit(&m2.id, "undeleted").await,
        Err(ClientError::InvalidInput(_))
    ));
    let mine = alice.history(&dm("bob")).unwrap();
    let regret = mine.iter().find(|m| m.id == m2.id).unwrap();
    assert!(regret.deleted && regret.text.is_none());

    alice.set_disappearing(&dm("bob"), Some(1)).await.unwrap();
    alice.send_text(&dm("bob"), "gone soon").await.unwrap();
    let ev = sync(&mut bob).await;
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Disappearing {
            seconds: Some(1),
            ..
        }
    )));
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let h = bob.history(&dm("alice")).unwrap();
    assert_eq!(
        h.len(),
        2,
        "the disappearing message is deleted on bob's device"
    );
    assert_eq!(
        alice.history(&dm("bob")).unwrap().len(),
        2,
        "and on alice's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_an_online_device() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    alice.send_text(&dm("bob"), "hi").await.unwrap();
    sync(&mut bob).await;
    let listener = tokio::spawn(async move {
        let ev = bob.sync(Duration::from_secs(3), |_| {}).await.unwrap();
        (bob, ev)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.send_typing(&dm("bob"), true).await.unwrap();
    let (_bob, ev) = listener.await.unwrap();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Typing { from, started: true, .. } if from == "alice")),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_errors_leave_nothing_behind() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let _alice = user(&server, root.path(), "alice").await;
    let dir = root.path().join("second");
    let err = Client::register(&dir, PASS, &server.url(), "alice", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(hush_wire::ErrorCode::UsernameTaken));
    assert!(!dir.join("keyfile.json").exists());
    // The directory can be used again.
    Client::register(&dir, PASS, &server.url(), "alicia", None)
        .await
        .unwrap();
    assert!(matches!(
        Client::register(&dir, PASS, &server.url(), "other", None).await,
        Err(ClientError::AlreadyRegistered(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_numbers_match_and_key_changes_are_loud() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let ab = alice.safety_number("bob").await.unwrap();
    let ba = bob.safety_number("alice").await.unwrap();
    assert_eq!(ab, ba);
    alice.mark_verified("bob", &ab).unwrap();
    assert!(alice.contacts().unwrap()[0].verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_sync_ends_when_woken_and_keeps_what_arrived() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    alice.send_text(&dm("bob"), "first").await.unwrap();
    // Connects, drains and keeps the connection: the next sync listens.
    sync(&mut bob).await;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let woken = wake.clone();
    let listener = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let ev = bob
            .sync_until_woken(Duration::from_secs(60), &woken, |_| {})
            .await
            .unwrap();
        (bob, ev, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.send_text(&dm("bob"), "second").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    wake.notify_one();
    let (mut bob, ev, took) = tokio::time::timeout(Duration::from_secs(30), listener)
        .await
        .expect("the woken sync did not end")
        .unwrap();
    assert!(
        took < Duration::from_secs(30),
        "took {took:?} of a 60 s wait"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("second"))),
        "{ev:?}"
    );
    // Stored and acknowledged: a fresh sync brings nothing again.
    let again = sync(&mut bob).await;
    assert!(
        !again.iter().any(|e| matches!(e, Event::Message(_))),
        "{again:?}"
    );
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 2);
}

/// Paging walks the history in `history`'s order (ties on the sender's
/// millisecond included), reads unread counts without it, and refuses a
/// cursor from another conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_walk_the_whole_history_in_order() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut carol = user(&server, root.path(), "carol").await;
    for i in 0..8 {
        alice.send_text(&dm("bob"), &format!("m{i}")).await.unwrap();
    }
    carol.send_text(&dm("bob"), "from carol").await.unwrap();
    sync(&mut bob).await;
    for c in [&mut alice, &mut bob] {
        let peer = if c.username() == "alice" {
            "bob"
        } else {
            "alice"
        };
        let all = c.history(&dm(peer)).unwrap();
        assert_eq!(all.len(), 8);
        let mut walked = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page = c.history_page(&dm(peer), before.as_deref(), 3).unwrap();
            assert!(page.messages.len() <= 3);
            walked.splice(0..0, page.messages.iter().cloned());
            if !page.more {
                break;
            }
            before = Some(page.messages[0].id.clone());
        }
        assert_eq!(walked, all);
        let newest = c.history_page(&dm(peer), None, 1).unwrap();
        assert_eq!(newest.messages, all[7..]);
        assert!(newest.more);
    }
    assert_eq!(bob.unread_count(&dm("alice")).unwrap(), 8);
    assert_eq!(bob.unread_count(&dm("carol")).unwrap(), 1);
    let carols = bob.history_page(&dm("carol"), None, 5).unwrap().messages;
    let err = bob
        .history_page(&dm("alice"), Some(&carols[0].id), 5)
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput(_)), "{err}");
    assert!(bob.history_page(&dm("alice"), None, 0).is_err());
    bob.mark_read(&dm("alice")).await.unwrap();
    assert_eq!(bob.unread_count(&dm("alice")).unwrap(), 0);
    assert_eq!(bob.unread_count(&dm("carol")).unwrap(), 1);
}
