//! Channels (decision 0038) from every side: an owner and subscribers on
//! other accounts, a subscriber whose client tries to post, a stranger
//! with a forged token, someone holding the owner's post token who forges,
//! replays or moves posts, rotation with a reader and a late joiner, and
//! leaving. Real clients, a real server on a loopback port
//! (hush-testkit).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Raw, sync, user};
use hush_client::{Client, ClientError, Event};
use hush_proto::channel::{ChannelLink, Descriptor, Post, PostBody};
use hush_proto::{AccountKey, Body, ChannelGrant, Content, MessageId, PostMeta};
use hush_testkit::TestServer;
use hush_wire::api::{
    ChannelPostRequest, ChannelPostResponse, ChannelPostsResponse, ChannelResponse,
    PutChannelRequest,
};
use hush_wire::{Bytes, ErrorCode};
use reqwest::Method;

/// The texts of the channel posts among `events`.
fn posts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChannelPost(p) => Some(p.text.clone()),
            _ => None,
        })
        .collect()
}

fn history(c: &Client, name: &str) -> Vec<String> {
    c.channel_history(name)
        .unwrap()
        .into_iter()
        .map(|p| p.text)
        .collect()
}

fn path(link: &ChannelLink) -> String {
    format!("/v1/channels/{}", hex::encode(link.secret.channel_id()))
}

/// What the server holds for the channel, as any account may read it.
async fn stored(raw: &Raw, link: &ChannelLink) -> ChannelPostsResponse {
    raw.transport()
        .json::<(), _>(Method::GET, &format!("{}/posts?after=0", path(link)), None)
        .await
        .unwrap()
}

/// The current epoch and key, as any holder of the link reads them.
async fn epoch_key(raw: &Raw, link: &ChannelLink) -> (u32, [u8; 32]) {
    let resp: ChannelResponse = raw
        .transport()
        .json::<(), _>(Method::GET, &path(link), None)
        .await
        .unwrap();
    let d = link
        .secret
        .open_descriptor(&link.owner, &resp.descriptor.0)
        .unwrap();
    (d.epoch, d.key)
}

fn text_body(text: &str) -> PostBody {
    PostBody::Content(
        Content {
            id: MessageId::generate(&mut rand::rngs::OsRng),
            sent_at_ms: hush_client::client::now_ms(),
            expire_timer_secs: None,
            body: Body::Text {
                text: text.into(),
                reply_to: None,
            },
            kt_checkpoint: None,
            meta: PostMeta::default(),
        }
        .encode(),
    )
}

/// A post sealed under the channel's current key, signed by `signer`.
async fn forged(raw: &Raw, link: &ChannelLink, signer: &AccountKey, body: PostBody) -> Vec<u8> {
    let (epoch, key) = epoch_key(raw, link).await;
    Post::seal(
        &link.secret.channel_id(),
        epoch,
        &key,
        signer,
        body,
        hush_client::client::now_ms(),
        &mut rand::rngs::OsRng,
    )
    .unwrap()
}

/// Posts `post` by hand with `token`.
async fn post_raw(
    raw: &Raw,
    link: &ChannelLink,
    token: &[u8],
    post: Vec<u8>,
) -> Result<u64, ClientError> {
    let resp: ChannelPostResponse = raw
        .transport()
        .json(
            Method::POST,
            &format!("{}/posts", path(link)),
            Some(&ChannelPostRequest {
                post_token: Bytes(token.to_vec()),
                post: Bytes(post),
            }),
        )
        .await?;
    Ok(resp.number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_posts_and_subscribers_on_other_accounts_read_and_cannot_post() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cleo = user(&server, root.path(), "cleo").await;
    let text = anna.create_channel("news").await.unwrap();
    assert!(text.starts_with(&server.url()), "{text}");
    assert_eq!(anna.channel_link("news").unwrap(), text);
    let link = ChannelLink::parse(&text).unwrap();
    assert_eq!(bert.join_channel(&text).await.unwrap(), "news");
    assert_eq!(cleo.join_channel(&text).await.unwrap(), "news");

    anna.post_to_channel("news", "hello subscribers")
        .await
        .unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["hello subscribers"]);
    assert_eq!(posts(&sync(&mut cleo).await), ["hello subscribers"]);
    // Taken in once: the next sync shows nothing, history keeps it.
    assert!(posts(&sync(&mut bert).await).is_empty());
    assert_eq!(history(&bert, "news"), ["hello subscribers"]);
    // The owner's own device does not show its post again either.
    assert!(posts(&sync(&mut anna).await).is_empty());
    assert_eq!(history(&anna, "news"), ["hello subscribers"]);

    // bert's device holds no post token: refused there, nothing sent.
    let before = bert.transport().requests_made();
    let err = bert.post_to_channel("news", "spam").await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("only its owner"), "{err}");
    let err = bert.rotate_channel("news").await.unwrap_err();
    assert!(err.to_string().contains("only its owner"), "{err}");
    assert_eq!(bert.transport().requests_made(), before);

    // By hand, with a post signed by a key of its own and a token made
    // up: the server stores nothing, and nobody is shown anything.
    let mallory = Raw::register(&server, "mallory").await;
    let key = AccountKey::generate(&mut rand::rngs::OsRng).unwrap();
    let post = forged(&mallory, &link, &key, text_body("forged")).await;
    let err = post_raw(&mallory, &link, &[7; 32], post).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert_eq!(stored(&mallory, &link).await.latest, 1);
    assert!(posts(&sync(&mut cleo).await).is_empty());
    assert_eq!(history(&cleo, "news"), ["hello subscribers"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_with_the_token_but_not_signed_by_an_admin_or_replayed_are_not_shown() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let text = anna.create_channel("news").await.unwrap();
    let link = ChannelLink::parse(&text).unwrap();
    bert.join_channel(&text).await.unwrap();
    anna.post_to_channel("news", "genuine").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["genuine"]);

    // Someone holding the owner's post token (a leak): the server takes
    // what they post, subscribers do not show it.
    let token = anna.channel_post_token_for_tests("news").unwrap();
    let mallory = Raw::register(&server, "mallory").await;
    let key = AccountKey::generate(&mut rand::rngs::OsRng).unwrap();
    let post = forged(&mallory, &link, &key, text_body("not by the owner")).await;
    post_raw(&mallory, &link, &token, post).await.unwrap();
    // A key rotation signed by a non-admin key gives no key.
    let rotate = PostBody::Rotate {
        epoch: 1,
        key: [9; 32],
    };
    let post = forged(&mallory, &link, &key, rotate).await;
    post_raw(&mallory, &link, &token, post).await.unwrap();
    // The owner's genuine post, replayed under a new number.
    let genuine = stored(&mallory, &link).await.posts[0].post.0.clone();
    post_raw(&mallory, &link, &token, genuine).await.unwrap();
    // Bytes that are no post at all.
    post_raw(&mallory, &link, &token, vec![1, 0, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    // A genuine post of another channel of anna's, moved into this one.
    let other = ChannelLink::parse(&anna.create_channel("other").await.unwrap()).unwrap();
    anna.post_to_channel("other", "elsewhere").await.unwrap();
    let moved = stored(&mallory, &other).await.posts[0].post.0.clone();
    post_raw(&mallory, &link, &token, moved).await.unwrap();
    assert_eq!(stored(&mallory, &link).await.latest, 6);

    let events = sync(&mut bert).await;
    assert!(posts(&events).is_empty(), "{events:?}");
    assert_eq!(history(&bert, "news"), ["genuine"]);
    assert_eq!(bert.channels().unwrap()[0].epoch, 0);

    // The channel goes on: the owner's next post is read.
    anna.post_to_channel("news", "still here").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["still here"]);

    // A subscriber joining now reads each genuine post once, and nothing
    // forged.
    let mut cleo = user(&server, root.path(), "cleo").await;
    cleo.join_channel(&text).await.unwrap();
    assert_eq!(posts(&sync(&mut cleo).await), ["genuine", "still here"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_gives_readers_the_key_and_late_joiners_nothing_before_it() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let text = anna.create_channel("news").await.unwrap();
    bert.join_channel(&text).await.unwrap();
    anna.post_to_channel("news", "before").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["before"]);

    assert_eq!(anna.rotate_channel("news").await.unwrap(), 1);
    anna.post_to_channel("news", "after").await.unwrap();
    // bert, reading on, learns the new key from the stream.
    assert_eq!(posts(&sync(&mut bert).await), ["after"]);
    assert_eq!(bert.channels().unwrap()[0].epoch, 1);
    assert_eq!(history(&bert, "news"), ["before", "after"]);

    // cleo joins after the rotation: the descriptor gives her epoch 1's
    // key only, and the posts before it stay closed to her.
    let mut cleo = user(&server, root.path(), "cleo").await;
    cleo.join_channel(&text).await.unwrap();
    assert_eq!(posts(&sync(&mut cleo).await), ["after"]);
    assert_eq!(history(&cleo, "news"), ["after"]);
    assert_eq!(cleo.channels().unwrap()[0].epoch, 1);

    // A second rotation, read on by both.
    assert_eq!(anna.rotate_channel("news").await.unwrap(), 2);
    anna.post_to_channel("news", "third epoch").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["third epoch"]);
    assert_eq!(posts(&sync(&mut cleo).await), ["third epoch"]);

    // bert misses the third rotation's post (as if it had expired on the
    // server): the next post's epoch makes his device read the
    // descriptor, which gives the key.
    assert_eq!(anna.rotate_channel("news").await.unwrap(), 3);
    anna.post_to_channel("news", "fourth epoch").await.unwrap();
    drop(bert);
    let dir = root.path().join("bert");
    {
        let store = hush_client::local::LocalStore::open(&dir, common::PASS).unwrap();
        // Posts 1 to 5 read; 6 is the rotation, 7 the post after it.
        store
            .execute_for_tests("UPDATE channels SET read_up_to = 6")
            .unwrap();
    }
    let mut bert = Client::open(&dir, common::PASS).unwrap();
    assert_eq!(bert.channels().unwrap()[0].epoch, 2);
    assert_eq!(posts(&sync(&mut bert).await), ["fourth epoch"]);
    assert_eq!(bert.channels().unwrap()[0].epoch, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_forgets_everything_and_names_and_links_are_checked() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let text = anna.create_channel("news").await.unwrap();
    let err = anna.create_channel("news").await.unwrap_err();
    assert!(err.to_string().contains("already have a channel"), "{err}");
    assert!(anna.create_channel("").await.is_err());

    // A link whose owner key was swapped: the descriptor does not verify.
    let mut link = ChannelLink::parse(&text).unwrap();
    link.owner = AccountKey::generate(&mut rand::rngs::OsRng)
        .unwrap()
        .public();
    let err = bert.join_channel(&link.to_link()).await.unwrap_err();
    assert!(err.to_string().contains("SECURITY"), "{err}");
    assert!(bert.channels().unwrap().is_empty());
    // Another server's link, and no link at all.
    let other = text.replace(&server.url(), "https://elsewhere.example");
    let err = bert.join_channel(&other).await.unwrap_err();
    assert!(err.to_string().contains("for the server"), "{err}");
    assert!(bert.join_channel("https://x/channel#00").await.is_err());

    // bert owns a channel called "news" himself: a clear error.
    bert.create_channel("news").await.unwrap();
    let err = bert.join_channel(&text).await.unwrap_err();
    assert!(err.to_string().contains("already have a channel"), "{err}");
    bert.leave_channel("news").unwrap();

    bert.join_channel(&text).await.unwrap();
    let err = bert.join_channel(&text).await.unwrap_err();
    assert!(err.to_string().contains("already follow"), "{err}");
    anna.post_to_channel("news", "one").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["one"]);

    bert.leave_channel("news").unwrap();
    assert!(bert.channels().unwrap().is_empty());
    assert!(matches!(
        bert.channel_history("news"),
        Err(ClientError::NotFound(_))
    ));
    anna.post_to_channel("news", "two").await.unwrap();
    assert!(posts(&sync(&mut bert).await).is_empty());
    assert!(matches!(
        bert.leave_channel("news"),
        Err(ClientError::NotFound(_))
    ));
    // The link still works: joining again reads the channel afresh.
    bert.join_channel(&text).await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["one", "two"]);
}

/// The channel's descriptor as the server holds it, opened with the link.
async fn descriptor(raw: &Raw, link: &ChannelLink) -> Descriptor {
    let resp: ChannelResponse = raw
        .transport()
        .json::<(), _>(Method::GET, &path(link), None)
        .await
        .unwrap();
    link.secret
        .open_descriptor(&link.owner, &resp.descriptor.0)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_named_by_the_owner_posts_and_subscribers_on_another_account_read_it() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cleo = user(&server, root.path(), "cleo").await;
    let text = anna.create_channel("news").await.unwrap();
    let link = ChannelLink::parse(&text).unwrap();
    cleo.join_channel(&text).await.unwrap();
    anna.post_to_channel("news", "from anna").await.unwrap();
    // cleo holds the descriptor that lists anna's key only.
    assert_eq!(posts(&sync(&mut cleo).await), ["from anna"]);

    // Only the owner's device names admins.
    let err = cleo.add_channel_admin("news", "bert").await.unwrap_err();
    assert!(err.to_string().contains("only its owner"), "{err}");
    anna.add_channel_admin("news", "bert").await.unwrap();
    let raw = Raw::register(&server, "watcher").await;
    assert_eq!(descriptor(&raw, &link).await.admins.len(), 2);

    // bert's device takes the grant in with a sync, joining the channel
    // (and reading it as a subscriber does).
    assert_eq!(posts(&sync(&mut bert).await), ["from anna"]);
    let view = &bert.channels().unwrap()[0];
    assert_eq!(
        (view.name.as_str(), view.owner, view.admin),
        ("news", false, true)
    );
    bert.post_to_channel("news", "from bert").await.unwrap();
    // cleo reads the descriptor once, finds bert's key, shows the post.
    assert_eq!(posts(&sync(&mut cleo).await), ["from bert"]);
    assert_eq!(history(&cleo, "news"), ["from anna", "from bert"]);
    anna.post_to_channel("news", "anna again").await.unwrap();
    assert_eq!(posts(&sync(&mut bert).await), ["anna again"]);
    assert_eq!(
        history(&bert, "news"),
        ["from anna", "from bert", "anna again"]
    );

    // An admin posts, nothing more: no rotation, no admins of its own.
    let before = bert.transport().requests_made();
    let err = bert.rotate_channel("news").await.unwrap_err();
    assert!(err.to_string().contains("not its owner"), "{err}");
    let err = bert.add_channel_admin("news", "cleo").await.unwrap_err();
    assert!(err.to_string().contains("not its owner"), "{err}");
    assert_eq!(bert.transport().requests_made(), before);

    // After a rotation the admin list stays, and bert's next post is read.
    anna.rotate_channel("news").await.unwrap();
    sync(&mut bert).await;
    bert.post_to_channel("news", "new epoch").await.unwrap();
    assert_eq!(posts(&sync(&mut cleo).await), ["anna again", "new epoch"]);

    // cleo, a subscriber and not an admin, still cannot post.
    let err = cleo.post_to_channel("news", "spam").await.unwrap_err();
    assert!(err.to_string().contains("only its owner"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_not_from_the_owner_gives_no_posting_power() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cleo = user(&server, root.path(), "cleo").await;
    let mut dave = user(&server, root.path(), "dave").await;
    let mut mallory = user(&server, root.path(), "mallory").await;
    let text = anna.create_channel("news").await.unwrap();
    let link = ChannelLink::parse(&text).unwrap();
    for c in [&mut bert, &mut cleo, &mut mallory] {
        c.join_channel(&text).await.unwrap();
    }
    anna.post_to_channel("news", "genuine").await.unwrap();
    assert_eq!(posts(&sync(&mut cleo).await), ["genuine"]);

    // mallory holds the post token (a leak) and a key of her own; she
    // hands both to bert (who follows) and dave (who does not), once with
    // the owner's genuine descriptor, once with one she signed herself.
    let token = anna.channel_post_token_for_tests("news").unwrap();
    let key = AccountKey::generate(&mut rand::rngs::OsRng).unwrap();
    let raw = Raw::register(&server, "watcher").await;
    let genuine = descriptor(&raw, &link).await;
    let own = Descriptor::new(
        &link.secret.channel_id(),
        &key,
        "news",
        genuine.epoch,
        genuine.key,
        vec![key.public()],
    )
    .unwrap();
    for d in [&genuine, &own] {
        let grant = ChannelGrant {
            link: text.clone(),
            admin_seed: *key.to_seed(),
            post_token: token.clone(),
            descriptor: d.encode(),
        };
        for to in ["bert", "dave"] {
            let body = Body::ChannelAdmin {
                grant: grant.clone(),
            };
            mallory.send_body_for_tests(to, body).await.unwrap();
        }
    }
    sync(&mut bert).await;
    sync(&mut dave).await;
    // Neither device took it: bert only follows, dave has no channel.
    let view = &bert.channels().unwrap()[0];
    assert!(!view.admin && !view.owner, "{view:?}");
    assert!(dave.channels().unwrap().is_empty());
    let err = bert
        .post_to_channel("news", "via mallory")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only its owner"), "{err}");

    // With the token, mallory files her descriptor on the server and
    // posts under her key: subscribers read the descriptor, find it not
    // signed by the owner, and show nothing.
    mallory
        .transport()
        .call(
            Method::PUT,
            &path(&link),
            Some(&PutChannelRequest {
                descriptor: Bytes(
                    link.secret
                        .seal_descriptor(&own, &mut rand::rngs::OsRng)
                        .unwrap(),
                ),
                post_token: Bytes(token.clone()),
            }),
        )
        .await
        .unwrap();
    let post = Post::seal(
        &link.secret.channel_id(),
        genuine.epoch,
        &genuine.key,
        &key,
        text_body("mallory as admin"),
        hush_client::client::now_ms(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    post_raw(&raw, &link, &token, post).await.unwrap();
    let events = sync(&mut cleo).await;
    assert!(posts(&events).is_empty(), "{events:?}");
    assert_eq!(history(&cleo, "news"), ["genuine"]);
}
