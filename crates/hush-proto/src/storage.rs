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
//!
//! The base and the ratchet tree are stored in content-defined chunks named by
//! their hash, under a manifest (decision 0029): a commit rewrites only the
//! chunks around the keys it changed, so the bytes written per commit grow
//! with what the commit changed, not with the group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use mls_rs_core::group::{EpochRecord, GroupState, GroupStateStorage};
use mls_rs_core::key_package::{KeyPackageData, KeyPackageStorage};
use mls_rs_core::mls_rs_codec::{MlsDecode, MlsEncode};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::chunked::{ChunkHash, Manifest};

/// How many past epochs of a group are kept, so that messages sent just before
/// a commit can still be opened after it.
pub const EPOCH_RETENTION: u64 = 3;

/// How far before the first changed byte a new base ends, so that the next
/// few writes (which change bytes a little earlier, such as a new sender's
/// ratchet) still find the base unchanged. Within an epoch the earliest
/// change is the length of mls-rs's map of ratchets, at its start; the
/// margin is for what a release of mls-rs may place before it.
const BASE_MARGIN: usize = 1024;

/// How many unchanged bytes past the base a write may carry in its tail
/// before the base is moved up to them (decision 0037).
const TAIL_SLACK: usize = 2048;

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
    /// A stored manifest of a group's chunks did not decode.
    #[error("stored group state manifest is corrupt")]
    CorruptManifest,
    /// A chunk a group's manifest names is not in the store.
    #[error("a chunk of a stored group state is missing")]
    MissingChunk,
    /// A stored chunk does not have the hash or length its manifest names.
    #[error("a chunk of a stored group state is corrupt")]
    CorruptChunk,
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
    /// A group's state base written whole, by releases before decision 0029
    /// (before decision 0018, all of the state without its ratchet tree).
    /// Read, and replaced by a [`StateKey::BaseManifest`] at the next write.
    Group(Vec<u8>),
    /// A group's ratchet tree written whole, by releases before decision
    /// 0029. Read, and replaced by a [`StateKey::TreeManifest`] at the next
    /// write.
    Tree(Vec<u8>),
    /// A past epoch's secrets of a group.
    Epoch(Vec<u8>, u64),
    /// The secrets of a KeyPackage this device published.
    KeyPackage(Vec<u8>),
    /// The part of a group's state that follows its base (absent in state
    /// written before decision 0018: the base is all of it).
    GroupTail(Vec<u8>),
    /// The commits the server ordered in a group since its last one this
    /// device took, which it refused (decision 0032): the epoch they start
    /// at, then each commit with its length.
    Refused(Vec<u8>),
    /// The chunks, in order, of a group's state base (decision 0029).
    BaseManifest(Vec<u8>),
    /// The chunks, in order, of a group's ratchet tree (decision 0029).
    TreeManifest(Vec<u8>),
    /// One chunk of a group's base or tree, named by its SHA-256.
    Chunk(Vec<u8>, ChunkHash),
}

impl StateKey {
    /// A stable byte encoding for use as a database key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, id, prefix) = match self {
            StateKey::Group(id) => (1u8, id, None),
            StateKey::Tree(id) => (2, id, None),
            StateKey::Epoch(id, e) => (3, id, Some(e.to_be_bytes().to_vec())),
            StateKey::KeyPackage(id) => (4, id, None),
            StateKey::GroupTail(id) => (5, id, None),
            StateKey::Refused(id) => (6, id, None),
            StateKey::BaseManifest(id) => (7, id, None),
            StateKey::TreeManifest(id) => (8, id, None),
            StateKey::Chunk(id, h) => (9, id, Some(h.to_vec())),
        };
        let mut out = Vec::with_capacity(id.len() + 33);
        out.push(tag);
        if let Some(prefix) = prefix {
            out.extend_from_slice(&prefix);
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
            7 => StateKey::BaseManifest(rest.to_vec()),
            8 => StateKey::TreeManifest(rest.to_vec()),
            9 => {
                let (h, id) = rest.split_at_checked(32).ok_or(StoreError::UnknownKey)?;
                let h = <ChunkHash>::try_from(h).map_err(|_| StoreError::UnknownKey)?;
                StateKey::Chunk(id.to_vec(), h)
            }
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

/// The writes waiting to be drained, and how many bytes were written.
#[derive(Default)]
struct Journal {
    changes: Vec<StateChange>,
    /// Bytes of values journaled since the store was made.
    written: u64,
}

impl Journal {
    fn put(&mut self, key: StateKey, value: Zeroizing<Vec<u8>>) {
        self.written += value.len() as u64;
        self.changes.push(StateChange::Put(key, value));
    }

    fn delete(&mut self, key: StateKey) {
        self.changes.push(StateChange::Delete(key));
    }
}

/// The two chunked values of a group.
#[derive(Clone, Copy)]
enum Part {
    Base,
    Tree,
}

impl Part {
    fn manifest_key(self, id: &[u8]) -> StateKey {
        match self {
            Part::Base => StateKey::BaseManifest(id.to_vec()),
            Part::Tree => StateKey::TreeManifest(id.to_vec()),
        }
    }

    fn whole_key(self, id: &[u8]) -> StateKey {
        match self {
            Part::Base => StateKey::Group(id.to_vec()),
            Part::Tree => StateKey::Tree(id.to_vec()),
        }
    }
}

/// How one chunked value of a group is held in the caller's store.
#[derive(Default)]
struct Stored {
    /// Its manifest, once written in chunks.
    manifest: Option<Manifest>,
    /// Whether the store holds it whole, as releases before decision 0029
    /// wrote it; that key is deleted when the value is next written.
    whole: bool,
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
    stored_base: Stored,
    stored_tree: Stored,
    /// The chunks of this group in the caller's store.
    chunks: HashSet<ChunkHash>,
    /// The earliest byte a write changed since the epoch began (in memory
    /// only: after a restart the next write starts it again).
    lowest_change: Option<usize>,
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
    /// `None` when `new` still starts with it and its first change is at
    /// most [`TAIL_SLACK`] past it (decision 0037).
    fn new_base(&mut self, new: &[u8]) -> Option<usize> {
        let Some(base) = &self.base else {
            return Some(new.len().saturating_sub(BASE_MARGIN));
        };
        let old_base = base.len();
        // The first byte `new` does not share with the stored state (base
        // then tail), without putting the two together.
        let shared = match common_prefix(base, new) {
            n if n < old_base => n,
            n => n + common_prefix(&self.tail, &new[n..]),
        };
        if shared == new.len() && new.len() == old_base + self.tail.len() {
            return None; // nothing changed
        }
        // A change early in the state is a new epoch (the group context
        // comes first): a base ending there would be nearly empty, and the
        // next write would store the whole state again. The new epoch's
        // state is laid out like the old one: it ends with the message
        // ratchets, now fresh, where the old tail was. The base ends where
        // the old tail would start (members added since are in it, written
        // once as chunks), or keeps its length if the state shrank; its
        // chunks before and after the changed keys are already stored.
        if shared < old_base / 2 {
            self.lowest_change = None;
            let end = new.len().saturating_sub(self.tail.len());
            return Some(end.max(old_base).min(new.len()));
        }
        // Within an epoch only the message ratchets change, at the end of
        // the state; the earliest change seen since the epoch began is
        // where they start. The base reaches up to just before it, so a
        // message writes the ratchets and not the bytes of an epoch's
        // added members (or anything else) that followed the old base.
        let lowest = self.lowest_change.map_or(shared, |l| l.min(shared));
        self.lowest_change = Some(lowest);
        let end = lowest.saturating_sub(BASE_MARGIN);
        if shared < old_base || end > old_base + TAIL_SLACK {
            Some(end)
        } else {
            None
        }
    }

    fn stored_ref(&self, part: Part) -> &Stored {
        match part {
            Part::Base => &self.stored_base,
            Part::Tree => &self.stored_tree,
        }
    }

    fn stored(&mut self, part: Part) -> &mut Stored {
        match part {
            Part::Base => &mut self.stored_base,
            Part::Tree => &mut self.stored_tree,
        }
    }

    /// Journals `data` as the new value of `part`: the chunks not yet
    /// stored, the manifest, and the deletion of chunks no longer named.
    fn put_chunked(&mut self, id: &[u8], part: Part, data: &[u8], journal: &mut Journal) {
        let old = match part {
            Part::Base => self.base.as_ref(),
            Part::Tree => self.tree.as_ref(),
        };
        // The old value's chunks are stored: only the others are hashed.
        let (manifest, pieces) = match (&self.stored_ref(part).manifest, old) {
            (Some(m), Some(old)) => Manifest::update(m, old, data),
            _ => Manifest::of(data),
        };
        for (h, piece) in pieces {
            if self.chunks.insert(h) {
                journal.put(
                    StateKey::Chunk(id.to_vec(), h),
                    Zeroizing::new(piece.to_vec()),
                );
            }
        }
        journal.put(part.manifest_key(id), Zeroizing::new(manifest.encode()));
        let stored = self.stored(part);
        stored.manifest = Some(manifest);
        if std::mem::take(&mut stored.whole) {
            journal.delete(part.whole_key(id));
        }
        self.drop_unnamed_chunks(id, journal);
    }

    /// Deletes the chunks neither manifest names (recomputed, not counted:
    /// a group has a few hundred chunks at most).
    fn drop_unnamed_chunks(&mut self, id: &[u8], journal: &mut Journal) {
        let named: HashSet<&ChunkHash> = [&self.stored_base, &self.stored_tree]
            .into_iter()
            .filter_map(|s| s.manifest.as_ref())
            .flat_map(Manifest::hashes)
            .collect();
        let unnamed: Vec<ChunkHash> = self
            .chunks
            .iter()
            .filter(|h| !named.contains(h))
            .copied()
            .collect();
        for h in unnamed {
            self.chunks.remove(&h);
            journal.delete(StateKey::Chunk(id.to_vec(), h));
        }
    }

    /// Writes a value still stored whole (by an earlier release) in chunks.
    fn convert_whole(&mut self, id: &[u8], journal: &mut Journal) {
        if self.stored_base.whole
            && let Some(base) = self.base.clone()
        {
            self.put_chunked(id, Part::Base, &base, journal);
        }
        if self.stored_tree.whole
            && let Some(tree) = self.tree.clone()
        {
            self.put_chunked(id, Part::Tree, &tree, journal);
        }
    }
}

/// How many leading bytes `a` and `b` share: compared a block at a time
/// (a slice comparison is a `memcmp`), then byte by byte in the first block
/// that differs. A write compares the whole base, megabytes in a big group.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

#[derive(Default)]
struct Inner {
    groups: HashMap<Vec<u8>, GroupEntry>,
    key_packages: HashMap<Vec<u8>, KeyPackageData>,
    journal: Journal,
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
            .field("pending_changes", &inner.journal.changes.len())
            .finish()
    }
}

/// Entries handed to [`MemoryStore::restore`], sorted by kind: chunks and
/// manifests are only put together once all entries are in, whatever order
/// the caller's database returned them in.
#[derive(Default)]
struct Restoring {
    groups: HashMap<Vec<u8>, GroupEntry>,
    key_packages: HashMap<Vec<u8>, KeyPackageData>,
    chunks: HashMap<Vec<u8>, HashMap<ChunkHash, Zeroizing<Vec<u8>>>>,
    manifests: Vec<(Vec<u8>, Part, Manifest)>,
}

impl Restoring {
    fn add(&mut self, key: StateKey, value: Zeroizing<Vec<u8>>) -> Result<(), StoreError> {
        let groups = &mut self.groups;
        match key {
            StateKey::Group(id) => {
                let entry = groups.entry(id).or_default();
                entry.stored_base.whole = true;
                entry.base.get_or_insert(value);
            }
            StateKey::Tree(id) => {
                let entry = groups.entry(id).or_default();
                entry.stored_tree.whole = true;
                entry.tree.get_or_insert(value);
            }
            StateKey::GroupTail(id) => groups.entry(id).or_default().tail = value,
            StateKey::Refused(id) => groups.entry(id).or_default().refused = Some(value),
            StateKey::Epoch(id, e) => {
                groups.entry(id).or_default().epochs.insert(e, value);
            }
            StateKey::BaseManifest(id) => {
                self.manifests
                    .push((id, Part::Base, Manifest::decode(&value)?));
            }
            StateKey::TreeManifest(id) => {
                self.manifests
                    .push((id, Part::Tree, Manifest::decode(&value)?));
            }
            StateKey::Chunk(id, h) => {
                groups.entry(id.clone()).or_default().chunks.insert(h);
                self.chunks.entry(id).or_default().insert(h, value);
            }
            StateKey::KeyPackage(id) => {
                let data = KeyPackageData::mls_decode(&mut value.as_slice())
                    .map_err(|_| StoreError::CorruptKeyPackage)?;
                self.key_packages.insert(id, data);
            }
        }
        Ok(())
    }

    /// Puts every manifest's value together; a manifest wins over a whole
    /// value of the same group, which its next write deletes.
    fn finish(mut self) -> Result<Self, StoreError> {
        let no_chunks = HashMap::new();
        for (id, part, manifest) in std::mem::take(&mut self.manifests) {
            let chunks = self.chunks.get(&id).unwrap_or(&no_chunks);
            let value = manifest.assemble(|h| chunks.get(h))?;
            let entry = self.groups.entry(id).or_default();
            match part {
                Part::Base => entry.base = Some(value),
                Part::Tree => entry.tree = Some(value),
            }
            entry.stored(part).manifest = Some(manifest);
        }
        Ok(self)
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

    /// Loads entries previously drained with [`MemoryStore::take_changes`],
    /// in any order. A chunk that is missing or does not match its manifest,
    /// or a value that does not decode, is an error and loads nothing.
    pub fn restore(
        &self,
        entries: impl IntoIterator<Item = (StateKey, Zeroizing<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let mut restoring = Restoring::default();
        for (key, value) in entries {
            restoring.add(key, value)?;
        }
        let restored = restoring.finish()?;
        let mut inner = self.lock();
        inner.groups.extend(restored.groups);
        inner.key_packages.extend(restored.key_packages);
        Ok(())
    }

    /// Every write since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<StateChange> {
        std::mem::take(&mut self.lock().journal.changes)
    }

    /// Bytes of state values written (journaled as [`StateChange::Put`])
    /// since this store was made: what the caller's database receives.
    pub fn bytes_written(&self) -> u64 {
        self.lock().journal.written
    }

    /// Whether writes are waiting to be drained.
    pub fn has_changes(&self) -> bool {
        !self.lock().journal.changes.is_empty()
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
        let Inner {
            groups, journal, ..
        } = &mut *inner;
        let entry = groups.entry(group_id.to_vec()).or_default();
        entry.put_chunked(group_id, Part::Tree, &tree, journal);
        entry.tree = Some(tree);
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
        inner
            .journal
            .put(StateKey::Refused(group_id.to_vec()), value);
    }

    pub(crate) fn delete_group(&self, group_id: &[u8]) {
        let mut inner = self.lock();
        let Some(entry) = inner.groups.remove(group_id) else {
            return;
        };
        let id = group_id.to_vec();
        let journal = &mut inner.journal;
        // The whole-value keys of earlier releases too, whether or not this
        // device still had them.
        journal.delete(StateKey::Group(id.clone()));
        journal.delete(StateKey::Tree(id.clone()));
        journal.delete(StateKey::GroupTail(id.clone()));
        for part in [Part::Base, Part::Tree] {
            journal.delete(part.manifest_key(&id));
        }
        for h in entry.chunks {
            journal.delete(StateKey::Chunk(id.clone(), h));
        }
        if entry.refused.is_some() {
            journal.delete(StateKey::Refused(id.clone()));
        }
        for epoch in entry.epochs.keys() {
            journal.delete(StateKey::Epoch(id.clone(), *epoch));
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
        let Inner {
            groups, journal, ..
        } = &mut *inner;
        let id = state.id;
        let entry = groups.entry(id.clone()).or_default();
        let new_base = entry.new_base(&state.data);
        let cut = new_base.unwrap_or_else(|| entry.base.as_ref().map_or(0, |b| b.len()));
        if let Some(cut) = new_base {
            let base = Zeroizing::new(state.data[..cut].to_vec());
            entry.put_chunked(&id, Part::Base, &base, journal);
            entry.base = Some(base);
        }
        entry.convert_whole(&id, journal);
        let tail = Zeroizing::new(state.data[cut..].to_vec());
        entry.tail = tail.clone();
        journal.put(StateKey::GroupTail(id.clone()), tail);
        for record in epoch_inserts.into_iter().chain(epoch_updates) {
            entry.epochs.insert(record.id, record.data.clone());
            journal.put(StateKey::Epoch(id.clone(), record.id), record.data);
        }
        if let Some(&newest) = entry.epochs.keys().next_back() {
            let keep_from = newest.saturating_sub(EPOCH_RETENTION - 1);
            let old: Vec<u64> = entry.epochs.range(..keep_from).map(|(e, _)| *e).collect();
            for e in old {
                entry.epochs.remove(&e);
                journal.delete(StateKey::Epoch(id.clone(), e));
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
            inner.journal.delete(StateKey::KeyPackage(id.to_vec()));
        }
        Ok(())
    }

    fn insert(&mut self, id: Vec<u8>, pkg: KeyPackageData) -> Result<(), Self::Error> {
        let encoded = pkg
            .mls_encode_to_vec()
            .map_err(|_| StoreError::CorruptKeyPackage)?;
        let mut inner = self.lock();
        inner.key_packages.insert(id.clone(), pkg);
        inner
            .journal
            .put(StateKey::KeyPackage(id), Zeroizing::new(encoded));
        Ok(())
    }

    fn get(&self, id: &[u8]) -> Result<Option<KeyPackageData>, Self::Error> {
        Ok(self.lock().key_packages.get(id).cloned())
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
