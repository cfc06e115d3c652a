//! Channels in storage (decision 0038), on SQLite and PostgreSQL: the post
//! token guards posts and descriptor changes in the store itself, posts are
//! numbered from 1 without gaps or repeats however many arrive at once, a
//! channel keeps its newest 4096, and the expiry sweep forgets old ones; a
//! database written by the release before channels (schema 6) opens with
//! this code, keeps what it held and takes channels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::StreamExt;
use hush_server::store::channels::MAX_KEPT_POSTS;
use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;
use store_common::*;

const OWNER: [u8; 32] = [7; 32];
const STRANGER: [u8; 32] = [8; 32];

async fn the_token_guards_the_channel(store: &dyn Store) {
    let id = [1; 32];
    assert_eq!(store.channel(id).await.unwrap(), None);
    assert_eq!(
        store
            .put_channel(id, b"d1".to_vec(), OWNER, 1000)
            .await
            .unwrap(),
        ChannelPut::Created
    );
    // Another token cannot take the id over.
    assert_eq!(
        store
            .put_channel(id, b"evil".to_vec(), STRANGER, 1001)
            .await
            .unwrap(),
        ChannelPut::Forbidden
    );
    let got = store.channel(id).await.unwrap().unwrap();
    assert_eq!((got.descriptor, got.latest), (b"d1".to_vec(), 0));
    // The owner's token replaces the descriptor, and stays the token.
    assert_eq!(
        store
            .put_channel(id, b"d2".to_vec(), OWNER, 1002)
            .await
            .unwrap(),
        ChannelPut::Replaced
    );
    assert_eq!(store.channel(id).await.unwrap().unwrap().descriptor, b"d2");
    assert_eq!(
        store
            .add_channel_post(id, STRANGER, b"junk".to_vec(), 5)
            .await
            .unwrap(),
        PostFiled::Forbidden
    );
    assert_eq!(
        store
            .add_channel_post([2; 32], OWNER, b"p".to_vec(), 5)
            .await
            .unwrap(),
        PostFiled::Unknown
    );
    for n in 1..=3u64 {
        assert_eq!(
            store
                .add_channel_post(id, OWNER, vec![n as u8], 10 * n)
                .await
                .unwrap(),
            PostFiled::Filed(n)
        );
    }
    let page = store.channel_posts(id, 0, 256).await.unwrap().unwrap();
    assert_eq!(page.latest, 3);
    assert_eq!(
        page.posts,
        (1..=3u64)
            .map(|n| StoredPost {
                number: n,
                post: vec![n as u8],
                received_at_ms: 10 * n
            })
            .collect::<Vec<_>>()
    );
    let page = store.channel_posts(id, 1, 1).await.unwrap().unwrap();
    assert_eq!(page.posts.iter().map(|p| p.number).collect::<Vec<_>>(), [2]);
    assert!(
        store
            .channel_posts(id, 3, 256)
            .await
            .unwrap()
            .unwrap()
            .posts
            .is_empty()
    );
    assert_eq!(store.channel_posts([2; 32], 0, 256).await.unwrap(), None);
    assert_eq!(store.channel(id).await.unwrap().unwrap().latest, 3);
    // The sweep forgets posts older than the cut-off; the numbering goes on.
    assert_eq!(store.expire_channel_posts(25).await.unwrap(), 2);
    let page = store.channel_posts(id, 0, 256).await.unwrap().unwrap();
    assert_eq!((page.latest, page.posts.len()), (3, 1));
    assert_eq!(
        store
            .add_channel_post(id, OWNER, b"4".to_vec(), 40)
            .await
            .unwrap(),
        PostFiled::Filed(4)
    );
}

#[tokio::test]
async fn sqlite_the_token_guards_the_channel() {
    let (_g, store) = sqlite().await;
    the_token_guards_the_channel(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_token_guards_the_channel() {
    let (_g, store) = postgres_or_skip().await;
    the_token_guards_the_channel(&*store).await;
}

/// Posts sent at once (on two handles, as two nodes) get the numbers 1..n,
/// each once; past [`MAX_KEPT_POSTS`] the oldest go.
async fn posts_at_once_are_numbered_and_trimmed(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    let id = [3; 32];
    store
        .put_channel(id, b"d".to_vec(), OWNER, 1)
        .await
        .unwrap();
    let total = MAX_KEPT_POSTS + 4;
    let numbers: Vec<u64> = futures_util::stream::iter(0..total)
        .map(|i| {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            async move {
                match s
                    .add_channel_post(id, OWNER, i.to_be_bytes().to_vec(), 100)
                    .await
                    .unwrap()
                {
                    PostFiled::Filed(n) => n,
                    other => panic!("post {i} refused: {other:?}"),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let distinct: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct, (1..=total).collect::<BTreeSet<_>>());
    let mut kept = Vec::new();
    let mut after = 0;
    loop {
        let page = store.channel_posts(id, after, 256).await.unwrap().unwrap();
        assert_eq!(page.latest, total);
        let Some(last) = page.posts.last() else {
            break;
        };
        after = last.number;
        kept.extend(page.posts.iter().map(|p| p.number));
    }
    assert_eq!(
        kept,
        (5..=total).collect::<Vec<_>>(),
        "the newest 4096 kept"
    );
}

#[tokio::test]
async fn sqlite_posts_at_once_are_numbered_and_trimmed() {
    let (g, store) = sqlite().await;
    let other = g.another_node().await;
    posts_at_once_are_numbered_and_trimmed(store, other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_posts_at_once_are_numbered_and_trimmed() {
    let (g, store) = postgres_or_skip().await;
    let other = g.another_node().await;
    posts_at_once_are_numbered_and_trimmed(store, other).await;
}

/// A schema-6 database: an account with a device, an invite link and a
/// server backup.
const V6_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO invite_links (link_id, blob, manage_hash, expires_at_ms, max_uses, approve, created_at_ms)
    VALUES (X'0505050505050505050505050505050505050505050505050505050505050505', X'0606',
            X'0707070707070707070707070707070707070707070707070707070707070707', 0, 0, FALSE, 1000);
INSERT INTO backups (username, locator, data, updated_at_ms)
    VALUES ('olde', X'0909090909090909090909090909090909090909090909090909090909090909', X'0A0A', 2000);";

/// The version before channels.
const BEFORE: u32 = 6;

async fn finds_version_6_data_and_takes_channels(store: &dyn Store) {
    let acct = store.account("olde").await.unwrap().unwrap();
    assert_eq!(acct.devices[0].certificate, vec![2, 2]);
    let auth = store.authenticate(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, DeviceKey::new("olde", 1));
    let link = store.link([5; 32]).await.unwrap().unwrap();
    assert_eq!(link.link.blob, vec![6, 6]);
    assert_eq!(store.backup([9; 32]).await.unwrap().unwrap(), vec![10, 10]);
    assert_eq!(
        store
            .put_channel([4; 32], b"d".to_vec(), OWNER, 3000)
            .await
            .unwrap(),
        ChannelPut::Created
    );
    assert_eq!(
        store
            .add_channel_post([4; 32], OWNER, b"p".to_vec(), 3001)
            .await
            .unwrap(),
        PostFiled::Filed(1)
    );
    let page = store.channel_posts([4; 32], 0, 10).await.unwrap().unwrap();
    assert_eq!(
        (page.latest, page.posts[0].post.clone()),
        (1, b"p".to_vec())
    );
}

#[tokio::test]
async fn sqlite_opens_a_version_6_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    sqlite_at_version(&path, BEFORE, V6_DATA);
    let store = SqliteStore::open(&path).unwrap();
    finds_version_6_data_and_takes_channels(&store).await;
    drop(store);
    assert_eq!(
        sqlite_version(&path),
        hush_server::store::sqlite_migrate::LATEST
    );
    assert_eq!(hush_server::store::sqlite_migrate::LATEST, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_version_6_database() {
    let Some((schema, pool)) = postgres_at_version(i64::from(BEFORE), V6_DATA).await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    // Two nodes start at once on it: the migration runs once.
    let options = schema.connect_options();
    let (a, b) = tokio::join!(
        PostgresStore::connect_with(options.clone()),
        PostgresStore::connect_with(options)
    );
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        postgres_version(&pool).await,
        hush_server::store::postgres_migrate::LATEST
    );
    const { assert!(hush_server::store::postgres_migrate::LATEST >= 7) };
    finds_version_6_data_and_takes_channels(&a).await;
}
