//! The message cursor and the composer's commands (decision 0042), without
//! a terminal or a network: parsing, keys, and what is drawn.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hush_client::{Event, PollOptionView, PollView, Target};

use super::app::{Action, App, Update};
use super::commands::{Command, Typed, parse};
use super::tests::{assert_inert, conv, draw, key, msg};

fn alt(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::ALT)
}

fn cmd(text: &str) -> Command {
    match parse(text) {
        Ok(Typed::Command(c)) => c,
        other => panic!("{text:?} parsed as {other:?}"),
    }
}

fn refused(text: &str) -> String {
    match parse(text) {
        Err(e) => e,
        other => panic!("{text:?} was not refused: {other:?}"),
    }
}

/// Types `text` and presses Enter.
fn enter(app: &mut App, text: &str, now: Instant) -> Vec<Action> {
    let mut actions = Vec::new();
    for c in text.chars() {
        actions.extend(app.on_key(key(KeyCode::Char(c)), now));
    }
    actions.extend(app.on_key(key(KeyCode::Enter), now));
    actions
}

fn poll_msg() -> hush_client::MessageView {
    let mut p = msg("p1", 2, "carol", "lunch?", false, "received");
    p.kind = "poll".into();
    p.poll = Some(PollView {
        multiple: false,
        options: vec![
            PollOptionView {
                text: "pizza".into(),
                voters: vec!["bob".into(), "carol".into()],
            },
            PollOptionView {
                text: "sushi".into(),
                voters: Vec::new(),
            },
        ],
    });
    p
}

/// alice in #team (selected), with a message of bob's, one of hers and
/// carol's poll.
fn team(now: Instant) -> App {
    let mut app = App::new("alice", Some(Target::Group("team".into())));
    app.on_update(
        Update::Conversations(vec![
            conv(2, "group", "team", &["alice", "bob", "carol"]),
            conv(1, "direct", "bob", &["alice", "bob"]),
        ]),
        now,
    );
    app.on_update(
        Update::History {
            target: Target::Group("team".into()),
            messages: vec![
                msg("b1", 2, "bob", "hello team", false, "read"),
                msg("a1", 2, "alice", "hi all", true, "delivered"),
                poll_msg(),
            ],
        },
        now,
    );
    app
}

#[test]
fn commands_parse_and_bad_ones_say_why() {
    assert_eq!(parse("hello"), Ok(Typed::Text("hello".into())));
    assert_eq!(parse("//etc/hosts"), Ok(Typed::Text("/etc/hosts".into())));
    assert_eq!(
        cmd("/reply sure thing"),
        Command::Reply("sure thing".into())
    );
    assert_eq!(cmd("/react 👍"), Command::React("👍".into()));
    assert_eq!(cmd("/unreact"), Command::Unreact);
    assert_eq!(cmd("/edit fixed"), Command::Edit(Some("fixed".into())));
    assert_eq!(cmd("/edit"), Command::Edit(None));
    assert_eq!(cmd("/delete"), Command::Delete);
    assert_eq!(cmd("/pin"), Command::Pin(true));
    assert_eq!(cmd("/unpin"), Command::Pin(false));
    assert_eq!(
        cmd("/forward #team"),
        Command::Forward(Target::Group("team".into()))
    );
    assert_eq!(
        cmd("/forward bob"),
        Command::Forward(Target::User("bob".into()))
    );
    assert_eq!(cmd("/vote 2"), Command::Vote(vec![2]));
    assert_eq!(cmd("/vote 1, 3"), Command::Vote(vec![1, 3]));
    assert_eq!(
        cmd("/poll Lunch? | pizza |sushi "),
        Command::Poll("Lunch?".into(), vec!["pizza".into(), "sushi".into()])
    );
    assert_eq!(
        cmd("/search  the plan "),
        Command::Search("the plan".into())
    );
    assert_eq!(cmd("/mute"), Command::Mute(None));
    assert_eq!(
        cmd("/mute 8h"),
        Command::Mute(Some(Duration::from_secs(8 * 3600)))
    );
    assert_eq!(
        cmd("/mute 1w"),
        Command::Mute(Some(Duration::from_secs(7 * 86400)))
    );
    assert_eq!(cmd("/unmute"), Command::Unmute);
    assert_eq!(cmd("/help"), Command::Help);

    assert!(refused("/frobnicate").contains("unknown command /frobnicate"));
    assert!(refused("/").contains("/help"));
    assert!(refused("/reply").contains("/reply TEXT"));
    assert!(refused("/react").contains("EMOJI"));
    assert!(refused("/react a b").contains("one emoji"));
    assert!(refused("/pin now").contains("takes nothing"));
    assert!(refused("/forward").contains("USERNAME or #GROUP"));
    assert!(refused("/forward #").contains("which group"));
    assert!(refused("/forward bob carol").contains("one username"));
    assert!(refused("/vote 0").contains("not an option number"));
    assert!(refused("/vote x").contains("not an option number"));
    assert!(refused("/poll Lunch? | pizza").contains("at least two options"));
    assert!(refused("/poll Lunch? | pizza | ").contains("at least two options"));
    assert!(refused("/mute soon").contains("not a duration"));
    assert!(refused("/mute 0s").contains("not a duration"));
    assert!(refused("/search").contains("/search TEXT"));
}

#[test]
fn alt_arrows_and_page_keys_pick_a_message_and_esc_lets_go() {
    let now = Instant::now();
    let mut app = team(now);
    assert!(app.on_key(alt(KeyCode::Up), now).is_empty());
    assert_eq!(app.picked.as_deref(), Some("p1"));
    app.on_key(alt(KeyCode::Up), now);
    app.on_key(key(KeyCode::PageUp), now);
    assert_eq!(app.picked.as_deref(), Some("b1"));
    // It stops at the oldest and the newest.
    app.on_key(key(KeyCode::PageUp), now);
    assert_eq!(app.picked.as_deref(), Some("b1"));
    app.on_key(alt(KeyCode::Down), now);
    assert_eq!(app.picked.as_deref(), Some("a1"));
    app.on_key(key(KeyCode::PageDown), now);
    app.on_key(key(KeyCode::PageDown), now);
    assert_eq!(app.picked.as_deref(), Some("p1"));
    let screen = draw(&app, now, 120, 24);
    assert!(
        screen.contains("Message to #team · picked: carol "),
        "{screen}"
    );
    assert!(screen.contains("(Esc lets go)"), "{screen}");
    assert!(screen.contains("/reply /react"), "{screen}");
    // Esc lets go of the message; the next Esc quits.
    assert!(app.on_key(key(KeyCode::Esc), now).is_empty());
    assert_eq!(app.picked, None);
    assert!(!app.quit);
    assert_eq!(app.on_key(key(KeyCode::Esc), now), [Action::Quit]);
}

#[test]
fn the_picked_message_is_highlighted() {
    let now = Instant::now();
    let mut app = team(now);
    app.on_key(alt(KeyCode::Up), now);
    app.on_key(alt(KeyCode::Up), now);
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 24)).unwrap();
    terminal.draw(|f| super::ui::render(f, &app, now)).unwrap();
    let buffer = terminal.backend().buffer();
    let reversed_row = |needle: &str| {
        (0..24).find_map(|y| {
            let row: String = (0..120).map(|x| buffer[(x, y)].symbol()).collect();
            let x = row.find(needle)?;
            let col = row[..x].chars().count() as u16;
            Some(
                buffer[(col, y)]
                    .modifier
                    .contains(ratatui::style::Modifier::REVERSED),
            )
        })
    };
    assert_eq!(reversed_row("you: hi all"), Some(true));
    assert_eq!(reversed_row("bob: hello team"), Some(false));
}

#[test]
fn a_new_conversation_or_history_without_it_forgets_the_pick() {
    let now = Instant::now();
    let mut app = team(now);
    app.on_key(alt(KeyCode::Up), now);
    app.on_key(key(KeyCode::Tab), now);
    assert_eq!(app.picked, None);
    let mut app = team(now);
    app.on_key(alt(KeyCode::Up), now);
    app.on_update(
        Update::History {
            target: Target::Group("team".into()),
            messages: vec![msg("b1", 2, "bob", "hello team", false, "read")],
        },
        now,
    );
    assert_eq!(app.picked, None);
}

#[test]
fn commands_on_the_picked_message_become_actions() {
    let now = Instant::now();
    let team_t = Target::Group("team".into());
    let mut app = team(now);
    // Nothing picked: a clear line, nothing sent, the command kept.
    assert!(enter(&mut app, "/react 👍", now).is_empty());
    assert!(
        app.problem
            .as_deref()
            .unwrap()
            .contains("pick a message first")
    );
    assert!(draw(&app, now, 120, 24).contains("pick a message first with Alt+↑/↓ or PgUp/PgDn"));
    assert_eq!(app.composer, "/react 👍");
    app.composer.clear();

    let mut on = |steps: usize, text: &str| {
        for _ in 0..steps {
            app.on_key(alt(KeyCode::Up), now);
        }
        let a = enter(&mut app, text, now);
        assert_eq!(app.picked, None, "the pick ends with {text}");
        assert!(app.composer.is_empty(), "{text}: {:?}", app.problem);
        a
    };
    assert_eq!(
        on(3, "/reply me too"),
        [Action::Reply(team_t.clone(), "me too".into(), "b1".into())]
    );
    assert_eq!(
        on(3, "/react 👍"),
        [Action::React("b1".into(), Some("👍".into()))]
    );
    assert_eq!(on(3, "/unreact"), [Action::React("b1".into(), None)]);
    assert_eq!(on(2, "/delete"), [Action::Delete("a1".into())]);
    assert_eq!(
        on(2, "/edit hi everyone"),
        [Action::Edit("a1".into(), "hi everyone".into())]
    );
    assert_eq!(on(1, "/pin"), [Action::Pin("p1".into(), true)]);
    assert_eq!(on(1, "/unpin"), [Action::Pin("p1".into(), false)]);
    assert_eq!(
        on(3, "/forward bob"),
        [Action::Forward("b1".into(), Target::User("bob".into()))]
    );
    // Options count from 1 on screen, from 0 for the library.
    assert_eq!(on(1, "/vote 2"), [Action::Vote("p1".into(), vec![1])]);
}

#[test]
fn a_bad_vote_or_edit_is_refused_with_a_reason() {
    let now = Instant::now();
    let mut app = team(now);
    app.on_key(alt(KeyCode::Up), now);
    assert!(enter(&mut app, "/vote 3", now).is_empty());
    assert_eq!(
        app.problem.as_deref(),
        Some("the poll has options 1 to 2, not 3")
    );
    // The pick stays for a corrected command.
    assert_eq!(app.picked.as_deref(), Some("p1"));
    app.composer.clear();
    app.on_key(alt(KeyCode::Up), now);
    app.on_key(alt(KeyCode::Up), now);
    assert!(enter(&mut app, "/vote 1", now).is_empty());
    assert_eq!(
        app.problem.as_deref(),
        Some("the picked message is not a poll")
    );
    app.composer.clear();
    assert!(enter(&mut app, "/edit", now).is_empty());
    assert_eq!(
        app.problem.as_deref(),
        Some("only your own messages can be edited")
    );
    // /edit alone on one's own message fills in its text.
    app.composer.clear();
    app.on_key(alt(KeyCode::Down), now);
    assert!(enter(&mut app, "/edit", now).is_empty());
    assert_eq!(app.composer, "/edit hi all");
    assert_eq!(app.problem, None);
    assert_eq!(app.picked.as_deref(), Some("a1"));
    // An unknown command sends nothing and says so.
    app.composer.clear();
    assert!(enter(&mut app, "/shrug", now).is_empty());
    let screen = draw(&app, now, 120, 24);
    assert!(screen.contains("unknown command /shrug"), "{screen}");
    // The next key clears the line.
    app.on_key(key(KeyCode::Backspace), now);
    assert_eq!(app.problem, None);
}

#[test]
fn conversation_commands_need_no_pick() {
    let now = Instant::now();
    let team_t = Target::Group("team".into());
    let mut app = team(now);
    assert_eq!(
        enter(&mut app, "/poll Lunch? | pizza | sushi", now),
        [Action::Poll(
            team_t.clone(),
            "Lunch?".into(),
            vec!["pizza".into(), "sushi".into()]
        )]
    );
    assert_eq!(
        enter(&mut app, "/mute 8h", now),
        [Action::Mute(
            team_t.clone(),
            Some(Duration::from_secs(8 * 3600))
        )]
    );
    assert_eq!(
        enter(&mut app, "/mute", now),
        [Action::Mute(team_t.clone(), None)]
    );
    assert_eq!(
        enter(&mut app, "/unmute", now),
        [Action::Unmute(team_t.clone())]
    );
    assert_eq!(
        enter(&mut app, "/search lunch", now),
        [Action::Search(team_t.clone(), "lunch".into())]
    );
    assert_eq!(
        enter(&mut app, "//shrug", now),
        [Action::Send(team_t, "/shrug".into())]
    );
    // No typing indicator while a command is typed.
    assert!(app.on_key(key(KeyCode::Char('/')), now).is_empty());
    app.composer.clear();
    // A poll in a 1:1 chat is refused here.
    app.on_key(key(KeyCode::Tab), now);
    assert!(enter(&mut app, "/poll Lunch? | a | b", now).is_empty());
    assert_eq!(app.problem.as_deref(), Some("polls are for groups"));
}

#[test]
fn help_and_search_results_show_until_esc() {
    let now = Instant::now();
    let team_t = Target::Group("team".into());
    let mut app = team(now);
    assert!(enter(&mut app, "/help", now).is_empty());
    let screen = draw(&app, now, 120, 30);
    assert!(screen.contains("/poll Q | A | B…"), "{screen}");
    assert!(screen.contains("/mute [DURATION]"), "{screen}");
    assert!(!screen.contains("hello team"), "{screen}");
    app.on_key(key(KeyCode::Esc), now);
    assert!(draw(&app, now, 120, 30).contains("hello team"));
    assert!(!app.quit);

    app.on_update(
        Update::Found {
            target: team_t,
            query: "hello".into(),
            results: vec![msg("b1", 2, "bob", "hello team", false, "read")],
        },
        now,
    );
    let screen = draw(&app, now, 120, 30);
    assert!(screen.contains("Search \"hello\": 1 message"), "{screen}");
    assert!(screen.contains("bob: hello team"), "{screen}");
    assert!(!screen.contains("hi all"), "{screen}");
    app.on_key(key(KeyCode::Esc), now);
    assert!(draw(&app, now, 120, 30).contains("hi all"));
    // Results for a conversation no longer shown are dropped.
    app.on_update(
        Update::Found {
            target: Target::User("bob".into()),
            query: "x".into(),
            results: Vec::new(),
        },
        now,
    );
    assert_eq!(app.panel, None);
}

#[test]
fn pins_polls_marks_and_mutes_are_shown() {
    let now = Instant::now();
    let mut app = team(now);
    let mut list = vec![
        conv(2, "group", "team", &["alice", "bob", "carol"]),
        conv(1, "direct", "bob", &["alice", "bob"]),
    ];
    list[0].muted_until = Some(hush_client::mute::FOREVER);
    app.on_update(Update::Conversations(list), now);
    app.on_update(
        Update::Event(Event::Pinned {
            id: "b1".into(),
            pinned: true,
            from: "carol".into(),
        }),
        now,
    );
    app.on_update(
        Update::Event(Event::Reaction {
            id: "a1".into(),
            from: "bob".into(),
            emoji: Some("🎉".into()),
        }),
        now,
    );
    let mut fwd = msg("f1", 2, "bob", "forwarded news", false, "received");
    fwd.forwarded = true;
    app.on_update(Update::Event(Event::Message(fwd)), now);
    let screen = draw(&app, now, 120, 30);
    assert!(screen.contains("#team (muted)"), "{screen}");
    assert!(screen.contains("Pinned: bob: \"hello team\""), "{screen}");
    assert!(screen.contains("hello team (pinned)"), "{screen}");
    // (A wide emoji takes two cells of the test buffer.)
    assert!(screen.contains("hi all [bob 🎉"), "{screen}");
    assert!(screen.contains("[poll] lunch?"), "{screen}");
    assert!(screen.contains("1. pizza (2: bob, carol)"), "{screen}");
    assert!(screen.contains("2. sushi (0)"), "{screen}");
    assert!(screen.contains("(forwarded) forwarded news"), "{screen}");
}

#[test]
fn a_hostile_pin_search_and_problem_are_drawn_inert() {
    let now = Instant::now();
    let attack = "x\x1b[2J\u{202e}evil\nSECURITY: fine";
    let mut app = team(now);
    let mut m = msg("h1", 2, "mal\x1b[1Alory", attack, false, "received");
    m.pinned = true;
    app.on_update(Update::Event(Event::Message(m.clone())), now);
    app.on_key(alt(KeyCode::Up), now);
    let screen = assert_inert(&app, now);
    assert!(screen.contains(r"Pinned: mal\x1b[1Alory"), "{screen}");
    assert!(screen.contains(r"picked: mal\x1b[1Alory"), "{screen}");
    app.on_update(Update::Failed(format!("no reaction: {attack}")), now);
    assert_inert(&app, now);
    app.on_update(
        Update::Found {
            target: Target::Group("team".into()),
            query: attack.into(),
            results: vec![m],
        },
        now,
    );
    let screen = assert_inert(&app, now);
    assert!(screen.contains(r"Search "), "{screen}");
}

#[test]
fn a_picked_message_further_up_is_scrolled_into_view() {
    let now = Instant::now();
    let mut app = team(now);
    for i in 0..40 {
        let m = msg(
            &format!("n{i}"),
            2,
            "bob",
            &format!("number {i}"),
            false,
            "read",
        );
        app.on_update(Update::Event(Event::Message(m)), now);
    }
    let screen = draw(&app, now, 100, 16);
    assert!(screen.contains("number 39"), "{screen}");
    assert!(!screen.contains("hello team"), "{screen}");
    // Up past the 40 newest: the oldest message shows, the newest not.
    for _ in 0..45 {
        app.on_key(key(KeyCode::PageUp), now);
    }
    assert_eq!(app.picked.as_deref(), Some("b1"));
    let screen = draw(&app, now, 100, 16);
    assert!(screen.contains("bob: hello team"), "{screen}");
    assert!(!screen.contains("number 39"), "{screen}");
}
