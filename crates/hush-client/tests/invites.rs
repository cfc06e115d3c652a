//! Invite links (decision 0033) from every side: joiners with and without
//! approval, a stranger without the secret, a non-admin member whose client
//! is modified, and a server that ignores revocation and expiry. Real
//! clients, a real server on a loopback port (hush-testkit), real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Raw, security_alarms, sync, user};
use hush_client::invites::InviteOptions;
use hush_client::{Client, Event};
use hush_proto::invite::InviteSecret;
use hush_testkit::TestServer;

fn added(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Members { added, .. } => added.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn in_group(c: &mut Client, name: &str) -> bool {
    c.groups().unwrap().iter().any(|g| g.name == name)
}

async fn crew(server: &TestServer, root: &std::path::Path) -> (Client, Client) {
    let mut anna = user(server, root, "anna").await;
    let mut bert = user(server, root, "bert").await;
    anna.create_group("club", &["bert".into()]).await.unwrap();
    sync(&mut bert).await;
    sync(&mut anna).await;
    (anna, bert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_joins_at_once_and_tells_strangers_and_the_server_nothing() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert) = crew(&server, root.path()).await;
    let link = anna
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    assert!(link.starts_with(&server.url()), "{link}");

    // The server holds the preview sealed: neither the name nor a key.
    let (_, secret) = InviteSecret::parse_link(&link).unwrap();
    let stored = server
        .state()
        .unwrap()
        .store
        .link(secret.link_id())
        .await
        .unwrap()
        .unwrap();
    let blob = &stored.link.blob;
    assert!(!blob.windows(4).any(|w| w == b"club"));
    assert!(!blob.windows(4).any(|w| w == b"anna"));
    assert!(
        InviteSecret::from_bytes([0; 32])
            .open_preview(blob)
            .is_err()
    );

    // A stranger with a wrong secret finds nothing to read or join.
    let mut sam = user(&server, root.path(), "sam").await;
    let mut forged = link.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let err = sam.join_link(&forged).await.unwrap_err();
    assert!(err.to_string().contains("no such invite link"), "{err}");

    // dave joins: the preview shows the name and size, anna's device adds
    // him on its next sync, and every member sees him.
    let mut dave = user(&server, root.path(), "dave").await;
    let outcome = dave.join_link(&link).await.unwrap();
    assert_eq!(
        (outcome.group.as_str(), outcome.size, outcome.needs_approval),
        ("club", 2, false)
    );
    assert_eq!(added(&sync(&mut anna).await), vec!["dave"]);
    sync(&mut dave).await;
    assert!(in_group(&mut dave, "club"));
    sync(&mut bert).await;
    assert_eq!(
        bert.group_members("club").unwrap(),
        vec!["anna", "bert", "dave"]
    );
    assert_eq!(bert.group_links("club").unwrap()[0].uses, 1);
    assert!(sam.groups().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_and_denies_requests() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert) = crew(&server, root.path()).await;
    let options = InviteOptions {
        approve: true,
        ..Default::default()
    };
    let link = anna.group_invite("club", &options).await.unwrap();
    let mut erin = user(&server, root.path(), "erin").await;
    let mut finn = user(&server, root.path(), "finn").await;
    assert!(erin.join_link(&link).await.unwrap().needs_approval);
    finn.join_link(&link).await.unwrap();

    // Nobody is added without an admin; a member cannot see or settle.
    assert!(added(&sync(&mut anna).await).is_empty());
    assert!(bert.group_requests("club").await.is_err());
    assert!(bert.group_settle("club", "erin", true).await.is_err());
    let waiting: Vec<String> = anna
        .group_requests("club")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.user)
        .collect();
    assert_eq!(waiting, vec!["erin", "finn"]);

    anna.group_settle("club", "erin", true).await.unwrap();
    anna.group_settle("club", "finn", false).await.unwrap();
    assert!(anna.group_requests("club").await.unwrap().is_empty());
    assert!(anna.group_settle("club", "finn", true).await.is_err());
    sync(&mut erin).await;
    sync(&mut finn).await;
    assert!(in_group(&mut erin, "club"));
    assert!(!in_group(&mut finn, "club"));
    sync(&mut bert).await;
    assert_eq!(
        bert.group_members("club").unwrap(),
        vec!["anna", "bert", "erin"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_revoked_expired_and_used_up_links() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, _bert) = crew(&server, root.path()).await;
    let mut gina = user(&server, root.path(), "gina").await;
    let mut hugo = user(&server, root.path(), "hugo").await;

    let once = InviteOptions {
        max_uses: 1,
        ..Default::default()
    };
    let link = anna.group_invite("club", &once).await.unwrap();
    gina.join_link(&link).await.unwrap();
    let err = hugo.join_link(&link).await.unwrap_err();
    assert!(err.to_string().contains("used up"), "{err}");
    assert_eq!(added(&sync(&mut anna).await), vec!["gina"]);

    let brief = InviteOptions {
        expires: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let expired = anna.group_invite("club", &brief).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = hugo.join_link(&expired).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");

    let open = anna
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    assert_eq!(anna.group_revoke_invites("club").await.unwrap(), 3);
    assert!(anna.group_links("club").unwrap().is_empty());
    let err = hugo.join_link(&open).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    sync(&mut anna).await;
    sync(&mut hugo).await;
    assert!(!in_group(&mut hugo, "club"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_revocation_and_expiry_gets_nobody_in() {
    let server = TestServer::start().await.unwrap();
    server.state().unwrap().kt.faults.admit_closed_links();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert) = crew(&server, root.path()).await;
    let mut ivan = user(&server, root.path(), "ivan").await;

    // Expired: the server still takes the request; anna's device refuses.
    let brief = InviteOptions {
        expires: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let expired = anna.group_invite("club", &brief).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    ivan.join_link(&expired).await.unwrap();
    assert!(added(&sync(&mut anna).await).is_empty());

    // Revoked: the server says so and keeps the link open; the group no
    // longer lists it, so no member's device admits through it.
    let link = anna
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    anna.group_revoke_invites("club").await.unwrap();
    ivan.join_link(&link).await.unwrap();
    assert!(added(&sync(&mut anna).await).is_empty());
    sync(&mut bert).await;
    sync(&mut ivan).await;
    assert!(!in_group(&mut ivan, "club"));
    assert_eq!(bert.group_members("club").unwrap(), vec!["anna", "bert"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_can_neither_make_nor_revoke_links() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, mut bert) = crew(&server, root.path()).await;
    let mut mall = user(&server, root.path(), "mall").await;
    anna.group_add("club", "mall").await.unwrap();
    sync(&mut mall).await;
    sync(&mut bert).await;

    // Her own client refuses.
    let err = mall
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("admins"), "{err}");

    // A modified client files a link and lists it: every member refuses
    // the change, and nobody is admitted through it.
    mall.play_modified_client();
    let rogue = mall
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    for member in [&mut anna, &mut bert] {
        let alarms = security_alarms(&sync(member).await);
        assert!(
            alarms.iter().any(|a| a.contains("only admins change")),
            "{alarms:?}"
        );
        assert!(member.group_links("club").unwrap().is_empty());
    }
    let mut jon = user(&server, root.path(), "jon").await;
    jon.join_link(&rogue).await.unwrap();
    assert!(added(&sync(&mut anna).await).is_empty());

    // anna's link: bert's own client does not revoke it; his modified one
    // removes it from the group (and, holding the management token as
    // every member does, stops it on the server): anna refuses the change
    // and still lists the link.
    anna.group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    sync(&mut bert).await;
    assert_eq!(bert.group_links("club").unwrap().len(), 1);
    let err = bert.group_revoke_invites("club").await.unwrap_err();
    assert!(err.to_string().contains("admins"), "{err}");
    bert.play_modified_client();
    assert_eq!(bert.group_revoke_invites("club").await.unwrap(), 1);
    let alarms = security_alarms(&sync(&mut anna).await);
    assert!(
        alarms.iter().any(|a| a.contains("only admins change")),
        "{alarms:?}"
    );
    assert_eq!(anna.group_links("club").unwrap().len(), 1);
    sync(&mut jon).await;
    assert!(!in_group(&mut jon, "club"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_someone_elses_name_or_unsealed_is_dropped() {
    use hush_proto::invite::JoinRequest;
    use hush_proto::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
    use hush_wire::Bytes;
    use hush_wire::api::JoinLinkRequest;

    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, _bert) = crew(&server, root.path()).await;
    let mut vic = user(&server, root.path(), "vic").await;
    let link = anna
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    let (_, secret) = InviteSecret::parse_link(&link).unwrap();
    let path: String = secret
        .link_id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = format!("/v1/links/{path}/requests");

    // sam holds the link and files a request as vic, under an account key
    // he made (he cannot sign with vic's devices), and one not sealed
    // under the link's key.
    let sam = Raw::register(&server, "sam").await;
    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).unwrap();
    let key = DeviceSigningKey::generate(&mut rng).unwrap();
    let cert = DeviceCertificate::issue(
        &account,
        &Username::new("vic").unwrap(),
        DeviceId(1),
        &key,
        hush_client::client::now_ms(),
    )
    .unwrap();
    let forged = JoinRequest::new(&secret.link_id(), cert, &key).unwrap();
    for sealed in [secret.seal_request(&forged, &mut rng).unwrap(), vec![7; 80]] {
        sam.transport()
            .call(
                reqwest::Method::POST,
                &path,
                Some(&JoinLinkRequest {
                    sealed: Bytes(sealed),
                }),
            )
            .await
            .unwrap();
    }

    // anna's device admits neither, and drops both.
    assert!(added(&sync(&mut anna).await).is_empty());
    assert!(
        server
            .state()
            .unwrap()
            .store
            .join_requests(secret.link_id())
            .await
            .unwrap()
            .is_empty()
    );
    sync(&mut vic).await;
    assert!(!in_group(&mut vic, "club"));
    assert_eq!(anna.group_members("club").unwrap(), vec!["anna", "bert"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_be_admitted_yet_waits_for_the_next_pass() {
    use hush_proto::invite::JoinRequest;
    use hush_wire::Bytes;
    use hush_wire::api::JoinLinkRequest;

    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let (mut anna, _bert) = crew(&server, root.path()).await;
    let link = anna
        .group_invite("club", &InviteOptions::default())
        .await
        .unwrap();
    let (_, secret) = InviteSecret::parse_link(&link).unwrap();
    let link_id: String = secret
        .link_id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    // kim's device has no KeyPackage on the server (all claimed) when
    // anna's device first sees her request: a passing failure.
    let kim = Raw::register(&server, "kim").await;
    while !kim.claim("kim").await.is_empty() {}
    let request = JoinRequest::new(
        &secret.link_id(),
        kim.device.certificate().clone(),
        &kim.key,
    )
    .unwrap();
    let sealed = secret
        .seal_request(&request, &mut rand::rngs::OsRng)
        .unwrap();
    kim.transport()
        .call(
            reqwest::Method::POST,
            &format!("/v1/links/{link_id}/requests"),
            Some(&JoinLinkRequest {
                sealed: Bytes(sealed),
            }),
        )
        .await
        .unwrap();
    assert!(added(&sync(&mut anna).await).is_empty());
    let waiting = server
        .state()
        .unwrap()
        .store
        .join_requests(secret.link_id())
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1, "the request was dropped");

    // Once kim's device has KeyPackages, the next pass admits her.
    kim.upload_key_packages(1).await;
    assert_eq!(added(&sync(&mut anna).await), vec!["kim"]);
    assert_eq!(
        anna.group_members("club").unwrap(),
        vec!["anna", "bert", "kim"]
    );
}
