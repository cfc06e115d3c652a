//! The X-Wing suite 0x004D as the default, the legacy suite 65100 kept
//! readable, and the move from one to the other (decision 0031).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim;

use hush_proto::crypto::{HushCryptoProvider, XWING_CHACHA20POLY1305_SHA256_ED25519};
use hush_proto::xwing::XWing;
use hush_proto::*;
use mls_rs_core::crypto::{CipherSuite, CipherSuiteProvider, CryptoProvider, HpkeCiphertext};
use sim::Sim;

#[test]
fn new_conversations_use_the_openmls_xwing_code_point() {
    assert_eq!(Suite::default(), Suite::Hybrid);
    assert_eq!(Suite::Hybrid.cipher_suite().raw_value(), 0x004D);
    assert_eq!(Suite::ALL, [Suite::Hybrid, Suite::Classical]);
    let mut sim = Sim::new(Suite::default());
    let a = sim.account("alice", 1)[0];
    sim.account("bob", 1);
    let id = sim.create(a, ConversationInfo::direct(), &["bob"]);
    assert_eq!(sim.devs[a].convs[&id].suite(), Some(Suite::Hybrid));
}

#[test]
fn the_provider_runs_hpke_over_xwing_in_suite_0x004d() {
    let provider = HushCryptoProvider;
    assert!(
        provider
            .supported_cipher_suites()
            .contains(&XWING_CHACHA20POLY1305_SHA256_ED25519)
    );
    // ChaCha20 in 0x0003 and AES-128-GCM in 0x0001 are not on offer as MLS
    // suites of their own.
    assert!(
        provider
            .cipher_suite_provider(CipherSuite::CURVE25519_CHACHA)
            .is_none()
    );
    let cs = provider
        .cipher_suite_provider(XWING_CHACHA20POLY1305_SHA256_ED25519)
        .unwrap();
    assert_eq!(cs.cipher_suite(), XWING_CHACHA20POLY1305_SHA256_ED25519);
    assert_eq!(cs.aead_key_size(), 32, "ChaCha20-Poly1305");
    assert_eq!(cs.kdf_extract_size(), 32, "HKDF-SHA256");

    // Tree keys are X-Wing's DeriveKeyPair of the node secret.
    let (sk, pk) = cs.kem_derive(&[9u8; 32]).unwrap();
    assert_eq!(sk.len(), 32);
    assert_eq!(pk.len(), 1216);
    let (sk2, pk2) = XWing::derive_key_pair(&[9u8; 32]).unwrap();
    assert_eq!((sk.as_ref(), pk.as_ref()), (sk2.as_ref(), pk2.as_ref()));

    let ct = cs.hpke_seal(&pk, b"info", Some(b"aad"), b"secret").unwrap();
    assert_eq!(ct.kem_output.len(), 1120, "an X-Wing ciphertext");
    let pt = cs.hpke_open(&ct, &sk, &pk, b"info", Some(b"aad")).unwrap();
    assert_eq!(pt.as_slice(), b"secret");

    // Another info, a flipped KEM output or a short one: refused, no panic.
    assert!(cs.hpke_open(&ct, &sk, &pk, b"other", Some(b"aad")).is_err());
    let mut bad = ct.kem_output.clone();
    bad[5] ^= 1;
    let tampered = HpkeCiphertext {
        kem_output: bad,
        ciphertext: ct.ciphertext.clone(),
    };
    assert!(
        cs.hpke_open(&tampered, &sk, &pk, b"info", Some(b"aad"))
            .is_err()
    );
    let short = HpkeCiphertext {
        kem_output: ct.kem_output[..32].to_vec(),
        ciphertext: ct.ciphertext.clone(),
    };
    assert!(
        cs.hpke_open(&short, &sk, &pk, b"info", Some(b"aad"))
            .is_err()
    );
    assert!(cs.kem_public_key_validate(&pk).is_ok());
    assert!(
        cs.kem_public_key_validate(&pk[..32].to_vec().into())
            .is_err()
    );
}

/// A conversation in 65100 as versions before decision 0031 made it:
/// alice (one device) and bob (two), messages both ways.
fn legacy_conversation(sim: &mut Sim) -> (usize, Vec<usize>, Vec<u8>) {
    let a = sim.account("alice", 1)[0];
    let bob = sim.account("bob", 2);
    for d in 0..sim.devs.len() {
        sim.devs[d].device.allow_legacy_writes_for_tests();
    }
    let id = sim.create(a, ConversationInfo::group("old crew"), &["bob"]);
    sim.send(&id, a, "before the upgrade");
    sim.send(&id, bob[1], "me too");
    (a, bob, id)
}

#[test]
fn a_legacy_conversation_reloads_and_continues() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let (a, bob, id) = legacy_conversation(&mut sim);
    // The upgrade: every device reopens its state with this version, which
    // writes nothing new in 65100.
    for d in 0..sim.devs.len() {
        sim.devs[d].reload();
    }
    assert_eq!(
        sim.devs[bob[0]].convs[&id].suite(),
        Some(Suite::LegacyHybrid)
    );
    assert_eq!(
        sim.devs[a].convs[&id].suite().unwrap().cipher_suite(),
        CipherSuite::ML_KEM_768_X25519
    );
    sim.send(&id, a, "after the upgrade");
    sim.send(&id, bob[0], "still here");
    sim.tick();
    sim.commit(&id, bob[1], &[], |c, now| c.self_update(now));
    sim.commit(&id, a, &[], |c, now| c.rename("renamed", now));
    sim.send(&id, bob[1], "after two commits");
    sim.assert_converged(&id);
    assert_eq!(sim.devs[bob[0]].inbox.len(), 4);

    // Nothing new is made in 65100.
    let dev = &sim.devs[a].device;
    assert!(
        dev.generate_key_package(Suite::LegacyHybrid, false, sim.now)
            .is_err()
    );
    assert!(
        dev.create_conversation(
            Suite::LegacyHybrid,
            &ConversationInfo::group("new"),
            &[],
            sim.now
        )
        .is_err()
    );
}

#[test]
fn the_server_check_refuses_legacy_key_packages() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let d = sim.account("mallory", 1)[0];
    sim.devs[d].device.allow_legacy_writes_for_tests();
    let kp = sim.key_package(d);
    assert!(inspect_key_package(&kp).is_err());
    sim.suite = Suite::Hybrid;
    let kp = sim.key_package(d);
    assert_eq!(inspect_key_package(&kp).unwrap().suite, Suite::Hybrid);
}

#[test]
fn a_legacy_conversation_moves_to_the_xwing_suite() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let (a, bob, old) = legacy_conversation(&mut sim);
    for d in 0..sim.devs.len() {
        sim.devs[d].reload();
    }
    sim.suite = Suite::Hybrid;
    let kps: Vec<Vec<u8>> = bob.iter().map(|&d| sim.key_package(d)).collect();
    let (conv, commit) = sim.devs[a]
        .device
        .migrate_conversation(&sim.devs[a].convs[&old], &kps, sim.now)
        .unwrap();
    let new = conv.id().to_vec();
    assert_ne!(new, old);
    assert_eq!(conv.suite(), Some(Suite::Hybrid));
    assert_eq!(conv.info().unwrap(), ConversationInfo::group("old crew"));
    sim.devs[a].convs.insert(new.clone(), conv);
    sim.devs[a].save();
    let welcome = commit.unwrap().welcome.unwrap();
    for &d in &bob {
        sim.join(d, &welcome);
    }
    sim.send(&new, a, "in X-Wing");
    sim.send(&new, bob[0], "here too");
    sim.commit(&new, bob[1], &[], |c, now| c.self_update(now));
    sim.send(&new, bob[1], "after a commit");
    sim.assert_converged(&new);

    // The old conversation keeps its history and still loads.
    for d in 0..sim.devs.len() {
        sim.devs[d].reload();
    }
    assert_eq!(
        sim.devs[bob[0]].convs[&old].suite(),
        Some(Suite::LegacyHybrid)
    );
    assert_eq!(sim.devs[bob[0]].convs[&new].suite(), Some(Suite::Hybrid));
    sim.send(&new, a, "after a reload");
}

#[test]
fn a_migration_brings_no_one_in_and_leaves_no_one_out() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let (a, bob, old) = legacy_conversation(&mut sim);
    let eve = sim.account("eve", 1)[0];
    sim.suite = Suite::Hybrid;
    let bob0 = sim.key_package(bob[0]);
    let bob1 = sim.key_package(bob[1]);
    let eve_kp = sim.key_package(eve);
    sim.suite = Suite::Classical;
    let bob1_classical = sim.key_package(bob[1]);
    let old_conv = &sim.devs[a].convs[&old];
    let device = &sim.devs[a].device;
    let refused = [
        // A stranger slipped in.
        vec![bob0.clone(), bob1.clone(), eve_kp.clone()],
        // A stranger instead of a member.
        vec![bob0.clone(), eve_kp],
        // A member left out.
        vec![bob0.clone()],
        // One device twice.
        vec![bob0.clone(), bob0.clone(), bob1.clone()],
        // Another suite's KeyPackage.
        vec![bob0.clone(), bob1_classical],
        // Garbage.
        vec![bob0.clone(), b"not a key package".to_vec()],
    ];
    for kps in refused {
        assert!(
            device
                .migrate_conversation(old_conv, &kps, sim.now)
                .is_err(),
            "{} KeyPackages accepted",
            kps.len()
        );
    }
    assert!(
        device
            .migrate_conversation(old_conv, &[bob0, bob1], sim.now)
            .is_ok()
    );
}

/// The announcing commit names the successor to every member (and to no
/// one else: the id is sealed under the epoch); members accept the
/// successor only with exactly the old devices.
#[test]
fn members_learn_the_successor_and_check_its_devices() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let (a, bob, old) = legacy_conversation(&mut sim);
    let eve = sim.account("eve", 1)[0];
    sim.suite = Suite::Hybrid;
    let kps: Vec<Vec<u8>> = bob.iter().map(|&d| sim.key_package(d)).collect();
    let (conv, commit) = sim.devs[a]
        .device
        .migrate_conversation(&sim.devs[a].convs[&old], &kps, sim.now)
        .unwrap();
    let new = conv.id().to_vec();
    sim.devs[a].convs.insert(new.clone(), conv);
    sim.devs[a].save();
    let pending = sim.devs[a]
        .convs
        .get_mut(&old)
        .unwrap()
        .announce_successor(&new, sim.now)
        .unwrap();
    assert!(
        !pending
            .commit
            .windows(new.len())
            .any(|w| w == new.as_slice()),
        "the successor's id is not in the clear"
    );
    for (d, res) in sim.deliver(&old, a, &pending.commit) {
        match res {
            Ok(Incoming::Commit(change)) => {
                assert_eq!(change.successor.as_deref(), Some(new.as_slice()), "{d}");
                assert!(change.added.is_empty() && change.removed.is_empty());
            }
            other => panic!("device {d}: {other:?}"),
        }
    }
    let mine = sim.devs[a]
        .convs
        .get_mut(&old)
        .unwrap()
        .confirm_commit()
        .unwrap();
    assert!(mine.successor.is_none(), "read from received commits only");
    // A plain commit names no successor.
    let change = sim.commit(&old, bob[0], &[], |c, now| c.self_update(now));
    assert!(change.successor.is_none());

    let welcome = commit.unwrap().welcome.unwrap();
    sim.join(bob[0], &welcome);
    let dev = &sim.devs[bob[0]];
    migration::check_successor(&dev.convs[&old], &dev.convs[&new]).unwrap();

    // A "successor" with a stranger in it, or made in another suite, or
    // under another name, is refused.
    sim.suite = Suite::Hybrid;
    let mut with_eve = kps.clone();
    with_eve[0] = sim.key_package(bob[0]);
    with_eve.push(sim.key_package(eve));
    let forgeries = [
        (Suite::Hybrid, ConversationInfo::group("old crew"), with_eve),
        (Suite::Hybrid, ConversationInfo::group("new crew"), {
            let mut k: Vec<Vec<u8>> = bob.iter().map(|&d| sim.key_package(d)).collect();
            k.truncate(2);
            k
        }),
    ];
    for (suite, info, kps) in forgeries {
        let (_, commit) = sim.devs[a]
            .device
            .create_conversation(suite, &info, &kps, sim.now)
            .unwrap();
        let welcome = commit.unwrap().welcome.unwrap();
        let forged = sim.devs[bob[1]].device.join(&welcome, sim.now).unwrap();
        let dev = &sim.devs[bob[1]];
        assert!(
            migration::check_successor(&dev.convs[&old], &forged).is_err(),
            "{info:?} accepted"
        );
    }
    let _ = sim.devs[a].device.take_changes();

    // A move by a member who is not an admin keeps the admins; one that
    // makes its author the admin is refused.
    let b0 = bob[0];
    let kps = [sim.key_package(a), sim.key_package(bob[1])];
    let old_policy = sim.devs[b0].convs[&old].policy().unwrap();
    assert!(old_policy.is_some());
    let (moved, _) = sim.devs[b0]
        .device
        .migrate_conversation(&sim.devs[b0].convs[&old], &kps, sim.now)
        .unwrap();
    assert_eq!(moved.policy().unwrap(), old_policy);
    migration::check_successor(&sim.devs[b0].convs[&old], &moved).unwrap();
    let kps = [sim.key_package(a), sim.key_package(bob[1])];
    let (taken, _) = sim.devs[b0]
        .device
        .create_conversation(
            Suite::Hybrid,
            &ConversationInfo::group("old crew"),
            &kps,
            sim.now,
        )
        .unwrap();
    assert!(migration::check_successor(&sim.devs[b0].convs[&old], &taken).is_err());
}

/// A big conversation's successor has every device from its first epoch:
/// one commit (its adds by reference, so it stays small) and a Welcome in
/// parts, each naming only its own devices; every device joins from its
/// part and finds exactly the old conversation's devices.
#[test]
fn a_successor_welcome_in_parts_lets_each_device_join_from_its_own() {
    let mut sim = Sim::new(Suite::LegacyHybrid);
    let (a, bob, old) = legacy_conversation(&mut sim);
    sim.suite = Suite::Hybrid;
    let kps: Vec<Vec<u8>> = bob.iter().map(|&d| sim.key_package(d)).collect();
    let started = sim.devs[a]
        .device
        .start_successor(&sim.devs[a].convs[&old], &kps, sim.now)
        .unwrap();
    assert_eq!(started.tree_blob_len().unwrap(), None, "a small group");
    let moved = started.commit(sim.now, None).unwrap();
    let new = moved.conversation.id().to_vec();
    let commit = moved.commit.unwrap();
    assert_eq!(
        moved.welcomes.len(),
        1,
        "up to WELCOME_PART_DEVICES: one part"
    );
    assert_eq!(moved.welcomes[0].welcome, commit.welcome.clone().unwrap());
    sim.devs[a].convs.insert(new.clone(), moved.conversation);
    sim.devs[a].save();

    let welcome = commit.welcome.unwrap();
    let parts = migration::welcome_parts(&welcome, &kps, 1).unwrap();
    assert_eq!(parts.len(), 2);
    for part in &parts {
        assert_eq!(part.devices.len(), 1);
        assert!(part.welcome.len() < welcome.len());
    }
    for &d in &bob {
        let me = sim.devs[d].device.certificate().clone();
        let (mine, other): (Vec<_>, Vec<_>) = parts.iter().partition(|p| p.devices[0] == me);
        assert!(sim.devs[d].device.join(&other[0].welcome, sim.now).is_err());
        sim.join(d, &mine[0].welcome);
        let dev = &sim.devs[d];
        migration::check_successor(&dev.convs[&old], &dev.convs[&new]).unwrap();
    }
    sim.send(&new, a, "from the successor");
    sim.send(&new, bob[1], "joined from my part");
    sim.assert_converged(&new);

    // Entries for a KeyPackage the caller does not name, or bytes that are
    // no Welcome, are refused.
    assert!(migration::welcome_parts(&welcome, &kps[..1], 1).is_err());
    assert!(migration::welcome_parts(&kps[0], &kps, 1).is_err());
    assert!(migration::welcome_parts(&welcome[..welcome.len() - 1], &kps, 1).is_err());
}
