//! Batched lookups: the lookup proofs of many accounts against one root, as
//! a device needs them before it joins a big group (every joiner vets every
//! member). Proofs made at the newest epoch are kept until the directory
//! moves on, so the next joiner asking for the same members at the same
//! epoch costs a copy, not a VRF evaluation per member.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use akd::AkdLabel;
use akd::storage::types::ValueStateRetrievalFlag;
use hush_proto::Username;
use hush_proto::kt::SignedRoot;
use protobuf::Message;

use super::KtError;
use super::service::{KeyDirectory, akd_err};

/// Most bytes of proofs kept (about 20,000 proofs of a directory of a
/// million accounts). Past it, proofs are made but not kept.
pub const PROOF_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Lookup proofs made at one epoch (a lookup proof is a function of the
/// epoch and the username only, so any of them may be handed to anyone who
/// asks at that epoch).
#[derive(Debug, Default)]
pub struct ProofCache {
    epoch: u64,
    proofs: HashMap<String, Arc<Vec<u8>>>,
    bytes: usize,
}

impl ProofCache {
    fn get(&self, epoch: u64, username: &str) -> Option<Arc<Vec<u8>>> {
        if epoch != self.epoch {
            return None;
        }
        self.proofs.get(username).cloned()
    }

    fn put(&mut self, epoch: u64, username: &str, proof: Arc<Vec<u8>>) {
        if epoch < self.epoch {
            return;
        }
        if epoch > self.epoch {
            self.proofs.clear();
            self.bytes = 0;
            self.epoch = epoch;
        }
        if self.bytes + proof.len() > PROOF_CACHE_BYTES {
            return;
        }
        self.bytes += proof.len();
        if let Some(old) = self.proofs.insert(username.to_owned(), proof) {
            self.bytes -= old.len();
        }
    }

    fn clear(&mut self) {
        self.proofs.clear();
        self.bytes = 0;
    }
}

/// The proofs of a batched lookup: the root, and per username asked for
/// (same order) its proof, or none when it is not in the directory.
pub type BatchProofs = (SignedRoot, Vec<Option<Arc<Vec<u8>>>>);

impl KeyDirectory {
    fn cache(&self) -> MutexGuard<'_, ProofCache> {
        self.proof_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every kept proof (benchmarks measure proof making with it).
    pub fn forget_cached_proofs(&self) {
        self.cache().clear();
    }

    /// Lookup proofs for `usernames` (the caller bounds how many), all
    /// against the newest root. `viewer` is the account asking, if known.
    pub async fn batch_lookup(
        &self,
        viewer: Option<&str>,
        usernames: &[Username],
    ) -> Result<BatchProofs, KtError> {
        self.inner().await?;
        #[cfg(feature = "fault-injection")]
        if let Some(v) = viewer
            && let Some(answer) = self.faults.fork_batch(v, usernames).await
        {
            return answer;
        }
        let _ = viewer;
        let (inner, _guard) = self.current().await?;
        let epoch = inner.dir.get_epoch_hash().await.map_err(akd_err)?.0;
        let mut out: Vec<Option<Arc<Vec<u8>>>> = {
            let cache = self.cache();
            usernames
                .iter()
                .map(|u| cache.get(epoch, u.as_str()))
                .collect()
        };
        if out.iter().any(Option::is_none) {
            // One request at a time makes proofs: the joiners of a group ask
            // for the same accounts at once, and all but the first then find
            // them kept instead of each making them again.
            let _making = self.proof_making.lock().await;
            let missing: Vec<usize> = {
                let cache = self.cache();
                (0..usernames.len())
                    .filter(|&i| {
                        if out[i].is_none() {
                            out[i] = cache.get(epoch, usernames[i].as_str());
                        }
                        out[i].is_none()
                    })
                    .collect()
            };
            let made = self.make_proofs(epoch, usernames, &missing).await?;
            let mut cache = self.cache();
            for (i, proof) in made {
                cache.put(epoch, usernames[i].as_str(), proof.clone());
                out[i] = Some(proof);
            }
        }
        Ok((self.root(epoch).await?, out))
    }

    /// Makes the proofs of `usernames[i]` for each `i` in `which` that is in
    /// the directory at `epoch`, in one akd batch.
    async fn make_proofs(
        &self,
        epoch: u64,
        usernames: &[Username],
        which: &[usize],
    ) -> Result<Vec<(usize, Arc<Vec<u8>>)>, KtError> {
        let inner = self.inner().await?;
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let labels: Vec<AkdLabel> = which
            .iter()
            .map(|&i| hush_proto::kt::label(&usernames[i]))
            .collect();
        let present = akd::storage::Database::get_user_state_versions(
            &inner.db,
            &labels,
            ValueStateRetrievalFlag::LeqEpoch(epoch),
        )
        .await
        .map_err(akd_err)?;
        let (which, labels): (Vec<usize>, Vec<AkdLabel>) = which
            .iter()
            .zip(labels)
            .filter(|(_, l)| present.contains_key(l))
            .map(|(&i, l)| (i, l))
            .unzip();
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let (proofs, hash) = inner.dir.batch_lookup(&labels).await.map_err(akd_err)?;
        if hash.0 != epoch || proofs.len() != which.len() {
            // Another node published meanwhile: the client asks again.
            return Err(KtError::Directory(
                "the directory moved during a batched lookup".into(),
            ));
        }
        let mut out = Vec::with_capacity(which.len());
        for (i, proof) in which.into_iter().zip(proofs) {
            let bytes = akd::proto::specs::types::LookupProof::from(&proof)
                .write_to_bytes()
                .map_err(akd_err)?;
            out.push((i, Arc::new(bytes)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_kept_for_one_epoch_and_within_the_budget() {
        let mut c = ProofCache::default();
        c.put(3, "alice", Arc::new(vec![1; 10]));
        assert_eq!(c.get(3, "alice").map(|p| p.len()), Some(10));
        assert!(c.get(4, "alice").is_none(), "another epoch's proof");
        // An older epoch's proof never replaces a newer one's.
        c.put(2, "bob", Arc::new(vec![2; 10]));
        assert!(c.get(2, "bob").is_none() && c.get(3, "bob").is_none());
        // A newer epoch drops everything kept.
        c.put(5, "bob", Arc::new(vec![2; 10]));
        assert!(c.get(5, "alice").is_none());
        assert_eq!(c.bytes, 10);
        c.put(5, "big", Arc::new(vec![0; PROOF_CACHE_BYTES]));
        assert!(c.get(5, "big").is_none(), "over the budget");
        c.put(5, "bob", Arc::new(vec![2; 4]));
        assert_eq!(c.bytes, 4);
    }
}
