//! Group admins (decision 0032) from the attacker's side: a member that is
//! not an admin, with a modified client, commits what only admins may; every
//! other member refuses it the same way, and the group goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim;

use hush_proto::commit_token::token_hash;
use hush_proto::*;
use sim::Sim;

type Build = Box<dyn Fn(&mut Conversation, Timestamp) -> Result<PendingCommit, ProtoError>>;

fn user(name: &str) -> Username {
    Username::new(name).unwrap()
}

struct Crew {
    sim: Sim,
    id: Vec<u8>,
    alice: usize,
    bob: usize,
    carol: usize,
    carol2: usize,
    mallory: usize,
    eve: usize,
}

/// alice (creator, so admin) with bob, carol (two devices) and mallory;
/// eve outside.
fn crew() -> Crew {
    let mut sim = Sim::new(Suite::Classical);
    let alice = sim.account("alice", 1)[0];
    let bob = sim.account("bob", 1)[0];
    let carols = sim.account("carol", 2);
    let mallory = sim.account("mallory", 1)[0];
    let eve = sim.account("eve", 1)[0];
    let id = sim.create(
        alice,
        ConversationInfo::group("crew"),
        &["bob", "carol", "mallory"],
    );
    Crew {
        sim,
        id,
        alice,
        bob,
        carol: carols[0],
        carol2: carols[1],
        mallory,
        eve,
    }
}

/// One device's side of the crew's group.
macro_rules! conv {
    ($c:expr, $d:expr) => {{
        let d: usize = $d;
        let id = $c.id.clone();
        $c.sim.devs[d].convs.get_mut(&id).unwrap()
    }};
}

fn attacks(eve_kp: Vec<u8>) -> Vec<(&'static str, Build)> {
    let promoted = GroupPolicy {
        admins: vec![user("alice"), user("mallory")],
        only_admins_send: false,
    };
    let takeover = GroupPolicy {
        admins: vec![user("mallory")],
        only_admins_send: true,
    };
    vec![
        (
            "add",
            Box::new(move |c, now| c.add_devices(std::slice::from_ref(&eve_kp), now)),
        ),
        (
            "remove",
            Box::new(|c, now| c.remove_account(&user("bob"), now)),
        ),
        ("rename", Box::new(|c, now| c.rename("mallory's", now))),
        (
            "promote",
            Box::new(move |c, now| c.set_policy(&promoted, now)),
        ),
        (
            "take over",
            Box::new(move |c, now| c.set_policy(&takeover, now)),
        ),
    ]
}

#[test]
fn the_creator_is_the_admin_and_an_honest_member_does_not_build_admin_changes() {
    let mut c = crew();
    let policy = conv!(c, c.bob).policy().unwrap().unwrap();
    assert_eq!(policy.admins, vec![user("alice")]);
    assert!(!policy.only_admins_send);
    let kp = c.sim.key_package(c.eve);
    let now = c.sim.now;
    for (what, build) in attacks(kp) {
        let res = build(conv!(c, c.mallory), now);
        assert!(
            matches!(res, Err(ProtoError::NotAllowed(_))),
            "{what}: {res:?}"
        );
        assert!(!conv!(c, c.mallory).has_pending_commit(), "{what}");
    }
    // Any member still updates its keys.
    let change = c
        .sim
        .commit(&c.id.clone(), c.mallory, &[], |c, now| c.self_update(now));
    assert!(change.added.is_empty() && change.removed.is_empty());
}

#[test]
fn a_non_admins_commits_are_refused_by_every_member_and_the_group_goes_on() {
    let mut c = crew();
    let id = c.id.clone();
    c.sim.devs[c.mallory].device.play_modified_client();
    let kp = c.sim.key_package(c.eve);
    let epoch = conv!(c, c.alice).epoch();
    let mut last_next = None;
    for (what, build) in attacks(kp) {
        let now = c.sim.now;
        // Each attack as if it were the first to win the epoch on the
        // server: built at the epoch every member is in.
        let pending = build(conv!(c, c.mallory), now).unwrap();
        conv!(c, c.mallory).discard_commit().unwrap();
        for (d, res) in c.sim.deliver(&id, c.mallory, &pending.commit) {
            assert!(
                matches!(&res, Err(ProtoError::NotAllowed(why)) if why.starts_with("mallory")),
                "{what}: device {d} did not refuse: {res:?}"
            );
        }
        for d in [c.alice, c.bob, c.carol] {
            let member = conv!(c, d);
            assert_eq!(member.epoch(), epoch, "{what}: device {d}");
            assert_eq!(member.info().unwrap().name.as_deref(), Some("crew"));
            let policy = member.policy().unwrap().unwrap();
            assert_eq!(policy.admins, vec![user("alice")]);
            assert!(!policy.only_admins_send);
            let accounts: Vec<String> = member.accounts().iter().map(|u| u.to_string()).collect();
            assert_eq!(accounts, ["alice", "bob", "carol", "mallory"], "{what}");
            // The server took the refused commit as the epoch's winner and
            // now wants the token of the epoch it led to: every member the
            // commit kept knows it.
            if what != "remove" || d != c.bob {
                assert_eq!(
                    token_hash(&member.commit_token().unwrap()),
                    pending.next_token_hash,
                    "{what}: device {d}"
                );
            }
        }
        last_next = Some(pending.next_token_hash);
    }
    // The token survives a restart, and the admin's next commit shows it.
    c.sim.devs[c.alice].reload();
    assert_eq!(
        Some(token_hash(&conv!(c, c.alice).commit_token().unwrap())),
        last_next
    );
    let change = c
        .sim
        .commit(&id, c.alice, &[], |c, now| c.rename("crew 2", now));
    assert_eq!(change.epoch, epoch + 1);
    c.sim.assert_converged(&id);
    // Past the refused epoch, tokens are the epoch's own again.
    assert_ne!(
        Some(token_hash(&conv!(c, c.bob).commit_token().unwrap())),
        last_next
    );
    for d in [c.alice, c.bob, c.carol, c.mallory] {
        assert_eq!(conv!(c, d).info().unwrap().name.as_deref(), Some("crew 2"));
    }
    c.sim.send(&id, c.mallory, "still here");
    c.sim.send(&id, c.bob, "so are we");
}

#[test]
fn admins_promote_and_demote_and_only_admins_send() {
    let mut c = crew();
    let id = c.id.clone();
    let policy = GroupPolicy {
        admins: vec![user("alice"), user("bob")],
        only_admins_send: true,
    };
    c.sim
        .commit(&id, c.alice, &[], |c, now| c.set_policy(&policy, now));
    // bob is an admin now: he renames, and posts.
    c.sim
        .commit(&id, c.bob, &[], |c, now| c.rename("news", now));
    c.sim.send(&id, c.bob, "announcement");
    // carol, an honest member, cannot post; mallory's modified client
    // posts anyway and every member refuses it.
    let content = c.sim.text("me too");
    let mut rng = c.sim.rng.clone();
    let res = conv!(c, c.carol).encrypt(&content, &mut rng);
    assert!(matches!(res, Err(ProtoError::NotAllowed(_))), "{res:?}");
    c.sim.devs[c.mallory].device.play_modified_client();
    let post = c.sim.encrypt(&id, c.mallory, "spam");
    for (d, res) in c.sim.deliver(&id, c.mallory, &post) {
        assert!(
            matches!(res, Err(ProtoError::NotAllowed(_))),
            "device {d}: {res:?}"
        );
    }
    // Receipts and typing are not posts.
    let receipt = Content {
        body: Body::Receipt {
            kind: ReceiptKind::Read,
            ids: vec![],
        },
        ..c.sim.text("")
    };
    let mut rng = c.sim.rng.clone();
    let out = conv!(c, c.carol).encrypt(&receipt, &mut rng).unwrap();
    c.sim.devs[c.carol].save();
    for (d, res) in c.sim.deliver(&id, c.carol, &out.message) {
        assert!(
            matches!(res, Ok(Incoming::Message(_))),
            "device {d}: {res:?}"
        );
    }
    // bob demotes alice; alice can no longer rename.
    let policy = GroupPolicy {
        admins: vec![user("bob")],
        only_admins_send: false,
    };
    c.sim
        .commit(&id, c.bob, &[], |c, now| c.set_policy(&policy, now));
    let now = c.sim.now;
    let res = conv!(c, c.alice).rename("mine", now);
    assert!(matches!(res, Err(ProtoError::NotAllowed(_))), "{res:?}");
    c.sim.send(&id, c.carol, "open again");
    c.sim.assert_converged(&id);
}

#[test]
fn members_add_devices_of_members_and_remove_their_own() {
    let mut c = crew();
    let id = c.id.clone();
    // carol (not an admin) removes her second device, and adds it back.
    assert_eq!(conv!(c, c.alice).members().len(), 5);
    c.sim.commit(&id, c.carol, &[], |c, now| {
        c.remove_devices(
            |d| d.username().as_str() == "carol" && d.device_id().0 == 2,
            now,
        )
    });
    assert_eq!(conv!(c, c.alice).members().len(), 4);
    let kp = c.sim.key_package(c.carol2);
    let carol2 = c.carol2;
    c.sim
        .commit(&id, c.carol, &[carol2], |c, now| c.add_devices(&[kp], now));
    assert_eq!(conv!(c, c.alice).members().len(), 5);
    // A member leaves; a non-admin commits the departure.
    let proposals = conv!(c, c.mallory).leave().unwrap();
    for p in &proposals {
        c.sim.deliver(&id, c.mallory, p);
    }
    c.sim.devs[c.mallory].convs.remove(&id);
    let change = c.sim.commit(&id, c.carol, &[], |c, now| c.self_update(now));
    assert_eq!(change.removed.len(), 1);
    c.sim.assert_converged(&id);
}

#[test]
fn commits_built_on_a_refused_one_are_followed_and_refused_too() {
    let mut c = crew();
    let id = c.id.clone();
    c.sim.devs[c.mallory].device.play_modified_client();
    let kp = c.sim.key_package(c.eve);
    let epoch = conv!(c, c.alice).epoch();
    let now = c.sim.now;
    // mallory's client goes on from her refused add as if it had been
    // taken: the server takes her next commit too (her token is the one her
    // first commit named).
    let first = conv!(c, c.mallory).add_devices(&[kp], now).unwrap();
    conv!(c, c.mallory).confirm_commit().unwrap();
    let second = conv!(c, c.mallory).rename("mallory's", now).unwrap();
    assert_eq!(token_hash(&second.token), first.next_token_hash);
    conv!(c, c.mallory).confirm_commit().unwrap();
    let on_her_branch = c.sim.encrypt(&id, c.mallory, "only eve reads this");
    for msg in [&first.commit, &second.commit, &on_her_branch] {
        for (d, res) in c.sim.deliver(&id, c.mallory, msg) {
            assert!(res.is_err(), "device {d} took {res:?}");
        }
    }
    c.sim.devs[c.mallory].convs.remove(&id);
    c.sim.devs[c.bob].reload();
    for d in [c.alice, c.bob, c.carol, c.carol2] {
        let member = conv!(c, d);
        assert_eq!(member.epoch(), epoch, "device {d}");
        assert_eq!(member.info().unwrap().name.as_deref(), Some("crew"));
        assert_eq!(
            token_hash(&member.commit_token().unwrap()),
            second.next_token_hash,
            "device {d}"
        );
    }
    // alice commits from the members' epoch with the token the server
    // expects, and the group goes on without mallory.
    c.sim.commit(&id, c.alice, &[], |c, now| {
        c.remove_account(&user("mallory"), now)
    });
    c.sim.assert_converged(&id);
    c.sim.send(&id, c.bob, "quiet again");
}
