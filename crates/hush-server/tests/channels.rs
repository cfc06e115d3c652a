//! Channels on a real server (decision 0038): filing, reading, posting and
//! numbering; held fetches woken by a post or ended by their wait; what a
//! stranger with an account cannot do without the post token; and what the
//! database holds after many accounts read a channel (nothing of them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::channel::Channel;
use common::{TestServer, User, expect_error};
use hush_proto::channel::MAX_SEALED_POST;
use hush_wire::Bytes;
use hush_wire::api::*;

fn token(u: &User) -> &str {
    &u.devices[0].token
}

async fn put(s: &TestServer, as_: &User, id: &str, descriptor: Vec<u8>, t: &[u8]) -> u16 {
    s.http
        .put(s.url(&format!("/v1/channels/{id}")))
        .bearer_auth(token(as_))
        .json(&PutChannelRequest {
            descriptor: Bytes(descriptor),
            post_token: Bytes(t.to_vec()),
        })
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn post_raw(
    s: &TestServer,
    as_: &User,
    id: &str,
    post: Vec<u8>,
    t: &[u8],
) -> reqwest::Response {
    s.http
        .post(s.url(&format!("/v1/channels/{id}/posts")))
        .bearer_auth(token(as_))
        .json(&ChannelPostRequest {
            post_token: Bytes(t.to_vec()),
            post: Bytes(post),
        })
        .send()
        .await
        .unwrap()
}

async fn post(s: &TestServer, as_: &User, ch: &Channel, text: &str) -> u64 {
    let resp = post_raw(s, as_, &ch.id(), ch.post(text), &ch.token).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<ChannelPostResponse>().await.unwrap().number
}

async fn fetch(s: &TestServer, as_: &User, id: &str, query: &str) -> ChannelPostsResponse {
    let resp = s
        .get_as(&format!("/v1/channels/{id}/posts?{query}"), token(as_))
        .await;
    assert_eq!(resp.status().as_u16(), 200, "{query}");
    resp.json().await.unwrap()
}

async fn read(s: &TestServer, as_: &User, id: &str) -> ChannelResponse {
    let resp = s.get_as(&format!("/v1/channels/{id}"), token(as_)).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn an_owner_files_and_posts_and_subscribers_read() {
    let s = TestServer::start().await;
    let (alice, bob) = (s.register("alice", 1).await, s.register("bob", 2).await);
    let ch = Channel::new(11);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("news"), &ch.token).await,
        201
    );
    // A subscriber (another account, holding the link) reads it.
    let got = read(&s, &bob, &id).await;
    assert_eq!(got.latest, 0);
    let d = ch
        .secret
        .open_descriptor(&ch.owner.public(), &got.descriptor.0)
        .unwrap();
    assert_eq!((d.name.as_str(), d.key), ("news", ch.key));
    // Posts are numbered from 1 in the order taken.
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        assert_eq!(post(&s, &alice, &ch, text).await, i as u64 + 1);
    }
    let all = fetch(&s, &bob, &id, "after=0").await;
    assert_eq!(all.latest, 3);
    let texts: Vec<_> = all.posts.iter().map(|p| ch.open(&p.post.0)).collect();
    assert_eq!(texts, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    assert_eq!(
        all.posts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(all.posts.iter().all(|p| p.received_at_ms > 0));
    let page = fetch(&s, &bob, &id, "after=1&limit=1").await;
    assert_eq!(page.posts.len(), 1);
    assert_eq!(ch.open(&page.posts[0].post.0), b"two");
    assert!(fetch(&s, &bob, &id, "after=3").await.posts.is_empty());
    // The owner replaces the descriptor with the token.
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("news 2"), &ch.token).await,
        204
    );
    let got = read(&s, &bob, &id).await;
    assert_eq!(got.latest, 3);
    let d = ch
        .secret
        .open_descriptor(&ch.owner.public(), &got.descriptor.0)
        .unwrap();
    assert_eq!(d.name, "news 2");
    s.stop().await;
}

#[tokio::test]
async fn a_held_fetch_is_woken_by_a_post() {
    let s = TestServer::start().await;
    let (alice, bob, carol) = (
        s.register("alice", 1).await,
        s.register("bob", 2).await,
        s.register("carol", 3).await,
    );
    let ch = Channel::new(12);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("live"), &ch.token).await,
        201
    );
    let started = Instant::now();
    let waits: Vec<_> = [&bob, &carol]
        .into_iter()
        .map(|u| {
            let (http, url, t) = (
                s.http.clone(),
                s.url(&format!("/v1/channels/{id}/posts?after=0&wait_ms=20000")),
                token(u).to_owned(),
            );
            tokio::spawn(async move {
                let resp = http.get(url).bearer_auth(t).send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                resp.json::<ChannelPostsResponse>().await.unwrap()
            })
        })
        .collect();
    // Both wait on one watch.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.state.channels.channels() != 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.state.channels.channels(), 1);
    assert_eq!(post(&s, &alice, &ch, "wake up").await, 1);
    for w in waits {
        let got = w.await.unwrap();
        assert_eq!(got.posts.len(), 1);
        assert_eq!(ch.open(&got.posts[0].post.0), b"wake up");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(10),
        "held, then answered at the post: {took:?}"
    );
    // The watch went with its last waiter.
    assert_eq!(s.state.channels.channels(), 0);
    // A fetch that finds something newer answers at once.
    let started = Instant::now();
    let got = fetch(&s, &bob, &id, "after=0&wait_ms=20000").await;
    assert_eq!(got.posts.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    s.stop().await;
}

#[tokio::test]
async fn a_held_fetch_ends_empty_when_its_wait_does() {
    let s = TestServer::start().await;
    let (alice, bob) = (s.register("alice", 1).await, s.register("bob", 2).await);
    let ch = Channel::new(13);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("quiet"), &ch.token).await,
        201
    );
    post(&s, &alice, &ch, "old").await;
    let started = Instant::now();
    let got = fetch(&s, &bob, &id, "after=1&wait_ms=400").await;
    let took = started.elapsed();
    assert!(got.posts.is_empty());
    assert_eq!(got.latest, 1);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(s.state.channels.channels(), 0);
    s.stop().await;
}

#[tokio::test]
async fn a_node_shutting_down_answers_its_held_fetches() {
    let s = TestServer::start().await;
    let (alice, bob) = (s.register("alice", 1).await, s.register("bob", 2).await);
    let ch = Channel::new(20);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("x"), &ch.token).await,
        201
    );
    let (http, url, t) = (
        s.http.clone(),
        s.url(&format!("/v1/channels/{id}/posts?wait_ms=30000")),
        token(&bob).to_owned(),
    );
    let started = Instant::now();
    let held = tokio::spawn(async move { http.get(url).bearer_auth(t).send().await.unwrap() });
    while s.state.channels.channels() == 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.state.begin_drain();
    let resp = held.await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let got: ChannelPostsResponse = resp.json().await.unwrap();
    assert!(got.posts.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered at the drain"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_stranger_without_the_token_changes_nothing() {
    let s = TestServer::start().await;
    let (alice, mallory) = (s.register("alice", 1).await, s.register("mallory", 2).await);
    let ch = Channel::new(14);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("mine"), &ch.token).await,
        201
    );
    post(&s, &alice, &ch, "real").await;
    let before = read(&s, &mallory, &id).await;
    // Mallory holds the link (reads the channel) but not the post token.
    let wrong = [0xee; 32];
    let forged = ch.post("forged");
    expect_error(
        post_raw(&s, &mallory, &id, forged.clone(), &wrong).await,
        403,
        "forbidden",
    )
    .await;
    expect_error(
        post_raw(&s, &mallory, &id, forged, &[]).await,
        400,
        "bad_request",
    )
    .await;
    assert_eq!(
        put(&s, &mallory, &id, b"takeover".to_vec(), &wrong).await,
        403
    );
    assert_eq!(read(&s, &mallory, &id).await, before, "nothing changed");
    let all = fetch(&s, &alice, &id, "after=0").await;
    assert_eq!(all.posts.len(), 1);
    assert_eq!(ch.open(&all.posts[0].post.0), b"real");
    // Too large: refused, nothing stored.
    let big = vec![1u8; MAX_SEALED_POST + 1];
    expect_error(
        post_raw(&s, &alice, &id, big.clone(), &ch.token).await,
        413,
        "too_large",
    )
    .await;
    assert_eq!(put(&s, &alice, &id, big, &ch.token).await, 413);
    assert_eq!(read(&s, &alice, &id).await, before);
    // At the limit: taken.
    let resp = post_raw(&s, &alice, &id, vec![2u8; MAX_SEALED_POST], &ch.token).await;
    assert_eq!(resp.status().as_u16(), 200);
    // Unknown channels.
    let nobody = Channel::new(15);
    let none = nobody.id();
    let resp = post_raw(&s, &mallory, &none, nobody.post("x"), &nobody.token).await;
    expect_error(resp, 404, "not_found").await;
    expect_error(
        s.get_as(&format!("/v1/channels/{none}"), token(&mallory))
            .await,
        404,
        "not_found",
    )
    .await;
    let resp = s
        .get_as(
            &format!("/v1/channels/{none}/posts?wait_ms=5000"),
            token(&mallory),
        )
        .await;
    expect_error(resp, 404, "not_found").await;
    s.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_refused() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let ch = Channel::new(16);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("x"), &ch.token).await,
        201
    );
    for bad in [
        id.to_uppercase(),
        id[..63].to_owned(),
        format!("{id}00"),
        format!("{}zz", &id[..62]),
        "%C3%A9".repeat(32),
    ] {
        expect_error(
            s.get_as(&format!("/v1/channels/{bad}"), token(&alice))
                .await,
            400,
            "bad_request",
        )
        .await;
        let resp = s
            .get_as(&format!("/v1/channels/{bad}/posts"), token(&alice))
            .await;
        expect_error(resp, 400, "bad_request").await;
        let resp = post_raw(&s, &alice, &bad, ch.post("p"), &ch.token).await;
        expect_error(resp, 400, "bad_request").await;
        assert_eq!(
            put(&s, &alice, &bad, ch.descriptor("x"), &ch.token).await,
            400
        );
    }
    for query in ["after=-1", "limit=x", "wait_ms=1e3", "subscriber=bob"] {
        let resp = s
            .get_as(&format!("/v1/channels/{id}/posts?{query}"), token(&alice))
            .await;
        expect_error(resp, 400, "bad_request").await;
    }
    // A short token files nothing.
    let other = Channel::new(17);
    assert_eq!(
        put(&s, &alice, &other.id(), other.descriptor("y"), &[1; 31]).await,
        400
    );
    expect_error(
        s.get_as(&format!("/v1/channels/{}", other.id()), token(&alice))
            .await,
        404,
        "not_found",
    )
    .await;
    // Without a token: 401.
    let resp = s
        .http
        .get(s.url(&format!("/v1/channels/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Limits beyond the maximum are capped, not refused.
    for _ in 0..300 {
        assert!(
            post_raw(&s, &alice, &id, vec![0], &ch.token)
                .await
                .status()
                .is_success()
        );
    }
    assert_eq!(
        fetch(&s, &alice, &id, "after=0&limit=100000")
            .await
            .posts
            .len(),
        256
    );
    assert_eq!(
        fetch(&s, &alice, &id, "after=0&limit=0").await.posts.len(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn the_expiry_sweep_forgets_old_posts() {
    let s = TestServer::with_settings(hush_server::app::Settings {
        retention: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let ch = Channel::new(18);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("brief"), &ch.token).await,
        201
    );
    post(&s, &alice, &ch, "old").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    post(&s, &alice, &ch, "new").await;
    hush_server::server::run_expiry(&s.state).await;
    let all = fetch(&s, &alice, &id, "after=0").await;
    assert_eq!(all.latest, 2);
    assert_eq!(
        all.posts
            .iter()
            .map(|p| ch.open(&p.post.0))
            .collect::<Vec<_>>(),
        [b"new".to_vec()]
    );
    // The channel stays and numbering goes on.
    assert_eq!(post(&s, &alice, &ch, "next").await, 3);
    s.stop().await;
}

/// Every row of every table but the key directory's (which publishes on
/// its own schedule), as text.
fn dump(db: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .filter(|t| !t.starts_with("kt_"))
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap()
                .map(|row| format!("{:?}", row.unwrap()))
                .collect();
            rows.sort();
            (t, rows)
        })
        .collect()
}

/// The bytes of every cell of a channel table.
fn cells(db: &std::path::Path, table: &str) -> (Vec<String>, Vec<Vec<u8>>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let columns = stmt.column_names().map(str::to_owned).collect();
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        for i in 0..n {
            out.push(match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Blob(b) => b,
                rusqlite::types::Value::Text(t) => t.into_bytes(),
                rusqlite::types::Value::Integer(v) => v.to_string().into_bytes(),
                other => format!("{other:?}").into_bytes(),
            });
        }
    }
    (columns, out)
}

#[tokio::test]
async fn the_database_keeps_no_trace_of_readers() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let ch = Channel::new(19);
    let id = ch.id();
    assert_eq!(
        put(&s, &alice, &id, ch.descriptor("public"), &ch.token).await,
        201
    );
    post(&s, &alice, &ch, "hello").await;
    let mut readers = Vec::new();
    for (i, name) in ["bobreader", "carolreader", "davereader"]
        .iter()
        .enumerate()
    {
        readers.push(s.register(name, 40 + i as u64).await);
    }
    let db = s.data_dir().join("hush.db");
    let before = dump(&db);
    // Each reads the descriptor, fetches, and waits for more (held fetches
    // of all three at once, ending empty).
    for r in &readers {
        read(&s, r, &id).await;
        assert_eq!(fetch(&s, r, &id, "after=0").await.posts.len(), 1);
    }
    let held = readers
        .iter()
        .map(|r| fetch(&s, r, &id, "after=1&wait_ms=300"));
    for got in futures_util::future::join_all(held).await {
        assert!(got.posts.is_empty());
    }
    assert_eq!(dump(&db), before, "reading a channel wrote nothing");
    // The channel tables hold the channel and the post, and no column or
    // cell names a reader: not their names, account keys or device tokens.
    let (columns, _) = cells(&db, "channels");
    assert_eq!(
        columns,
        [
            "channel_id",
            "descriptor",
            "post_token_hash",
            "latest",
            "created_at_ms"
        ]
    );
    let (columns, _) = cells(&db, "channel_posts");
    assert_eq!(columns, ["channel_id", "number", "post", "received_at_ms"]);
    let tables: Vec<String> = dump(&db).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        tables.iter().filter(|t| t.contains("channel")).count(),
        2,
        "{tables:?}"
    );
    for r in &readers {
        let marks = [
            r.name.as_bytes().to_vec(),
            r.account.public().as_bytes().to_vec(),
            hush_server::auth::token_hash(token(r)).to_vec(),
        ];
        for table in ["channels", "channel_posts"] {
            for cell in cells(&db, table).1 {
                for mark in &marks {
                    assert!(
                        !cell.windows(mark.len()).any(|w| w == mark.as_slice()),
                        "{table} names a reader"
                    );
                }
            }
        }
    }
    s.stop().await;
}
