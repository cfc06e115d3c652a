//! Abuse reports with franking proof, end to end: real clients, real server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use hush_client::{Client, ClientError, Event, Target};
use hush_testkit::TestServer;
use hush_wire::ErrorCode;

const PASS: &str = "pw";

async fn user(server: &TestServer, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, &server.url(), name, None)
        .await
        .unwrap()
}

async fn received_ids(c: &mut Client) -> Vec<String> {
    c.sync(Duration::ZERO, |_| {})
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.id),
            _ => None,
        })
        .collect()
}

fn code(e: ClientError) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_report_is_filed_and_forgeries_are_not() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut mallory = user(&server, root.path(), "mallory").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let carol = user(&server, root.path(), "carol").await;
    mallory
        .send_text(&Target::User("bob".into()), "something abusive")
        .await
        .unwrap();
    mallory
        .send_text(&Target::User("bob".into()), "something else")
        .await
        .unwrap();
    let ids = received_ids(&mut bob).await;
    assert_eq!(ids.len(), 2);

    let good = bob.report_request(&ids[0], "harassment").unwrap();
    assert_eq!(good.sender, "mallory");

    // One byte of the plaintext changed.
    let mut r = good.clone();
    let n = r.content.0.len() - 1;
    r.content.0[n] ^= 1;
    assert_eq!(
        code(bob.submit_report(&r).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // Another franking key.
    let mut r = good.clone();
    r.franking_key.0[0] ^= 1;
    assert_eq!(
        code(bob.submit_report(&r).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // The tag of another message.
    let other = bob.report_request(&ids[1], "").unwrap();
    let mut r = good.clone();
    r.relay_tag = other.relay_tag.clone();
    assert_eq!(
        code(bob.submit_report(&r).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // Blaming someone else for it.
    let mut r = good.clone();
    r.sender = "carol".into();
    assert_eq!(
        code(bob.submit_report(&r).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // A message the server never relayed: a self-made commitment and tag.
    let mut r = good.clone();
    r.commitment.0 = [7; 32].to_vec();
    r.relay_tag.0 = [8; 32].to_vec();
    assert_eq!(
        code(bob.submit_report(&r).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // Someone else reporting bob's message with bob's proof.
    assert_eq!(
        code(carol.submit_report(&good).await.unwrap_err()),
        Some(ErrorCode::Forbidden)
    );
    // Nothing was filed so far.
    assert!(server_reports(&server).await.is_empty());

    // The genuine report is filed with the proven sender; a replay is not.
    let id = bob.submit_report(&good).await.unwrap();
    assert_eq!(
        code(bob.submit_report(&good).await.unwrap_err()),
        Some(ErrorCode::AlreadyReported)
    );
    let filed = server_reports(&server).await;
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0].id, id);
    assert_eq!(filed[0].report.sender, "mallory");
    assert_eq!(filed[0].report.reporter, "bob");
    assert_eq!(filed[0].report.reason, "harassment");
    let content = hush_proto::Content::decode(&filed[0].report.content).unwrap();
    assert!(
        matches!(content.body, hush_proto::Body::Text { ref text, .. } if text == "something abusive")
    );

    // Own messages cannot be reported.
    let mine = mallory.history(&Target::User("bob".into())).unwrap();
    assert!(mallory.report(&mine[0].id, "").await.is_err());
    drop(carol);
}

async fn server_reports(
    server: &TestServer,
) -> Vec<hush_testkit::hush_server::store::ReportRecord> {
    server.store().unwrap().list_reports(true).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_report_names_the_member_who_sent_it() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut a = user(&server, root.path(), "anna").await;
    let mut b = user(&server, root.path(), "bert").await;
    let mut c = user(&server, root.path(), "cara").await;
    a.create_group("g", &["bert".into(), "cara".into()])
        .await
        .unwrap();
    received_ids(&mut b).await;
    received_ids(&mut c).await;
    b.send_text(&Target::Group("g".into()), "from bert")
        .await
        .unwrap();
    a.send_text(&Target::Group("g".into()), "from anna")
        .await
        .unwrap();
    let ids = received_ids(&mut c).await;
    let history = c.history(&Target::Group("g".into())).unwrap();
    let bert_msg = history.iter().find(|m| m.from == "bert").unwrap();
    assert!(ids.contains(&bert_msg.id));
    let req = c.report_request(&bert_msg.id, "spam").unwrap();
    assert_eq!(req.sender, "bert");
    c.submit_report(&req).await.unwrap();
    let filed = server_reports(&server).await;
    assert_eq!(filed[0].report.sender, "bert");
    assert_eq!(filed[0].report.reporter, "cara");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_from_one_account_are_rate_limited() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut mallory = user(&server, root.path(), "mallory").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let limit = hush_testkit::hush_server::api::reports::REPORTS_PER_HOUR as usize;
    for i in 0..=limit {
        mallory
            .send_text(&Target::User("bob".into()), &format!("spam {i}"))
            .await
            .unwrap();
    }
    let ids = received_ids(&mut bob).await;
    assert_eq!(ids.len(), limit + 1);
    for id in &ids[..limit] {
        bob.report(id, "").await.unwrap();
    }
    assert_eq!(
        code(bob.report(&ids[limit], "").await.unwrap_err()),
        Some(ErrorCode::RateLimited)
    );
}
