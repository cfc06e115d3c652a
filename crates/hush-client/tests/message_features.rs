//! The message features of decision 0039 against a real server, real MLS
//! and real stores: reactions, and what a hostile member can and cannot do
//! with them and with edits and deletes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Raw, joined, now, sync, user};
use hush_client::{Client, Event, MessageView, Target};
use hush_proto::{Body, Content, MessageId};
use hush_testkit::TestServer;

fn club() -> Target {
    Target::Group("club".into())
}

fn find(c: &mut Client, id: &str) -> MessageView {
    c.history(&club())
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .unwrap()
}

fn reactions(c: &mut Client, id: &str) -> Vec<(String, String)> {
    find(c, id)
        .reactions
        .into_iter()
        .map(|r| (r.from, r.emoji))
        .collect()
}

fn pair(from: &str, emoji: &str) -> (String, String) {
    (from.to_owned(), emoji.to_owned())
}

/// anna's group "club" with bert and carl, all three in it.
async fn club_of_three(server: &TestServer, root: &std::path::Path) -> [Client; 3] {
    let mut anna = user(server, root, "anna").await;
    let mut bert = user(server, root, "bert").await;
    let mut carl = user(server, root, "carl").await;
    anna.create_group("club", &["bert".into(), "carl".into()])
        .await
        .unwrap();
    sync(&mut bert).await;
    sync(&mut carl).await;
    [anna, bert, carl]
}

/// anna's group "club" with bert and mallory, whose client is her own
/// (`Raw`): her side of the conversation.
async fn club_with_mallory(
    server: &TestServer,
    root: &std::path::Path,
) -> (Client, Client, Raw, hush_proto::Conversation) {
    let mut anna = user(server, root, "anna").await;
    let mut bert = user(server, root, "bert").await;
    let mut mallory = Raw::register(server, "mallory").await;
    anna.create_group("club", &["bert".into(), "mallory".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bert).await), 1);
    let welcome = mallory.receive().await.pop().unwrap();
    let conv = mallory.device.join(&welcome, now()).unwrap();
    (anna, bert, mallory, conv)
}

/// mallory, whose client is her own, sends `body` as content in her
/// conversation `conv` to anna's and bert's devices.
async fn mallory_sends(mallory: &Raw, conv: &mut hush_proto::Conversation, body: Body) {
    let content = Content {
        id: MessageId::generate(&mut rand::rngs::OsRng),
        sent_at_ms: now().as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body,
    };
    let out = conv.encrypt(&content, &mut rand::rngs::OsRng).unwrap();
    mallory.post_message(&["anna", "bert"], out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reaction_per_member_the_newest_wins_and_can_be_taken_back() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let [mut anna, mut bert, mut carl] = club_of_three(&server, root.path()).await;
    let hi = anna.send_text(&club(), "hi all").await.unwrap();
    sync(&mut bert).await;
    sync(&mut carl).await;

    bert.react(&hi.id, Some("👍")).await.unwrap();
    carl.react(&hi.id, Some("❤️")).await.unwrap();
    bert.react(&hi.id, Some("😂")).await.unwrap();
    let events = sync(&mut anna).await;
    let seen: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Reaction { .. }))
        .collect();
    assert_eq!(seen.len(), 3, "{events:?}");
    assert_eq!(
        reactions(&mut anna, &hi.id),
        [pair("bert", "😂"), pair("carl", "❤️")]
    );
    // The reacting device shows its own at once; the others after a sync.
    assert_eq!(reactions(&mut bert, &hi.id)[0], pair("bert", "😂"));
    sync(&mut bert).await;
    assert_eq!(
        reactions(&mut bert, &hi.id),
        [pair("bert", "😂"), pair("carl", "❤️")]
    );

    carl.react(&hi.id, None).await.unwrap();
    sync(&mut anna).await;
    assert_eq!(reactions(&mut anna, &hi.id), [pair("bert", "😂")]);

    // Bad input is refused before anything is sent.
    for bad in ["", "\u{1b}[2J", &"👍".repeat(20)] {
        assert!(anna.react(&hi.id, Some(bad)).await.is_err(), "{bad:?}");
    }
    assert!(anna.react(&"0".repeat(32), Some("👍")).await.is_err());
    // A deleted message loses its reactions and takes no new one.
    anna.delete(&hi.id).await.unwrap();
    assert!(reactions(&mut anna, &hi.id).is_empty());
    assert!(anna.react(&hi.id, Some("👍")).await.is_err());
    sync(&mut bert).await;
    assert!(reactions(&mut bert, &hi.id).is_empty());
}

/// mallory is a member whose client is her own: what she sends is
/// encrypted and authenticated as hers by MLS, so she can neither change
/// nor react in someone else's name, a reaction to a message nobody has is
/// dropped without an error, and malformed content is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_act_in_someone_elses_name_or_break_a_client() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert, mallory, mut conv) = club_with_mallory(&server, root.path()).await;
    let hi = anna.send_text(&club(), "hi all").await.unwrap();
    sync(&mut bert).await;
    let target = MessageId::from_hex(&hi.id).unwrap();

    let bodies = [
        Body::Edit {
            target,
            text: "anna says: send me your keys".into(),
        },
        Body::Delete { target },
        Body::Reaction {
            target: MessageId([0xee; 16]),
            emoji: Some("👍".into()),
        },
        // Malformed: encodes, and no client decodes it.
        Body::Reaction {
            target,
            emoji: Some("\u{1b}]0;pwned\u{7}".into()),
        },
        Body::Reaction {
            target,
            emoji: Some(String::new()),
        },
        Body::Reaction {
            target,
            emoji: Some("🔥".into()),
        },
    ];
    for body in bodies {
        mallory_sends(&mallory, &mut conv, body).await;
    }
    for member in [&mut anna, &mut bert] {
        let events = sync(member).await;
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Edited { .. } | Event::Deleted { .. })),
            "{events:?}"
        );
        let m = find(member, &hi.id);
        assert_eq!(
            (m.text.as_deref(), m.edited, m.deleted),
            (Some("hi all"), false, false)
        );
        // Her one well-formed reaction counts, as hers.
        assert_eq!(reactions(member, &hi.id), [pair("mallory", "🔥")]);
    }
    // Nothing is left to retry: the group goes on.
    anna.send_text(&club(), "still here").await.unwrap();
    let events = sync(&mut bert).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("still here")))
    );
}

fn texts(found: &[MessageView]) -> Vec<&str> {
    found.iter().filter_map(|m| m.text.as_deref()).collect()
}

/// Search goes through the full-text index across every conversation;
/// what is deleted for everyone or disappears is no longer found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_across_conversations_and_forgets_deleted_and_expired() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    anna.create_group("club", &["bert".into()]).await.unwrap();
    sync(&mut bert).await;
    let bert_1to1 = Target::User("anna".into());
    bert.send_text(&club(), "the Blue Lagoon at eight")
        .await
        .unwrap();
    let gone = bert
        .send_text(&bert_1to1, "my blue notebook, burn it")
        .await
        .unwrap();
    anna.send_text(&Target::User("bert".into()), "a BLUE whale")
        .await
        .unwrap();
    sync(&mut anna).await;

    let all = anna.search(None, "blue", 10).unwrap();
    assert_eq!(
        texts(&all),
        [
            "a BLUE whale",
            "my blue notebook, burn it",
            "the Blue Lagoon at eight"
        ]
    );
    let here = anna.search(Some(&club()), "blue", 10).unwrap();
    assert_eq!(texts(&here), ["the Blue Lagoon at eight"]);
    assert_eq!(texts(&anna.search(None, "lagoon at", 10).unwrap()).len(), 1);
    assert_eq!(anna.search(None, "blue", 1).unwrap().len(), 1);
    // Short queries still work (without the index), quotes are text.
    assert_eq!(
        texts(&anna.search(None, "8", 10).unwrap()),
        Vec::<&str>::new()
    );
    assert_eq!(anna.search(None, "bu", 10).unwrap().len(), 1);
    assert!(anna.search(None, "\"blue\" OR x", 10).unwrap().is_empty());

    // Deleted for everyone: gone from anna's index too.
    bert.delete(&gone.id).await.unwrap();
    sync(&mut anna).await;
    assert_eq!(
        texts(&anna.search(None, "notebook", 10).unwrap()),
        Vec::<&str>::new()
    );
    // Edited: found by the new text only.
    let whale = anna.search(None, "whale", 10).unwrap().remove(0);
    anna.edit(&whale.id, "a grey whale").await.unwrap();
    assert!(anna.search(None, "blue wh", 10).unwrap().is_empty());
    assert_eq!(anna.search(None, "grey", 10).unwrap().len(), 1);

    // Disappeared: not found once the timer ran out.
    anna.set_disappearing(&club(), Some(1)).await.unwrap();
    anna.send_text(&club(), "ephemeral blue secret")
        .await
        .unwrap();
    assert_eq!(anna.search(None, "secret", 10).unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(anna.search(None, "secret", 10).unwrap().is_empty());
    assert!(anna.search(None, " ", 10).is_err());
}

/// `@name` of a member in a group message is listed in the content; the
/// mentioned member sees it marked and counted among the unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_reach_the_mentioned_and_count_as_unread() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let [mut anna, mut bert, mut carl] = club_of_three(&server, root.path()).await;
    let sent = anna
        .send_text(&club(), "@Bert lunch? (ask anna@example.org, @nobody)")
        .await
        .unwrap();
    assert_eq!(sent.mentions, ["bert"]);
    assert!(!sent.mentions_me);
    anna.send_text(&club(), "and no one else").await.unwrap();
    anna.send_text(&Target::User("bert".into()), "@bert in private")
        .await
        .unwrap();

    let events = sync(&mut bert).await;
    let got: Vec<(String, Vec<String>, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.text.clone().unwrap(), m.mentions.clone(), m.mentions_me)),
            _ => None,
        })
        .collect();
    assert_eq!(got[0].1, ["bert"]);
    assert!(got[0].2);
    assert!(got[1].1.is_empty() && !got[1].2);
    assert!(got[2].1.is_empty(), "no mentions in a 1:1 chat: {got:?}");
    assert_eq!(bert.unread_mentions(&club()).unwrap(), 1);
    assert_eq!(bert.unread_count(&club()).unwrap(), 2);
    bert.mark_read(&club()).await.unwrap();
    assert_eq!(bert.unread_mentions(&club()).unwrap(), 0);

    sync(&mut carl).await;
    let m = find(&mut carl, &sent.id);
    assert_eq!(
        (m.mentions.clone(), m.mentions_me),
        (vec!["bert".into()], false)
    );
    assert_eq!(carl.unread_mentions(&club()).unwrap(), 0);
}

/// Any member pins for everyone; where only admins send, only admins pin,
/// and every member's device refuses a non-admin's pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_everyones_unless_only_admins_send() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert, mut mallory, mut conv) = club_with_mallory(&server, root.path()).await;
    let agenda = anna.send_text(&club(), "agenda for friday").await.unwrap();
    sync(&mut bert).await;

    bert.pin(&agenda.id, true).await.unwrap();
    let events = sync(&mut anna).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Pinned { from, pinned: true, .. } if from == "bert")),
        "{events:?}"
    );
    let pinned: Vec<String> = anna
        .pinned(&club())
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(pinned, std::slice::from_ref(&agenda.id));
    assert!(find(&mut anna, &agenda.id).pinned);
    bert.pin(&agenda.id, false).await.unwrap();
    sync(&mut anna).await;
    assert!(anna.pinned(&club()).unwrap().is_empty());

    // Only admins send: bert's own client refuses to pin; mallory's pin,
    // from a client of her own, is refused by every member's device.
    anna.group_set_only_admins_send("club", true).await.unwrap();
    sync(&mut bert).await;
    assert!(bert.pin(&agenda.id, true).await.is_err());
    for msg in mallory.receive().await {
        let _ = conv.process(&msg, now());
    }
    mallory.device.play_modified_client();
    let pin = Body::Pin {
        target: MessageId::from_hex(&agenda.id).unwrap(),
        pinned: true,
    };
    mallory_sends(&mallory, &mut conv, pin).await;
    sync(&mut anna).await;
    sync(&mut bert).await;
    assert!(anna.pinned(&club()).unwrap().is_empty());
    assert!(bert.pinned(&club()).unwrap().is_empty());

    anna.pin(&agenda.id, true).await.unwrap();
    sync(&mut bert).await;
    assert_eq!(bert.pinned(&club()).unwrap().len(), 1);
}

/// A forwarded text or file is marked forwarded and sent as the
/// forwarder's; the file is not uploaded again (one blob on the server),
/// and one the server no longer holds is not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_marks_the_copy_and_reuses_the_file() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut carl = user(&server, root.path(), "carl").await;
    bert.create_group("club", &["carl".into()]).await.unwrap();
    sync(&mut carl).await;
    let to_bert = Target::User("bert".into());
    let text = anna
        .send_text(&to_bert, "the recipe is attached")
        .await
        .unwrap();
    let path = root.path().join("recipe.txt");
    std::fs::write(&path, b"flour, water, salt, patience").unwrap();
    let file = anna.send_file(&to_bert, &path, |_, _| {}).await.unwrap();
    sync(&mut bert).await;

    let copy = bert.forward(&text.id, &club()).await.unwrap();
    assert!(copy.forwarded && copy.from == "bert" && copy.reply_to.is_none());
    let copied_file = bert.forward(&file.id, &club()).await.unwrap();
    assert!(copied_file.forwarded);
    assert_eq!(copied_file.file_name.as_deref(), Some("recipe.txt"));

    let events = sync(&mut carl).await;
    let got: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.kind.clone(), m.forwarded)),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("text".into(), true), ("file".into(), true)]);
    let out = root.path().join("from-carl.txt");
    carl.download(&copied_file.id, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"flour, water, salt, patience"
    );

    // One upload for both messages: expiring every blob finds one.
    let blobs = &server.state().unwrap().blobs;
    assert_eq!(blobs.expire(u64::MAX).await.unwrap(), 1);
    let err = bert.forward(&file.id, &club()).await.unwrap_err();
    assert!(err.to_string().contains("no longer holds"), "{err}");
    // Texts forward whatever the server holds.
    bert.forward(&text.id, &Target::User("anna".into()))
        .await
        .unwrap();
}

fn voters(c: &mut Client, id: &str) -> Vec<Vec<String>> {
    c.poll(id)
        .unwrap()
        .poll
        .unwrap()
        .options
        .into_iter()
        .map(|o| o.voters)
        .collect()
}

/// A poll in a group: each member's newest vote counts and everyone sees
/// who chose what; a vote that does not fit the poll, or from someone no
/// longer in the group, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_count_each_members_newest_vote_and_only_members_vote() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert, mut mallory, mut conv) = club_with_mallory(&server, root.path()).await;
    let options: Vec<String> = ["Pizza", "Ramen", "Salad"].map(String::from).into();
    assert!(
        anna.create_poll(&Target::User("bert".into()), "Lunch?", &options, false)
            .await
            .is_err(),
        "polls are for groups"
    );
    assert!(
        anna.create_poll(&club(), "Lunch?", &options[..1], false)
            .await
            .is_err()
    );
    let poll = anna
        .create_poll(&club(), "Lunch?", &options, false)
        .await
        .unwrap();
    assert_eq!(poll.kind, "poll");
    sync(&mut bert).await;
    assert_eq!(find(&mut bert, &poll.id).text.as_deref(), Some("Lunch?"));

    bert.vote(&poll.id, &[1]).await.unwrap();
    anna.vote(&poll.id, &[1]).await.unwrap();
    bert.vote(&poll.id, &[0]).await.unwrap();
    assert!(
        bert.vote(&poll.id, &[0, 1]).await.is_err(),
        "one choice only"
    );
    assert!(bert.vote(&poll.id, &[3]).await.is_err());
    sync(&mut anna).await;
    let want = vec![vec!["bert".to_owned()], vec!["anna".to_owned()], vec![]];
    assert_eq!(voters(&mut anna, &poll.id), want);
    sync(&mut bert).await;
    assert_eq!(voters(&mut bert, &poll.id), want);
    // The question is searchable like any text.
    assert_eq!(anna.search(None, "lunch", 5).unwrap().len(), 1);

    // mallory's votes that do not fit the poll are dropped.
    for msg in mallory.receive().await {
        let _ = conv.process(&msg, now());
    }
    let target = MessageId::from_hex(&poll.id).unwrap();
    for options in [vec![0, 2], vec![9]] {
        let vote = Body::Vote {
            poll: target,
            options,
        };
        mallory_sends(&mallory, &mut conv, vote).await;
    }
    sync(&mut anna).await;
    assert_eq!(voters(&mut anna, &poll.id), want);

    // Removed, mallory is no longer a member: her vote does not open.
    anna.group_remove("club", "mallory").await.unwrap();
    sync(&mut bert).await;
    let vote = Body::Vote {
        poll: target,
        options: vec![2],
    };
    mallory_sends(&mallory, &mut conv, vote).await;
    sync(&mut anna).await;
    sync(&mut bert).await;
    assert_eq!(voters(&mut anna, &poll.id), want);
    assert_eq!(voters(&mut bert, &poll.id), want);

    // A vote taken back.
    anna.vote(&poll.id, &[]).await.unwrap();
    sync(&mut bert).await;
    assert_eq!(
        voters(&mut bert, &poll.id),
        vec![vec!["bert".to_owned()], vec![], vec![]]
    );
}

/// A restored backup (the same archive a linked device receives) brings
/// the message features along: the poll with its options and votes, the
/// reactions, the pin and the forwarded mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_keeps_polls_votes_reactions_and_pins() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let [mut anna, mut bert, _carl] = club_of_three(&server, root.path()).await;
    let options: Vec<String> = ["Pizza", "Ramen"].map(String::from).into();
    let poll = anna
        .create_poll(&club(), "Lunch?", &options, false)
        .await
        .unwrap();
    let hello = anna.send_text(&club(), "hello").await.unwrap();
    sync(&mut bert).await;
    bert.vote(&poll.id, &[1]).await.unwrap();
    bert.react(&hello.id, Some("👍")).await.unwrap();
    bert.pin(&hello.id, true).await.unwrap();
    let copy = bert
        .forward(&hello.id, &Target::User("anna".into()))
        .await
        .unwrap();
    sync(&mut anna).await;
    let before = anna.history(&club()).unwrap();

    let backup = root.path().join("anna.backup");
    let report = anna.create_backup(&backup).unwrap();
    let key = report.recovery_key.unwrap();
    let sealed = std::fs::read(&backup).unwrap();
    let req = hush_client::RestoreRequest {
        server: &server.url(),
        fingerprint: None,
        name: Some("restored"),
        options: hush_client::ConnectOptions::default(),
    };
    let dir = root.path().join("anna-restored");
    let mut restored = Client::restore(&dir, common::PASS, req, &sealed, &key, |_| {})
        .await
        .unwrap();
    assert_eq!(
        voters(&mut restored, &poll.id),
        vec![vec![], vec!["bert".to_owned()]]
    );
    assert_eq!(
        reactions(&mut restored, &hello.id),
        vec![pair("bert", "👍")]
    );
    let pinned = restored.pinned(&club()).unwrap();
    assert_eq!(
        pinned.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&hello.id]
    );
    let after = restored.history(&club()).unwrap();
    assert_eq!(after.len(), before.len());
    let direct = restored.history(&Target::User("bert".into())).unwrap();
    let forwarded = direct.iter().find(|m| m.id == copy.id).unwrap();
    assert!(forwarded.forwarded, "the forwarded mark came along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_shows_the_text_it_quotes_until_that_is_deleted() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let [mut anna, mut bert, _carl] = club_of_three(&server, root.path()).await;
    let lunch = anna.send_text(&club(), "lunch at noon?").await.unwrap().id;
    sync(&mut bert).await;
    let yes = bert
        .send_reply(&club(), "yes", Some(&lunch))
        .await
        .unwrap()
        .id;
    sync(&mut anna).await;
    for c in [&mut anna, &mut bert] {
        let quoted = find(c, &yes).quoted.expect("the quote");
        assert_eq!(quoted.from, "anna");
        assert_eq!(quoted.text.as_deref(), Some("lunch at noon?"));
    }
    // Deleted for everyone: the reply no longer shows its text.
    anna.delete(&lunch).await.unwrap();
    sync(&mut bert).await;
    let quoted = find(&mut bert, &yes).quoted.expect("still a reply");
    assert_eq!((quoted.from.as_str(), quoted.text), ("anna", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_conversation_still_receives_and_the_mute_ends_or_is_lifted() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let [mut anna, mut bert, _carl] = club_of_three(&server, root.path()).await;
    let muted = |c: &mut Client| {
        c.conversations()
            .unwrap()
            .into_iter()
            .find(|v| v.name == "club")
            .unwrap()
            .muted_until
    };
    let past = hush_client::client::now_ms() - 1;
    assert!(
        bert.mute(&club(), Some(past)).is_err(),
        "a mute ends in the future"
    );
    assert!(bert.mute(&Target::Group("nope".into()), None).is_err());
    bert.mute(&club(), Some(hush_client::mute::FOREVER))
        .unwrap();
    assert_eq!(muted(&mut bert), Some(hush_client::mute::FOREVER));
    assert_eq!(muted(&mut anna), None, "a mute is the device's own");
    // Messages still arrive, and a mention is still marked for him.
    let id = anna.send_text(&club(), "@bert lunch?").await.unwrap().id;
    sync(&mut bert).await;
    assert!(find(&mut bert, &id).mentions_me);
    bert.mute(&club(), None).unwrap();
    assert_eq!(muted(&mut bert), None);
    // A mute for a while ends by itself.
    let soon = hush_client::client::now_ms() + 300;
    bert.mute(&club(), Some(soon)).unwrap();
    assert_eq!(muted(&mut bert), Some(soon));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(muted(&mut bert), None);
}
