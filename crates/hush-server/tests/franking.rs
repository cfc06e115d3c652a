//! Franking cannot be skipped: the server tags the commitment in the MLS
//! message's authenticated data, and refuses a send whose request says
//! otherwise (a modified client that leaves the commitment out, or names
//! another message's, so that the message it sends cannot be reported).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::{
    Body, Content, Conversation, ConversationInfo, Device, MessageId, Suite, Timestamp,
};
use hush_wire::Bytes;
use hush_wire::api::SendRequest;
use hush_wire::ws::{ClientFrame, ServerFrame};

/// Alice's real MLS chat with Bob, and one encrypted message of hers.
fn alice_chat(server: &TestServer, alice: &User, bob: &User) -> (Conversation, Vec<u8>, [u8; 32]) {
    let now = Timestamp::from_millis(now_ms());
    let device = Device::new(alice.devices[0].cert.clone(), &alice.devices[0].key).unwrap();
    let bob_kp = server.key_package(&bob.devices[0], Suite::Hybrid, false);
    let (mut chat, _) = device
        .create_conversation(Suite::Hybrid, &ConversationInfo::direct(), &[bob_kp], now)
        .unwrap();
    let content = Content {
        id: MessageId::generate(&mut rng(7)),
        sent_at_ms: now.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body: Body::Text {
            text: "you cannot report this".into(),
            reply_to: None,
        },
    };
    let out = chat.encrypt(&content, &mut rng(8)).unwrap();
    (chat, out.message, out.commitment.0)
}

fn to_bob(payload: &[u8], commitment: Option<[u8; 32]>) -> SendRequest {
    let mut req = send_request(&[("bob", 1)], payload);
    req.franking_commitment = commitment.map(|c| Bytes(c.to_vec()));
    req
}

#[tokio::test]
async fn a_message_sent_without_its_commitment_in_the_request_is_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let (_chat, message, _) = alice_chat(&server, &alice, &bob);
    let token = &alice.devices[0].token;

    let resp = server.send_req(token, to_bob(&message, None)).await;
    expect_error(resp, 422, "franking_mismatch").await;

    // Over the WebSocket too.
    let mut ws = server.connect(token).await;
    let request = to_bob(&message, None);
    ws.send_raw(&ClientFrame::Send { id: 9, request }.encode())
        .await;
    loop {
        match ws.next_frame(3000).await.expect("an answer") {
            ServerFrame::Refused { id: 9, error } => {
                assert_eq!(error.code, hush_wire::ErrorCode::FrankingMismatch);
                break;
            }
            ServerFrame::Sent { id: 9, .. } => panic!("the unfranked send was accepted"),
            _ => {}
        }
    }

    // Nothing reached Bob.
    let mut bob_ws = server.connect(&bob.devices[0].token).await;
    assert!(bob_ws.drain().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_message_sent_with_another_commitment_is_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let (_chat, message, commitment) = alice_chat(&server, &alice, &bob);
    let token = &alice.devices[0].token;

    let mut other = commitment;
    other[0] ^= 1;
    let resp = server.send_req(token, to_bob(&message, Some(other))).await;
    expect_error(resp, 422, "franking_mismatch").await;

    // A commitment on something that is not an application message (here
    // an opaque payload) cannot be tagged either.
    let resp = server
        .send_req(token, to_bob(b"not an MLS message", Some(commitment)))
        .await;
    expect_error(resp, 422, "franking_mismatch").await;
    // Nor on an ephemeral one.
    let mut ephemeral = to_bob(&message, Some(commitment));
    ephemeral.ephemeral = true;
    expect_error(
        server.send_req(token, ephemeral).await,
        422,
        "franking_mismatch",
    )
    .await;

    let mut bob_ws = server.connect(&bob.devices[0].token).await;
    assert!(bob_ws.drain().await.is_empty());

    // The honest send is tagged: Bob's envelope carries the relay tag.
    let resp = server
        .send_req(token, to_bob(&message, Some(commitment)))
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let got = bob_ws.drain().await;
    let got = if got.is_empty() {
        let mut again = server.connect(&bob.devices[0].token).await;
        again.drain().await
    } else {
        got
    };
    assert_eq!(got.len(), 1);
    assert!(got[0].relay_tag.is_some(), "the franked message has no tag");
    server.stop().await;
}

#[tokio::test]
async fn an_application_message_without_a_commitment_in_its_data_is_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let (_chat, message, commitment) = alice_chat(&server, &alice, &bob);
    // A modified client could encrypt with empty authenticated data; the
    // framing stays readable. Flip the commitment's version byte: the
    // authenticated data is no longer a Hush franking commitment.
    let framing = hush_proto::read_framing(&message).unwrap();
    assert_eq!(
        framing,
        hush_proto::Framing::Application {
            commitment: Some(hush_proto::Commitment(commitment))
        }
    );
    let at = message
        .windows(33)
        .position(|w| w[0] == 1 && w[1..] == commitment)
        .unwrap();
    let mut forged = message.clone();
    forged[at] = 2;
    assert_eq!(
        hush_proto::read_framing(&forged).unwrap(),
        hush_proto::Framing::Application { commitment: None }
    );
    let token = &alice.devices[0].token;
    for req in [to_bob(&forged, None), to_bob(&forged, Some(commitment))] {
        expect_error(server.send_req(token, req).await, 422, "franking_mismatch").await;
    }
    server.stop().await;
}
