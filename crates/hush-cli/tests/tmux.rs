//! `hush chat` in a real terminal: tmux runs it, keys go in with
//! `send-keys`, the screen comes out with `capture-pane`.
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

#[test]
fn chat_in_a_real_terminal() {
    if !tmux_available() {
        if std::env::var_os("CI").is_some() {
            panic!("tmux is not installed, and CI is set: .ci/run must install tmux");
        }
        eprintln!("NOTICE: tmux is not installed; skipping the `hush chat` terminal test");
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
