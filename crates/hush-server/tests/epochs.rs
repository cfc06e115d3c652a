//! Who can win a group's epoch, attacked against a real server on a
//! loopback port with real MLS devices (hush-proto): a stranger who knows a
//! group id, a removed member, and anyone asking for the epoch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::{Conversation, ConversationInfo, Device, PendingCommit, Suite, Timestamp};
use hush_server::store::DeviceKey;
use hush_wire::api::{CommitClaim, SendRequest, SendResponse};
use hush_wire::{Bytes, DeviceAddress};

fn now() -> Timestamp {
    Timestamp::from_millis(now_ms())
}

fn device(u: &User) -> Device {
    Device::new(u.devices[0].cert.clone(), &u.devices[0].key).unwrap()
}

fn to(users: &[&User]) -> Vec<DeviceAddress> {
    users
        .iter()
        .map(|u| DeviceAddress {
            username: u.name.clone(),
            device_id: 1,
        })
        .collect()
}

/// A commit send as the client makes it.
fn commit_req(group_id: &[u8], recipients: Vec<DeviceAddress>, p: &PendingCommit) -> SendRequest {
    claim_req(
        group_id,
        recipients,
        p.epoch,
        p.token,
        p.next_token_hash,
        &p.commit,
    )
}

fn claim_req(
    group_id: &[u8],
    recipients: Vec<DeviceAddress>,
    epoch: u64,
    token: [u8; 32],
    next_token_hash: [u8; 32],
    payload: &[u8],
) -> SendRequest {
    SendRequest {
        recipients,
        payload: Bytes(payload.to_vec()),
        ephemeral: false,
        commit: Some(CommitClaim {
            group_id: Bytes(group_id.to_vec()),
            epoch,
            token: Bytes(token.to_vec()),
            next_token_hash: Bytes(next_token_hash.to_vec()),
        }),
        franking_commitment: None,
    }
}

/// `creator` makes a group with `members` as the client does: the creating
/// commit goes to the server (to nobody) to register the group, the Welcome
/// to the members, who join.
async fn group_of(
    s: &TestServer,
    creator: &User,
    members: &[&User],
) -> (Conversation, Vec<Conversation>) {
    // Each member's device keeps the private half of its KeyPackage.
    let devices: Vec<Device> = members.iter().map(|m| device(m)).collect();
    let kps: Vec<Vec<u8>> = devices
        .iter()
        .map(|d| {
            d.generate_key_package(Suite::Hybrid, false, now())
                .unwrap()
                .message
        })
        .collect();
    let (conv, pending) = device(creator)
        .create_conversation(Suite::Hybrid, &ConversationInfo::group("crew"), &kps, now())
        .unwrap();
    let pending = pending.unwrap();
    let resp = s
        .send_req(
            &creator.devices[0].token,
            commit_req(conv.id(), Vec::new(), &pending),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let welcome = pending.welcome.unwrap();
    let joined = devices
        .iter()
        .map(|d| d.join(&welcome, now()).unwrap())
        .collect();
    (conv, joined)
}

/// The envelopes waiting for `user`, oldest first, taken off the queue.
async fn take_queue(s: &TestServer, user: &User) -> Vec<Vec<u8>> {
    let key = DeviceKey::new(&user.name, 1);
    let got = s.state.store.fetch(&key, 0, 100).await.unwrap();
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    s.state.store.ack(&key, &seqs).await.unwrap();
    got.iter()
        .map(|e| open_stored(&user.devices[0], e))
        .collect()
}

async fn error_body(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_strangers_far_future_claim_is_refused_and_the_group_keeps_committing() {
    let s = TestServer::start().await;
    let anna = s.register("anna", 1).await;
    let bert = s.register("bert", 2).await;
    let cara = s.register("cara", 3).await;
    let mallory = s.register("mallory", 4).await;
    let (mut conv, mut joined) = group_of(&s, &anna, &[&bert]).await;
    let group_id = conv.id().to_vec();

    // The attack from the issue: one request from a fresh account that
    // knows the group id, a far-future claim addressed to itself... here to
    // anna, so that an accepted claim would show in her queue.
    let mut answers = Vec::new();
    for epoch in [1u64 << 40, 1, 2, 0] {
        let resp = s
            .send_req(
                &mallory.devices[0].token,
                claim_req(&group_id, to(&[&anna]), epoch, [7; 32], [8; 32], b"x"),
            )
            .await;
        let (status, body) = error_body(resp).await;
        assert_eq!(status, 403, "claim for epoch {epoch}: {body}");
        assert_eq!(body["code"], "forbidden");
        answers.push(body["message"].as_str().unwrap().to_owned());
    }
    // The refusal is the same whatever the claim: it does not tell the
    // group's epoch. Nothing was queued.
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(take_queue(&s, &anna).await.is_empty());

    // The members' commits go on: anna adds cara, bert (a Welcome joiner)
    // commits the next epoch.
    let kp = s.key_package(&cara.devices[0], Suite::Hybrid, false);
    let add = conv.add_devices(&[kp], now()).unwrap();
    let resp = s
        .send_req(
            &anna.devices[0].token,
            commit_req(&group_id, to(&[&bert]), &add),
        )
        .await;
    assert_eq!(resp.status(), 200);
    conv.confirm_commit().unwrap();
    let bert_conv = &mut joined[0];
    for m in take_queue(&s, &bert).await {
        bert_conv.process(&m, now()).unwrap();
    }
    assert_eq!(bert_conv.epoch(), conv.epoch());
    let update = bert_conv.self_update(now()).unwrap();
    let resp = s
        .send_req(
            &bert.devices[0].token,
            commit_req(&group_id, to(&[&anna, &cara]), &update),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!(sent.delivered_to, 2);
}

#[tokio::test]
async fn a_removed_member_cannot_claim_the_next_epoch() {
    let s = TestServer::start().await;
    let anna = s.register("anna", 1).await;
    let bert = s.register("bert", 2).await;
    let cara = s.register("cara", 3).await;
    let (mut conv, mut joined) = group_of(&s, &anna, &[&bert, &cara]).await;
    let group_id = conv.id().to_vec();
    let mut cara_conv = joined.pop().unwrap();
    let mut bert_conv = joined.pop().unwrap();

    // Anna removes cara.
    let who = hush_proto::Username::new("cara").unwrap();
    let remove = conv.remove_account(&who, now()).unwrap();
    let resp = s
        .send_req(
            &anna.devices[0].token,
            commit_req(&group_id, to(&[&bert, &cara]), &remove),
        )
        .await;
    assert_eq!(resp.status(), 200);
    conv.confirm_commit().unwrap();
    take_queue(&s, &cara).await;

    // Cara, with everything she knew as a member, tries to get back ahead
    // of the removal: her commit for the epoch she was in lost it...
    let mine = cara_conv.self_update(now()).unwrap();
    let (status, body) = error_body(
        s.send_req(
            &cara.devices[0].token,
            commit_req(&group_id, to(&[&anna, &bert]), &mine),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("epoch_conflict"))
    );
    // ...and her token wins neither the next epoch nor a far one.
    for epoch in [mine.epoch + 1, mine.epoch + 2, 1 << 40] {
        let (status, body) = error_body(
            s.send_req(
                &cara.devices[0].token,
                claim_req(
                    &group_id,
                    to(&[&anna, &bert]),
                    epoch,
                    mine.token,
                    mine.next_token_hash,
                    &mine.commit,
                ),
            )
            .await,
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    }
    assert!(take_queue(&s, &anna).await.is_empty());

    // Bert processes the removal and commits the next epoch.
    for m in take_queue(&s, &bert).await {
        bert_conv.process(&m, now()).unwrap();
    }
    let update = bert_conv.self_update(now()).unwrap();
    let resp = s
        .send_req(
            &bert.devices[0].token,
            commit_req(&group_id, to(&[&anna]), &update),
        )
        .await;
    assert_eq!(resp.status(), 200);
    bert_conv.confirm_commit().unwrap();
    for m in take_queue(&s, &anna).await {
        conv.process(&m, now()).unwrap();
    }
    assert_eq!(conv.epoch(), bert_conv.epoch());
}

#[tokio::test]
async fn a_non_member_cannot_read_a_groups_epoch() {
    let s = TestServer::start().await;
    let anna = s.register("anna", 1).await;
    let bert = s.register("bert", 2).await;
    let mallory = s.register("mallory", 4).await;
    let (conv, _) = group_of(&s, &anna, &[&bert]).await;
    use base64::Engine as _;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(conv.id());
    let resp = s
        .get_as(&format!("/v1/groups/{id}"), &mallory.devices[0].token)
        .await;
    assert_eq!(resp.status(), 404);
    // Not from a member either: the endpoint is gone.
    let resp = s
        .get_as(&format!("/v1/groups/{id}"), &anna.devices[0].token)
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_send_to_a_departed_device_reaches_the_others_and_names_it() {
    let s = TestServer::start().await;
    let anna = s.register("anna", 1).await;
    let bert = s.register("bert", 2).await;
    let cara = s.register("cara", 3).await;
    let (mut conv, _) = group_of(&s, &anna, &[&bert, &cara]).await;
    // Cara's device disappears (the operator deletes the account).
    s.state.store.delete_account("cara").await.unwrap();

    let resp = s
        .send(&anna.devices[0].token, &[("bert", 1), ("cara", 1)], b"hi")
        .await;
    assert_eq!(resp.status(), 200);
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!(sent.delivered_to, 1);
    assert_eq!(sent.missing, to(&[&cara]));
    assert_eq!(take_queue(&s, &bert).await, vec![b"hi".to_vec()]);

    // The commit that removes the departed leaf lists it too, and goes through.
    let who = hush_proto::Username::new("cara").unwrap();
    let remove = conv.remove_account(&who, now()).unwrap();
    let resp = s
        .send_req(
            &anna.devices[0].token,
            commit_req(conv.id(), to(&[&bert, &cara]), &remove),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!((sent.delivered_to, sent.missing), (1, to(&[&cara])));

    // Over the WebSocket too.
    let mut ws = s.connect(&anna.devices[0].token).await;
    ws.send_frame(9, &[("bert", 1), ("cara", 1)], b"again")
        .await;
    loop {
        match ws.next_frame(3000).await {
            Some(hush_wire::ws::ServerFrame::Sent { id: 9, response }) => {
                assert_eq!((response.delivered_to, response.missing), (1, to(&[&cara])));
                break;
            }
            Some(_) => {}
            None => panic!("no answer to the send"),
        }
    }
}
