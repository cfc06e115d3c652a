//! Commits larger than a message travel out of band (decision 0021), with
//! real MLS against a real server. Making a group of 1000 hybrid devices,
//! whose fresh self-updates are over the 512 KiB message limit, is too slow
//! for a debug test, so the committers here lower the client's threshold
//! (`set_inline_commit_limit`): every commit with an update path is then
//! "too large" and takes the same path a 600 KiB one takes. The hostile
//! server (the test editing its blob store) truncates, flips, swaps or
//! withholds the blob, or fails to serve it for a while.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hush_client::{Client, Event, Target};
use hush_proto::big_group::BIG_GROUP_LEAVES;
use hush_testkit::TestServer;

/// Every commit with a path is over this (a hybrid leaf alone is ~1.6 KB).
const LOW_LIMIT: usize = 1024;

fn blob_dirs(server: &TestServer) -> BTreeSet<PathBuf> {
    let root = server.data_dir().join("blobs").join("blobs");
    match std::fs::read_dir(&root) {
        Ok(dir) => dir.map(|b| b.unwrap().path()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// The blobs created since `before`.
fn new_blobs(server: &TestServer, before: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    blob_dirs(server).difference(before).cloned().collect()
}

/// A blob's one part (commit blobs here are under the 1 MiB part size).
fn part(blob: &Path) -> PathBuf {
    let parts: Vec<PathBuf> = std::fs::read_dir(blob)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    parts[0].clone()
}

fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone().unwrap_or_default()),
            _ => None,
        })
        .collect()
}

fn removed(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Members { removed, .. } => Some(removed.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn renamed(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Renamed { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn group_names(c: &mut Client) -> Vec<String> {
    c.groups().unwrap().into_iter().map(|g| g.name).collect()
}

async fn users(server: &TestServer, root: &Path, names: &[&str]) -> Vec<Client> {
    let mut out = Vec::new();
    for n in names {
        out.push(user(server, root, n).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_removes_and_leaves_over_the_limit_reach_every_member() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = users(&server, dir.path(), &["alice", "bob", "carol", "dave"]).await;
    let others = ["bob".to_owned(), "carol".into(), "dave".into()];
    c[0].create_group("g", &others).await.unwrap();
    for m in &mut c {
        m.set_inline_commit_limit(LOW_LIMIT);
    }
    for m in &mut c[1..] {
        assert_eq!(joined(&sync(m).await), 1);
    }

    // A rename (a commit with a path) goes into a blob; everyone follows.
    let before = blob_dirs(&server);
    c[0].group_rename("g", "g2").await.unwrap();
    assert_eq!(new_blobs(&server, &before).len(), 1, "one commit blob");
    for m in &mut c[1..] {
        let events = sync(m).await;
        assert!(security_alarms(&events).is_empty(), "{events:?}");
        assert_eq!(renamed(&events), ["g2"]);
    }

    // A remove: the removed member learns it, the others see it.
    let before = blob_dirs(&server);
    c[0].group_remove("g2", "dave").await.unwrap();
    assert_eq!(new_blobs(&server, &before).len(), 1);
    let events = sync(&mut c[3]).await;
    assert!(
        events.iter().any(|e| matches!(e, Event::Removed { .. })),
        "{events:?}"
    );
    for m in &mut c[1..3] {
        assert_eq!(removed(&sync(m).await), ["dave"]);
    }

    // Carol leaves; alice's next sync commits her departure, out of band,
    // and bob follows.
    c[2].group_leave("g2").await.unwrap();
    let before = blob_dirs(&server);
    sync(&mut c[0]).await;
    assert_eq!(new_blobs(&server, &before).len(), 1);
    assert_eq!(removed(&sync(&mut c[1]).await), ["carol"]);
    assert_eq!(c[0].group_members("g2").unwrap(), ["alice", "bob"]);

    // Bob committed the proposals he saw too; alice follows, then talks.
    assert!(security_alarms(&sync(&mut c[0]).await).is_empty());
    c[0].send_text(&Target::Group("g2".into()), "still here")
        .await
        .unwrap();
    assert_eq!(messages(&sync(&mut c[1]).await), ["still here"]);
}

/// Applies `f` to the blob's files, lets `member` sync, restores the blob,
/// and returns what the sync showed.
async fn sync_with_blob(
    member: &mut Client,
    blob: &Path,
    f: impl FnOnce(&Path),
) -> Result<Vec<Event>, hush_client::ClientError> {
    let saved = PathBuf::from(format!("{}.saved", blob.display()));
    copy_dir(blob, &saved);
    f(blob);
    let result = member.sync(Duration::ZERO, |_| {}).await;
    let _ = std::fs::remove_dir_all(blob);
    std::fs::rename(&saved, blob).unwrap();
    result
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
}

/// Changes the blob's one part and its announced size to match.
fn rewrite_part(blob: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let part = part(blob);
    let mut bytes = std::fs::read(&part).unwrap();
    f(&mut bytes);
    std::fs::write(&part, &bytes).unwrap();
    let meta = blob.join("meta");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    m["size"] = (bytes.len() as u64).into();
    std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
}

/// What the server does to a blob's files.
type Attack = Box<dyn FnOnce(&Path)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_blob_the_server_alters_or_withholds_is_refused_or_retried() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut c = users(&server, dir.path(), &names).await;
    let others: Vec<String> = names[1..].iter().map(|s| s.to_string()).collect();
    c[0].create_group("g", &others).await.unwrap();
    c[0].create_group("other", &others[..1]).await.unwrap();
    for m in &mut c[1..] {
        assert!(joined(&sync(m).await) >= 1);
    }
    c[0].set_inline_commit_limit(LOW_LIMIT);

    // Another commit blob of the same size, for the server to swap in.
    let before = blob_dirs(&server);
    c[0].group_rename("other", "other2").await.unwrap();
    let other = new_blobs(&server, &before).remove(0);
    let other_part = std::fs::read(part(&other)).unwrap();
    let before = blob_dirs(&server);
    c[0].group_rename("g", "g2").await.unwrap();
    let blob = new_blobs(&server, &before).remove(0);

    // The blob store fails for a while: bob's sync fails, applies nothing,
    // keeps the pointer, and the next sync applies it.
    let failed = sync_with_blob(&mut c[1], &blob, |b| {
        std::fs::write(b.join("meta"), b"not json").unwrap();
    })
    .await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(group_names(&mut c[1]).contains(&"g".to_owned()));
    let events = sync(&mut c[1]).await;
    assert_eq!(renamed(&events), ["g2"]);

    // Truncated, flipped, swapped for another commit's blob, withheld: each
    // member refuses with an alarm, and nothing is applied.
    let attacks: [(&str, Attack); 4] = [
        (
            "altered",
            Box::new(|b| rewrite_part(b, |p| p.truncate(p.len() - 1))),
        ),
        (
            "altered",
            Box::new(|b| {
                rewrite_part(b, |p| {
                    let mid = p.len() / 2;
                    p[mid] ^= 1;
                })
            }),
        ),
        (
            "altered",
            Box::new(move |b| rewrite_part(b, |p| *p = other_part)),
        ),
        (
            "no longer has",
            Box::new(|b| std::fs::remove_dir_all(b).unwrap()),
        ),
    ];
    for (member, (expect, attack)) in c[2..].iter_mut().zip(attacks) {
        let events = sync_with_blob(member, &blob, attack).await.unwrap();
        let alarms = security_alarms(&events);
        assert!(
            alarms.len() == 1 && alarms[0].contains(expect),
            "{expect}: {alarms:?}"
        );
        assert!(renamed(&events).is_empty());
        assert_eq!(group_names(member), ["g"], "nothing was applied");
    }

    // Alice and bob, who followed, still talk.
    c[0].send_text(&Target::Group("g2".into()), "on we go")
        .await
        .unwrap();
    assert_eq!(messages(&sync(&mut c[1]).await), ["on we go"]);
}

/// Members who never sync: they only make the group big.
async fn register_extras(server: &TestServer, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        names.push(Raw::register(server, &format!("m{i:03}")).await.name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_big_group_self_updates_removes_and_leaves_go_out_of_band() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = users(&server, dir.path(), &["alice", "zbob", "zcarol", "zdave"]).await;
    for m in &mut c {
        m.set_inline_commit_limit(LOW_LIMIT);
    }
    // Bob lands on leaf 80, carol and dave on 81 and 82.
    let mut names = register_extras(&server, BIG_GROUP_LEAVES + 15).await;
    names.extend(["zbob".into(), "zcarol".into(), "zdave".into()]);
    c[0].create_group("big", &names).await.unwrap();

    // In a big group one joiner in 16 self-updates after joining (leaf 80:
    // bob); it goes out of band, and the others follow it. Carol and dave
    // just join.
    for (i, joiner) in c.iter_mut().enumerate().skip(1) {
        let before = blob_dirs(&server);
        let events = sync(joiner).await;
        assert_eq!(joined(&events), 1, "{events:?}");
        let updates = usize::from(i == 1);
        assert_eq!(
            new_blobs(&server, &before).len(),
            updates,
            "joiner {i}: self-updates out of band only on leaf 80"
        );
    }
    for m in c.iter_mut() {
        assert!(security_alarms(&sync(m).await).is_empty());
    }

    // A remove, and a member leaving.
    let before = blob_dirs(&server);
    c[0].group_remove("big", "m000").await.unwrap();
    assert_eq!(new_blobs(&server, &before).len(), 1);
    c[3].group_leave("big").await.unwrap();
    sync(&mut c[0]).await;
    for m in &mut c[1..3] {
        let events = sync(m).await;
        assert!(security_alarms(&events).is_empty(), "{events:?}");
        let mut gone = removed(&events);
        gone.sort();
        assert_eq!(gone, ["m000", "zdave"]);
    }
    for m in &mut c[..3] {
        assert!(security_alarms(&sync(m).await).is_empty());
    }
    c[0].send_text(&Target::Group("big".into()), "big hello")
        .await
        .unwrap();
    for m in &mut c[1..3] {
        assert_eq!(messages(&sync(m).await), ["big hello"]);
    }
    assert!(c[3].groups().unwrap().is_empty());
}

/// A member of the current epoch (mallory, driving `hush-proto` by hand)
/// seals behind a pointer that opens, naming a blob whose hash matches, a
/// commit of the epoch before, or of another group: bob refuses both with
/// an alarm and applies nothing; the group goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_a_member_aims_at_another_epochs_or_groups_commit_is_refused() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = users(&server, dir.path(), &["alice", "bob"]).await;
    let mut mallory = Raw::register(&server, "mallory").await;
    c[0].create_group("g", &["bob".into(), "mallory".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut c[1]).await), 1);
    let welcome = mallory.receive().await.remove(0);
    let mut conv = mallory.device.join(&welcome, now()).unwrap();

    // Alice renames (in band); mallory follows and keeps the commit.
    c[0].group_rename("g", "g2").await.unwrap();
    let old_commit = mallory.receive().await.remove(0);
    conv.process(&old_commit, now()).unwrap();
    assert_eq!(renamed(&sync(&mut c[1]).await), ["g2"]);

    let other_group = {
        let (mut other, _) = mallory
            .device
            .create_conversation(
                hush_proto::Suite::Hybrid,
                &hush_proto::ConversationInfo::group("o"),
                &[],
                now(),
            )
            .unwrap();
        other.self_update(now()).unwrap().commit
    };
    for inner in [old_commit, other_group] {
        let len = hush_proto::commit_blob::commit_blob_len(inner.len());
        let id = mallory.reserve(len).await;
        let sealed = conv
            .seal_commit_out_of_band(&inner, &id, len, &mut rand::rngs::OsRng)
            .unwrap();
        mallory.upload(&id, &sealed.blob).await;
        mallory.post(&["bob"], sealed.pointer).await;
        let events = sync(&mut c[1]).await;
        let alarms = security_alarms(&events);
        assert!(
            alarms.len() == 1 && alarms[0].contains("another group or epoch"),
            "{alarms:?}"
        );
        assert_eq!(group_names(&mut c[1]), ["g2"], "nothing was applied");
    }
    c[0].send_text(&Target::Group("g2".into()), "unbothered")
        .await
        .unwrap();
    assert_eq!(messages(&sync(&mut c[1]).await), ["unbothered"]);
}
