//! Files in channels (decision 0038): the owner's device posts a file,
//! subscribers on two other accounts take the post in and download it
//! (the digest in the signed post checked); a subscriber's device cannot
//! post one (nothing uploaded, nothing posted); a blob the server changed
//! is refused and nothing is written. Real clients, a real server on a
//! loopback port (hush-testkit).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{sync, user};
use hush_client::{ChannelPostView, ClientError, Event};
use hush_testkit::TestServer;

/// The channel posts among `events`.
fn posts(events: &[Event]) -> Vec<ChannelPostView> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChannelPost(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Every part file of every blob the server holds.
fn blob_parts(server: &TestServer) -> Vec<PathBuf> {
    let root = server.data_dir().join("blobs").join("blobs");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for dir in dirs {
        for part in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = part.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("part-")
            {
                parts.push(p);
            }
        }
    }
    parts.sort();
    parts
}

fn write_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_file_post_is_downloaded_by_subscribers_and_checked() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cleo = user(&server, root.path(), "cleo").await;
    let link = anna.create_channel("news").await.unwrap();
    bert.join_channel(&link).await.unwrap();
    cleo.join_channel(&link).await.unwrap();

    let (path, data) = write_file(root.path(), "report.pdf", 200_000);
    let mut reported = 0;
    let posted = anna
        .post_file_to_channel("news", &path, Some("the report"), |done, _| reported = done)
        .await
        .unwrap();
    assert!(reported > 200_000, "{reported}");
    assert_eq!(posted.file.as_deref(), Some("report.pdf"));
    assert_eq!(posted.size, Some(200_000));
    assert_eq!(posted.media_type.as_deref(), Some("application/pdf"));
    assert_eq!(posted.text, "the report");

    for (reader, name) in [(&mut bert, "bert"), (&mut cleo, "cleo")] {
        let got = posts(&sync(reader).await);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].id, posted.id);
        assert_eq!(got[0].file.as_deref(), Some("report.pdf"));
        assert_eq!(got[0].size, Some(200_000));
        assert_eq!(got[0].text, "the report");
        let history = reader.channel_history("news").unwrap();
        assert_eq!(history[0].size, Some(200_000));
        // By the post's id, as `hush download` does, and into memory.
        let out = root.path().join(format!("{name}.pdf"));
        let n = reader.download(&posted.id, &out, |_, _| {}).await.unwrap();
        assert_eq!(n, 200_000);
        assert_eq!(std::fs::read(&out).unwrap(), data, "{name}");
        let opened = reader.open_channel_file("news", &posted.id).await.unwrap();
        assert_eq!(opened.file_name, "report.pdf");
        assert_eq!(opened.bytes, data);
        assert_eq!(reader.open_file(&posted.id).await.unwrap().bytes, data);
    }
    // The owner's device opens its own post's file too.
    assert_eq!(
        anna.open_channel_file("news", &posted.id)
            .await
            .unwrap()
            .bytes,
        data
    );
    // A text post has no file; an id of no post is not found.
    let text = anna.post_to_channel("news", "words").await.unwrap();
    let err = anna.open_channel_file("news", &text.id).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");
    let err = bert
        .download(&"ab".repeat(16), &root.path().join("x"), |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err}");

    // The server flips a byte of the stored blob: refused, nothing written.
    let parts = blob_parts(&server);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let mut bytes = std::fs::read(&parts[0]).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&parts[0], bytes).unwrap();
    let out = root.path().join("tampered.pdf");
    let err = bert
        .download(&posted.id, &out, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AttachmentTampered), "{err}");
    assert!(!out.exists());
    let err = cleo
        .open_channel_file("news", &posted.id)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AttachmentTampered), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_cannot_post_a_file() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cleo = user(&server, root.path(), "cleo").await;
    let link = anna.create_channel("news").await.unwrap();
    bert.join_channel(&link).await.unwrap();
    cleo.join_channel(&link).await.unwrap();

    let (path, _) = write_file(root.path(), "spam.png", 5000);
    let before = bert.transport().requests_made();
    let err = bert
        .post_file_to_channel("news", &path, None, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("only its owner"), "{err}");
    // Nothing reached the server: no request, no blob, no post.
    assert_eq!(bert.transport().requests_made(), before);
    assert_eq!(blob_parts(&server), Vec::<PathBuf>::new());
    assert!(posts(&sync(&mut cleo).await).is_empty());
    assert!(bert.channel_history("news").unwrap().is_empty());
    // The owner's next post is the channel's first.
    let first = anna.post_to_channel("news", "first").await.unwrap();
    assert_eq!(first.number, 1);
    // Nor does a caption too long for a post upload anything.
    let err = anna
        .post_file_to_channel("news", &path, Some(&"x".repeat(70_000)), |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput(_)), "{err}");
    assert_eq!(blob_parts(&server), Vec::<PathBuf>::new());
}
