//! The chat screen without a terminal: state + keys + drawing into
//! ratatui's `TestBackend`.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hush_client::{ConversationView, Event, MessageView, Target};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{Action, App, TYPING_IDLE, TYPING_REFRESH, Update};
use super::ui;

pub(super) fn conv(id: i64, kind: &str, name: &str, members: &[&str]) -> ConversationView {
    ConversationView {
        id,
        kind: kind.into(),
        name: name.into(),
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        admins: Vec::new(),
        only_admins_send: false,
        disappear_secs: None,
        muted_until: None,
        other_chats: 0,
    }
}

pub(super) fn msg(
    id: &str,
    conversation: i64,
    from: &str,
    text: &str,
    outgoing: bool,
    status: &str,
) -> MessageView {
    MessageView {
        id: id.into(),
        conversation,
        group: None,
        from: from.into(),
        kind: "text".into(),
        text: Some(text.into()),
        sent_at: 1_700_000_000_000,
        outgoing,
        status: status.into(),
        reply_to: None,
        edited: false,
        deleted: false,
        file_name: None,
        size: None,
        media_type: None,
        expires_at: None,
        unfranked: false,
        receipts: Box::default(),
        reactions: Vec::new(),
        mentions: Vec::new(),
        mentions_me: false,
        pinned: false,
        forwarded: false,
        poll: None,
        quoted: None,
    }
}

pub(super) fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// The screen as text, one line per row.
pub(super) fn draw(app: &App, now: Instant, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| ui::render(f, app, now)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// alice's screen with a chat with bob (selected) and a group.
fn alice(now: Instant) -> App {
    let mut app = App::new("alice", None);
    let actions = app.on_update(
        Update::Conversations(vec![
            conv(1, "direct", "bob", &["alice", "bob"]),
            conv(2, "group", "team", &["alice", "bob", "carol"]),
        ]),
        now,
    );
    assert_eq!(actions, [Action::Select(Target::User("bob".into()))]);
    app.on_update(
        Update::History {
            target: Target::User("bob".into()),
            messages: vec![
                msg("m1", 1, "bob", "hello alice", false, "read"),
                msg("m2", 1, "alice", "hi bob", true, "sent"),
                msg("m3", 1, "alice", "how are you?", true, "delivered"),
                msg("m4", 1, "alice", "still there?", true, "read"),
            ],
        },
        now,
    );
    app
}

#[test]
fn the_screen_shows_conversations_messages_and_receipt_marks() {
    let now = Instant::now();
    let mut app = alice(now);
    app.on_update(
        Update::Event(Event::Typing {
            conversation: 1,
            from: "bob".into(),
            started: true,
        }),
        now,
    );
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("Conversations"), "{screen}");
    assert!(screen.contains("> bob"), "{screen}");
    assert!(screen.contains("#team"), "{screen}");
    assert!(screen.contains("bob: hello alice"), "{screen}");
    assert!(screen.contains("you: hi bob ✓ "), "{screen}");
    assert!(screen.contains("you: how are you? ✓✓"), "{screen}");
    assert!(screen.contains("you: still there? ✔✔"), "{screen}");
    assert!(screen.contains("bob is typing…"), "{screen}");
    assert!(screen.contains("Message to bob"), "{screen}");
    // The typing line goes away when it expires.
    let later = now + Duration::from_secs(10);
    assert!(!draw(&app, later, 100, 20).contains("is typing"));
}

#[test]
fn the_newest_message_stays_in_view() {
    let now = Instant::now();
    let mut app = alice(now);
    for i in 0..50 {
        app.on_update(
            Update::Event(Event::Message(msg(
                &format!("n{i}"),
                1,
                "bob",
                &format!("message number {i}"),
                false,
                "received",
            ))),
            now,
        );
    }
    let screen = draw(&app, now, 80, 16);
    assert!(screen.contains("message number 49"), "{screen}");
    assert!(!screen.contains("message number 10 "), "{screen}");
}

#[test]
fn enter_sends_and_typing_is_debounced() {
    let t0 = Instant::now();
    let mut app = alice(t0);
    let bob = Target::User("bob".into());
    let a = app.on_key(key(KeyCode::Char('h')), t0);
    assert_eq!(a, [Action::Typing(bob.clone(), true)]);
    // More keys soon after: no new indicator.
    let a = app.on_key(key(KeyCode::Char('i')), t0 + Duration::from_millis(500));
    assert!(a.is_empty());
    // Still typing after the refresh interval: tell them again.
    let t1 = t0 + TYPING_REFRESH + Duration::from_millis(1);
    let a = app.on_key(key(KeyCode::Char('!')), t1);
    assert_eq!(a, [Action::Typing(bob.clone(), true)]);
    assert_eq!(app.composer, "hi!");
    let screen = draw(&app, t1, 100, 20);
    assert!(screen.contains("│hi!"), "{screen}");

    let a = app.on_key(key(KeyCode::Enter), t1);
    assert_eq!(
        a,
        [
            Action::Typing(bob.clone(), false),
            Action::Send(bob.clone(), "hi!".into())
        ]
    );
    assert!(app.composer.is_empty());
    // An empty composer sends nothing.
    assert!(app.on_key(key(KeyCode::Enter), t1).is_empty());

    // Idle for a while: "stopped typing".
    app.on_key(key(KeyCode::Char('o')), t1);
    assert!(app.tick(t1 + Duration::from_secs(1)).is_empty());
    let a = app.tick(t1 + TYPING_IDLE);
    assert_eq!(a, [Action::Typing(bob, false)]);
}

#[test]
fn tab_and_arrows_switch_conversations_and_esc_quits() {
    let now = Instant::now();
    let mut app = alice(now);
    let a = app.on_key(key(KeyCode::Tab), now);
    assert_eq!(a, [Action::Select(Target::Group("team".into()))]);
    assert!(app.messages.is_empty());
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("Message to #team"), "{screen}");
    assert!(screen.contains("(alice, bob, carol)"), "{screen}");
    let a = app.on_key(key(KeyCode::Down), now);
    assert_eq!(a, [Action::Select(Target::User("bob".into()))]);
    let a = app.on_key(key(KeyCode::Up), now);
    assert_eq!(a, [Action::Select(Target::Group("team".into()))]);
    let a = app.on_key(
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        now,
    );
    assert_eq!(a, [Action::Quit]);
    assert!(app.quit);
    let mut app = alice(now);
    assert_eq!(app.on_key(key(KeyCode::Esc), now), [Action::Quit]);
}

#[test]
fn live_events_update_the_screen() {
    let now = Instant::now();
    let mut app = alice(now);
    // A message in another conversation marks it new.
    let mut m = msg("g1", 2, "carol", "team news", false, "received");
    m.group = Some("team".into());
    app.on_update(Update::Event(Event::Message(m)), now);
    assert!(draw(&app, now, 100, 20).contains("#team (new)"));
    // Receipts, edits and deletes apply in place.
    app.on_update(
        Update::Event(Event::Receipt {
            ids: vec!["m2".into()],
            status: "read".into(),
            from: "bob".into(),
        }),
        now,
    );
    app.on_update(
        Update::Event(Event::Edited {
            id: "m1".into(),
            text: "hello again".into(),
        }),
        now,
    );
    app.on_update(Update::Event(Event::Deleted { id: "m3".into() }), now);
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("you: hi bob ✔✔"), "{screen}");
    assert!(screen.contains("bob: hello again (edited)"), "{screen}");
    assert!(screen.contains("you: (deleted)"), "{screen}");
    // A changed key is a notice nobody can miss.
    app.on_update(
        Update::Event(Event::KeyChanged {
            username: "bob".into(),
        }),
        now,
    );
    assert!(draw(&app, now, 120, 20).contains("SECURITY: the identity key of bob CHANGED"));
    // Losing the server shows, and clears when it is back.
    app.on_update(Update::Connection(Some("connection refused".into())), now);
    assert!(draw(&app, now, 100, 20).contains("offline: connection refused"));
    app.on_update(Update::Connection(None), now);
    assert!(!draw(&app, now, 100, 20).contains("offline"));
}

#[test]
fn a_chat_with_someone_new_waits_for_its_first_message() {
    let now = Instant::now();
    let mut app = App::new("alice", Some(Target::User("dave".into())));
    let a = app.on_update(
        Update::Conversations(vec![conv(1, "direct", "bob", &["alice", "bob"])]),
        now,
    );
    assert!(a.is_empty());
    assert_eq!(app.selected_target(), Some(&Target::User("dave".into())));
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("> dave"), "{screen}");
    assert!(screen.contains("No messages yet"), "{screen}");
    let empty = App::new("alice", None);
    assert!(draw(&empty, now, 100, 20).contains("No conversations yet"));
}

/// Every cell of the screen, checked for characters a terminal would obey.
pub(super) fn assert_inert(app: &App, now: Instant) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 24)).unwrap();
    terminal.draw(|f| ui::render(f, app, now)).unwrap();
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert!(
            !cell.symbol().chars().any(crate::inert::is_unsafe),
            "a raw control character reached the screen: {:?}",
            cell.symbol()
        );
    }
    draw(app, now, 120, 24)
}

#[test]
fn a_hostile_message_and_group_name_are_drawn_inert() {
    let now = Instant::now();
    let attack = "hi\x1b[2J\x1b]0;pwned\x07\u{9b}31m\u{202e}gnp.exe\nSECURITY: all is fine";
    let mut app = App::new("alice", None);
    app.on_update(
        Update::Conversations(vec![
            conv(1, "direct", "mallory", &["alice", "mallory"]),
            conv(2, "group", "te\u{202e}am\x1b[5m", &["alice", "mallory"]),
        ]),
        now,
    );
    app.on_update(
        Update::History {
            target: Target::User("mallory".into()),
            messages: vec![msg("m1", 1, "mallory", attack, false, "received")],
        },
        now,
    );
    app.on_update(
        Update::Event(Event::Typing {
            conversation: 1,
            from: "mal\x1b[1Alory".into(),
            started: true,
        }),
        now,
    );
    let screen = assert_inert(&app, now);
    // Shown, visibly, rather than obeyed or silently dropped.
    assert!(
        screen.contains(r"mallory: hi\x1b[2J\x1b]0;pwned\x07\u{9b}31m\u{202e}gnp.exe"),
        "{screen}"
    );
    assert!(screen.contains(r"#te\u{202e}am\x1b[5m"), "{screen}");
    assert!(screen.contains(r"mal\x1b[1Alory is typing"), "{screen}");
    // The forged line is indented under the message, not a line of its own.
    assert!(screen.contains("    | SECURITY: all is fine"), "{screen}");
    assert!(!screen.contains("│SECURITY"), "{screen}");
    // The group's title and the composer's title too.
    app.on_key(key(KeyCode::Tab), now);
    let screen = assert_inert(&app, now);
    assert!(
        screen.contains(r"Message to #te\u{202e}am\x1b[5m"),
        "{screen}"
    );
}

/// A message sent from another of alice's devices is not new to her; one
/// from bob is, until another of her devices reads it.
#[test]
fn unread_follows_the_other_devices() {
    let now = Instant::now();
    let mut app = alice(now);
    let mut from = |id: &str, who: &str, outgoing: bool| {
        app.on_update(
            Update::Event(Event::Message(msg(id, 2, who, "x", outgoing, "received"))),
            now,
        );
        draw(&app, now, 100, 20)
    };
    let screen = from("g1", "alice", true);
    assert!(!screen.contains("#team (new)"), "{screen}");
    let screen = from("g2", "bob", false);
    assert!(screen.contains("#team (new)"), "{screen}");
    app.on_update(
        Update::Event(Event::ReadElsewhere {
            conversation: 2,
            ids: vec!["g2".into()],
        }),
        now,
    );
    let screen = draw(&app, now, 100, 20);
    assert!(!screen.contains("(new)"), "{screen}");
}

#[test]
fn a_reply_shows_the_message_it_quotes() {
    let now = Instant::now();
    let mut app = alice(now);
    let mut reply = msg("m5", 1, "bob", "fine, thanks", false, "received");
    reply.reply_to = Some("m3".into());
    reply.quoted = Some(hush_client::Quoted {
        from: "alice".into(),
        text: Some("how are you?".into()),
    });
    app.on_update(Update::Event(Event::Message(reply)), now);
    let screen = draw(&app, now, 100, 20);
    assert!(screen.contains("┆ alice: \"how are you?\""), "{screen}");
    assert!(screen.contains("bob: fine, thanks"), "{screen}");
}
