//! The MLS working group's passive-client vectors (mlswg/mls-implementations,
//! `tests/vectors/mls/`, see the README beside them), classical suite 0x0001,
//! fed through Hush's crypto provider and state store: the client joins by
//! the vector's Welcome, then for every epoch processes the proposals and the
//! commit, checks the epoch authenticator, writes its state the way a Hush
//! conversation does (group state without the tree, the tree apart), drains
//! the store's changes to a "disk", and reloads from that disk alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use hush_proto::crypto::HushCryptoProvider;
use hush_proto::storage::MemoryStore;
use hush_proto::{StateChange, StateKey};
use mls_rs::client_builder::{
    BaseConfig, WithCryptoProvider, WithGroupStateStorage, WithIdentityProvider,
    WithKeyPackageRepo, WithPskStore,
};
use mls_rs::group::ExportedTree;
use mls_rs::identity::basic::BasicIdentityProvider;
use mls_rs::psk::{ExternalPskId, PreSharedKey};
use mls_rs::storage_provider::in_memory::InMemoryPreSharedKeyStorage;
use mls_rs::{Client, CryptoProvider, Group, MlsMessage};
use mls_rs_core::key_package::{KeyPackageData, KeyPackageStorage};
use mls_rs_core::mls_rs_codec::MlsEncode;
use serde::Deserialize;
use zeroize::Zeroizing;

type Config = WithGroupStateStorage<
    MemoryStore,
    WithKeyPackageRepo<
        MemoryStore,
        WithPskStore<
            InMemoryPreSharedKeyStorage,
            WithIdentityProvider<
                BasicIdentityProvider,
                WithCryptoProvider<HushCryptoProvider, BaseConfig>,
            >,
        >,
    >,
>;

#[derive(Deserialize)]
struct Case {
    cipher_suite: u16,
    external_psks: Vec<Psk>,
    key_package: String,
    signature_priv: String,
    encryption_priv: String,
    init_priv: String,
    welcome: String,
    ratchet_tree: Option<String>,
    initial_epoch_authenticator: String,
    epochs: Vec<Epoch>,
}

#[derive(Deserialize)]
struct Psk {
    psk_id: String,
    psk: String,
}

#[derive(Deserialize)]
struct Epoch {
    proposals: Vec<String>,
    commit: String,
    epoch_authenticator: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn cases(name: &str) -> Vec<Case> {
    let path = format!("{}/tests/vectors/mls/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// What a Hush client keeps on disk for one passive member.
struct Disk {
    entries: BTreeMap<StateKey, Zeroizing<Vec<u8>>>,
    tree: Vec<u8>,
}

impl Disk {
    fn save(&mut self, store: &MemoryStore) {
        for change in store.take_changes() {
            match change {
                StateChange::Put(k, v) => {
                    self.entries.insert(k, v);
                }
                StateChange::Delete(k) => {
                    self.entries.remove(&k);
                }
                _ => panic!("a state change this test does not know"),
            }
        }
    }
}

fn client(case: &Case, store: &MemoryStore) -> Client<Config> {
    let kp = MlsMessage::from_bytes(&h(&case.key_package))
        .unwrap()
        .into_key_package()
        .unwrap();
    let mut psks = InMemoryPreSharedKeyStorage::default();
    for psk in &case.external_psks {
        psks.insert(
            ExternalPskId::new(h(&psk.psk_id)),
            PreSharedKey::new(h(&psk.psk)),
        );
    }
    Client::builder()
        .crypto_provider(HushCryptoProvider)
        .identity_provider(BasicIdentityProvider::new())
        .psk_store(psks)
        .key_package_repo(store.clone())
        .group_state_storage(store.clone())
        .signing_identity(
            kp.signing_identity().clone(),
            h(&case.signature_priv).into(),
            case.cipher_suite.into(),
        )
        .build()
}

/// Writes the group as `Conversation::persist` does and reloads it from
/// what reached the disk, through a fresh store and client.
fn persist_and_reload(
    case: &Case,
    group: &mut Group<Config>,
    store: &MemoryStore,
    disk: &mut Disk,
) -> (Group<Config>, MemoryStore) {
    group.write_to_storage_without_ratchet_tree().unwrap();
    disk.tree = group.export_tree().to_bytes().unwrap();
    disk.save(store);
    let fresh = MemoryStore::new();
    fresh
        .restore(disk.entries.iter().map(|(k, v)| (k.clone(), v.clone())))
        .unwrap();
    fresh.take_changes();
    let tree = ExportedTree::from_bytes(&disk.tree).unwrap();
    let group = client(case, &fresh)
        .load_group_with_ratchet_tree(group.group_id(), tree)
        .unwrap();
    (group, fresh)
}

fn run(case: &Case) {
    assert_eq!(
        case.cipher_suite, 1,
        "the files keep the classical suite only"
    );
    let cs = HushCryptoProvider
        .cipher_suite_provider(case.cipher_suite.into())
        .unwrap();
    let store = MemoryStore::new();
    let kp_message = MlsMessage::from_bytes(&h(&case.key_package)).unwrap();
    let kp = kp_message.clone().into_key_package().unwrap();
    let reference = kp.to_reference(&cs).unwrap();
    let mut store_mut = store.clone();
    store_mut
        .insert(
            reference.to_vec(),
            KeyPackageData::new(
                kp.mls_encode_to_vec().unwrap(),
                h(&case.init_priv).into(),
                h(&case.encryption_priv).into(),
                u64::MAX,
            ),
        )
        .unwrap();
    let tree = case.ratchet_tree.as_deref().map(h);
    let tree = tree
        .as_deref()
        .map(|t| ExportedTree::from_bytes(t).unwrap());
    let welcome = MlsMessage::from_bytes(&h(&case.welcome)).unwrap();
    let (group, _) = client(case, &store)
        .join_group(tree, &welcome, None)
        .unwrap();
    assert_eq!(
        group.epoch_authenticator().unwrap().to_vec(),
        h(&case.initial_epoch_authenticator)
    );
    let mut disk = Disk {
        entries: BTreeMap::new(),
        tree: Vec::new(),
    };
    let mut group = group;
    let (mut group2, mut store2) = persist_and_reload(case, &mut group, &store, &mut disk);
    assert_eq!(
        group2.epoch_authenticator().unwrap().to_vec(),
        h(&case.initial_epoch_authenticator),
        "after the first reload"
    );
    for (n, epoch) in case.epochs.iter().enumerate() {
        for p in &epoch.proposals {
            let message = MlsMessage::from_bytes(&h(p)).unwrap();
            group2.process_incoming_message(message).unwrap();
        }
        let commit = MlsMessage::from_bytes(&h(&epoch.commit)).unwrap();
        group2.process_incoming_message(commit).unwrap();
        assert_eq!(
            group2.epoch_authenticator().unwrap().to_vec(),
            h(&epoch.epoch_authenticator),
            "epoch {n}"
        );
        let (g, s) = persist_and_reload(case, &mut group2, &store2, &mut disk);
        assert_eq!(
            g.epoch_authenticator().unwrap().to_vec(),
            h(&epoch.epoch_authenticator),
            "epoch {n} after reload"
        );
        group2 = g;
        store2 = s;
    }
}

#[test]
fn passive_client_welcome() {
    let cases = cases("passive-client-welcome.json");
    assert_eq!(cases.len(), 8);
    cases.iter().for_each(run);
}

#[test]
fn passive_client_handling_commit() {
    let cases = cases("passive-client-handling-commit.json");
    assert_eq!(cases.len(), 13);
    cases.iter().for_each(run);
}

#[test]
fn passive_client_random() {
    let cases = cases("passive-client-random.json");
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].epochs.len(), 40);
    cases.iter().for_each(run);
}
