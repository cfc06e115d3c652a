//! akd's storage on the server's own database: [`KtDatabase`] implements
//! [`akd::storage::Database`] (and [`StorageUtil`]) over any [`Store`], so the
//! key-transparency directory lives in SQLite or PostgreSQL with everything
//! else, and survives restarts.
//!
//! Three kinds of record, three tables (see `docs/what-the-server-knows.md`):
//!
//! - the aZKS header and the tree nodes go to `kt_records`, keyed by akd's
//!   binary id, in the compact versioned encoding below;
//! - value states (username -> value from an epoch on) go to
//!   `kt_value_states`, one column per field, so the lookups akd makes
//!   ([`ValueStateRetrievalFlag`]) are indexed SQL;
//! - the signed epoch roots (not akd's: the server's) go to `kt_roots`
//!   through [`Store::kt_put_root`] and friends.
//!
//! # Record encoding (format 1)
//!
//! Big-endian integers. A node label is `len: u16` then, when bit 15 of
//! `len` is clear, the `ceil(len / 8)` bytes that can be non-zero (akd zeroes
//! the bits past a label's length), or when it is set, all 32 bytes; the
//! length itself is `len & 0x7fff`, at most 256. An optional label is a
//! presence byte (0 or 1) and the label.
//!
//! ```text
//! aZKS:  0x01 (format) 0x01 (aZKS) latest_epoch: u64 num_nodes: u64
//! node:  0x01 (format) 0x02 (node) label flags: u8 latest [previous]
//!        flags: bit 0 a previous node follows; bit 1 the latest node's
//!        label differs from the record's and is written
//! latest: [label] last_epoch: u64 min_descendant_epoch: u64 parent
//!        node_type: u8 (1 leaf, 2 root, 3 interior) left: opt right: opt
//!        hash: [u8; 32]
//! previous: differs: u8 (bit 0 label, 1 parent, 2 node_type, 3 left,
//!        4 right: the fields that differ from the latest node's, written;
//!        the others are the latest node's) [label] last_epoch
//!        min_descendant_epoch [parent] [node_type] [left] [right] hash
//! ```
//!
//! Decoding reads bytes from disk: it is bounded (fixed-size fields only),
//! rejects unknown formats, types, flags, label lengths over 256 bits and
//! trailing bytes, and never panics; a bad record is a [`StorageError`].

use std::collections::HashMap;
use std::sync::Arc;

use akd::errors::StorageError;
use akd::storage::types::{
    DbRecord, KeyData, StorageType, ValueState, ValueStateKey, ValueStateRetrievalFlag,
};
use akd::storage::{Database, DbSetState, Storable, StorageUtil};
use akd::tree_node::{TreeNode, TreeNodeType, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue, AzksValue, NodeLabel};
use async_trait::async_trait;

use crate::store::{KtRecord, KtStateQuery, KtValueState, Store, StoreError};

/// The record encoding written by this version.
const FORMAT: u8 = 1;
const TAG_AZKS: u8 = 1;
const TAG_NODE: u8 = 2;
const FLAG_PREVIOUS: u8 = 1;
const FLAG_LATEST_LABEL: u8 = 2;
const DIFF_LABEL: u8 = 1;
const DIFF_PARENT: u8 = 2;
const DIFF_TYPE: u8 = 4;
const DIFF_LEFT: u8 = 8;
const DIFF_RIGHT: u8 = 16;
/// Bit 15 of a label's length: all 32 bytes follow.
const LABEL_FULL: u16 = 0x8000;
/// The longest node label akd uses, in bits.
const MAX_LABEL_BITS: u32 = 256;

/// akd's [`Database`] on the server's [`Store`]. Cheap to clone.
///
/// Every [`Database::batch_set`] is one [`Store::kt_write`], one
/// transaction: akd's publish writes all its changed nodes, value states and
/// the new aZKS header at once, so a crash leaves either the old epoch or the
/// new one.
#[derive(Clone)]
pub struct KtDatabase {
    store: Arc<dyn Store>,
    /// While set, every write is fenced by this lease (the publisher's).
    fence: Arc<std::sync::Mutex<Option<crate::store::Fence>>>,
}

impl std::fmt::Debug for KtDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KtDatabase").finish_non_exhaustive()
    }
}

impl KtDatabase {
    /// akd's storage on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            fence: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Fences every write from now on by `fence` (a lease this process
    /// holds), or stops fencing with `None`: a write whose lease was taken
    /// over is refused and writes nothing.
    pub fn set_fence(&self, fence: Option<crate::store::Fence>) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = fence;
    }

    fn current_fence(&self) -> Option<crate::store::Fence> {
        self.fence.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn storage_error(e: StoreError) -> StorageError {
    StorageError::Connection(e.to_string())
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Other(format!("corrupt key-transparency record: {what}"))
}

// ------------------------------------------------------------------ encoding

fn put_label(out: &mut Vec<u8>, label: &NodeLabel) {
    // Lengths are at most 256 (akd's labels are 256-bit hashes).
    let len = u16::try_from(label.label_len.min(MAX_LABEL_BITS)).unwrap_or(256);
    let used = usize::from(len).div_ceil(8);
    let (head, tail) = label.label_val.split_at(used.min(32));
    if label.label_len <= MAX_LABEL_BITS && tail.iter().all(|b| *b == 0) {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(head);
    } else {
        // Not a canonical label: keep every byte.
        out.extend_from_slice(&(len | LABEL_FULL).to_be_bytes());
        out.extend_from_slice(&label.label_val);
    }
}

fn put_opt_label(out: &mut Vec<u8>, label: Option<&NodeLabel>) {
    match label {
        Some(l) => {
            out.push(1);
            put_label(out, l);
        }
        None => out.push(0),
    }
}

fn node_type_code(t: TreeNodeType) -> u8 {
    match t {
        TreeNodeType::Leaf => 1,
        TreeNodeType::Root => 2,
        TreeNodeType::Interior => 3,
    }
}

fn put_latest(out: &mut Vec<u8>, node: &TreeNode, with_label: bool) {
    if with_label {
        put_label(out, &node.label);
    }
    out.extend_from_slice(&node.last_epoch.to_be_bytes());
    out.extend_from_slice(&node.min_descendant_epoch.to_be_bytes());
    put_label(out, &node.parent);
    out.push(node_type_code(node.node_type));
    put_opt_label(out, node.left_child.as_ref());
    put_opt_label(out, node.right_child.as_ref());
    out.extend_from_slice(&node.hash.0);
}

fn put_previous(out: &mut Vec<u8>, node: &TreeNode, latest: &TreeNode) {
    let mut differs = 0;
    if node.label != latest.label {
        differs |= DIFF_LABEL;
    }
    if node.parent != latest.parent {
        differs |= DIFF_PARENT;
    }
    if node.node_type != latest.node_type {
        differs |= DIFF_TYPE;
    }
    if node.left_child != latest.left_child {
        differs |= DIFF_LEFT;
    }
    if node.right_child != latest.right_child {
        differs |= DIFF_RIGHT;
    }
    out.push(differs);
    if differs & DIFF_LABEL != 0 {
        put_label(out, &node.label);
    }
    out.extend_from_slice(&node.last_epoch.to_be_bytes());
    out.extend_from_slice(&node.min_descendant_epoch.to_be_bytes());
    if differs & DIFF_PARENT != 0 {
        put_label(out, &node.parent);
    }
    if differs & DIFF_TYPE != 0 {
        out.push(node_type_code(node.node_type));
    }
    if differs & DIFF_LEFT != 0 {
        put_opt_label(out, node.left_child.as_ref());
    }
    if differs & DIFF_RIGHT != 0 {
        put_opt_label(out, node.right_child.as_ref());
    }
    out.extend_from_slice(&node.hash.0);
}

fn labels_of(node: &TreeNode) -> impl Iterator<Item = &NodeLabel> {
    [Some(&node.label), Some(&node.parent)]
        .into_iter()
        .chain([node.left_child.as_ref(), node.right_child.as_ref()])
        .flatten()
}

/// Encodes an aZKS header or a tree node (format 1). Value states are not
/// encoded (they are stored column by column), and a node with a label
/// longer than 256 bits (akd makes none) would not decode: both are errors.
pub fn encode_record(record: &DbRecord) -> Result<Vec<u8>, StorageError> {
    match record {
        DbRecord::Azks(azks) => {
            let mut out = Vec::with_capacity(18);
            out.extend_from_slice(&[FORMAT, TAG_AZKS]);
            out.extend_from_slice(&azks.latest_epoch.to_be_bytes());
            out.extend_from_slice(&azks.num_nodes.to_be_bytes());
            Ok(out)
        }
        DbRecord::TreeNode(node) => {
            // A label longer than akd's 256 bits cannot be decoded: refuse
            // to write it rather than store what cannot be read back.
            let too_long = std::iter::once(&node.label)
                .chain(labels_of(&node.latest_node))
                .chain(node.previous_node.iter().flat_map(labels_of))
                .any(|l| l.label_len > MAX_LABEL_BITS);
            if too_long {
                return Err(StorageError::Other(
                    "a tree node label is longer than 256 bits".into(),
                ));
            }
            let mut out = Vec::with_capacity(160);
            out.extend_from_slice(&[FORMAT, TAG_NODE]);
            put_label(&mut out, &node.label);
            let latest_label = node.latest_node.label != node.label;
            let mut flags = 0;
            if node.previous_node.is_some() {
                flags |= FLAG_PREVIOUS;
            }
            if latest_label {
                flags |= FLAG_LATEST_LABEL;
            }
            out.push(flags);
            put_latest(&mut out, &node.latest_node, latest_label);
            if let Some(p) = &node.previous_node {
                put_previous(&mut out, p, &node.latest_node);
            }
            Ok(out)
        }
        DbRecord::ValueState(_) => Err(StorageError::Other(
            "value states are stored column by column, not encoded".into(),
        )),
    }
}

/// A cursor over stored bytes: every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        self.take(N)?.try_into().map_err(|_| corrupt("truncated"))
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn label(&mut self) -> Result<NodeLabel, StorageError> {
        let raw = u16::from_be_bytes(self.array()?);
        let len = raw & !LABEL_FULL;
        if u32::from(len) > MAX_LABEL_BITS {
            return Err(corrupt("label longer than 256 bits"));
        }
        let mut val = [0u8; 32];
        if raw & LABEL_FULL != 0 {
            val = self.array()?;
        } else {
            let used = usize::from(len).div_ceil(8);
            let bytes = self.take(used)?;
            let Some(dst) = val.get_mut(..used) else {
                return Err(corrupt("label longer than 256 bits"));
            };
            dst.copy_from_slice(bytes);
        }
        Ok(NodeLabel::new(val, u32::from(len)))
    }

    fn opt_label(&mut self) -> Result<Option<NodeLabel>, StorageError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.label()?)),
            _ => Err(corrupt("bad presence byte")),
        }
    }

    fn node_type(&mut self) -> Result<TreeNodeType, StorageError> {
        match self.u8()? {
            1 => Ok(TreeNodeType::Leaf),
            2 => Ok(TreeNodeType::Root),
            3 => Ok(TreeNodeType::Interior),
            _ => Err(corrupt("unknown node type")),
        }
    }

    fn latest(&mut self, label: Option<NodeLabel>) -> Result<TreeNode, StorageError> {
        let label = match label {
            Some(l) => l,
            None => self.label()?,
        };
        Ok(TreeNode {
            label,
            last_epoch: self.u64()?,
            min_descendant_epoch: self.u64()?,
            parent: self.label()?,
            node_type: self.node_type()?,
            left_child: self.opt_label()?,
            right_child: self.opt_label()?,
            hash: AzksValue(self.array()?),
        })
    }

    fn previous(&mut self, latest: &TreeNode) -> Result<TreeNode, StorageError> {
        let differs = self.u8()?;
        if differs & !(DIFF_LABEL | DIFF_PARENT | DIFF_TYPE | DIFF_LEFT | DIFF_RIGHT) != 0 {
            return Err(corrupt("unknown field flags"));
        }
        let label = if differs & DIFF_LABEL != 0 {
            self.label()?
        } else {
            latest.label
        };
        let last_epoch = self.u64()?;
        let min_descendant_epoch = self.u64()?;
        let parent = if differs & DIFF_PARENT != 0 {
            self.label()?
        } else {
            latest.parent
        };
        let node_type = if differs & DIFF_TYPE != 0 {
            self.node_type()?
        } else {
            latest.node_type
        };
        let left_child = if differs & DIFF_LEFT != 0 {
            self.opt_label()?
        } else {
            latest.left_child
        };
        let right_child = if differs & DIFF_RIGHT != 0 {
            self.opt_label()?
        } else {
            latest.right_child
        };
        Ok(TreeNode {
            label,
            last_epoch,
            min_descendant_epoch,
            parent,
            node_type,
            left_child,
            right_child,
            hash: AzksValue(self.array()?),
        })
    }
}

/// Decodes what [`encode_record`] wrote; any other bytes are an error.
pub fn decode_record(bytes: &[u8]) -> Result<DbRecord, StorageError> {
    let mut r = Reader { bytes };
    if r.u8()? != FORMAT {
        return Err(corrupt("unknown format"));
    }
    let record = match r.u8()? {
        TAG_AZKS => DbRecord::Azks(DbRecord::build_azks(r.u64()?, r.u64()?)),
        TAG_NODE => {
            let label = r.label()?;
            let flags = r.u8()?;
            if flags & !(FLAG_PREVIOUS | FLAG_LATEST_LABEL) != 0 {
                return Err(corrupt("unknown node flags"));
            }
            let latest_node = r.latest((flags & FLAG_LATEST_LABEL == 0).then_some(label))?;
            let previous_node = if flags & FLAG_PREVIOUS != 0 {
                Some(r.previous(&latest_node)?)
            } else {
                None
            };
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label,
                latest_node,
                previous_node,
            })
        }
        _ => return Err(corrupt("unknown record type")),
    };
    if !r.bytes.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(record)
}

fn to_row(state: ValueState) -> KtValueState {
    KtValueState {
        username: state.username.0,
        epoch: state.epoch,
        version: state.version,
        node_label_len: state.label.label_len,
        node_label: state.label.label_val,
        value: state.value.0,
    }
}

fn from_row(row: KtValueState) -> Result<ValueState, StorageError> {
    if row.node_label_len > MAX_LABEL_BITS {
        return Err(corrupt("value state label longer than 256 bits"));
    }
    Ok(DbRecord::build_user_state(
        row.username,
        row.value,
        row.version,
        row.node_label_len,
        row.node_label,
        row.epoch,
    ))
}

fn query_of(flag: ValueStateRetrievalFlag) -> KtStateQuery {
    match flag {
        ValueStateRetrievalFlag::SpecificVersion(v) => KtStateQuery::Version(v),
        ValueStateRetrievalFlag::SpecificEpoch(e) => KtStateQuery::Epoch(e),
        ValueStateRetrievalFlag::LeqEpoch(e) => KtStateQuery::AtOrBefore(e),
        ValueStateRetrievalFlag::MaxEpoch => KtStateQuery::Latest,
        ValueStateRetrievalFlag::MinEpoch => KtStateQuery::Earliest,
    }
}

/// A decoded record must be of the type asked for.
fn expect_type<St: Storable>(record: DbRecord) -> Result<DbRecord, StorageError> {
    let actual = match &record {
        DbRecord::Azks(_) => StorageType::Azks,
        DbRecord::TreeNode(_) => StorageType::TreeNode,
        DbRecord::ValueState(_) => StorageType::ValueState,
    };
    if actual == St::data_type() {
        Ok(record)
    } else {
        Err(corrupt("record of another type under this key"))
    }
}

fn value_state_key(bin: &[u8]) -> Result<ValueStateKey, StorageError> {
    ValueState::key_from_full_binary(bin).map_err(StorageError::Other)
}

#[async_trait]
impl Database for KtDatabase {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        _state: DbSetState,
    ) -> Result<(), StorageError> {
        let mut rows = Vec::new();
        let mut states = Vec::new();
        for record in records {
            match record {
                DbRecord::ValueState(s) => states.push(to_row(s)),
                other => rows.push(KtRecord {
                    key: other.get_full_binary_id(),
                    data: encode_record(&other)?,
                }),
            }
        }
        if rows.is_empty() && states.is_empty() {
            return Ok(());
        }
        match self.current_fence() {
            Some(fence) => self.store.kt_write_fenced(rows, states, fence).await,
            None => self.store.kt_write(rows, states).await,
        }
        .map_err(storage_error)
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let found = self.batch_get::<St>(std::slice::from_ref(id)).await?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| StorageError::NotFound(format!("{:?} {id:?}", St::data_type())))
    }

    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if St::data_type() == StorageType::ValueState {
            let keys = ids
                .iter()
                .map(|id| {
                    let ValueStateKey(username, epoch) =
                        value_state_key(&St::get_full_binary_key_id(id))?;
                    Ok((username, epoch))
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            let rows = self.store.kt_states(&keys).await.map_err(storage_error)?;
            return rows
                .into_iter()
                .map(|row| from_row(row).map(DbRecord::ValueState))
                .collect();
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(St::get_full_binary_key_id).collect();
        let rows = self.store.kt_records(&keys).await.map_err(storage_error)?;
        rows.into_iter()
            .map(|row| decode_record(&row.data).and_then(expect_type::<St>))
            .collect()
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let rows = self
            .store
            .kt_user_states(&username.0)
            .await
            .map_err(storage_error)?;
        if rows.is_empty() {
            return Err(StorageError::NotFound(format!("ValueState {username:?}")));
        }
        let states = rows.into_iter().map(from_row).collect::<Result<_, _>>()?;
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        let rows = self
            .store
            .kt_user_state(std::slice::from_ref(&username.0), query_of(flag))
            .await
            .map_err(storage_error)?;
        match rows.into_iter().next() {
            Some(row) => from_row(row),
            None => Err(StorageError::NotFound(format!("ValueState {username:?}"))),
        }
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        let names: Vec<Vec<u8>> = usernames.iter().map(|u| u.0.clone()).collect();
        let rows = self
            .store
            .kt_user_state(&names, query_of(flag))
            .await
            .map_err(storage_error)?;
        Ok(rows
            .into_iter()
            .map(|row| (AkdLabel(row.username), (row.version, AkdValue(row.value))))
            .collect())
    }
}

#[async_trait]
impl StorageUtil for KtDatabase {
    async fn batch_get_type_direct<St: Storable>(&self) -> Result<Vec<DbRecord>, StorageError> {
        Ok(self
            .batch_get_all_direct()
            .await?
            .into_iter()
            .filter(|record| {
                St::data_type()
                    == match record {
                        DbRecord::Azks(_) => StorageType::Azks,
                        DbRecord::TreeNode(_) => StorageType::TreeNode,
                        DbRecord::ValueState(_) => StorageType::ValueState,
                    }
            })
            .collect())
    }

    async fn batch_get_all_direct(&self) -> Result<Vec<DbRecord>, StorageError> {
        let (records, states) = self.store.kt_dump().await.map_err(storage_error)?;
        let mut out = Vec::with_capacity(records.len() + states.len());
        for r in records {
            out.push(decode_record(&r.data)?);
        }
        for s in states {
            out.push(DbRecord::ValueState(from_row(s)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(b: u8, len: u32) -> NodeLabel {
        NodeLabel::new([b; 32], len)
    }

    fn node(l: NodeLabel, children: (bool, bool)) -> TreeNode {
        TreeNode {
            label: l,
            last_epoch: 7,
            min_descendant_epoch: 3,
            parent: label(9, 1),
            node_type: TreeNodeType::Interior,
            left_child: children.0.then(|| label(4, 2)),
            right_child: children.1.then(|| label(5, 2)),
            hash: AzksValue([6; 32]),
        }
    }

    fn prefix(first: u8) -> [u8; 32] {
        let mut v = [0; 32];
        v[0] = first;
        v[1] = 0x5a;
        v
    }

    fn samples() -> Vec<DbRecord> {
        let l = label(1, 256);
        let short = NodeLabel::new(prefix(0xc0), 14);
        vec![
            DbRecord::Azks(DbRecord::build_azks(12, 345)),
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label: l,
                latest_node: node(l, (true, true)),
                previous_node: None,
            }),
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label: l,
                latest_node: node(l, (false, true)),
                previous_node: Some(node(l, (true, false))),
            }),
            // Labels that differ from the record's are kept, and so are
            // non-canonical labels (bytes set past the length).
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label: l,
                latest_node: node(label(2, 8), (false, false)),
                previous_node: Some(node(label(3, 0), (true, true))),
            }),
            // Short canonical labels, and a previous node differing in every field.
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label: short,
                latest_node: TreeNode {
                    label: short,
                    last_epoch: 9,
                    min_descendant_epoch: 1,
                    parent: NodeLabel::new([0; 32], 0),
                    node_type: TreeNodeType::Interior,
                    left_child: Some(NodeLabel::new(prefix(0x80), 9)),
                    right_child: None,
                    hash: AzksValue([1; 32]),
                },
                previous_node: Some(TreeNode {
                    label: NodeLabel::new(prefix(0x40), 3),
                    last_epoch: 2,
                    min_descendant_epoch: 2,
                    parent: short,
                    node_type: TreeNodeType::Leaf,
                    left_child: None,
                    right_child: Some(l),
                    hash: AzksValue([2; 32]),
                }),
            }),
        ]
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            let bytes = encode_record(&record).unwrap();
            assert_eq!(decode_record(&bytes).unwrap(), record);
        }
    }

    #[test]
    fn unencodable_records_are_errors() {
        let mut too_long = label(1, 256);
        too_long.label_len = 257;
        let record = DbRecord::TreeNode(TreeNodeWithPreviousValue {
            label: label(1, 256),
            latest_node: node(too_long, (false, false)),
            previous_node: None,
        });
        assert!(encode_record(&record).is_err());
        let state = DbRecord::build_user_state(b"u".to_vec(), b"v".to_vec(), 1, 256, [0; 32], 1);
        assert!(encode_record(&DbRecord::ValueState(state)).is_err());
    }

    #[test]
    fn short_labels_are_short() {
        // Format, tag, the 14-bit label in 2 + 2 bytes, ...
        let bytes = encode_record(&samples()[4]).unwrap();
        assert_eq!(&bytes[2..6], &[0, 14, 0xc0, 0x5a]);
        assert!(bytes.len() < 200, "{}", bytes.len());
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        for record in samples() {
            let bytes = encode_record(&record).unwrap();
            for n in 0..bytes.len() {
                assert!(decode_record(&bytes[..n]).is_err(), "prefix {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_record(&longer).is_err());
        }
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let bytes = encode_record(&samples()[2]).unwrap();
        // Unknown format, type, flags.
        for (at, v) in [(0, 2), (1, 9), (36, 0x80)] {
            let mut b = bytes.clone();
            b[at] = v;
            assert!(decode_record(&b).is_err(), "byte {at} = {v}");
        }
        // A label length over 256 bits.
        let mut b = bytes.clone();
        b[2..4].copy_from_slice(&257u16.to_be_bytes());
        assert!(decode_record(&b).is_err());
        // Every single-byte change decodes or fails, never panics.
        for at in 0..bytes.len() {
            for v in [0u8, 1, 3, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[at] = v;
                let _ = decode_record(&b);
            }
        }
    }
}
