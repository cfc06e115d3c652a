//! Security refusals through the real `hush` binary: an invitation with a
//! member the key directory does not vouch for is refused, `hush sync` says
//! so on a `SECURITY:` line (and as a `security_alarm` event with `--json`)
//! and exits non-zero, and no conversation appears.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_client::client::now_ms;
use hush_client::local::LocalStore;
use hush_client::transport::Transport;
use hush_proto::{
    AccountKey, ConversationInfo, Device, DeviceCertificate, DeviceId, DeviceSigningKey, Suite,
    Timestamp, Username,
};
use hush_testkit::TestServer;
use hush_wire::api::{ClaimResponse, SendRequest, SendResponse};
use hush_wire::{Bytes, DeviceAddress};
use reqwest::Method;

fn register(url: &str, name: &str) -> User {
    let u = User::new(name);
    u.ok(&["register", "--server", url, name]);
    u
}

/// A Welcome into a "direct" chat between `victim` and a device certified
/// as `impersonated` under a key made here, posted by `sender`'s account.
async fn forged_invitation(url: &str, sender: &User, victim: &str, impersonated: &str) {
    let store = LocalStore::open(sender.dir.path(), &sender.passphrase).unwrap();
    let token = store.meta_str("token").unwrap().unwrap();
    let transport = Transport::new(url, None).unwrap().with_token(token);
    let claimed: ClaimResponse = transport
        .json::<(), _>(
            Method::POST,
            &format!(
                "/v1/accounts/{victim}/key-packages/claim?suite={}",
                Suite::Hybrid.cipher_suite().raw_value()
            ),
            None,
        )
        .await
        .unwrap();
    let kps: Vec<Vec<u8>> = claimed
        .key_packages
        .into_iter()
        .map(|k| k.key_package.0)
        .collect();
    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).unwrap();
    let key = DeviceSigningKey::generate(&mut rng).unwrap();
    let user = Username::new(impersonated).unwrap();
    let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, now_ms()).unwrap();
    let fake = Device::new(cert, &key).unwrap();
    let (_conv, pending) = fake
        .create_conversation(
            Suite::Hybrid,
            &ConversationInfo::direct(),
            &kps,
            Timestamp::from_millis(now_ms()),
        )
        .unwrap();
    let _: SendResponse = transport
        .json(
            Method::POST,
            "/v1/messages",
            Some(&SendRequest {
                recipients: vec![DeviceAddress {
                    username: victim.into(),
                    device_id: 1,
                }],
                payload: Bytes(pending.unwrap().welcome.unwrap()),
                ephemeral: false,
                commit: None,
                franking_commitment: None,
            }),
        )
        .await
        .unwrap();
}

#[test]
fn a_forged_invitation_is_refused_with_a_security_line_and_event() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let _alice = register(&url, "alice");
    let bob = register(&url, "bob");
    let mallory = register(&url, "mallory");

    rt.block_on(forged_invitation(&url, &mallory, "bob", "alice"));
    let out = bob.run(&["sync"]);
    assert!(!out.status.success(), "a refusal is not a clean sync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("SECURITY:"))
        .unwrap_or_else(|| panic!("no SECURITY: line in {stdout:?}"));
    assert!(line.contains("alice"), "{line}");
    assert!(stderr.contains("SECURITY:"), "{stderr}");
    let err = bob.fails(&["history", "alice"]);
    assert!(err.contains("no conversation"), "{err}");

    rt.block_on(forged_invitation(&url, &mallory, "bob", "alice"));
    let out = bob.run(&["--json", "sync"]);
    assert!(!out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alarm = events
        .iter()
        .find(|e| e["event"] == "security_alarm")
        .unwrap_or_else(|| panic!("no security_alarm event in {events:?}"));
    assert!(
        alarm["message"].as_str().unwrap().starts_with("SECURITY:"),
        "{alarm}"
    );
    let err = bob.fails(&["history", "alice"]);
    assert!(err.contains("no conversation"), "{err}");
}
