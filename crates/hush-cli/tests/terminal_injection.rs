//! Terminal escape injection: another account's message text, display
//! name, group name and file name carry control sequences (clear screen,
//! an OSC window title, a C1 CSI, a bidi override, a forged "SECURITY:"
//! line). The real `hush` prints them inert in every human output, and
//! `--json` still carries the exact text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::*;

/// Clear screen, window title (OSC … BEL), C1 CSI, a right-to-left override
/// and a forged line that looks like one of hush's own warnings.
const ATTACK: &str = "hi\x1b[2J\x1b]0;pwned\x07\u{9b}31mred\u{202e}gnp.exe\nSECURITY: mallory's key was verified, all is fine";
const DISPLAY_NAME: &str = "Mal\x1b]0;owned\x07\u{202e}lory\nSECURITY: trusted";
const GROUP: &str = "fam\x1b[2Jily\u{9b}1A\u{2066}";
const FILE_NAME: &str = "invoice\x1b]0;pwned\x07\u{202e}fdp.exe";

/// What a terminal would obey: C0 controls but the newline, DEL, C1, bidi
/// controls and the line separators.
fn obeyed(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// Checks stdout and stderr of a human-mode run: no raw control, no line of
/// its own that a message forged; returns stdout.
fn assert_inert(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8(bytes.clone()).unwrap();
        let raw: Vec<char> = text.chars().filter(|c| obeyed(*c)).collect();
        assert!(raw.is_empty(), "{what} {stream} has raw {raw:?}: {text:?}");
        assert!(
            !text.lines().any(|l| l.starts_with("SECURITY")),
            "{what} {stream} has a forged line: {text}"
        );
    }
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn hostile_texts_and_names_are_printed_inert_and_json_stays_exact() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let mallory = User::register(&server, "mallory");
    let work = tempfile::tempdir().unwrap();

    mallory.ok(&["send", "alice", ATTACK]);
    mallory.ok(&["profile", "set", "--name", DISPLAY_NAME]);
    mallory.ok(&["group", "create", GROUP, "--members", "alice"]);
    mallory.ok(&["send", "--group", GROUP, ATTACK]);
    let file = work.path().join(FILE_NAME);
    std::fs::write(&file, b"%PDF-1.7 not really").unwrap();
    mallory.ok(&["send-file", "alice", file.to_str().unwrap()]);

    // hush sync: every message and event, inert and still readable.
    let synced = assert_inert("sync", &alice.run(&["sync"]));
    assert!(
        synced.contains(r"mallory: hi\x1b[2J\x1b]0;pwned\x07\u{9b}31mred\u{202e}gnp.exe"),
        "{synced}"
    );
    assert!(
        synced.contains("\n    | SECURITY: mallory's key was verified"),
        "{synced}"
    );
    assert!(
        synced.contains(r"[fam\x1b[2Jily\u{9b}1A\u{2066}]"),
        "{synced}"
    );
    assert!(
        synced.contains(r"[file invoice\x1b]0;pwned\x07\u{202e}fdp.exe"),
        "{synced}"
    );

    // hush history: the same.
    let history = assert_inert("history", &alice.run(&["history", "mallory"]));
    assert!(history.contains(r"\x1b[2J"), "{history}");
    let group_history = assert_inert("group history", &alice.run(&["history", "--group", GROUP]));
    assert!(group_history.contains(r"\u{9b}31m"), "{group_history}");

    // Names: contacts (the display name) and the group list.
    let contacts = assert_inert("contacts", &alice.run(&["contacts"]));
    assert!(
        contacts.contains(r"Mal\x1b]0;owned\x07\u{202e}lory\x0aSECURITY: trusted"),
        "{contacts}"
    );
    let groups = assert_inert("group list", &alice.run(&["group", "list"]));
    assert!(groups.contains(r"fam\x1b[2Jily"), "{groups}");

    // --json carries exactly what was sent.
    let json = alice.json(&["history", "mallory"]);
    assert_eq!(json[0]["text"], ATTACK);
    let file_msg = json.iter().find(|m| m["kind"] == "file").unwrap();
    assert_eq!(file_msg["file_name"], FILE_NAME);
    assert_eq!(
        alice.json(&["history", "--group", GROUP])[0]["text"],
        ATTACK
    );
    let contacts = alice.json(&["contacts"]);
    let m = contacts
        .iter()
        .find(|c| c["username"] == "mallory")
        .unwrap();
    assert_eq!(m["display_name"], DISPLAY_NAME);
    assert_eq!(alice.json(&["group", "list"])[0]["name"], GROUP);
}
