//! Channels through the real binaries (decision 0038): the owner creates a
//! channel and prints its link, a subscriber on another account joins
//! with `hush join`, reads the owner's posts with `hush sync` and `hush
//! history --channel`, cannot post, and forgets it with `hush channel
//! leave`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn create_join_post_read_rotate_and_leave() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");

    let made = alice.json(&["channel", "create", "news"]);
    let link = made[0]["link"].as_str().unwrap().to_owned();
    assert!(link.contains("/channel#"), "{link}");
    let again = alice.json(&["channel", "invite", "news"]);
    assert_eq!(keys(&again[0]), ["link"]);
    assert_eq!(again[0]["link"], link.as_str());

    let joined = bob.json(&["join", &link]);
    assert_eq!(joined[0]["channel"], "news");
    let line = bob.fails(&["join", &link]);
    assert!(line.contains("already follow"), "{line}");

    let sent = alice.json(&["send", "--channel", "news", "first post"]);
    assert_eq!(sent[0]["event"], "channel_post");
    assert_eq!(sent[0]["text"], "first post");
    let got = bob.json(&["sync"]);
    let posts: Vec<&serde_json::Value> = got
        .iter()
        .filter(|e| e["event"] == "channel_post")
        .collect();
    assert_eq!(posts.len(), 1, "{got:?}");
    assert_eq!(posts[0]["channel"], "news");
    assert_eq!(posts[0]["text"], "first post");
    // Read once: the next sync shows nothing again.
    assert!(
        bob.json(&["sync"])
            .iter()
            .all(|e| e["event"] != "channel_post")
    );
    let human = bob.ok(&["sync"]);
    assert!(!human.contains("first post"), "{human}");

    // A subscriber's device has no post token: refused, nothing sent.
    let line = bob.fails(&["send", "--channel", "news", "spam"]);
    assert!(line.contains("only its owner"), "{line}");
    let line = bob.fails(&["channel", "rotate", "news"]);
    assert!(line.contains("only its owner"), "{line}");

    // Rotation: bob, reading on, reads the posts after it.
    let rotated = alice.json(&["channel", "rotate", "news"]);
    assert_eq!(rotated[0]["epoch"], 1);
    alice.ok(&["send", "--channel", "news", "after the rotation"]);
    let human = bob.ok(&["sync"]);
    assert!(human.contains("after the rotation"), "{human}");
    let history = bob.json(&["history", "--channel", "news"]);
    let texts: Vec<&str> = history
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first post", "after the rotation"]);
    let human = bob.ok(&["history", "--channel", "news"]);
    assert!(human.contains("~news: first post"), "{human}");

    let list = bob.json(&["channel", "list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["channel"], "news");
    assert_eq!(list[0]["owner"], false);
    assert_eq!(list[0]["posts"], 2);
    assert_eq!(list[0]["epoch"], 1);
    assert_eq!(alice.json(&["channel", "list"])[0]["owner"], true);

    bob.json(&["channel", "leave", "news"]);
    assert!(bob.json(&["channel", "list"]).is_empty());
    let line = bob.fails(&["history", "--channel", "news"]);
    assert!(line.contains("no channel named"), "{line}");
    let line = bob.fails(&["send", "--channel", "news", "x", "y"]);
    assert!(line.contains("only TEXT"), "{line}");
}

/// A file posted with `hush send-file --channel`, shown by `hush sync` and
/// `hush history --channel` (name and size, in `--json` too), downloaded
/// by the post's id with `hush download`; a subscriber's device cannot
/// post one, and a blob changed on the server is refused.
#[test]
fn a_file_posted_to_a_channel_is_downloaded_by_post_id() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let work = tempfile::tempdir().unwrap();
    let link = alice.json(&["channel", "create", "news"])[0]["link"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&["join", &link]);

    let data = pseudo_random(150_000, 3);
    let src = work.path().join("notes.txt");
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap();
    let posted = alice.json(&[
        "send-file",
        "--channel",
        "news",
        src,
        "--caption",
        "this week",
    ]);
    assert_eq!(posted[0]["event"], "channel_post");
    assert_eq!(posted[0]["file"], "notes.txt");
    assert_eq!(posted[0]["size"], 150_000);
    assert_eq!(posted[0]["media_type"], "text/plain");
    assert_eq!(posted[0]["text"], "this week");
    let id = posted[0]["id"].as_str().unwrap().to_owned();

    let human = bob.ok(&["sync"]);
    assert!(human.contains("[file notes.txt, 146.5 KiB]"), "{human}");
    let history = bob.json(&["history", "--channel", "news"]);
    assert_eq!(history[0]["file"], "notes.txt");
    assert_eq!(history[0]["size"], 150_000);
    let human = bob.ok(&["history", "--channel", "news"]);
    assert!(
        human.contains("~news: this week [file notes.txt, 146.5 KiB]"),
        "{human}"
    );

    let out = work.path().join("got.txt");
    let done = bob.json(&["download", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(done[0]["size"], 150_000);
    assert!(std::fs::read(&out).unwrap() == data, "not byte-identical");

    // bob's device follows only: refused, nothing posted.
    let line = bob.fails(&["send-file", "--channel", "news", src]);
    assert!(line.contains("only its owner"), "{line}");
    assert_eq!(bob.json(&["history", "--channel", "news"]).len(), 1);
    let line = bob.fails(&["send-file", "--channel", "news", "bob", src]);
    assert!(line.contains("only PATH"), "{line}");

    // The server changes the blob: refused, --out never created.
    let blobs = server.data_dir().join("blobs").join("blobs");
    for dir in std::fs::read_dir(blobs).unwrap().flatten() {
        for part in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let p = part.path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
            {
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[100] ^= 1;
                std::fs::write(&p, bytes).unwrap();
            }
        }
    }
    let tampered = work.path().join("tampered.txt");
    let line = bob.fails(&["download", &id, "--out", tampered.to_str().unwrap()]);
    assert!(line.contains("altered"), "{line}");
    assert!(!tampered.exists());
}

/// Kills the child when dropped (the test failed or is done with it).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sync_with_a_wait_prints_a_post_as_it_is_posted() {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let link = alice.json(&["channel", "create", "news"])[0]["link"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.json(&["join", &link]);

    // bob listens for a minute; alice posts while he does.
    let mut child = Running(
        bob.command(&["--json", "sync", "--wait", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    alice.ok(&["send", "--channel", "news", "live post"]);
    let posted = Instant::now();
    // Printed well before the minute is up (the sync still listens).
    let deadline = posted + Duration::from_secs(25);
    let post = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the post was not printed while hush sync waited");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "channel_post" {
            break v;
        }
    };
    assert_eq!(post["channel"], "news");
    assert_eq!(post["text"], "live post");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "hush sync ended before its wait"
    );
}

#[test]
fn an_admin_named_by_the_owner_posts_through_the_binary() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    let made = alice.json(&["channel", "create", "news"]);
    let link = made[0]["link"].as_str().unwrap().to_owned();
    carol.json(&["join", &link]);

    let line = carol.fails(&["channel", "admin", "add", "news", "bob"]);
    assert!(line.contains("only its owner"), "{line}");
    let added = alice.json(&["channel", "admin", "add", "news", "bob"]);
    assert_eq!(added[0]["channel"], "news");
    assert_eq!(added[0]["admin"], "bob");

    bob.json(&["sync"]);
    let list = bob.json(&["channel", "list"]);
    assert_eq!(
        (&list[0]["owner"], &list[0]["admin"]),
        (&false.into(), &true.into())
    );
    assert!(bob.ok(&["channel", "list"]).contains("admin"));
    bob.ok(&["send", "--channel", "news", "from bob"]);
    let human = carol.ok(&["sync"]);
    assert!(human.contains("from bob"), "{human}");
    let line = bob.fails(&["channel", "rotate", "news"]);
    assert!(line.contains("not its owner"), "{line}");
    let line = carol.fails(&["send", "--channel", "news", "spam"]);
    assert!(line.contains("only its owner"), "{line}");
}
