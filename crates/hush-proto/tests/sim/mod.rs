//! An in-process N-party simulator: devices with a persisted state (the
//! `StateChange`s each call produced, applied to a map as a client's database
//! would), a virtual clock, a seeded RNG and an ordered delivery "server" that
//! hands every MLS message to every other device holding the conversation.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};

use hush_proto::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

pub struct Dev {
    pub user: Username,
    pub account: AccountKey,
    pub key: DeviceSigningKey,
    pub device: Device,
    /// What the client would have on disk.
    pub disk: BTreeMap<StateKey, Zeroizing<Vec<u8>>>,
    pub convs: HashMap<Vec<u8>, Conversation>,
    /// Messages this device opened, in order: (sender user, text).
    pub inbox: Vec<(String, String)>,
}

impl Dev {
    pub fn save(&mut self) {
        for change in self.device.take_changes() {
            match change {
                StateChange::Put(k, v) => {
                    self.disk.insert(k, v);
                }
                StateChange::Delete(k) => {
                    self.disk.remove(&k);
                }
                _ => unreachable!(),
            }
        }
    }

    /// Drops everything in memory and reloads from "disk".
    pub fn reload(&mut self) {
        self.save();
        let ids: Vec<Vec<u8>> = self.convs.keys().cloned().collect();
        self.convs.clear();
        self.device = Device::restore(
            self.device.certificate().clone(),
            &self.key,
            self.disk.iter().map(|(k, v)| (k.clone(), v.clone())),
        )
        .unwrap();
        for id in ids {
            let conv = self.device.load(&id).unwrap();
            self.convs.insert(id, conv);
        }
    }
}

pub struct Sim {
    pub devs: Vec<Dev>,
    pub rng: ChaCha20Rng,
    pub now: Timestamp,
    pub suite: Suite,
}

impl Sim {
    pub fn new(suite: Suite) -> Self {
        Self {
            devs: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(42),
            now: Timestamp::from_millis(1_750_000_000_000),
            suite,
        }
    }

    pub fn tick(&mut self) {
        self.now = Timestamp::from_millis(self.now.as_millis() + 1000);
    }

    /// A new account with `devices` devices; returns their indices.
    pub fn account(&mut self, name: &str, devices: u32) -> Vec<usize> {
        let user = Username::new(name).unwrap();
        let account = AccountKey::generate(&mut self.rng).unwrap();
        (1..=devices)
            .map(|d| {
                let key = DeviceSigningKey::generate(&mut self.rng).unwrap();
                let cert = DeviceCertificate::issue(
                    &account,
                    &user,
                    DeviceId(d),
                    &key,
                    self.now.as_millis(),
                )
                .unwrap();
                let device = Device::new(cert, &key).unwrap();
                self.devs.push(Dev {
                    user: user.clone(),
                    account: account.clone(),
                    key,
                    device,
                    disk: BTreeMap::new(),
                    convs: HashMap::new(),
                    inbox: Vec::new(),
                });
                self.devs.len() - 1
            })
            .collect()
    }

    pub fn devices_of(&self, name: &str) -> Vec<usize> {
        (0..self.devs.len())
            .filter(|&i| self.devs[i].user.as_str() == name)
            .collect()
    }

    pub fn key_package(&mut self, dev: usize) -> Vec<u8> {
        let kp = self.devs[dev]
            .device
            .generate_key_package(self.suite, false, self.now)
            .unwrap();
        self.devs[dev].save();
        kp.message
    }

    /// `creator` starts a conversation with every device of `others` and its
    /// own other devices; everyone joins. Returns the group id.
    pub fn create(&mut self, creator: usize, info: ConversationInfo, others: &[&str]) -> Vec<u8> {
        let me = self.devs[creator].user.clone();
        let mut invited: Vec<usize> = self
            .devices_of(me.as_str())
            .into_iter()
            .filter(|&d| d != creator)
            .collect();
        for name in others {
            invited.extend(self.devices_of(name));
        }
        let kps: Vec<Vec<u8>> = invited.iter().map(|&d| self.key_package(d)).collect();
        let (conv, commit) = self.devs[creator]
            .device
            .create_conversation(self.suite, &info, &kps, self.now)
            .unwrap();
        let id = conv.id().to_vec();
        self.devs[creator].convs.insert(id.clone(), conv);
        self.devs[creator].save();
        if let Some(commit) = commit {
            let welcome = commit.welcome.unwrap();
            for d in invited {
                self.join(d, &welcome);
            }
        }
        id
    }

    pub fn join(&mut self, dev: usize, welcome: &[u8]) {
        let conv = self.devs[dev].device.join(welcome, self.now).unwrap();
        let id = conv.id().to_vec();
        self.devs[dev].convs.insert(id, conv);
        self.devs[dev].save();
    }

    /// Devices other than `from` that hold conversation `id`.
    pub fn holders(&self, id: &[u8], from: usize) -> Vec<usize> {
        (0..self.devs.len())
            .filter(|&d| d != from && self.devs[d].convs.contains_key(id))
            .collect()
    }

    /// Delivers an MLS message to every other holder; returns their results.
    pub fn deliver(
        &mut self,
        id: &[u8],
        from: usize,
        msg: &[u8],
    ) -> Vec<(usize, Result<Incoming, ProtoError>)> {
        let now = self.now;
        let mut out = Vec::new();
        for d in self.holders(id, from) {
            let dev = &mut self.devs[d];
            let res = dev.convs.get_mut(id).unwrap().process(msg, now);
            match &res {
                Ok(Incoming::Message(m)) => {
                    if let Body::Text { text, .. } = &m.content.body {
                        dev.inbox
                            .push((m.sender.username().to_string(), text.clone()));
                    }
                }
                Ok(Incoming::Commit(c)) if c.removed_self => {
                    dev.convs.remove(id);
                    dev.device.forget(id);
                }
                _ => {}
            }
            dev.save();
            out.push((d, res));
        }
        out
    }

    pub fn text(&mut self, text: &str) -> Content {
        Content {
            id: MessageId::generate(&mut self.rng),
            sent_at_ms: self.now.as_millis(),
            expire_timer_secs: None,
            kt_checkpoint: None,
            meta: Default::default(),
            body: Body::Text {
                text: text.into(),
                reply_to: None,
            },
        }
    }

    pub fn encrypt(&mut self, id: &[u8], from: usize, text: &str) -> Vec<u8> {
        let content = self.text(text);
        let out = self.devs[from]
            .convs
            .get_mut(id)
            .unwrap()
            .encrypt(&content, &mut self.rng)
            .unwrap();
        self.devs[from].save();
        out.message
    }

    /// `from` sends `text`; every other holder must open it.
    pub fn send(&mut self, id: &[u8], from: usize, text: &str) {
        let msg = self.encrypt(id, from, text);
        for (d, res) in self.deliver(id, from, &msg) {
            assert!(
                matches!(res, Ok(Incoming::Message(_))),
                "device {d} could not open a message from {from}: {res:?}"
            );
        }
    }

    /// Sends a commit built by `build` from `from` to everyone, confirms it, and
    /// delivers any welcome to the devices in `welcome_to`.
    pub fn commit(
        &mut self,
        id: &[u8],
        from: usize,
        welcome_to: &[usize],
        build: impl FnOnce(&mut Conversation, Timestamp) -> Result<PendingCommit, ProtoError>,
    ) -> MembershipChange {
        let now = self.now;
        let pending = build(self.devs[from].convs.get_mut(id).unwrap(), now).unwrap();
        self.devs[from].save();
        for (d, res) in self.deliver(id, from, &pending.commit) {
            assert!(
                matches!(res, Ok(Incoming::Commit(_))),
                "device {d} rejected a commit: {res:?}"
            );
        }
        let change = self.devs[from]
            .convs
            .get_mut(id)
            .unwrap()
            .confirm_commit()
            .unwrap();
        self.devs[from].save();
        if let Some(welcome) = pending.welcome {
            for &d in welcome_to {
                self.join(d, &welcome);
            }
        }
        change
    }

    /// Every holder of `id` agrees on epoch and membership.
    pub fn assert_converged(&self, id: &[u8]) {
        let holders: Vec<usize> = (0..self.devs.len())
            .filter(|&d| self.devs[d].convs.contains_key(id))
            .collect();
        let first = &self.devs[holders[0]].convs[id];
        for &d in &holders[1..] {
            let c = &self.devs[d].convs[id];
            assert_eq!(c.epoch(), first.epoch(), "device {d} epoch");
            assert_eq!(
                c.members().len(),
                first.members().len(),
                "device {d} roster"
            );
        }
        assert_eq!(first.members().len(), holders.len());
    }
}
