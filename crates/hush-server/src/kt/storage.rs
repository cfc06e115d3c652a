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
//! Big-endian integers; a node label is `len: u32 || val: [u8; 32]`.
//!
//! ```text
//! aZKS:  0x01 (format) 0x01 (aZKS) latest_epoch: u64 num_nodes: u64
//! node:  0x01 (format) 0x02 (node) label flags: u8 latest [previous]
//!        flags: bit 0 a previous node follows; bit 1 (2) the latest
//!        (previous) node's label differs from the record's and is written
//! node body: [label] last_epoch: u64 min_descendant_epoch: u64 parent
//!        node_type: u8 (1 leaf, 2 root, 3 interior) children: u8 (bit 0
//!        left, bit 1 right) [left] [right] hash: [u8; 32]
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
const FLAG_PREVIOUS_LABEL: u8 = 4;
const CHILD_LEFT: u8 = 1;
const CHILD_RIGHT: u8 = 2;
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
}

impl std::fmt::Debug for KtDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KtDatabase").finish_non_exhaustive()
    }
}

impl KtDatabase {
    /// akd's storage on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
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
    out.extend_from_slice(&label.label_len.to_be_bytes());
    out.extend_from_slice(&label.label_val);
}

fn put_node(out: &mut Vec<u8>, node: &TreeNode, with_label: bool) {
    if with_label {
        put_label(out, &node.label);
    }
    out.extend_from_slice(&node.last_epoch.to_be_bytes());
    out.extend_from_slice(&node.min_descendant_epoch.to_be_bytes());
    put_label(out, &node.parent);
    out.push(match node.node_type {
        TreeNodeType::Leaf => 1,
        TreeNodeType::Root => 2,
        TreeNodeType::Interior => 3,
    });
    let mut children = 0;
    if node.left_child.is_some() {
        children |= CHILD_LEFT;
    }
    if node.right_child.is_some() {
        children |= CHILD_RIGHT;
    }
    out.push(children);
    if let Some(l) = &node.left_child {
        put_label(out, l);
    }
    if let Some(r) = &node.right_child {
        put_label(out, r);
    }
    out.extend_from_slice(&node.hash.0);
}

/// Encodes an aZKS header or a tree node (format 1); value states are not
/// encoded (they are stored column by column).
pub fn encode_record(record: &DbRecord) -> Option<Vec<u8>> {
    match record {
        DbRecord::Azks(azks) => {
            let mut out = Vec::with_capacity(18);
            out.extend_from_slice(&[FORMAT, TAG_AZKS]);
            out.extend_from_slice(&azks.latest_epoch.to_be_bytes());
            out.extend_from_slice(&azks.num_nodes.to_be_bytes());
            Some(out)
        }
        DbRecord::TreeNode(node) => {
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(&[FORMAT, TAG_NODE]);
            put_label(&mut out, &node.label);
            let latest_label = node.latest_node.label != node.label;
            let previous_label = node
                .previous_node
                .as_ref()
                .is_some_and(|p| p.label != node.label);
            let mut flags = 0;
            if node.previous_node.is_some() {
                flags |= FLAG_PREVIOUS;
            }
            if latest_label {
                flags |= FLAG_LATEST_LABEL;
            }
            if previous_label {
                flags |= FLAG_PREVIOUS_LABEL;
            }
            out.push(flags);
            put_node(&mut out, &node.latest_node, latest_label);
            if let Some(p) = &node.previous_node {
                put_node(&mut out, p, previous_label);
            }
            Some(out)
        }
        DbRecord::ValueState(_) => None,
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

    fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn label(&mut self) -> Result<NodeLabel, StorageError> {
        let len = self.u32()?;
        if len > MAX_LABEL_BITS {
            return Err(corrupt("label longer than 256 bits"));
        }
        Ok(NodeLabel::new(self.array()?, len))
    }

    fn node(&mut self, label: Option<NodeLabel>) -> Result<TreeNode, StorageError> {
        let label = match label {
            Some(l) => l,
            None => self.label()?,
        };
        let last_epoch = self.u64()?;
        let min_descendant_epoch = self.u64()?;
        let parent = self.label()?;
        let node_type = match self.u8()? {
            1 => TreeNodeType::Leaf,
            2 => TreeNodeType::Root,
            3 => TreeNodeType::Interior,
            _ => return Err(corrupt("unknown node type")),
        };
        let children = self.u8()?;
        if children & !(CHILD_LEFT | CHILD_RIGHT) != 0 {
            return Err(corrupt("unknown child flags"));
        }
        let left_child = if children & CHILD_LEFT != 0 {
            Some(self.label()?)
        } else {
            None
        };
        let right_child = if children & CHILD_RIGHT != 0 {
            Some(self.label()?)
        } else {
            None
        };
        let hash = AzksValue(self.array()?);
        Ok(TreeNode {
            label,
            last_epoch,
            min_descendant_epoch,
            parent,
            node_type,
            left_child,
            right_child,
            hash,
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
            if flags & !(FLAG_PREVIOUS | FLAG_LATEST_LABEL | FLAG_PREVIOUS_LABEL) != 0 {
                return Err(corrupt("unknown node flags"));
            }
            let latest_node = r.node((flags & FLAG_LATEST_LABEL == 0).then_some(label))?;
            let previous_node = if flags & FLAG_PREVIOUS != 0 {
                Some(r.node((flags & FLAG_PREVIOUS_LABEL == 0).then_some(label))?)
            } else if flags & FLAG_PREVIOUS_LABEL != 0 {
                return Err(corrupt("label flag without a previous node"));
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
                other => {
                    let key = other.get_full_binary_id();
                    if let Some(data) = encode_record(&other) {
                        rows.push(KtRecord { key, data });
                    }
                }
            }
        }
        if rows.is_empty() && states.is_empty() {
            return Ok(());
        }
        self.store
            .kt_write(rows, states)
            .await
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

    fn samples() -> Vec<DbRecord> {
        let l = label(1, 256);
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
            // Labels that differ from the record's are kept.
            DbRecord::TreeNode(TreeNodeWithPreviousValue {
                label: l,
                latest_node: node(label(2, 8), (false, false)),
                previous_node: Some(node(label(3, 0), (true, true))),
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
        for (at, v) in [(0, 2), (1, 9), (38, 0x80)] {
            let mut b = bytes.clone();
            b[at] = v;
            assert!(decode_record(&b).is_err(), "byte {at} = {v}");
        }
        // A label length over 256 bits.
        let mut b = bytes.clone();
        b[2..6].copy_from_slice(&257u32.to_be_bytes());
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
