//! Group membership against attacks on the server's commit ordering and
//! devices that disappear: real clients, a real server on a loopback port
//! (hush-testkit), real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{sync, user};
use hush_client::{Event, Target};
use hush_proto::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
use hush_testkit::TestServer;
use hush_wire::api::{CommitClaim, NewDeviceBody, RegisterRequest, RegisterResponse, SendRequest};
use hush_wire::{Bytes, DeviceAddress};

fn texts(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.from.clone(), m.text.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

fn group(name: &str) -> Target {
    Target::Group(name.into())
}

/// A fresh account made by hand (an attacker's own tooling): its bearer token.
async fn stranger(server: &TestServer, name: &str) -> String {
    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).unwrap();
    let key = DeviceSigningKey::generate(&mut rng).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let cert = DeviceCertificate::issue(
        &account,
        &Username::new(name).unwrap(),
        DeviceId(1),
        &key,
        now,
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/accounts", server.url()))
        .json(&RegisterRequest {
            username: name.into(),
            account_key: Bytes(account.public().as_bytes().to_vec()),
            device: NewDeviceBody {
                device_id: 1,
                certificate: Bytes(cert.encode()),
            },
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    resp.json::<RegisterResponse>().await.unwrap().token
}

/// The id of the one group the server orders commits for: what a former
/// member, or anyone the server shows its `groups` table, knows. (Queued
/// messages no longer show it: they are sealed to their recipients.)
fn group_id_known_to_the_server(server: &TestServer) -> Vec<u8> {
    let db = rusqlite::Connection::open(server.data_dir().join("hush.db")).unwrap();
    let mut ids: Vec<Vec<u8>> = db
        .prepare("SELECT group_id FROM groups")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids.len(), 1, "one group on the server");
    ids.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_far_future_claim_does_not_stop_group_add() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cara = user(&server, root.path(), "cara").await;
    anna.create_group("crew", &["bert".into()]).await.unwrap();
    anna.send_text(&group("crew"), "hello").await.unwrap();
    let group_id = group_id_known_to_the_server(&server);
    sync(&mut bert).await;

    // One request from a fresh account that knows the group id: a
    // far-future claim addressed to its own second account.
    let token = stranger(&server, "mallory").await;
    stranger(&server, "mallory2").await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.url()))
        .bearer_auth(&token)
        .json(&SendRequest {
            recipients: vec![DeviceAddress {
                username: "mallory2".into(),
                device_id: 1,
            }],
            payload: Bytes(b"freeze".to_vec()),
            ephemeral: false,
            commit: Some(CommitClaim {
                group_id: Bytes(group_id),
                epoch: 1 << 40,
                token: Bytes(vec![0; 32]),
                next_token_hash: Bytes(vec![0; 32]),
            }),
            franking_commitment: None,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // `hush group add` keeps working, and so do the members' commits.
    anna.group_add("crew", "cara").await.unwrap();
    sync(&mut cara).await;
    sync(&mut bert).await;
    assert_eq!(
        bert.group_members("crew").unwrap(),
        vec!["anna", "bert", "cara"]
    );
    // (Only admins rename, decision 0032: anna makes bert one first.)
    anna.group_set_admin("crew", "bert", true).await.unwrap();
    sync(&mut bert).await;
    bert.group_rename("crew", "crew2").await.unwrap();
    sync(&mut cara).await;
    cara.send_text(&group("crew2"), "hi all").await.unwrap();
    assert_eq!(
        texts(&sync(&mut anna).await),
        vec![("cara".into(), "hi all".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_device_is_removed_and_the_group_keeps_working() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server, root.path(), "anna").await;
    let mut bert = user(&server, root.path(), "bert").await;
    let mut cara = user(&server, root.path(), "cara").await;
    anna.create_group("crew", &["bert".into(), "cara".into()])
        .await
        .unwrap();
    sync(&mut bert).await;
    sync(&mut cara).await;
    // Bert also has a 1:1 chat with cara.
    bert.send_text(&Target::User("cara".into()), "psst")
        .await
        .unwrap();
    sync(&mut cara).await;

    // Cara's device disappears from the server (`hush-server admin
    // accounts delete cara`).
    server
        .store()
        .unwrap()
        .delete_account("cara")
        .await
        .unwrap();

    // The next send still reaches bert, and anna's client, having checked
    // with the directory that cara's device is gone, removes its leaf.
    let sent = anna.send_text(&group("crew"), "still here").await.unwrap();
    assert_eq!(sent.status, "sent");
    assert_eq!(anna.group_members("crew").unwrap(), vec!["anna", "bert"]);
    assert_eq!(
        texts(&sync(&mut bert).await),
        vec![("anna".into(), "still here".into())]
    );
    assert_eq!(bert.group_members("crew").unwrap(), vec!["anna", "bert"]);
    // Bert's client removes her leaf from the 1:1 chat too, the first time
    // it sends there; the send itself does not fail.
    let sent = bert
        .send_text(&Target::User("cara".into()), "are you there?")
        .await
        .unwrap();
    assert_eq!(sent.status, "sent");
    let direct = bert
        .conversations()
        .unwrap()
        .into_iter()
        .find(|c| c.kind == "direct")
        .unwrap();
    assert_eq!(direct.members, vec!["bert"]);
    bert.send_text(&group("crew"), "two of us").await.unwrap();
    assert_eq!(
        texts(&sync(&mut anna).await),
        vec![("bert".into(), "two of us".into())]
    );
}
