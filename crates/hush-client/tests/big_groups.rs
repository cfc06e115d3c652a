//! A group big enough that its ratchet tree travels out of band, against a
//! real server: the joiner fetches the tree from the blob store, a tree the
//! server altered is refused with nothing joined, and a joiner's first sync
//! ends with a self-update commit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use hush_client::{Event, Target};
use hush_proto::big_group::BIG_GROUP_LEAVES;
use hush_testkit::TestServer;

/// The one blob on the server: its `meta` file and its parts, in order.
fn blob_files(server: &TestServer) -> (PathBuf, Vec<PathBuf>) {
    let root = server.data_dir().join("blobs").join("blobs");
    let blobs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|b| b.unwrap().path())
        .collect();
    assert_eq!(blobs.len(), 1, "one tree blob: {blobs:?}");
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&blobs[0])
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    parts.sort();
    (blobs[0].join("meta"), parts)
}

fn write_all(parts: &[(PathBuf, Vec<u8>)]) {
    for (p, bytes) in parts {
        std::fs::write(p, bytes).unwrap();
    }
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

/// `n` members driven by hand; the first is kept to read its queue.
async fn register_extras(server: &TestServer, n: usize) -> (Raw, Vec<String>) {
    let first = Raw::register(server, "m000").await;
    let mut names = vec![first.name.clone()];
    for i in 1..n {
        let raw = Raw::register(server, &format!("m{i:03}")).await;
        names.push(raw.name.clone());
    }
    (first, names)
}

/// The group id of the first group message in `raw`'s queue.
async fn group_id(raw: &mut Raw) -> Vec<u8> {
    raw.receive()
        .await
        .iter()
        .find_map(|m| match hush_proto::peek_message(m) {
            Ok(hush_proto::MessageKind::Group { group_id, .. }) => Some(group_id),
            _ => None,
        })
        .expect("a commit reached the member")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_group_is_joined_through_its_out_of_band_tree() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root: &Path = dir.path();
    let mut alice = user(&server, root, "alice").await;
    let mut bob = user(&server, root, "zbob").await;
    let mut carol = user(&server, root, "zcarol").await;
    let mut dave = user(&server, root, "zdave").await;
    // Enough members that the Welcome for the last ones cannot carry the
    // tree: bob, carol and dave sort last, in the out-of-band batch. Bob
    // lands on leaf 80, one of the leaves whose joiner self-updates.
    let (mut m000, mut names) = register_extras(&server, BIG_GROUP_LEAVES + 15).await;
    names.extend(["zbob".into(), "zcarol".into(), "zdave".into()]);
    alice.create_group("big", &names).await.unwrap();
    let gid = group_id(&mut m000).await;
    let store = server.store().unwrap();

    let (meta, parts) = blob_files(&server);
    assert!(
        !parts.is_empty(),
        "the committer uploaded the tree: {meta:?}"
    );
    let mut files = vec![meta.clone()];
    files.extend(parts.iter().cloned());
    let genuine: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    // A copy of the blob with its last part and announced size changed.
    let altered = |f: &dyn Fn(&mut Vec<u8>)| -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = genuine.clone();
        let last = out.len() - 1;
        let before = out[last].1.len();
        f(&mut out[last].1);
        let shrink = (before - out[last].1.len()) as u64;
        let mut m: serde_json::Value = serde_json::from_slice(&out[0].1).unwrap();
        m["size"] = (m["size"].as_u64().unwrap() - shrink).into();
        out[0].1 = serde_json::to_vec(&m).unwrap();
        out
    };

    // The server truncates the tree, or flips a byte of it: the joiner
    // refuses the invitation, joins nothing, and says why.
    for (joiner, tampered) in [
        (&mut carol, altered(&|b| b.truncate(b.len() - 1))),
        (
            &mut dave,
            altered(&|b| {
                let mid = b.len() / 2;
                b[mid] ^= 1;
            }),
        ),
    ] {
        write_all(&tampered);
        let events = sync(joiner).await;
        assert_eq!(joined(&events), 0);
        let alarms = security_alarms(&events);
        assert!(
            alarms.iter().any(|a| a.contains("group tree")),
            "{alarms:?}"
        );
        assert!(joiner.conversations().unwrap().is_empty());
    }
    write_all(&genuine);

    // Bob joins with the genuine tree, and his first sync self-updates.
    let before = store.group_epoch(&gid).await.unwrap();
    let events = sync(&mut bob).await;
    assert_eq!(joined(&events), 1, "{events:?}");
    assert!(security_alarms(&events).is_empty());
    assert_eq!(
        bob.conversations().unwrap()[0].members.len(),
        names.len() + 1
    );
    let after = store.group_epoch(&gid).await.unwrap();
    assert_eq!(
        after.unwrap(),
        before.unwrap() + 1,
        "bob's first sync committed a self-update"
    );

    // Alice follows bob's commit, and they talk.
    sync(&mut alice).await;
    alice
        .send_text(&Target::Group("big".into()), "welcome, bob")
        .await
        .unwrap();
    let events = sync(&mut bob).await;
    assert_eq!(messages(&events), vec!["welcome, bob".to_owned()]);
}
