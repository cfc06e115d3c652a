//! Channels in the chat screen without a terminal: listed after the
//! conversations, their posts shown and arriving live, the composer
//! posting only on the owner's device.

use std::time::Instant;

use crossterm::event::KeyCode;
use hush_client::{ChannelPostView, ChannelView, Event, Target};

use super::app::{Action, App, Update};
use super::tests::{assert_inert, conv, draw, key};

fn channel(name: &str, owner: bool) -> ChannelView {
    ChannelView {
        name: name.into(),
        owner,
        admin: owner,
        epoch: 0,
        posts: 0,
    }
}

/// A post sent 2023-11-14 22:13 UTC.
fn post(channel: &str, id: &str, text: &str, file: Option<&str>) -> ChannelPostView {
    ChannelPostView {
        channel: channel.into(),
        id: id.into(),
        number: 1,
        epoch: 0,
        text: text.into(),
        file: file.map(str::to_owned),
        size: file.map(|_| 2048),
        media_type: file.map(|_| "application/pdf".to_owned()),
        sent_at: 1_700_000_000_000,
        received_at: 1_700_000_000_500,
    }
}

/// alice's screen: a chat with bob (selected), a group, the channel
/// `news` she owns and `feed` she follows.
fn alice(now: Instant) -> App {
    let mut app = App::new("alice", None);
    app.on_update(
        Update::Conversations(vec![
            conv(1, "direct", "bob", &["alice", "bob"]),
            conv(2, "group", "team", &["alice", "bob", "carol"]),
        ]),
        now,
    );
    let actions = app.on_update(
        Update::Channels(vec![channel("news", true), channel("feed", false)]),
        now,
    );
    // bob stays selected.
    assert_eq!(actions, []);
    app
}

/// Moves down `n` rows; returns the actions of the last move.
fn down(app: &mut App, n: usize, now: Instant) -> Vec<Action> {
    let mut actions = Vec::new();
    for _ in 0..n {
        actions = app.on_key(key(KeyCode::Down), now);
    }
    actions
}

fn type_text(app: &mut App, text: &str, now: Instant) -> Vec<Action> {
    text.chars()
        .flat_map(|c| app.on_key(key(KeyCode::Char(c)), now))
        .collect()
}

#[test]
fn channels_are_listed_after_the_conversations_and_show_their_posts() {
    let now = Instant::now();
    let mut app = alice(now);
    let screen = draw(&app, now, 100, 20);
    let row = |label: &str| screen.find(label).unwrap_or_else(|| panic!("{screen}"));
    assert!(row("> bob") < row("#team"), "{screen}");
    assert!(row("#team") < row("» news"), "{screen}");
    assert!(row("» news") < row("» feed"), "{screen}");

    // Down twice: the channel news, its posts asked for.
    assert_eq!(
        down(&mut app, 2, now),
        [Action::SelectChannel("news".into())]
    );
    // A late history of another channel is not shown here.
    app.on_update(
        Update::ChannelHistory {
            channel: "feed".into(),
            posts: vec![post("feed", "f1", "not this one", None)],
        },
        now,
    );
    app.on_update(
        Update::ChannelHistory {
            channel: "news".into(),
            posts: vec![
                post("news", "p1", "hello subscribers", None),
                post("news", "p2", "the report", Some("report.pdf")),
            ],
        },
        now,
    );
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("> » news"), "{screen}");
    assert!(screen.contains("» news (channel: you post)"), "{screen}");
    assert!(screen.contains("22:13 hello subscribers"), "{screen}");
    assert!(
        screen.contains("22:13 [file report.pdf, 2.0 KiB] the report"),
        "{screen}"
    );
    assert!(!screen.contains("not this one"), "{screen}");
    assert!(screen.contains("Post to » news"), "{screen}");

    // A new conversation list keeps the channel selected, with its posts.
    let actions = app.on_update(
        Update::Conversations(vec![
            conv(3, "direct", "carol", &["alice", "carol"]),
            conv(1, "direct", "bob", &["alice", "bob"]),
            conv(2, "group", "team", &["alice", "bob", "carol"]),
        ]),
        now,
    );
    assert_eq!(actions, []);
    assert!(draw(&app, now, 100, 20).contains("> » news"));
    assert_eq!(app.posts.len(), 2);

    // The channel left (elsewhere): back to the first row.
    let actions = app.on_update(Update::Channels(vec![channel("feed", false)]), now);
    assert_eq!(actions, [Action::Select(Target::User("carol".into()))]);
    assert!(app.posts.is_empty());
    assert!(!draw(&app, now, 100, 20).contains("» news"));
}

#[test]
fn a_device_with_only_channels_opens_the_first() {
    let now = Instant::now();
    let mut app = App::new("dave", None);
    assert_eq!(app.on_update(Update::Conversations(Vec::new()), now), []);
    let actions = app.on_update(Update::Channels(vec![channel("feed", false)]), now);
    assert_eq!(actions, [Action::SelectChannel("feed".into())]);
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("> » feed"), "{screen}");
    assert!(screen.contains("No posts yet"), "{screen}");
    assert!(!screen.contains("No conversations yet"), "{screen}");
}

#[test]
fn a_live_post_appears_and_marks_its_channel_new_elsewhere() {
    let now = Instant::now();
    let mut app = alice(now);
    down(&mut app, 3, now);
    app.on_update(
        Update::ChannelHistory {
            channel: "feed".into(),
            posts: vec![post("feed", "f1", "first post", None)],
        },
        now,
    );
    let live = post("feed", "f2", "breaking: live post", None);
    app.on_update(Update::Event(Event::ChannelPost(live.clone())), now);
    // The same post delivered again is shown once.
    app.on_update(Update::Event(Event::ChannelPost(live)), now);
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("22:13 first post"), "{screen}");
    assert_eq!(screen.matches("breaking: live post").count(), 1, "{screen}");

    // A post to the other channel marks it, and is not shown here.
    app.on_update(
        Update::Event(Event::ChannelPost(post("news", "n1", "elsewhere", None))),
        now,
    );
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("» news (new)"), "{screen}");
    assert!(!screen.contains("elsewhere"), "{screen}");
    // Going there clears the mark and asks for its posts.
    let actions = app.on_key(key(KeyCode::Up), now);
    assert_eq!(actions, [Action::SelectChannel("news".into())]);
    assert!(!draw(&app, now, 100, 20).contains("(new)"));
}

#[test]
fn only_the_owners_composer_posts() {
    let now = Instant::now();
    let mut app = alice(now);
    // Text typed in a chat with bob is not posted to a channel she follows.
    assert!(!type_text(&mut app, "for bob", now).is_empty());
    assert_eq!(
        down(&mut app, 3, now),
        [Action::SelectChannel("feed".into())]
    );
    assert_eq!(app.on_key(key(KeyCode::Enter), now), []);
    // On feed (not hers) nothing is typed, Enter asks for nothing.
    assert_eq!(type_text(&mut app, "spoofed", now), []);
    assert_eq!(app.on_key(key(KeyCode::Backspace), now), []);
    assert_eq!(app.composer, "for bob");
    assert_eq!(app.on_key(key(KeyCode::Enter), now), []);
    let screen = draw(&app, now, 120, 20);
    assert!(screen.contains("» feed is read-only"), "{screen}");
    assert!(
        screen.contains("only its owner's device posts to this channel"),
        "{screen}"
    );
    assert!(screen.contains("(nothing was sent)"), "{screen}");
    assert!(!screen.contains("for bob"), "{screen}");

    // On news (hers) Enter posts, and no typing is announced.
    app.on_key(key(KeyCode::Up), now);
    for _ in 0.."for bob".len() {
        app.on_key(key(KeyCode::Backspace), now);
    }
    assert_eq!(type_text(&mut app, "news for all", now), []);
    assert!(draw(&app, now, 100, 20).contains("news for all"));
    assert_eq!(
        app.on_key(key(KeyCode::Enter), now),
        [Action::Post("news".into(), "news for all".into())]
    );
    assert!(app.composer.is_empty());
}

#[test]
fn a_hostile_channel_and_post_are_drawn_inert() {
    let now = Instant::now();
    let attack = "hi\x1b[2J\x1b]0;pwned\x07\u{202e}gnp.exe\nSECURITY: all is fine";
    let name = "ne\x1b[5mws\u{202e}";
    let mut app = App::new("alice", None);
    app.on_update(Update::Conversations(Vec::new()), now);
    app.on_update(Update::Channels(vec![channel(name, false)]), now);
    app.on_update(
        Update::ChannelHistory {
            channel: name.into(),
            posts: vec![post(name, "p1", attack, Some("a\x1b[1A\u{2066}.pdf"))],
        },
        now,
    );
    app.on_update(
        Update::Event(Event::ChannelPost(post(name, "p2", "live\x1b[31m", None))),
        now,
    );
    app.on_key(key(KeyCode::Enter), now);
    let screen = assert_inert(&app, now);
    assert!(screen.contains(r"» ne\x1b[5mws\u{202e}"), "{screen}");
    assert!(
        screen.contains(
            r"[file a\x1b[1A\u{2066}.pdf, 2.0 KiB] hi\x1b[2J\x1b]0;pwned\x07\u{202e}gnp.exe"
        ),
        "{screen}"
    );
    assert!(screen.contains("    | SECURITY: all is fine"), "{screen}");
    assert!(!screen.contains("│SECURITY"), "{screen}");
    assert!(screen.contains(r"live\x1b[31m"), "{screen}");
}

#[test]
fn the_newest_post_stays_in_view() {
    let now = Instant::now();
    let mut app = alice(now);
    down(&mut app, 2, now);
    let posts = (0..50)
        .map(|i| post("news", &format!("p{i}"), &format!("post number {i}"), None))
        .collect();
    app.on_update(
        Update::ChannelHistory {
            channel: "news".into(),
            posts,
        },
        now,
    );
    let screen = draw(&app, now, 80, 16);
    assert!(screen.contains("post number 49"), "{screen}");
    assert!(!screen.contains("post number 10 "), "{screen}");
}
