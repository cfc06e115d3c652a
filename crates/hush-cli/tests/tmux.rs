//! `hush chat` in a real terminal: tmux runs it, keys go in with
//! `send-keys`, the screen comes out with `capture-pane`.
//!
//! The devices view (F2) and the backup view (F3) are driven the same way,
//! against `hush link`, `hush restore` and the server; channels (decision
//! 0038) between the owner's `hush` and a subscriber's `hush chat`.
//!
//! Skipped (with a notice) only when tmux is missing and `CI` is unset; in
//! CI a missing tmux fails the test (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A private tmux server (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Tmux {
            socket: format!("hush-test-{}-{nanos}", std::process::id()),
        }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("tmux");
        cmd.arg("-L").arg(&self.socket).args(args);
        run(cmd)
    }

    /// Starts `command` (a shell command) in a detached 120x40 session.
    fn start(&self, session: &str, command: &str) {
        let out = self.tmux(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// Types `text` literally.
    fn type_text(&self, session: &str, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", session, "-l", text])
                .status
                .success()
        );
    }

    fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    /// Waits until the screen shows `needle`; returns the screen.
    fn wait_for(&self, session: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen(session);
            if screen.contains(needle) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("{needle:?} never appeared in {session}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The shell command that runs `hush chat ARGS` for `user`, then reports
/// how it exited and stays on screen.
fn chat_command(user: &User, args: &str) -> String {
    format!(
        "HUSH_PASSPHRASE='{}' '{}' --data-dir '{}' chat {args}; echo \"chat exited with $?\"; sleep 600",
        user.passphrase,
        HUSH,
        user.dir.path().display()
    )
}

/// Whether tmux can run the test; in CI a missing tmux fails it.
fn tmux_or_skip() -> bool {
    if tmux_available() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("tmux is not installed, and CI is set: .ci/run must install tmux");
    }
    eprintln!("NOTICE: tmux is not installed; skipping the `hush chat` terminal test");
    false
}

#[test]
fn chat_in_a_real_terminal() {
    if !tmux_or_skip() {
        return;
    }
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    bob.ok(&["send", "alice", "hello from bob"]);
    alice.ok(&["group", "create", "team", "--members", "bob,carol"]);
    let wait = Duration::from_secs(30);

    let tmux = Tmux::new();
    tmux.start("alice", &chat_command(&alice, "bob"));
    let screen = tmux.wait_for("alice", "hello from bob", wait);
    assert!(screen.contains("Conversations"), "{screen}");
    assert!(screen.contains("#team"), "{screen}");
    assert!(screen.contains("Message to bob"), "{screen}");

    // Type and send; bob receives it.
    tmux.type_text("alice", "hi from the terminal");
    tmux.wait_for("alice", "hi from the terminal", wait);
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "you: hi from the terminal", wait);
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    while !got.iter().any(|t| t == "hi from the terminal") {
        assert!(Instant::now() < deadline, "bob never got it: {got:?}");
        got.extend(bob.sync_texts());
    }
    // Bob's device acknowledged it (✓✓), then bob read it (✔✔).
    tmux.wait_for("alice", "hi from the terminal ✓✓", wait);
    bob.ok(&["history", "alice"]);
    tmux.wait_for("alice", "hi from the terminal ✔✔", wait);

    // A message from bob arrives live.
    bob.ok(&["send", "alice", "live from bob"]);
    tmux.wait_for("alice", "bob: live from bob", wait);

    // Bob opens the chat too and types: alice sees it.
    tmux.start("bob", &chat_command(&bob, "alice"));
    tmux.wait_for("bob", "live from bob", wait);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut typed = 0;
    loop {
        // Keep typing: each pause is short enough that bob's chat keeps
        // telling alice, and one of those reaches her while she listens.
        tmux.type_text("bob", "x");
        typed += 1;
        std::thread::sleep(Duration::from_millis(700));
        if tmux.screen("alice").contains("bob is typing…") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice never saw bob typing ({typed} keys); her screen:\n{}",
            tmux.screen("alice")
        );
    }
    tmux.keys("bob", &["Escape"]);
    tmux.wait_for("bob", "chat exited with 0", wait);

    // Tab moves to the group.
    tmux.keys("alice", &["Tab"]);
    tmux.wait_for("alice", "Message to #team", wait);
    tmux.type_text("alice", "hello team");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "you: hello team", wait);
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    while !got.iter().any(|t| t == "hello team") {
        assert!(Instant::now() < deadline, "carol never got it: {got:?}");
        got.extend(carol.sync_texts());
    }

    // Esc quits cleanly and gives the terminal back.
    tmux.keys("alice", &["Escape"]);
    let screen = tmux.wait_for("alice", "chat exited with 0", wait);
    assert!(!screen.contains("Conversations"), "{screen}");
}

/// The recovery key on a screen: the two lines of 8 groups of 4
/// hexadecimal characters each.
fn recovery_key_on(screen: &str) -> String {
    let rows: Vec<String> = screen
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .filter(|l| {
            let groups: Vec<&str> = l.split_whitespace().collect();
            groups.len() == 8
                && groups
                    .iter()
                    .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(rows.len(), 2, "no recovery key on the screen:\n{screen}");
    rows.join(" ")
}

/// `hush restore` into a new directory with `key`: the texts of its
/// history with bob.
fn restore_and_read(url: &str, name: &str, source: &[&str], key: &str) -> Vec<String> {
    let restored = User::new(name);
    let mut args = vec!["--json", "restore", "--server", url];
    args.extend_from_slice(source);
    let mut cmd = restored.command(&args);
    cmd.env("HUSH_RECOVERY_KEY", key);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "hush restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    texts(&restored.json(&["history", "bob"]))
}

/// Waits until the screen no longer shows `needle`; returns the screen.
fn wait_gone(tmux: &Tmux, session: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let screen = tmux.screen(session);
        if !screen.contains(needle) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} stayed on {session}'s screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn devices_and_backups_in_a_real_terminal() {
    if !tmux_or_skip() {
        return;
    }
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello bob"]);
    bob.sync_texts();
    bob.ok(&["send", "alice", "hello alice"]);
    // A schedule set from the shell: `hush chat` keeps it, as `hush sync`
    // does (a new target is due at once).
    let files = tempfile::tempdir().unwrap();
    let scheduled = files.path().join("scheduled.hushbackup");
    alice.json(&[
        "backup",
        "create",
        "--out",
        files.path().join("first").to_str().unwrap(),
    ]);
    alice.json(&[
        "backup",
        "schedule",
        "--out",
        scheduled.to_str().unwrap(),
        "--every",
        "1d",
    ]);
    let wait = Duration::from_secs(60);

    let tmux = Tmux::new();
    tmux.start("alice", &chat_command(&alice, "bob"));
    tmux.wait_for("alice", "bob: hello alice", wait);
    let screen = tmux.wait_for("alice", "scheduled backup: wrote", wait);
    assert!(scheduled.exists(), "{screen}");

    // F2: the devices. Approve a new one with the code its `hush link` shows.
    tmux.keys("alice", &["F2"]);
    let screen = tmux.wait_for("alice", "(this device)", wait);
    assert!(screen.contains("Devices of alice"), "{screen}");
    let laptop = User::new("alice-laptop");
    let (child, code) = common::link::start_link(&laptop, &url, "laptop", "120s");
    tmux.type_text("alice", "l");
    tmux.wait_for("alice", "Link code the new device shows", wait);
    tmux.type_text("alice", &code);
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "linked device 2", Duration::from_secs(120));
    let (ok, _, stderr) = common::link::finish_link(child);
    assert!(ok, "hush link failed: {stderr}");
    // The list shows it, and it has the history.
    let screen = tmux.wait_for("alice", "2  laptop  added", wait);
    assert!(screen.contains("*  1  "), "{screen}");
    let on_laptop = texts(&laptop.json(&["history", "bob"]));
    assert!(
        on_laptop.iter().any(|t| t == "hello alice"),
        "{on_laptop:?}"
    );

    // Remove it: select it, x, confirm.
    tmux.keys("alice", &["Down"]);
    tmux.type_text("alice", "x");
    tmux.wait_for("alice", "Remove device 2 (laptop)?", wait);
    tmux.type_text("alice", "y");
    tmux.wait_for("alice", "removed device 2 from your account", wait);
    wait_gone(&tmux, "alice", "laptop", wait);
    // The removed device is signed out and hears nothing new.
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "after the removal"]);
    tmux.keys("alice", &["Escape"]);
    tmux.wait_for("alice", "bob: after the removal", wait);
    let out = laptop.run(&["sync"]);
    assert!(!out.status.success(), "the removed device still syncs");

    // F3: a backup to a file, whose key `hush restore` takes.
    tmux.keys("alice", &["F3"]);
    let screen = tmux.wait_for("alice", "On the server: no backup", wait);
    assert!(
        screen.contains("Scheduled: a backup is kept at"),
        "{screen}"
    );
    tmux.type_text("alice", "f");
    tmux.wait_for("alice", "Write the backup to", wait);
    let file = files.path().join("from-chat.hushbackup");
    tmux.keys("alice", &["C-u"]);
    tmux.type_text("alice", file.to_str().unwrap());
    tmux.keys("alice", &["Enter"]);
    let screen = tmux.wait_for("alice", "RECOVERY KEY (shown once", wait);
    assert!(screen.contains("Whoever has this key"), "{screen}");
    let key = recovery_key_on(&screen);
    // Esc does not take the key away; Enter does.
    tmux.keys("alice", &["Escape"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(recovery_key_on(&tmux.screen("alice")), key);
    tmux.keys("alice", &["Enter"]);
    wait_gone(&tmux, "alice", &key[..39], wait);
    let texts_back = restore_and_read(&url, "alice-restored", &[file.to_str().unwrap()], &key);
    assert!(
        texts_back.iter().any(|t| t == "after the removal"),
        "{texts_back:?}"
    );

    // A backup on the server, asked first; the key alone brings it back.
    tmux.type_text("alice", "s");
    tmux.wait_for("alice", "Store a new backup on the server?", wait);
    tmux.type_text("alice", "y");
    let screen = tmux.wait_for("alice", "RECOVERY KEY (shown once", wait);
    assert!(screen.contains("--from-server"), "{screen}");
    let key = recovery_key_on(&screen);
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "On the server: a backup of", wait);
    let texts_back = restore_and_read(&url, "alice-from-server", &["--from-server"], &key);
    assert!(
        texts_back.iter().any(|t| t == "after the removal"),
        "{texts_back:?}"
    );

    // Esc back to the chat, Esc quits.
    tmux.keys("alice", &["Escape"]);
    tmux.wait_for("alice", "Message to bob", wait);
    tmux.keys("alice", &["Escape"]);
    tmux.wait_for("alice", "chat exited with 0", wait);
}

#[test]
fn channels_in_a_real_terminal() {
    if !tmux_or_skip() {
        return;
    }
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello bob"]);
    assert_eq!(bob.sync_texts(), ["hello bob"]);
    let made = alice.json(&["channel", "create", "news"]);
    let link = made[0]["link"].as_str().unwrap().to_owned();
    bob.json(&["join", &link]);
    alice.ok(&["send", "--channel", "news", "first post"]);
    let wait = Duration::from_secs(30);

    // bob's chat lists the channel after his conversation with alice.
    let tmux = Tmux::new();
    tmux.start("bob", &chat_command(&bob, ""));
    let screen = tmux.wait_for("bob", "» news", wait);
    assert!(screen.contains("> alice"), "{screen}");
    tmux.keys("bob", &["Tab"]);
    let screen = tmux.wait_for("bob", "» news (channel: read-only)", wait);
    assert!(screen.contains("> » news"), "{screen}");
    tmux.wait_for("bob", "first post", wait);

    // The owner posts from the shell: it appears live.
    alice.ok(&["send", "--channel", "news", "live from the owner"]);
    tmux.wait_for("bob", "live from the owner", wait);

    // bob's composer is read-only: nothing is typed, nothing is sent.
    let screen = tmux.screen("bob");
    assert!(screen.contains("» news is read-only"), "{screen}");
    tmux.type_text("bob", "spam");
    tmux.keys("bob", &["Enter"]);
    let screen = tmux.wait_for("bob", "(nothing was sent)", wait);
    assert!(!screen.contains("spam"), "{screen}");

    // The owner posts from her own chat: bob sees that live too.
    tmux.start("alice", &chat_command(&alice, ""));
    tmux.wait_for("alice", "» news", wait);
    tmux.keys("alice", &["Tab"]);
    tmux.wait_for("alice", "Post to » news", wait);
    let screen = tmux.wait_for("alice", "live from the owner", wait);
    assert!(screen.contains("» news (channel: you post)"), "{screen}");
    tmux.type_text("alice", "posted from the chat");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("bob", "posted from the chat", wait);
    tmux.keys("alice", &["Escape"]);
    tmux.wait_for("alice", "chat exited with 0", wait);
    let history = alice.json(&["history", "--channel", "news"]);
    let posted: Vec<&str> = history
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        posted,
        ["first post", "live from the owner", "posted from the chat"]
    );
    tmux.keys("bob", &["Escape"]);
    tmux.wait_for("bob", "chat exited with 0", wait);
}

/// Syncs `user` until `--json history ARGS` has a message that `check`
/// accepts; returns it.
fn sees(
    user: &User,
    history: &[&str],
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        user.json(&["sync"]);
        let mut args = vec!["history"];
        args.extend_from_slice(history);
        if let Some(m) = user.json(&args).into_iter().find(|m| check(m)) {
            return m;
        }
        assert!(Instant::now() < deadline, "{} never saw {what}", user.name);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The message features typed in the composer (decision 0042): Alt+↑ picks
/// a message, `/react` reacts to it, `/poll` asks the group, `/vote`
/// answers; the others see each.
#[test]
fn message_commands_in_a_real_terminal() {
    if !tmux_or_skip() {
        return;
    }
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["group", "create", "team", "--members", "bob"]);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "pick me"]);
    let wait = Duration::from_secs(30);

    let tmux = Tmux::new();
    tmux.start("alice", &chat_command(&alice, "bob"));
    let screen = tmux.wait_for("alice", "bob: pick me", wait);
    assert!(screen.contains("/help"), "{screen}");

    // An unknown command sends nothing and says why.
    tmux.type_text("alice", "/shrug");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "unknown command /shrug", wait);
    for _ in 0..6 {
        tmux.keys("alice", &["BSpace"]);
    }

    // Alt+↑ picks bob's message; /react reacts to it, for bob too.
    tmux.keys("alice", &["M-Up"]);
    tmux.wait_for("alice", "picked: bob", wait);
    tmux.type_text("alice", "/react 👍");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "pick me [alice 👍]", wait);
    sees(&bob, &["alice"], "the reaction", |m| {
        m["text"] == "pick me" && m["reactions"][0]["emoji"] == "👍"
    });

    // A poll in the group; alice picks it with PgUp and votes.
    tmux.keys("alice", &["Tab"]);
    tmux.wait_for("alice", "Message to #team", wait);
    tmux.type_text("alice", "/poll lunch? | pizza | sushi");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "[poll] lunch?", wait);
    let poll = sees(&bob, &["--group", "team"], "the poll", |m| {
        m["text"] == "lunch?"
    });
    assert_eq!(poll["poll"]["options"][1]["text"], "sushi", "{poll}");
    tmux.keys("alice", &["PageUp"]);
    tmux.wait_for("alice", "picked: you", wait);
    tmux.type_text("alice", "/vote 2");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "2. sushi (1: alice)", wait);
    sees(&bob, &["--group", "team"], "the vote", |m| {
        m["text"] == "lunch?" && m["poll"]["options"][1]["voters"][0] == "alice"
    });

    // /help lists the commands until Esc; Esc then quits.
    tmux.type_text("alice", "/help");
    tmux.keys("alice", &["Enter"]);
    tmux.wait_for("alice", "/forward TARGET", wait);
    tmux.keys("alice", &["Escape"]);
    wait_gone(&tmux, "alice", "/forward TARGET", wait);
    tmux.keys("alice", &["Escape"]);
    tmux.wait_for("alice", "chat exited with 0", wait);
}
