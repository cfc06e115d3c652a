//! Attachments through the real binaries: byte-identical after download,
//! and a blob altered on the server is refused without writing anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Every `part-*` file of every blob in the server's data directory.
fn blob_parts(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .parent()
                .and_then(|q| q.parent())
                .is_some_and(|q| q.ends_with("blobs"))
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-"))
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn attachments_round_trip_and_tampering_is_refused() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let work = tempfile::tempdir().unwrap();

    // Several chunks and upload parts, and a ragged end.
    let data = pseudo_random(2 * 1024 * 1024 + 12_345, 7);
    let src = work.path().join("photo.bin");
    std::fs::write(&src, &data).unwrap();
    let sent = alice.json(&["send-file", "bob", src.to_str().unwrap()]);
    assert_message_shape(&sent[0]);
    assert_eq!(sent[0]["kind"], "file");
    assert_eq!(sent[0]["file_name"], "photo.bin");
    assert_eq!(sent[0]["size"], data.len() as u64);

    let got = bob.sync_messages();
    assert_eq!(got.len(), 1);
    assert_message_shape(&got[0]);
    assert_eq!(got[0]["file_name"], "photo.bin");
    let id = got[0]["id"].as_str().unwrap();

    let out = work.path().join("downloaded.bin");
    let done = bob.json(&["download", id, "--out", out.to_str().unwrap()]);
    assert_eq!(done[0]["size"], data.len() as u64);
    assert!(std::fs::read(&out).unwrap() == data, "not byte-identical");

    // An existing file is not replaced without --force.
    let line = bob.fails(&["download", id, "--out", out.to_str().unwrap()]);
    assert!(line.contains("--force"), "{line}");

    // An empty file works too.
    let empty = work.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    alice.ok(&["send-file", "bob", empty.to_str().unwrap()]);
    let got_empty = bob.sync_messages();
    let empty_out = work.path().join("empty-out.txt");
    bob.ok(&[
        "download",
        got_empty[0]["id"].as_str().unwrap(),
        "--out",
        empty_out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&empty_out).unwrap(), b"");

    // Flip one bit in every stored part of the blobs: the digest no longer
    // matches, the download fails clearly and --out is never created.
    let parts = blob_parts(&server.data_dir());
    assert!(
        !parts.is_empty(),
        "no blob parts under {:?}",
        server.data_dir()
    );
    for p in &parts {
        let mut bytes = std::fs::read(p).unwrap();
        if let Some(b) = bytes.get_mut(100) {
            *b ^= 1;
            std::fs::write(p, bytes).unwrap();
        }
    }
    let tampered = work.path().join("tampered.bin");
    let line = bob.fails(&["download", id, "--out", tampered.to_str().unwrap()]);
    assert!(line.contains("altered"), "{line}");
    assert!(!tampered.exists(), "a tampered download left a file");
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tampered"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_file_to_a_group() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    alice.ok(&["group", "create", "crew", "--members", "bob,carol"]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("notes.txt");
    std::fs::write(&src, b"meeting at noon\n").unwrap();
    alice.ok(&["send-file", "--group", "crew", src.to_str().unwrap()]);
    for u in [&bob, &carol] {
        let got = u.sync_messages();
        assert_eq!(got[0]["group"], "crew");
        let out = work.path().join(format!("{}.txt", u.name));
        u.ok(&[
            "download",
            got[0]["id"].as_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read(&out).unwrap(), b"meeting at noon\n");
    }
}
