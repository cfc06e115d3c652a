//! MLS state as data the caller persists.
//!
//! mls-rs reads and writes group state and KeyPackage secrets through storage
//! traits. [`MemoryStore`] implements them in memory and records every write as
//! a [`StateChange`]; the caller drains the changes with
//! [`crate::Device::take_changes`] after each operation and writes them to its
//! own (encrypted) store, then hands the entries back to
//! [`crate::Device::restore`] after a restart. Nothing in this crate touches a
//! file.
//!
//! Keys are opaque to the caller: it stores `(key bytes, value bytes)` pairs.
//!
//! A group's state is written in two parts (decision 0018): a base, the
//! leading bytes that stay the same while the epoch does (the ratchet tree
//! index with every member's keys is most of it), and a tail holding the rest
//! (the message ratchets). A write whose state still starts with the stored
//! base only writes the tail, so the bytes written per write do not grow with
//! the group.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use mls_rs_core::group::{EpochRecord, GroupState, GroupStateStorage};
use mls_rs_core::key_package::{KeyPackageData, KeyPackageStorage};
use mls_rs_core::mls_rs_codec::{MlsDecode, MlsEncode};
use thiserror::Error;
use zeroize::Zeroizing;

/// How many past epochs of a group are kept, so that messages sent just before
/// a commit can still be opened after it.
pub const EPOCH_RETENTION: u64 = 3;

/// How far before the first changed byte a new base ends, so that the next
/// few writes (which change bytes a little earlier, such as a new sender's
/// ratchet) still find the base unchanged.
const BASE_MARGIN: usize = 4096;

/// A failure inside the in-memory store; the caller's data is untouched.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored KeyPackage secret did not decode.
    #[error("stored key package secret is corrupt")]
    CorruptKeyPackage,
    /// A key handed to `restore` is not one this crate wrote.
    #[error("unknown state key")]
    UnknownKey,
}

impl mls_rs_core::error::IntoAnyError for StoreError {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(Box::new(self))
    }
}

/// Where one persisted value belongs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StateKey {
    /// A group's current state (without its ratchet tree), or its leading
    /// part when a [`StateKey::GroupTail`] holds the rest.
    Group(Vec<u8>),
    /// A group's ratchet tree, rewritten when the epoch changes.
    Tree(Vec<u8>),
    /// A past epoch's secrets of a group.
    Epoch(Vec<u8>, u64),
    /// The secrets of a KeyPackage this device published.
    KeyPackage(Vec<u8>),
    /// The part of a group's state that follows [`StateKey::Group`]'s bytes
    /// (absent in state written before decision 0018: the base is all of it).
    GroupTail(Vec<u8>),
    /// The commits the server ordered in a group since its last one this
    /// device took, which it refused (decision 0032): the epoch they start
    /// at, then each commit with its length.
    Refused(Vec<u8>),
}

impl StateKey {
    /// A stable byte encoding for use as a database key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, id, epoch) = match self {
            StateKey::Group(id) => (1u8, id, None),
            StateKey::Tree(id) => (2, id, None),
            StateKey::Epoch(id, e) => (3, id, Some(*e)),
            StateKey::KeyPackage(id) => (4, id, None),
            StateKey::GroupTail(id) => (5, id, None),
            StateKey::Refused(id) => (6, id, None),
        };
        let mut out = Vec::with_capacity(id.len() + 9);
        out.push(tag);
        if let Some(e) = epoch {
            out.extend_from_slice(&e.to_be_bytes());
        }
        out.extend_from_slice(id);
        out
    }

    /// Parses [`StateKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let (tag, rest) = bytes.split_first().ok_or(StoreError::UnknownKey)?;
        Ok(match tag {
            1 => StateKey::Group(rest.to_vec()),
            2 => StateKey::Tree(rest.to_vec()),
            3 => {
                let (epoch, id) = rest.split_at_checked(8).ok_or(StoreError::UnknownKey)?;
                let epoch = <[u8; 8]>::try_from(epoch).map_err(|_| StoreError::UnknownKey)?;
                StateKey::Epoch(id.to_vec(), u64::from_be_bytes(epoch))
            }
            4 => StateKey::KeyPackage(rest.to_vec()),
            5 => StateKey::GroupTail(rest.to_vec()),
            6 => StateKey::Refused(rest.to_vec()),
            _ => return Err(StoreError::UnknownKey),
        })
    }
}

/// One write the caller must persist, in order.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateChange {
    /// Store `value` under `key`, replacing any previous value.
    Put(StateKey, Zeroizing<Vec<u8>>),
    /// Remove `key`.
    Delete(StateKey),
}

impl fmt::Debug for StateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateChange::Put(k, v) => write!(f, "Put({k:?}, {} bytes)", v.len()),
            StateChange::Delete(k) => write!(f, "Delete({k:?})"),
        }
    }
}

#[derive(Default)]
struct GroupEntry {
    /// The leading part of the state; `None` until the group is written.
    base: Option<Zeroizing<Vec<u8>>>,
    /// The rest of the state.
    tail: Zeroizing<Vec<u8>>,
    tree: Option<Zeroizing<Vec<u8>>>,
    epochs: BTreeMap<u64, Zeroizing<Vec<u8>>>,
    refused: Option<Zeroizing<Vec<u8>>>,
}

impl GroupEntry {
    fn state(&self) -> Option<Zeroizing<Vec<u8>>> {
        let base = self.base.as_ref()?;
        let mut out = Zeroizing::new(Vec::with_capacity(base.len() + self.tail.len()));
        out.extend_from_slice(base);
        out.extend_from_slice(&self.tail);
        Some(out)
    }

    /// Where the base of `new` ends, when the stored base must be replaced;
    /// `None` when `new` still starts with it and the tail stays small next
    /// to it.
    fn new_base(&self, new: &[u8]) -> Option<usize> {
        if let Some(base) = &self.base
            && new.starts_with(base)
            && new.len() - base.len() <= base.len() + 2 * BASE_MARGIN
        {
            return None;
        }
        // The bytes `new` shares with the stored state (base then tail),
        // without putting the two together.
        let shared = match &self.base {
            Some(base) => match common_prefix(base, new) {
                n if n < base.len() => n,
                n => n + common_prefix(&self.tail, &new[n..]),
            },
            None => new.len(),
        };
        Some(shared.saturating_sub(BASE_MARGIN))
    }
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[derive(Default)]
struct Inner {
    groups: HashMap<Vec<u8>, GroupEntry>,
    key_packages: HashMap<Vec<u8>, KeyPackageData>,
    changes: Vec<StateChange>,
    /// Bytes of values journaled since the store was made.
    written: u64,
}

impl Inner {
    fn put(&mut self, key: StateKey, value: Zeroizing<Vec<u8>>) {
        self.written += value.len() as u64;
        self.changes.push(StateChange::Put(key, value));
    }
}

/// In-memory MLS storage that journals its writes. Clones share one store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("groups", &inner.groups.len())
            .field("key_packages", &inner.key_packages.len())
            .field("pending_changes", &inner.changes.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A poisoned lock only means another thread panicked mid-operation; the
    // maps themselves are always in a consistent state between statements.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads entries previously drained with [`MemoryStore::take_changes`].
    pub fn restore(
        &self,
        entries: impl IntoIterator<Item = (StateKey, Zeroizing<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (key, value) in entries {
            match key {
                StateKey::Group(id) => inner.groups.entry(id).or_default().base = Some(value),
                StateKey::GroupTail(id) => inner.groups.entry(id).or_default().tail = value,
                StateKey::Tree(id) => inner.groups.entry(id).or_default().tree = Some(value),
                StateKey::Refused(id) => inner.groups.entry(id).or_default().refused = Some(value),
                StateKey::Epoch(id, e) => {
                    inner.groups.entry(id).or_default().epochs.insert(e, value);
                }
                StateKey::KeyPackage(id) => {
                    let data = KeyPackageData::mls_decode(&mut value.as_slice())
                        .map_err(|_| StoreError::CorruptKeyPackage)?;
                    inner.key_packages.insert(id, data);
                }
            }
        }
        Ok(())
    }

    /// Every write since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<StateChange> {
        std::mem::take(&mut self.lock().changes)
    }

    /// Bytes of state values written (journaled as [`StateChange::Put`])
    /// since this store was made: what the caller's database receives.
    pub fn bytes_written(&self) -> u64 {
        self.lock().written
    }

    /// Whether writes are waiting to be drained.
    pub fn has_changes(&self) -> bool {
        !self.lock().changes.is_empty()
    }

    /// Ids of stored groups.
    pub fn group_ids(&self) -> Vec<Vec<u8>> {
        self.lock()
            .groups
            .iter()
            .filter(|(_, g)| g.base.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(crate) fn tree(&self, group_id: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.lock()
            .groups
            .get(group_id)
            .and_then(|g| g.tree.clone())
    }

    pub(crate) fn put_tree(&self, group_id: &[u8], tree: Vec<u8>) {
        let tree = Zeroizing::new(tree);
        let mut inner = self.lock();
        inner.groups.entry(group_id.to_vec()).or_default().tree = Some(tree.clone());
        inner.put(StateKey::Tree(group_id.to_vec()), tree);
    }

    /// The refused commits of a group that start at `epoch`, oldest first.
    pub(crate) fn refused(&self, group_id: &[u8], epoch: u64) -> Vec<Vec<u8>> {
        let inner = self.lock();
        let Some(value) = inner.groups.get(group_id).and_then(|g| g.refused.as_ref()) else {
            return Vec::new();
        };
        let mut r = crate::codec::Reader::new(value);
        if r.u64().ok() != Some(epoch) {
            return Vec::new();
        }
        let mut out = Vec::new();
        while r.remaining() > 0 {
            match r.bytes("refused commit", usize::MAX) {
                Ok(c) => out.push(c.to_vec()),
                Err(_) => return Vec::new(),
            }
        }
        out
    }

    pub(crate) fn put_refused(&self, group_id: &[u8], epoch: u64, commits: &[Vec<u8>]) {
        let mut w = crate::codec::Writer::new();
        w.u64(epoch);
        for c in commits {
            w.bytes(c);
        }
        let value = Zeroizing::new(w.into_bytes());
        let mut inner = self.lock();
        inner.groups.entry(group_id.to_vec()).or_default().refused = Some(value.clone());
        inner.put(StateKey::Refused(group_id.to_vec()), value);
    }

    pub(crate) fn delete_group(&self, group_id: &[u8]) {
        let mut inner = self.lock();
        if let Some(entry) = inner.groups.remove(group_id) {
            let id = group_id.to_vec();
            inner
                .changes
                .push(StateChange::Delete(StateKey::Group(id.clone())));
            inner
                .changes
                .push(StateChange::Delete(StateKey::Tree(id.clone())));
            inner
                .changes
                .push(StateChange::Delete(StateKey::GroupTail(id.clone())));
            if entry.refused.is_some() {
                inner
                    .changes
                    .push(StateChange::Delete(StateKey::Refused(id.clone())));
            }
            for epoch in entry.epochs.keys() {
                inner
                    .changes
                    .push(StateChange::Delete(StateKey::Epoch(id.clone(), *epoch)));
            }
        }
    }

    /// Number of KeyPackage secrets held (published and not yet used).
    pub fn key_package_count(&self) -> usize {
        self.lock().key_packages.len()
    }
}

impl GroupStateStorage for MemoryStore {
    type Error = StoreError;

    fn state(&self, group_id: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self.lock().groups.get(group_id).and_then(GroupEntry::state))
    }

    fn epoch(
        &self,
        group_id: &[u8],
        epoch_id: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .lock()
            .groups
            .get(group_id)
            .and_then(|g| g.epochs.get(&epoch_id).cloned()))
    }

    fn write(
        &mut self,
        state: GroupState,
        epoch_inserts: Vec<EpochRecord>,
        epoch_updates: Vec<EpochRecord>,
    ) -> Result<(), Self::Error> {
        let mut inner = self.lock();
        let id = state.id;
        let entry = inner.groups.entry(id.clone()).or_default();
        let new_base = entry.new_base(&state.data);
        let cut = new_base.unwrap_or_else(|| entry.base.as_ref().map_or(0, |b| b.len()));
        let tail = Zeroizing::new(state.data[cut..].to_vec());
        entry.tail = tail.clone();
        let base = new_base.map(|cut| Zeroizing::new(state.data[..cut].to_vec()));
        if let Some(base) = &base {
            entry.base = Some(base.clone());
        }
        for record in epoch_inserts.iter().chain(&epoch_updates) {
            entry.epochs.insert(record.id, record.data.clone());
        }
        if let Some(base) = base {
            inner.put(StateKey::Group(id.clone()), base);
        }
        inner.put(StateKey::GroupTail(id.clone()), tail);
        for record in epoch_inserts.into_iter().chain(epoch_updates) {
            inner.put(StateKey::Epoch(id.clone(), record.id), record.data);
        }
        let Inner {
            groups, changes, ..
        } = &mut *inner;
        let Some(entry) = groups.get_mut(&id) else {
            return Ok(());
        };
        if let Some(&newest) = entry.epochs.keys().next_back() {
            let keep_from = newest.saturating_sub(EPOCH_RETENTION - 1);
            let old: Vec<u64> = entry.epochs.range(..keep_from).map(|(e, _)| *e).collect();
            for e in old {
                entry.epochs.remove(&e);
                changes.push(StateChange::Delete(StateKey::Epoch(id.clone(), e)));
            }
        }
        Ok(())
    }

    fn max_epoch_id(&self, group_id: &[u8]) -> Result<Option<u64>, Self::Error> {
        Ok(self
            .lock()
            .groups
            .get(group_id)
            .and_then(|g| g.epochs.keys().next_back().copied()))
    }
}

impl KeyPackageStorage for MemoryStore {
    type Error = StoreError;

    fn delete(&mut self, id: &[u8]) -> Result<(), Self::Error> {
        let mut inner = self.lock();
        if inner.key_packages.remove(id).is_some() {
            inner
                .changes
                .push(StateChange::Delete(StateKey::KeyPackage(id.to_vec())));
        }
        Ok(())
    }

    fn insert(&mut self, id: Vec<u8>, pkg: KeyPackageData) -> Result<(), Self::Error> {
        let encoded = pkg
            .mls_encode_to_vec()
            .map_err(|_| StoreError::CorruptKeyPackage)?;
        let mut inner = self.lock();
        inner.key_packages.insert(id.clone(), pkg);
        inner.put(StateKey::KeyPackage(id), Zeroizing::new(encoded));
        Ok(())
    }

    fn get(&self, id: &[u8]) -> Result<Option<KeyPackageData>, Self::Error> {
        Ok(self.lock().key_packages.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_round_trip() {
        for key in [
            StateKey::Group(vec![1, 2, 3]),
            StateKey::Tree(vec![]),
            StateKey::Epoch(vec![9; 32], 77),
            StateKey::KeyPackage(vec![4; 16]),
            StateKey::GroupTail(vec![5; 8]),
        ] {
            assert_eq!(StateKey::from_bytes(&key.to_bytes()).unwrap(), key);
        }
        assert!(StateKey::from_bytes(&[]).is_err());
        assert!(StateKey::from_bytes(&[3, 1, 2]).is_err());
        assert!(StateKey::from_bytes(&[9]).is_err());
    }

    #[test]
    fn old_epochs_are_trimmed_and_journaled() {
        let mut store = MemoryStore::new();
        for e in 0..6u64 {
            store
                .write(
                    GroupState {
                        id: b"g".to_vec(),
                        data: Zeroizing::new(vec![e as u8]),
                    },
                    vec![EpochRecord::new(e, Zeroizing::new(vec![e as u8]))],
                    vec![],
                )
                .unwrap();
        }
        assert_eq!(store.epoch(b"g", 2).unwrap(), None);
        assert!(store.epoch(b"g", 3).unwrap().is_some());
        let changes = store.take_changes();
        assert!(changes.contains(&StateChange::Delete(StateKey::Epoch(b"g".to_vec(), 0))));
        assert!(store.take_changes().is_empty());
    }

    fn write_state(store: &mut MemoryStore, data: &[u8]) {
        let state = GroupState {
            id: b"g".to_vec(),
            data: Zeroizing::new(data.to_vec()),
        };
        store.write(state, vec![], vec![]).unwrap();
    }

    fn put_bytes(changes: &[StateChange]) -> usize {
        changes
            .iter()
            .map(|c| match c {
                StateChange::Put(_, v) => v.len(),
                StateChange::Delete(_) => 0,
            })
            .sum()
    }

    #[test]
    fn a_state_that_changes_at_its_end_writes_only_its_tail() {
        let mut store = MemoryStore::new();
        let mut state = vec![7u8; 200_000];
        state.extend_from_slice(&[0; 100]);
        write_state(&mut store, &state);
        assert!(put_bytes(&store.take_changes()) >= state.len());
        for i in 0..10u8 {
            *state.last_mut().unwrap() = i;
            state.extend_from_slice(&[i; 10]);
            write_state(&mut store, &state);
            let written = put_bytes(&store.take_changes());
            assert!(
                written < 2 * BASE_MARGIN,
                "{written} bytes for a small change"
            );
            assert_eq!(store.state(b"g").unwrap().unwrap().as_slice(), &state[..]);
        }
        // A change early in the state (a new epoch) rewrites the base.
        state[10] = 1;
        write_state(&mut store, &state);
        let changes = store.take_changes();
        assert!(put_bytes(&changes) >= state.len());
        // Restoring the journaled parts gives the same state back.
        let restored = MemoryStore::new();
        let entries = changes.into_iter().filter_map(|c| match c {
            StateChange::Put(k, v) => Some((k, v)),
            StateChange::Delete(_) => None,
        });
        restored.restore(entries).unwrap();
        assert_eq!(
            restored.state(b"g").unwrap().unwrap().as_slice(),
            &state[..]
        );
    }

    #[test]
    fn state_written_whole_before_the_split_restores() {
        // What a release before decision 0018 wrote: the state under Group only.
        let store = MemoryStore::new();
        let state = Zeroizing::new(vec![3u8; 5000]);
        store
            .restore([(StateKey::Group(b"g".to_vec()), state.clone())])
            .unwrap();
        assert_eq!(store.state(b"g").unwrap(), Some(state));
        assert_eq!(store.group_ids(), vec![b"g".to_vec()]);
    }
}
