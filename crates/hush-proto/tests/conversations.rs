//! Multi-party conversations through the in-process simulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim;

use hush_proto::*;
use sim::Sim;

fn both_suites(test: impl Fn(Suite)) {
    for suite in Suite::ALL {
        test(suite);
    }
}

#[test]
fn one_to_one_both_ways_with_reload_in_the_middle() {
    both_suites(|suite| {
        let mut sim = Sim::new(suite);
        let a = sim.account("alice", 1)[0];
        let b = sim.account("bob", 1)[0];
        let id = sim.create(a, ConversationInfo::direct(), &["bob"]);
        assert_eq!(sim.devs[b].convs[&id].suite(), Some(suite));
        assert_eq!(
            sim.devs[b].convs[&id].info().unwrap(),
            ConversationInfo::direct()
        );
        sim.send(&id, a, "hi bob");
        sim.send(&id, b, "hi alice");
        sim.send(&id, b, "twice");

        sim.devs[a].reload();
        sim.devs[b].reload();

        sim.send(&id, a, "after reload");
        sim.send(&id, b, "me too");
        assert_eq!(
            sim.devs[b].inbox,
            vec![
                ("alice".to_string(), "hi bob".to_string()),
                ("alice".to_string(), "after reload".to_string())
            ]
        );
        assert_eq!(sim.devs[a].inbox.len(), 3);
        sim.assert_converged(&id);
    });
}

#[test]
fn every_device_of_both_accounts_is_in_a_one_to_one_chat() {
    let mut sim = Sim::new(Suite::Hybrid);
    let alice = sim.account("alice", 2);
    let bob = sim.account("bob", 3);
    let id = sim.create(alice[0], ConversationInfo::direct(), &["bob"]);
    assert_eq!(sim.devs[alice[0]].convs[&id].members().len(), 5);
    sim.send(&id, bob[2], "from bob's third device");
    // Alice's other device sees what bob sent, and what alice sent herself.
    sim.send(&id, alice[0], "from alice's first device");
    assert_eq!(sim.devs[alice[1]].inbox.len(), 2);
    assert_eq!(sim.devs[bob[0]].inbox.len(), 2);
    sim.assert_converged(&id);
}

fn group_life(suite: Suite, n: usize) {
    let mut sim = Sim::new(suite);
    let names: Vec<String> = (0..n).map(|i| format!("user{i:02}")).collect();
    for name in &names {
        sim.account(name, 1);
    }
    let others: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    let id = sim.create(0, ConversationInfo::group("friends"), &others);
    sim.assert_converged(&id);

    // Messages in every direction (every member sends once).
    for d in 0..n {
        sim.send(&id, d, &format!("hello from {d}"));
    }
    for d in 0..n {
        assert_eq!(sim.devs[d].inbox.len(), n - 1, "device {d}");
    }

    // Reload a member mid-conversation, then keep talking.
    sim.devs[n / 2].reload();
    sim.send(&id, n / 2, "back from reload");
    sim.send(&id, 0, "welcome back");

    // Add a new member.
    let newbie = sim.account("newbie", 1)[0];
    let kp = sim.key_package(newbie);
    let change = sim.commit(&id, 0, &[newbie], |c, now| c.add_devices(&[kp], now));
    assert_eq!(change.added.len(), 1);
    assert_eq!(change.added[0].username().as_str(), "newbie");
    sim.send(&id, newbie, "hi all");
    sim.assert_converged(&id);

    // Remove a member: it sees its removal and reads nothing afterwards.
    let victim = n - 1;
    let victim_name = sim.devs[victim].user.clone();
    // Capture the victim's state before removal to try reading later traffic.
    let mut ghost = sim.devs[victim].device.load(&id).unwrap();
    let change = sim.commit(&id, 0, &[], |c, now| c.remove_account(&victim_name, now));
    assert_eq!(change.removed.len(), 1);
    assert!(!sim.devs[victim].convs.contains_key(&id));
    let secret = sim.encrypt(&id, 0, "after the removal");
    for (_, res) in sim.deliver(&id, 0, &secret) {
        assert!(res.is_ok());
    }
    let now = sim.now;
    assert!(
        ghost.process(&secret, now).is_err(),
        "a removed member opened a message sent after its removal"
    );

    // A member leaves: it proposes its removal, another member commits.
    if n > 2 {
        let leaver = 1;
        let proposals = sim.devs[leaver]
            .convs
            .get_mut(&id)
            .unwrap()
            .leave()
            .unwrap();
        assert_eq!(proposals.len(), 1);
        sim.devs[leaver].convs.remove(&id);
        sim.devs[leaver].device.forget(&id);
        sim.devs[leaver].save();
        for p in &proposals {
            for (_, res) in sim.deliver(&id, leaver, p) {
                assert!(matches!(res, Ok(Incoming::Proposal { .. })), "{res:?}");
            }
        }
        let change = sim.commit(&id, 0, &[], |c, now| c.self_update(now));
        assert_eq!(change.removed.len(), 1);
        assert_eq!(change.removed[0].username(), &sim.devs[leaver].user.clone());
    }

    // A self-update, then everyone still talks.
    sim.commit(&id, newbie, &[], |c, now| c.self_update(now));
    sim.send(&id, 0, "still here");
    sim.assert_converged(&id);
}

#[test]
fn group_of_2() {
    both_suites(|s| group_life(s, 2));
}

#[test]
fn group_of_3() {
    both_suites(|s| group_life(s, 3));
}

#[test]
fn group_of_50() {
    group_life(Suite::Hybrid, 50);
}

#[test]
fn group_of_50_classical() {
    group_life(Suite::Classical, 50);
}

#[test]
fn rename_reaches_every_member() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    sim.account("bob", 1);
    let id = sim.create(a, ConversationInfo::group("old"), &["bob"]);
    let change = sim.commit(&id, a, &[], |c, now| c.rename("new name", now));
    assert_eq!(change.info, Some(ConversationInfo::group("new name")));
    let b = sim.devices_of("bob")[0];
    assert_eq!(
        sim.devs[b].convs[&id].info().unwrap().name.as_deref(),
        Some("new name")
    );
}

#[test]
fn tampered_ciphertext_is_rejected() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    let id = sim.create(a, ConversationInfo::direct(), &["bob"]);
    let mut msg = sim.encrypt(&id, a, "do not touch");
    let last = msg.len() - 20;
    msg[last] ^= 0x01;
    let now = sim.now;
    let genuine = {
        let mut g = msg.clone();
        g[last] ^= 0x01;
        g
    };
    let res = sim.devs[b].convs.get_mut(&id).unwrap().process(&msg, now);
    assert!(matches!(res, Err(ProtoError::Tampered)), "{res:?}");
    // The refusal changed nothing: the genuine message still opens.
    let res = sim.devs[b]
        .convs
        .get_mut(&id)
        .unwrap()
        .process(&genuine, now);
    assert!(matches!(res, Ok(Incoming::Message(_))), "{res:?}");
    sim.send(&id, a, "next one");
}

#[test]
fn replayed_message_is_rejected() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    let id = sim.create(a, ConversationInfo::direct(), &["bob"]);
    let msg = sim.encrypt(&id, a, "once");
    let now = sim.now;
    let conv = sim.devs[b].convs.get_mut(&id).unwrap();
    assert!(conv.process(&msg, now).is_ok());
    let res = conv.process(&msg, now);
    assert!(matches!(res, Err(ProtoError::Replayed)), "{res:?}");
    // Also after a reload: the used key is gone from the persisted state too.
    sim.devs[b].reload();
    let res = sim.devs[b].convs.get_mut(&id).unwrap().process(&msg, now);
    assert!(matches!(res, Err(ProtoError::Replayed)), "{res:?}");
}

/// An identity provider that accepts anything: what a malicious client would
/// run to produce a KeyPackage with a forged certificate.
#[derive(Debug, Clone)]
struct AcceptAnything;

impl mls_rs_core::identity::IdentityProvider for AcceptAnything {
    type Error = std::convert::Infallible;
    fn validate_member(
        &self,
        _: &mls_rs_core::identity::SigningIdentity,
        _: Option<mls_rs::time::MlsTime>,
        _: mls_rs_core::identity::MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
    fn validate_external_sender(
        &self,
        _: &mls_rs_core::identity::SigningIdentity,
        _: Option<mls_rs::time::MlsTime>,
        _: Option<&mls_rs::ExtensionList>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
    fn identity(
        &self,
        id: &mls_rs_core::identity::SigningIdentity,
        _: &mls_rs::ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        Ok(id.signature_key.as_bytes().to_vec())
    }
    fn valid_successor(
        &self,
        _: &mls_rs_core::identity::SigningIdentity,
        _: &mls_rs_core::identity::SigningIdentity,
        _: &mls_rs::ExtensionList,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
    fn supported_types(&self) -> Vec<mls_rs_core::identity::CredentialType> {
        vec![hush_proto::identity::HUSH_CREDENTIAL_TYPE]
    }
}

#[test]
fn key_package_with_a_forged_certificate_is_rejected() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    sim.account("bob", 1);
    let id = sim.create(a, ConversationInfo::group("g"), &["bob"]);

    // Mallory signs a device certificate with her own key, then swaps in bob's
    // account key: the certificate claims bob's account but is not signed by it.
    let bob_account = sim.devs[sim.devices_of("bob")[0]].account.public();
    let mallory = AccountKey::generate(&mut sim.rng).unwrap();
    let key = DeviceSigningKey::generate(&mut sim.rng).unwrap();
    let bob = Username::new("bob").unwrap();
    let cert = DeviceCertificate::issue(&mallory, &bob, DeviceId(9), &key, 0).unwrap();
    let mut bytes = cert.encode();
    let at = 1 + 4 + "bob".len();
    bytes[at..at + 32].copy_from_slice(bob_account.as_bytes());
    let forged = DeviceCertificate::decode(&bytes).unwrap();
    assert_eq!(forged.verify(), Err(IdentityError::BadCertificateSignature));

    // Hush refuses to even run such a device...
    assert!(matches!(
        Device::new(forged.clone(), &key),
        Err(ProtoError::Identity(IdentityError::BadCertificateSignature))
    ));

    // ...so mallory builds the KeyPackage with plain mls-rs. Its leaf signature
    // is valid; only the certificate chain is broken.
    let mut secret = key.to_seed().to_vec();
    secret.extend_from_slice(&key.public());
    let client = mls_rs::Client::builder()
        .crypto_provider(hush_proto::crypto::HushCryptoProvider)
        .identity_provider(AcceptAnything)
        .extension_type(hush_proto::conversation::INFO_EXTENSION)
        .signing_identity(
            forged.signing_identity(),
            mls_rs_core::crypto::SignatureSecretKey::new(secret),
            Suite::Hybrid.cipher_suite(),
        )
        .build();
    let kp = client
        .generate_key_package_message(
            Default::default(),
            Default::default(),
            Some(mls_rs::time::MlsTime::from_duration_since_epoch(
                std::time::Duration::from_millis(sim.now.as_millis()),
            )),
        )
        .unwrap()
        .to_bytes()
        .unwrap();

    let now = sim.now;
    let conv = sim.devs[a].convs.get_mut(&id).unwrap();
    let res = conv.add_devices(&[kp], now);
    assert!(
        matches!(
            res,
            Err(ProtoError::Identity(IdentityError::BadCertificateSignature))
        ),
        "{res:?}"
    );
    assert!(!conv.has_pending_commit());
}

#[test]
fn key_packages_round_trip_in_rfc_9420_wire_format() {
    let mut sim = Sim::new(Suite::Classical);
    let a = sim.account("alice", 1)[0];
    for suite in Suite::ALL {
        let kp = sim.devs[a]
            .device
            .generate_key_package(suite, false, sim.now)
            .unwrap();
        let parsed = mls_rs::MlsMessage::from_bytes(&kp.message).unwrap();
        assert_eq!(parsed.wire_format(), mls_rs::WireFormat::KeyPackage);
        assert_eq!(parsed.cipher_suite(), Some(suite.cipher_suite()));
        assert_eq!(parsed.to_bytes().unwrap(), kp.message);
    }
}

#[test]
fn last_resort_key_package_survives_use() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    let c = sim.account("carol", 1)[0];
    let kp = sim.devs[b]
        .device
        .generate_key_package(Suite::Hybrid, true, sim.now)
        .unwrap();
    sim.devs[b].save();
    for creator in [a, c] {
        let (_conv, commit) = sim.devs[creator]
            .device
            .create_conversation(
                Suite::Hybrid,
                &ConversationInfo::direct(),
                std::slice::from_ref(&kp.message),
                sim.now,
            )
            .unwrap();
        sim.join(b, &commit.unwrap().welcome.unwrap());
    }
    assert_eq!(sim.devs[b].convs.len(), 2);
    assert_eq!(sim.devs[b].device.key_package_secrets(), 1);
}

#[test]
fn ordinary_key_package_is_used_once() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    let c = sim.account("carol", 1)[0];
    let kp = sim.key_package(b);
    let mut welcomes = Vec::new();
    for creator in [a, c] {
        let (_conv, commit) = sim.devs[creator]
            .device
            .create_conversation(
                Suite::Hybrid,
                &ConversationInfo::direct(),
                std::slice::from_ref(&kp),
                sim.now,
            )
            .unwrap();
        welcomes.push(commit.unwrap().welcome.unwrap());
    }
    sim.join(b, &welcomes[0]);
    let res = sim.devs[b].device.join(&welcomes[1], sim.now);
    assert!(matches!(res, Err(ProtoError::NotInvited)), "{res:?}");
}

#[test]
fn a_late_commit_is_discarded_and_retried_after_catching_up() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    let id = sim.create(a, ConversationInfo::group("race"), &["bob"]);
    let now = sim.now;
    // Both commit for the same epoch; the server takes alice's.
    let winner = sim.devs[a]
        .convs
        .get_mut(&id)
        .unwrap()
        .self_update(now)
        .unwrap();
    let loser = sim.devs[b]
        .convs
        .get_mut(&id)
        .unwrap()
        .self_update(now)
        .unwrap();
    assert_eq!(winner.epoch, loser.epoch);
    sim.devs[a]
        .convs
        .get_mut(&id)
        .unwrap()
        .confirm_commit()
        .unwrap();
    let conv_b = sim.devs[b].convs.get_mut(&id).unwrap();
    conv_b.discard_commit().unwrap();
    assert!(matches!(
        conv_b.process(&winner.commit, now),
        Ok(Incoming::Commit(_))
    ));
    sim.commit(&id, b, &[], |c, now| c.self_update(now));
    sim.send(&id, a, "converged");
    sim.assert_converged(&id);
}

#[test]
fn message_from_a_future_epoch_is_a_typed_error() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    sim.account("carol", 1);
    let id = sim.create(a, ConversationInfo::group("g"), &["bob", "carol"]);
    let now = sim.now;
    let pending = sim.devs[a]
        .convs
        .get_mut(&id)
        .unwrap()
        .self_update(now)
        .unwrap();
    sim.devs[a]
        .convs
        .get_mut(&id)
        .unwrap()
        .confirm_commit()
        .unwrap();
    let msg = sim.encrypt(&id, a, "from the future");
    let res = sim.devs[b].convs.get_mut(&id).unwrap().process(&msg, now);
    assert!(matches!(res, Err(ProtoError::WrongEpoch { .. })), "{res:?}");
    // Once the commit arrives, the message opens.
    let conv = sim.devs[b].convs.get_mut(&id).unwrap();
    conv.process(&pending.commit, now).unwrap();
    assert!(matches!(conv.process(&msg, now), Ok(Incoming::Message(_))));
}

#[test]
fn servers_can_inspect_key_packages() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 2)[1];
    for (suite, last_resort) in [(Suite::Hybrid, false), (Suite::Classical, true)] {
        let kp = sim.devs[a]
            .device
            .generate_key_package(suite, last_resort, sim.now)
            .unwrap();
        let info = inspect_key_package(&kp.message).unwrap();
        assert_eq!(info.suite, suite);
        assert_eq!(info.last_resort, last_resort);
        assert_eq!(info.certificate.username().as_str(), "alice");
        assert_eq!(info.certificate.device_id(), DeviceId(2));
        assert!(info.expires_at_ms > sim.now.as_millis());
    }
    assert!(inspect_key_package(b"garbage").is_err());
    let id = sim.create(a, ConversationInfo::group("g"), &[]);
    let msg = sim.encrypt(&id, a, "not a key package");
    assert!(inspect_key_package(&msg).is_err());
}

#[test]
fn ephemeral_messages_leave_the_ratchet_alone() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    let b = sim.account("bob", 1)[0];
    sim.account("carol", 1);
    let c = sim.devices_of("carol")[0];
    let id = sim.create(a, ConversationInfo::group("g"), &["bob", "carol"]);
    let typing = Content {
        body: Body::Typing { started: true },
        ..sim.text("")
    };
    // Far more typing indicators than MLS lets a member fall behind by.
    let mut last = Vec::new();
    for _ in 0..1100 {
        last = sim.devs[a].convs[&id]
            .seal_ephemeral(&typing, &mut sim.rng)
            .unwrap();
    }
    let (sender, content) = sim.devs[b].convs[&id].open_ephemeral(&last).unwrap();
    assert_eq!(sender.username().as_str(), "alice");
    assert_eq!(content.body, Body::Typing { started: true });
    assert_eq!(
        ephemeral_header(&last).unwrap().group_id,
        id,
        "routable without keys"
    );
    // Carol saw none of them and still opens the next stored message.
    sim.send(&id, a, "after lots of typing");
    assert_eq!(sim.devs[c].inbox.len(), 1);
    // Tampering is refused; so is an ephemeral message from another epoch.
    let mut bad = last.clone();
    let n = bad.len() - 1;
    bad[n] ^= 1;
    assert!(sim.devs[b].convs[&id].open_ephemeral(&bad).is_err());
    sim.commit(&id, a, &[], |c, now| c.self_update(now));
    assert!(matches!(
        sim.devs[b].convs[&id].open_ephemeral(&last),
        Err(ProtoError::WrongEpoch { .. })
    ));
}

#[test]
fn messages_can_be_routed_without_keys() {
    let mut sim = Sim::new(Suite::Hybrid);
    let a = sim.account("alice", 1)[0];
    sim.account("bob", 1);
    let b = sim.devices_of("bob")[0];
    let kp = sim.key_package(b);
    assert_eq!(peek_message(&kp).unwrap(), MessageKind::KeyPackage);
    let (conv, commit) = sim.devs[a]
        .device
        .create_conversation(Suite::Hybrid, &ConversationInfo::direct(), &[kp], sim.now)
        .unwrap();
    let id = conv.id().to_vec();
    sim.devs[a].convs.insert(id.clone(), conv);
    let welcome = commit.unwrap().welcome.unwrap();
    assert_eq!(peek_message(&welcome).unwrap(), MessageKind::Welcome);
    let msg = sim.encrypt(&id, a, "hi");
    assert_eq!(
        peek_message(&msg).unwrap(),
        MessageKind::Group {
            group_id: id,
            epoch: 1
        }
    );
    assert!(peek_message(b"junk").is_err());
}
