//! Group admins (decision 0032) against a member whose client is modified
//! to do what only admins may: real clients, a real server on a loopback
//! port (hush-testkit), real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{security_alarms, sync, user};
use hush_client::{Event, Target};
use hush_testkit::TestServer;

fn group(name: &str) -> Target {
    Target::Group(name.into())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admins_changes_win_the_server_but_every_member_refuses_them() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut mall = user(&server, root.path(), "mall").await;
    let mut eve = user(&server, root.path(), "eve").await;
    anna.create_group("crew", &["bert".into(), "mall".into()])
        .await
        .unwrap();
    sync(&mut bert).await;
    sync(&mut mall).await;
    let info = bert.group_info("crew").unwrap();
    assert_eq!(info.admins, vec!["anna"]);
    assert!(!info.only_admins_send);

    // mall's own client does not let her.
    let err = mall.group_rename("crew", "mine").await.unwrap_err();
    assert!(err.to_string().contains("admins"), "{err}");
    assert!(mall.group_add("crew", "eve").await.is_err());

    // Her modified client does, and the server (which cannot read the
    // group) takes both commits: the add, then a rename built on it.
    mall.play_modified_client();
    mall.group_add("crew", "eve").await.unwrap();
    mall.group_rename("crew", "mine").await.unwrap();
    sync(&mut eve).await;

    for member in [&mut anna, &mut bert] {
        let events = sync(member).await;
        let alarms = security_alarms(&events);
        assert_eq!(alarms.len(), 2, "{alarms:?}");
        assert!(alarms[0].contains("only admins add"), "{alarms:?}");
        assert_eq!(
            member.group_members("crew").unwrap(),
            vec!["anna", "bert", "mall"]
        );
        assert_eq!(member.group_info("crew").unwrap().admins, vec!["anna"]);
    }

    // The group goes on: the admin's next commits win the server's order
    // (with the token the refused commits led to) and every member takes
    // them.
    anna.group_rename("crew", "crew2").await.unwrap();
    anna.group_remove("crew2", "mall").await.unwrap();
    sync(&mut bert).await;
    assert_eq!(bert.group_members("crew2").unwrap(), vec!["anna", "bert"]);
    bert.send_text(&group("crew2"), "still here").await.unwrap();
    assert_eq!(
        texts(&sync(&mut anna).await),
        vec![("bert".into(), "still here".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_send_and_admins_are_promoted_and_demoted() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut mall = user(&server, root.path(), "mall").await;
    anna.create_group("news", &["bert".into(), "mall".into()])
        .await
        .unwrap();
    anna.group_set_only_admins_send("news", true).await.unwrap();
    sync(&mut bert).await;
    sync(&mut mall).await;
    assert!(bert.group_info("news").unwrap().only_admins_send);

    // bert's client does not post; mall's modified one does, and no member
    // shows it.
    assert!(bert.send_text(&group("news"), "me too").await.is_err());
    mall.play_modified_client();
    mall.send_text(&group("news"), "spam").await.unwrap();
    assert!(texts(&sync(&mut anna).await).is_empty());
    assert!(texts(&sync(&mut bert).await).is_empty());

    // anna makes bert an admin: he posts, and the others read it.
    anna.group_set_admin("news", "bert", true).await.unwrap();
    sync(&mut bert).await;
    assert_eq!(
        bert.group_info("news").unwrap().admins,
        vec!["anna", "bert"]
    );
    bert.send_text(&group("news"), "news!").await.unwrap();
    assert_eq!(
        texts(&sync(&mut anna).await),
        vec![("bert".into(), "news!".into())]
    );

    // bert demotes anna; the last admin cannot be demoted.
    bert.group_set_admin("news", "anna", false).await.unwrap();
    sync(&mut anna).await;
    assert_eq!(anna.group_info("news").unwrap().admins, vec!["bert"]);
    assert!(anna.group_rename("news", "mine").await.is_err());
    assert!(bert.group_set_admin("news", "bert", false).await.is_err());
}

/// Whether each member's copy of message `id` is deleted.
fn deleted(c: &mut hush_client::Client, target: &Target, id: &str) -> bool {
    let history = c.history(target).unwrap();
    let m = history.iter().find(|m| m.id == id).expect("the message");
    m.deleted && m.text.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_delete_any_members_message_and_nobody_else_can() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut mall = user(&server, root.path(), "mall").await;
    anna.create_group("crew", &["bert".into(), "mall".into()])
        .await
        .unwrap();
    sync(&mut bert).await;
    sync(&mut mall).await;
    let spam = mall.send_text(&group("crew"), "spam").await.unwrap().id;
    let hello = bert.send_text(&group("crew"), "hello").await.unwrap().id;
    sync(&mut anna).await;
    sync(&mut bert).await;
    sync(&mut mall).await;

    // anna, the admin, deletes mall's message for everyone.
    anna.delete(&spam).await.unwrap();
    sync(&mut bert).await;
    sync(&mut mall).await;
    for c in [&mut anna, &mut bert, &mut mall] {
        assert!(deleted(c, &group("crew"), &spam));
    }

    // mall, no admin, may not delete bert's; a modified client that sends
    // the delete anyway changes no one's copy.
    assert!(mall.delete(&hello).await.is_err());
    mall.play_modified_client();
    mall.delete(&hello).await.unwrap();
    sync(&mut anna).await;
    sync(&mut bert).await;
    assert!(!deleted(&mut anna, &group("crew"), &hello));
    assert!(!deleted(&mut bert, &group("crew"), &hello));

    // In a 1:1 chat nobody is an admin of the other's messages.
    let hi = bert
        .send_text(&Target::User("anna".into()), "hi")
        .await
        .unwrap()
        .id;
    sync(&mut anna).await;
    assert!(anna.delete(&hi).await.is_err());
}
