//! Big groups: the ratchet tree out of band, add-only commits without a
//! path, and the largest group Hush supports.
//!
//! A Welcome normally carries the new ratchet tree in-band (RFC 9420
//! `ratchet_tree` extension). A hybrid-suite leaf is about 1.6 KB (its
//! X-Wing key alone is 1216 bytes), so the tree of a group of a few hundred
//! devices no longer fits the 512 KiB message limit. Above
//! [`BIG_GROUP_LEAVES`] leaves the tree travels out of band, as RFC 9420
//! section 12.4.3.3 allows: the committer seals the new tree under a fresh
//! random key, padded to the size of a blob slot the caller reserved on the
//! server, and puts the slot's id, the key and the size into the Welcome's
//! encrypted GroupInfo (extension [`TREE_BLOB_EXTENSION`]). Only the invited
//! devices can read them. A joiner fetches the blob, opens it (AES-256-GCM:
//! a swapped or truncated blob fails), and mls-rs checks the tree against the
//! tree hash in the signed GroupContext before it joins.
//!
//! The same threshold makes add-only commits in big groups go without an
//! update path: a path in a sparse tree is encrypted to every unmerged
//! member, which in a freshly created group of 1000 hybrid devices is over a
//! megabyte. Joiners refresh their own leaf soon after joining instead
//! ([`Conversation::self_update`]), which fills the tree in.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use mls_rs::group::{GroupContext, Roster};
use mls_rs::mls_rs_codec::MlsSize;
use mls_rs::mls_rules::{
    CommitDirection, CommitOptions, CommitSource, DefaultMlsRules, EncryptionOptions,
    ProposalBundle,
};
use mls_rs::{Extension, ExtensionList, MlsMessage, MlsRules};
use mls_rs_core::extension::ExtensionType;
use zeroize::Zeroizing;

use crate::Timestamp;
use crate::codec::{DecodeError, Reader, Writer};
use crate::conversation::{Conversation, PendingCommit};
use crate::error::ProtoError;

/// The GroupInfo extension (Welcome only) that says where the tree is.
pub const TREE_BLOB_EXTENSION: ExtensionType = ExtensionType::new(0xF0A7);
/// Groups of more leaves are "big": their Welcomes carry no tree and their
/// add-only commits no path. 64 hybrid leaves with full paths are about
/// 190 KB of tree, well under the message limit with the joiners' secrets.
pub const BIG_GROUP_LEAVES: usize = 64;
/// The largest group Hush supports, in devices (leaves): a send reaches at
/// most this many devices (`hush_wire::limits::MAX_RECIPIENTS`).
pub const MAX_GROUP_DEVICES: usize = 5000;
/// In a big group, one joiner in this many self-updates right after
/// joining: the one whose leaf index is a multiple of it.
pub const SELF_UPDATE_STRIDE: u32 = 16;

/// Whether the device at `leaf` self-updates right after joining a group of
/// `leaves` leaves. In a small group every joiner does. In a big group the
/// tree starts blank above the leaves (add-only commits carry no path), and
/// if every joiner updated, each of N members would process N commits, the
/// first ones each encrypted to nearly every leaf. One joiner per block of
/// [`SELF_UPDATE_STRIDE`] leaves fills every parent node above the blocks;
/// a later commit then encrypts to about log2(N) nodes plus the blank part
/// of its own block, at 1/16 of the commits.
pub fn self_updates_after_join(leaf: u32, leaves: usize) -> bool {
    leaves <= BIG_GROUP_LEAVES || leaf.is_multiple_of(SELF_UPDATE_STRIDE)
}
/// Most devices one commit adds: the add proposals carry whole KeyPackages
/// (a hybrid one is about 2.7 KB) and the Welcome one HPKE ciphertext per
/// added device (about 1.2 KB), both under the 512 KiB message limit.
pub const MAX_ADDS_PER_COMMIT: usize = 100;
/// Most KeyPackage bytes one commit adds.
pub const MAX_ADD_BYTES_PER_COMMIT: usize = 320 * 1024;
/// The largest tree blob a joiner fetches (a full hybrid tree of
/// [`MAX_GROUP_DEVICES`] leaves is about 15 MB).
pub const MAX_TREE_BLOB_LEN: u64 = 32 * 1024 * 1024;
/// Longest blob id in a pointer.
const MAX_BLOB_ID_LEN: usize = 64;
const POINTER_VERSION: u8 = 1;
const AAD_LABEL: &[u8] = b"hush ratchet tree v1";
const TAG_LEN: u64 = 16;

/// Whether the tree of a group of `leaves` devices goes in the Welcome.
pub fn tree_in_welcome(leaves: usize) -> bool {
    leaves <= BIG_GROUP_LEAVES
}

/// What one send may store in all on a server with default settings
/// (`--max-send-bytes`, 256 MiB), less room for padding: an add commit goes
/// to every member, so in a big group it must be smaller.
pub const SEND_BUDGET: usize = 200 * 1024 * 1024;

/// Splits KeyPackages into the batches one commit each can add to a group
/// of `members` devices: at most [`MAX_ADDS_PER_COMMIT`] devices and
/// [`MAX_ADD_BYTES_PER_COMMIT`] bytes, and small enough that the commit times
/// the members it goes to stays within [`SEND_BUDGET`].
pub fn add_batches(key_packages: &[Vec<u8>], members: usize) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let mut members = members.max(1);
    for (i, kp) in key_packages.iter().enumerate() {
        let budget = MAX_ADD_BYTES_PER_COMMIT.min(SEND_BUDGET / members);
        let full = i - start >= MAX_ADDS_PER_COMMIT || bytes + kp.len() > budget;
        if full && i > start {
            out.push(&key_packages[start..i]);
            members += i - start;
            start = i;
            bytes = 0;
        }
        bytes += kp.len();
    }
    if start < key_packages.len() {
        out.push(&key_packages[start..]);
    }
    out
}

/// A blob slot the caller reserved on the server for a commit's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSlot {
    /// The server's blob id.
    pub blob_id: String,
    /// Its size, as returned by [`Conversation::tree_blob_len`].
    pub len: u64,
}

/// Where a Welcome's tree is, as a joiner reads it (the key stays inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRef {
    /// The server's blob id (checked: letters, digits, `-` and `_`).
    pub blob_id: String,
    /// The blob's exact size in bytes.
    pub len: u64,
}

/// The sealed tree of a commit, to upload into its slot before the Welcome
/// is sent.
#[derive(Clone)]
pub struct TreeBlob {
    /// The slot's blob id.
    pub blob_id: String,
    /// Exactly the slot's size.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for TreeBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeBlob")
            .field("blob_id", &self.blob_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

struct Pointer {
    blob_id: String,
    key: Zeroizing<[u8; 32]>,
    len: u64,
}

impl Pointer {
    fn to_extension(&self) -> Extension {
        let mut w = Writer::new();
        w.u8(POINTER_VERSION)
            .bytes(self.blob_id.as_bytes())
            .raw(self.key.as_slice())
            .u64(self.len);
        Extension::new(TREE_BLOB_EXTENSION, w.into_bytes())
    }

    fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let version = r.u8()?;
        if version != POINTER_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let blob_id = read_blob_id(&mut r, "tree blob id")?;
        let key = Zeroizing::new(r.array::<32>()?);
        let len = r.u64()?;
        r.finish()?;
        if !(TAG_LEN + 4..=MAX_TREE_BLOB_LEN).contains(&len) {
            return Err(DecodeError::Invalid {
                field: "tree blob size",
                reason: "out of range",
            });
        }
        Ok(Self { blob_id, key, len })
    }

    fn aead(&self) -> Result<LessSafeKey, ProtoError> {
        UnboundKey::new(&AES_256_GCM, self.key.as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| ProtoError::InvalidRequest("tree key"))
    }
}

/// A blob store id (letters, digits, `-` and `_`, at most 64 bytes), as a
/// tree or commit pointer names it.
pub(crate) fn read_blob_id(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let id = r.string(field, MAX_BLOB_ID_LEN)?.to_owned();
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(DecodeError::Invalid {
            field,
            reason: "not a blob id",
        });
    }
    Ok(id)
}

fn aad(group_id: &[u8], epoch: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(AAD_LABEL).bytes(group_id).u64(epoch);
    w.into_bytes()
}

/// The key is used once, so a fixed nonce is safe.
fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; 12])
}

/// Seals `tree` padded to exactly `pointer.len` bytes.
fn seal(
    pointer: &Pointer,
    group_id: &[u8],
    epoch: u64,
    tree: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    let plain_len = usize::try_from(pointer.len - TAG_LEN)
        .map_err(|_| ProtoError::InvalidRequest("tree slot too large"))?;
    let tree_len =
        u32::try_from(tree.len()).map_err(|_| ProtoError::InvalidRequest("tree too large"))?;
    if tree.len() + 4 > plain_len {
        return Err(ProtoError::InvalidRequest(
            "the reserved tree slot is smaller than the tree",
        ));
    }
    let mut buf = Vec::with_capacity(plain_len + TAG_LEN as usize);
    buf.extend_from_slice(&tree_len.to_be_bytes());
    buf.extend_from_slice(tree);
    buf.resize(plain_len, 0);
    pointer
        .aead()?
        .seal_in_place_append_tag(nonce(), Aad::from(aad(group_id, epoch)), &mut buf)
        .map_err(|_| ProtoError::InvalidRequest("cannot seal the tree"))?;
    Ok(buf)
}

/// Opens a tree blob: exactly the announced size, authentic, well padded.
fn open(
    pointer: &Pointer,
    group_id: &[u8],
    epoch: u64,
    blob: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    if blob.len() as u64 != pointer.len {
        return Err(ProtoError::Tampered);
    }
    let mut buf = blob.to_vec();
    let plain = pointer
        .aead()?
        .open_in_place(nonce(), Aad::from(aad(group_id, epoch)), &mut buf)
        .map_err(|_| ProtoError::Tampered)?;
    let mut r = Reader::new(plain);
    let tree_len = r.u32()? as usize;
    let tree = r.take(tree_len)?.to_vec();
    if plain[4 + tree_len..].iter().any(|b| *b != 0) {
        return Err(ProtoError::Tampered);
    }
    Ok(tree)
}

/// Reads the tree pointer of a decrypted Welcome GroupInfo, if it has one.
pub(crate) fn pointer_of(extensions: &ExtensionList) -> Result<Option<TreeRef>, ProtoError> {
    Ok(read_pointer(extensions)?.map(|p| TreeRef {
        blob_id: p.blob_id,
        len: p.len,
    }))
}

fn read_pointer(extensions: &ExtensionList) -> Result<Option<Pointer>, ProtoError> {
    extensions
        .get(TREE_BLOB_EXTENSION)
        .map(|e| Pointer::decode(&e.extension_data).map_err(ProtoError::from))
        .transpose()
}

/// Opens the tree blob a Welcome's GroupInfo points to.
pub(crate) fn open_tree(
    extensions: &ExtensionList,
    context: &GroupContext,
    blob: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    let pointer = read_pointer(extensions)?.ok_or(ProtoError::InvalidRequest(
        "the Welcome carries no tree pointer",
    ))?;
    open(&pointer, context.group_id(), context.epoch(), blob)
}

/// Decodes a tree pointer (the extension's data) and opens `blob` with it,
/// as a joiner does. Public for the `tree_blob_open` fuzz target.
pub fn open_tree_blob(
    pointer: &[u8],
    group_id: &[u8],
    epoch: u64,
    blob: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    open(&Pointer::decode(pointer)?, group_id, epoch, blob)
}

/// Encodes a pointer and seals `tree` with it, as a committer does: returns
/// the pointer's bytes and the blob. Public for the fuzz seeds.
pub fn seal_tree_blob(
    blob_id: &str,
    key: [u8; 32],
    len: u64,
    group_id: &[u8],
    epoch: u64,
    tree: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), ProtoError> {
    let pointer = Pointer {
        blob_id: blob_id.to_owned(),
        key: Zeroizing::new(key),
        len,
    };
    let blob = seal(&pointer, group_id, epoch, tree)?;
    Ok((pointer.to_extension().extension_data, blob))
}

/// The length of a KeyPackage's leaf node, as the tree will hold it.
fn leaf_len(key_package: &[u8]) -> Result<usize, ProtoError> {
    let kp = MlsMessage::from_bytes(key_package)?
        .into_key_package()
        .ok_or(ProtoError::InvalidRequest("not a KeyPackage message"))?;
    // version + suite + init key + leaf node + extensions + signature.
    let rest = 4
        + kp.hpke_init_key.mls_encoded_len()
        + kp.extensions.mls_encoded_len()
        + kp.signature.mls_encoded_len();
    Ok(kp.mls_encoded_len().saturating_sub(rest))
}

impl Conversation {
    /// The size of the tree blob slot to reserve before adding these
    /// devices, or `None` when the tree fits in the Welcome. An upper bound:
    /// the current tree, the new leaves, a fresh path and the unmerged-leaf
    /// lists that grow.
    pub fn tree_blob_len(&self, key_packages: &[Vec<u8>]) -> Result<Option<u64>, ProtoError> {
        let leaves = self.group.roster().members_iter().count() + key_packages.len();
        if tree_in_welcome(leaves) {
            return Ok(None);
        }
        let mut bound = self.group.export_tree().to_bytes()?.len();
        for kp in key_packages {
            bound += leaf_len(kp)? + 8;
        }
        let depth = leaves.next_power_of_two().trailing_zeros() as usize + 1;
        // New blank nodes, the new leaves in unmerged lists, a full path.
        bound += 4 * leaves + 5 * key_packages.len() * depth + depth * 2048 + 4096;
        Ok(Some(bound as u64 + 4 + TAG_LEN))
    }

    /// Adds devices by their KeyPackages (RFC 9420 `MLSMessage` bytes).
    /// When the tree does not fit in the Welcome ([`Self::tree_blob_len`]
    /// is `Some`), `slot` must be a blob of that size reserved on the
    /// server: the commit's [`PendingCommit::tree_blob`] is then to be
    /// uploaded into it before the Welcome is sent.
    pub fn add_devices_via(
        &mut self,
        key_packages: &[Vec<u8>],
        now: Timestamp,
        slot: Option<&TreeSlot>,
    ) -> Result<PendingCommit, ProtoError> {
        self.add_devices_as(key_packages, now, slot, false)
    }

    /// [`Self::add_devices_via`], with the adds as proposals by reference
    /// when `by_reference`: the commit then names each add by its 32-byte
    /// reference instead of carrying the KeyPackage, so it stays small
    /// however many devices it adds. Only for a group nobody else is in yet
    /// (a successor, see [`crate::migration`]): the proposals themselves are
    /// sent to no one.
    pub(crate) fn add_devices_as(
        &mut self,
        key_packages: &[Vec<u8>],
        now: Timestamp,
        slot: Option<&TreeSlot>,
        by_reference: bool,
    ) -> Result<PendingCommit, ProtoError> {
        if key_packages.is_empty() {
            return Err(ProtoError::InvalidRequest("no devices to add"));
        }
        let members = self.group.roster().members_iter().count();
        if members + key_packages.len() > MAX_GROUP_DEVICES {
            return Err(ProtoError::GroupTooLarge {
                limit: MAX_GROUP_DEVICES,
                requested: members + key_packages.len(),
            });
        }
        let needed = self.tree_blob_len(key_packages)?;
        let pointer = match (needed, slot) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ProtoError::InvalidRequest(
                    "this group's tree must go out of band: reserve a tree slot first",
                ));
            }
            (Some(_), Some(slot)) => {
                let mut key = Zeroizing::new([0u8; 32]);
                aws_lc_rs::rand::fill(key.as_mut_slice())
                    .map_err(|_| ProtoError::InvalidRequest("no randomness"))?;
                Some(Pointer {
                    blob_id: slot.blob_id.clone(),
                    key,
                    len: slot.len,
                })
            }
        };
        let epoch = self.epoch();
        let out = self.build_adds(key_packages, now, pointer.as_ref(), by_reference);
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                self.group.clear_proposal_cache();
                return Err(e);
            }
        };
        let tree = out.ratchet_tree().map(|t| t.to_bytes()).transpose()?;
        let mut pending = self.pending(epoch, out)?;
        if let Some(p) = pointer {
            let sealed = match tree {
                Some(tree) => seal(&p, self.id(), epoch + 1, &tree),
                None => Err(ProtoError::InvalidRequest(
                    "the commit kept its tree in band",
                )),
            };
            let bytes = match sealed {
                Ok(b) => b,
                Err(e) => {
                    self.discard_commit()?;
                    return Err(e);
                }
            };
            pending.tree_blob = Some(TreeBlob {
                blob_id: p.blob_id,
                bytes,
            });
        }
        Ok(pending)
    }
}

impl Conversation {
    /// The commit of [`Self::add_devices_as`], with the tree pointer in the
    /// Welcome's GroupInfo when the tree goes out of band.
    fn build_adds(
        &mut self,
        key_packages: &[Vec<u8>],
        now: Timestamp,
        pointer: Option<&Pointer>,
        by_reference: bool,
    ) -> Result<mls_rs::group::CommitOutput, ProtoError> {
        let mut builder_adds = Vec::new();
        for kp in key_packages {
            let kp = MlsMessage::from_bytes(kp)?;
            if by_reference {
                self.group.propose_add(kp, Vec::new())?;
            } else {
                builder_adds.push(kp);
            }
        }
        let mut builder = self.group.commit_builder().commit_time(now.mls());
        for kp in builder_adds {
            builder = builder.add_member(kp)?;
        }
        if let Some(p) = pointer {
            let mut ext = ExtensionList::new();
            ext.set(p.to_extension());
            builder = builder.set_group_info_ext(ext);
        }
        Ok(builder.build()?)
    }
}

/// Hush's MLS rules: [`DefaultMlsRules`] with per-commit options that depend
/// on the group's size (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct HushRules {
    inner: DefaultMlsRules,
    /// Whether this device holds its own commits to the admin rules
    /// (decision 0032); only a test playing a modified client turns it off.
    check_own: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HushRules {
    pub(crate) fn new(check_own: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self {
            check_own,
            // Commits and proposals are encrypted too, so the server learns
            // only group id, epoch and content type; everything is padded.
            inner: DefaultMlsRules::new().with_encryption_options(EncryptionOptions::new(
                true,
                mls_rs::client_builder::PaddingMode::StepFunction,
            )),
        }
    }
}

impl MlsRules for HushRules {
    type Error = crate::conversation::NotAllowed;

    /// A commit this device builds follows the admin rules: proposals by
    /// reference it may not commit are dropped, and one by value refuses
    /// the commit. Received commits are judged after processing (see
    /// `Conversation::process_in_batch`), where a refusal can still learn
    /// the token the server now expects.
    fn filter_proposals(
        &self,
        direction: CommitDirection,
        source: CommitSource,
        current_roster: &Roster<'_>,
        context: &GroupContext,
        proposals: ProposalBundle,
    ) -> Result<ProposalBundle, Self::Error> {
        let proposals = self
            .inner
            .filter_proposals(
                direction,
                source.clone(),
                current_roster,
                context,
                proposals,
            )
            .map_err(|e| match e {})?;
        match (direction, source) {
            (CommitDirection::Send, CommitSource::ExistingMember(me))
                if self.check_own.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                crate::conversation::Authority::of(&context.extensions, current_roster)
                    .filter(me.index, proposals)
            }
            _ => Ok(proposals),
        }
    }

    fn commit_options(
        &self,
        new_roster: &Roster<'_>,
        _new_context: &GroupContext,
        proposals: &ProposalBundle,
    ) -> Result<CommitOptions, Self::Error> {
        let big = !tree_in_welcome(new_roster.members_iter().count());
        let adds_only = proposals.length() > 0
            && proposals.iter_proposals().all(|p| {
                matches!(
                    p.proposal,
                    mls_rs::group::proposal::BorrowedProposal::Add(_)
                )
            });
        Ok(CommitOptions::new()
            // Every other commit refreshes the committer's path: this keeps
            // the tree populated and gives post-compromise security.
            .with_path_required(!(big && adds_only))
            .with_ratchet_tree_extension(!big)
            .with_single_welcome_message(true))
    }

    fn encryption_options(
        &self,
        roster: &Roster<'_>,
        context: &GroupContext,
    ) -> Result<EncryptionOptions, Self::Error> {
        self.inner
            .encryption_options(roster, context)
            .map_err(|e| match e {})
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_joiner_per_block_self_updates_in_a_big_group() {
        use super::{BIG_GROUP_LEAVES, self_updates_after_join};
        assert!((0..64).all(|leaf| self_updates_after_join(leaf, BIG_GROUP_LEAVES)));
        let updaters = (0..1000u32)
            .filter(|&leaf| self_updates_after_join(leaf, 1000))
            .count();
        assert_eq!(updaters, 63);
        assert!(self_updates_after_join(64, 1000));
        assert!(!self_updates_after_join(65, 1000));
    }

    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let kps: Vec<Vec<u8>> = (0..250).map(|_| vec![0u8; 2700]).collect();
        let b = add_batches(&kps, 1);
        assert_eq!(b.iter().map(|c| c.len()).sum::<usize>(), 250);
        assert!(b.iter().all(|c| c.len() <= MAX_ADDS_PER_COMMIT));
        let big: Vec<Vec<u8>> = (0..10).map(|_| vec![0u8; 100 * 1024]).collect();
        let b = add_batches(&big, 1);
        assert!(
            b.iter()
                .all(|c| c.iter().map(Vec::len).sum::<usize>() <= MAX_ADD_BYTES_PER_COMMIT)
        );
        assert!(add_batches(&[], 1).is_empty());
        // A commit to 2000 members carries at most SEND_BUDGET / 2000 bytes.
        let b = add_batches(&kps, 2000);
        let per = SEND_BUDGET / 2000;
        assert!(
            b.iter()
                .all(|c| c.iter().map(Vec::len).sum::<usize>() <= per)
        );
        assert_eq!(b.iter().map(|c| c.len()).sum::<usize>(), 250);
    }

    fn pointer(len: u64) -> Pointer {
        Pointer {
            blob_id: "AbC-_0123456789abcdefgh".into(),
            key: Zeroizing::new([7u8; 32]),
            len,
        }
    }

    #[test]
    fn sealed_trees_open_only_whole_and_unchanged() {
        let p = pointer(1000);
        let tree = vec![3u8; 500];
        let blob = seal(&p, b"group", 4, &tree).unwrap();
        assert_eq!(blob.len(), 1000);
        assert_eq!(open(&p, b"group", 4, &blob).unwrap(), tree);
        assert!(matches!(
            open(&p, b"group", 5, &blob),
            Err(ProtoError::Tampered)
        ));
        assert!(matches!(
            open(&p, b"other", 4, &blob),
            Err(ProtoError::Tampered)
        ));
        assert!(matches!(
            open(&p, b"group", 4, &blob[..999]),
            Err(ProtoError::Tampered)
        ));
        let mut flipped = blob.clone();
        flipped[10] ^= 1;
        assert!(matches!(
            open(&p, b"group", 4, &flipped),
            Err(ProtoError::Tampered)
        ));
        assert!(seal(&pointer(100), b"group", 4, &tree).is_err());
    }

    #[test]
    fn pointers_round_trip_and_refuse_odd_ids() {
        let p = pointer(5000);
        let ext = p.to_extension();
        let back = Pointer::decode(&ext.extension_data).unwrap();
        assert_eq!(back.blob_id, p.blob_id);
        assert_eq!(back.len, 5000);
        let mut bad = pointer(5000);
        bad.blob_id = "../etc".into();
        assert!(Pointer::decode(&bad.to_extension().extension_data).is_err());
        let huge = pointer(MAX_TREE_BLOB_LEN + 1);
        assert!(Pointer::decode(&huge.to_extension().extension_data).is_err());
    }
}
