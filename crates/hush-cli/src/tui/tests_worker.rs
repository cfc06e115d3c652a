//! The client task of `hush chat` running the composer's commands
//! (decision 0042) against a real server (hush-testkit), real stores and
//! real MLS: what alice's chat does reaches bob's client, and what the
//! library refuses comes back as a line to show.

use std::path::Path;
use std::time::{Duration, Instant};

use hush_client::{Client, MessageView, Target};
use hush_testkit::TestServer;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::app::{Action, Update};

const PASS: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(30);

async fn user(server: &TestServer, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, &server.url(), name, None)
        .await
        .unwrap()
}

fn team() -> Target {
    Target::Group("team".into())
}

fn alice_t() -> Target {
    Target::User("alice".into())
}

/// alice's chat's client task, and its updates.
struct Chat {
    actions: UnboundedSender<Action>,
    updates: UnboundedReceiver<Update>,
}

impl Chat {
    fn start(client: Client, target: Target) -> Chat {
        let (actions, action_rx) = mpsc::unbounded_channel();
        let (update_tx, updates) = mpsc::unbounded_channel();
        tokio::spawn(super::worker::run(
            client,
            Some(target),
            action_rx,
            update_tx,
        ));
        Chat { actions, updates }
    }

    /// Runs `action`, then waits for its `Done` (or `Failed`) line.
    async fn run(&mut self, action: Action) -> Result<String, String> {
        self.actions.send(action).unwrap();
        match self
            .until(|u| matches!(u, Update::Done(_) | Update::Failed(_)))
            .await
        {
            Update::Done(t) => Ok(t),
            Update::Failed(t) => Err(t),
            _ => unreachable!(),
        }
    }

    /// The first update that `wanted`.
    async fn until(&mut self, wanted: impl Fn(&Update) -> bool) -> Update {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let update = tokio::time::timeout_at(deadline, self.updates.recv())
                .await
                .expect("the update never came")
                .expect("the client task ended");
            if wanted(&update) {
                return update;
            }
        }
    }
}

/// Syncs bob until his message `id` in `target` satisfies `check`.
async fn bob_sees(
    bob: &mut Client,
    target: &Target,
    what: &str,
    check: impl Fn(&MessageView) -> bool,
) -> Vec<MessageView> {
    let deadline = Instant::now() + WAIT;
    loop {
        bob.sync(Duration::from_millis(300), |_| {}).await.unwrap();
        let history = bob.history(target).unwrap();
        if history.iter().any(&check) {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "bob never saw {what}: {history:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chats_commands_reach_the_other_side() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    alice.create_group("team", &["bob".into()]).await.unwrap();
    let mine = alice
        .send_text(&Target::User("bob".into()), "typo here")
        .await
        .unwrap();
    let doomed = alice
        .send_text(&Target::User("bob".into()), "to be deleted")
        .await
        .unwrap();
    bob.sync(Duration::ZERO, |_| {}).await.unwrap();
    let his = bob.send_text(&alice_t(), "hello alice").await.unwrap();
    let his_in_team = bob.send_text(&team(), "team hello").await.unwrap();
    alice.sync(Duration::ZERO, |_| {}).await.unwrap();

    let mut chat = Chat::start(alice, Target::User("bob".into()));
    let has = |id: &str, m: &MessageView| m.id == id;

    // React, reply, pin, edit, delete: each reaches bob.
    let done = chat
        .run(Action::React(his.id.clone(), Some("👍".into())))
        .await;
    assert_eq!(done.as_deref(), Ok("reacted 👍"));
    bob_sees(&mut bob, &alice_t(), "the reaction", |m| {
        has(&his.id, m)
            && m.reactions
                .iter()
                .any(|r| r.from == "alice" && r.emoji == "👍")
    })
    .await;
    let done = chat
        .run(Action::Reply(
            Target::User("bob".into()),
            "hello to you".into(),
            his.id.clone(),
        ))
        .await;
    assert_eq!(done.as_deref(), Ok("replied"));
    bob_sees(&mut bob, &alice_t(), "the reply", |m| {
        m.text.as_deref() == Some("hello to you") && m.reply_to.as_deref() == Some(&his.id)
    })
    .await;
    assert_eq!(
        chat.run(Action::Pin(his.id.clone(), true)).await.as_deref(),
        Ok("pinned")
    );
    bob_sees(&mut bob, &alice_t(), "the pin", |m| {
        has(&his.id, m) && m.pinned
    })
    .await;
    let done = chat
        .run(Action::Edit(mine.id.clone(), "no typo".into()))
        .await;
    assert_eq!(done.as_deref(), Ok("edited for everyone"));
    bob_sees(&mut bob, &alice_t(), "the edit", |m| {
        has(&mine.id, m) && m.edited && m.text.as_deref() == Some("no typo")
    })
    .await;
    let done = chat.run(Action::Delete(doomed.id.clone())).await;
    assert_eq!(done.as_deref(), Ok("deleted for everyone"));
    bob_sees(&mut bob, &alice_t(), "the delete", |m| {
        has(&doomed.id, m) && m.deleted
    })
    .await;

    // bob's message in their 1:1 chat is not alice's to delete: the
    // library's reason comes back, and nothing changes on his side.
    let refused = chat.run(Action::Delete(his.id.clone())).await.unwrap_err();
    assert!(refused.starts_with("not deleted: "), "{refused}");
    assert!(refused.contains("only your own messages"), "{refused}");
    // In the group she made (and so is admin of), she may.
    let done = chat.run(Action::Delete(his_in_team.id.clone())).await;
    assert_eq!(done.as_deref(), Ok("deleted for everyone"));
    bob_sees(&mut bob, &team(), "the admin's delete", |m| {
        has(&his_in_team.id, m) && m.deleted
    })
    .await;
    assert!(
        !bob.history(&alice_t())
            .unwrap()
            .iter()
            .any(|m| has(&his.id, m) && m.deleted)
    );

    // Forward bob's message to the group, marked forwarded.
    let done = chat.run(Action::Forward(his.id.clone(), team())).await;
    assert_eq!(done.as_deref(), Ok("forwarded to #team"));
    bob_sees(&mut bob, &team(), "the forward", |m| {
        m.forwarded && m.text.as_deref() == Some("hello alice")
    })
    .await;

    // A poll in the group, and alice's vote in it.
    let done = chat
        .run(Action::Poll(
            team(),
            "lunch?".into(),
            vec!["pizza".into(), "sushi".into()],
        ))
        .await;
    assert_eq!(done.as_deref(), Ok("poll sent"));
    let history = bob_sees(&mut bob, &team(), "the poll", |m| m.poll.is_some()).await;
    let poll = history
        .iter()
        .find(|m| m.poll.is_some())
        .unwrap()
        .id
        .clone();
    assert_eq!(
        chat.run(Action::Vote(poll.clone(), vec![1]))
            .await
            .as_deref(),
        Ok("voted 2")
    );
    bob_sees(&mut bob, &team(), "the vote", |m| {
        has(&poll, m) && m.poll.as_ref().unwrap().options[1].voters == ["alice"]
    })
    .await;
    let refused = chat
        .run(Action::Vote(his.id.clone(), vec![0]))
        .await
        .unwrap_err();
    assert!(refused.contains("is not a poll"), "{refused}");

    // Search this conversation.
    chat.actions
        .send(Action::Search(Target::User("bob".into()), "HELLO".into()))
        .unwrap();
    let Update::Found { query, results, .. } =
        chat.until(|u| matches!(u, Update::Found { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(query, "HELLO");
    let found: Vec<&str> = results.iter().filter_map(|m| m.text.as_deref()).collect();
    assert_eq!(found, ["hello to you", "hello alice"]);

    // Mute for a while, then until unmuted, then unmute: the store's
    // conversation list says so.
    let muted_until = |u: &Update| match u {
        Update::Conversations(list) => list.iter().find(|c| c.name == "bob").map(|c| c.muted_until),
        _ => None,
    };
    let done = chat
        .run(Action::Mute(
            Target::User("bob".into()),
            Some(Duration::from_secs(8 * 3600)),
        ))
        .await
        .unwrap();
    assert!(
        done.contains("bob is muted on this device for 8h"),
        "{done}"
    );
    let u = chat.until(|u| muted_until(u).is_some()).await;
    let until = muted_until(&u).unwrap().unwrap();
    let in_8h = hush_client::client::now_ms() + 8 * 3600 * 1000;
    assert!(until <= in_8h && until + 60_000 > in_8h, "{until}");
    let done = chat
        .run(Action::Mute(Target::User("bob".into()), None))
        .await;
    assert!(done.unwrap().contains("until /unmute"));
    let u = chat.until(|u| muted_until(u).is_some()).await;
    assert_eq!(muted_until(&u), Some(Some(hush_client::mute::FOREVER)));
    let done = chat.run(Action::Unmute(Target::User("bob".into()))).await;
    assert_eq!(done.as_deref(), Ok("bob is unmuted"));
    let u = chat.until(|u| muted_until(u).is_some()).await;
    assert_eq!(muted_until(&u), Some(None));

    chat.actions.send(Action::Quit).unwrap();
}
