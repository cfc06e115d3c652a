//! Key transparency on the client: pin the server's directory keys, keep
//! every signed root seen (roots only move forward, each step proven
//! append-only), check a lookup proof for every account before encrypting to
//! it, monitor this account's own key history, and compare roots with
//! contacts through the checkpoints inside messages.

use hush_proto::Username;
use hush_proto::kt::{
    KtCheckpoint, KtConfig, KtConfiguration, KtError, KtValue, SignedRoot, verify_history,
    verify_lookup,
};
use hush_proto::memo::{Memo, MemoKey, memo_key};
use hush_wire::api::AccountResponse;
use hush_wire::kt::{
    KtAuditResponse, KtConfigResponse, KtProofResponse, KtRoot, KtRootsResponse, MAX_AUDIT_SPAN,
};
use protobuf::Message as _;
use reqwest::Method;
use rusqlite::{OptionalExtension, params};

use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;

/// What key transparency says about a contact's current keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtStatus {
    /// The epoch whose signed root the proof verified against.
    pub epoch: u64,
    /// The directory version of the account's keys.
    pub version: u64,
    /// The epoch that version was published in.
    pub published_epoch: u64,
    /// The devices the directory lists.
    pub devices: Vec<u32>,
}

pub(crate) fn wire_to_root(r: &KtRoot) -> Result<SignedRoot, KtError> {
    Ok(SignedRoot {
        epoch: r.epoch,
        root_hash: r
            .root_hash
            .as_slice()
            .try_into()
            .map_err(|_| KtError::Malformed("root hash is not 32 bytes".into()))?,
        signature: r
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| KtError::Malformed("root signature is not 64 bytes".into()))?,
    })
}

/// Checks that every certificate of a directory answer is in `value` and
/// that `value` lists no other device.
pub(crate) fn matches_directory(value: &KtValue, entry: &AccountResponse) -> Result<(), String> {
    let devices = crate::directory::device_list(entry);
    hush_proto::kt_batch::matches_value(value, crate::directory::batch_account(entry, &devices))
}

impl Client {
    /// The server's pinned key-transparency keys, pinned now on first use.
    pub(crate) async fn kt_config(&mut self) -> Result<KtConfig, ClientError> {
        let signing = self.store.meta("kt_signing_key")?;
        let vrf = self.store.meta("kt_vrf_key")?;
        if let (Some(s), Some(v)) = (signing, vrf) {
            return Ok(KtConfig {
                signing_key: s
                    .as_slice()
                    .try_into()
                    .map_err(|_| ClientError::Store("the pinned signing key is corrupt".into()))?,
                vrf_public_key: v,
            });
        }
        let resp: KtConfigResponse = self
            .transport
            .json::<(), _>(Method::GET, "/v1/kt/config", None)
            .await?;
        let signing_key: [u8; 32] = resp.signing_key.as_slice().try_into().map_err(|_| {
            ClientError::KeyTransparency(KtError::Malformed("signing key is not 32 bytes".into()))
        })?;
        LocalStore::set_meta(&self.store.conn, "kt_signing_key", &signing_key)?;
        LocalStore::set_meta(
            &self.store.conn,
            "kt_vrf_key",
            resp.vrf_public_key.as_slice(),
        )?;
        Ok(KtConfig {
            signing_key,
            vrf_public_key: resp.vrf_public_key.0,
        })
    }

    fn stored_root(&self, epoch: u64) -> Result<Option<SignedRoot>, ClientError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .store
            .conn
            .query_row(
                "SELECT root_hash, signature FROM kt_roots WHERE epoch = ?1",
                params![epoch as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(h, s)| {
            Ok(SignedRoot {
                epoch,
                root_hash: h
                    .as_slice()
                    .try_into()
                    .map_err(|_| ClientError::Store("a stored root is corrupt".into()))?,
                signature: s
                    .as_slice()
                    .try_into()
                    .map_err(|_| ClientError::Store("a stored root is corrupt".into()))?,
            })
        })
        .transpose()
    }

    /// The newest signed root this client has accepted.
    pub fn kt_latest_root(&self) -> Result<Option<SignedRoot>, ClientError> {
        let epoch: Option<i64> =
            self.store
                .conn
                .query_row("SELECT MAX(epoch) FROM kt_roots", [], |r| r.get(0))?;
        match epoch {
            Some(e) => self.stored_root(e as u64),
            None => Ok(None),
        }
    }

    /// Stores `roots` in one transaction (a client catching up on a
    /// thousand epochs writes once, not a thousand times).
    fn save_roots(&mut self, roots: &[SignedRoot]) -> Result<(), ClientError> {
        let tx = self.store.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO kt_roots (epoch, root_hash, signature) VALUES (?1, ?2, ?3)",
            )?;
            for r in roots {
                insert.execute(params![
                    r.epoch as i64,
                    r.root_hash.as_slice(),
                    r.signature.as_slice()
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Fetches signed roots `from..=to` and checks each signature.
    async fn fetch_roots(
        &mut self,
        config: &KtConfig,
        from: u64,
        to: u64,
    ) -> Result<Vec<SignedRoot>, ClientError> {
        let mut out = Vec::new();
        let mut next = from;
        while next <= to {
            let resp: KtRootsResponse = self
                .transport
                .json::<(), _>(
                    Method::GET,
                    &format!("/v1/kt/roots?from={next}&to={to}"),
                    None,
                )
                .await?;
            if resp.roots.is_empty() {
                return Err(KtError::BadAuditProof {
                    from,
                    to,
                    reason: format!("the server does not show epoch {next}"),
                }
                .into());
            }
            for r in &resp.roots {
                let root = wire_to_root(r)?;
                if root.epoch != next {
                    return Err(KtError::Malformed(format!(
                        "expected the root of epoch {next}, got {}",
                        root.epoch
                    ))
                    .into());
                }
                root.verify(&config.signing_key)?;
                out.push(root);
                next += 1;
            }
        }
        Ok(out)
    }

    /// Accepts `root` as the newest view of the directory: it must be signed
    /// by the pinned key, not older than the newest root seen, equal to it at
    /// the same epoch, and proven to extend it when newer.
    pub(crate) async fn accept_root(
        &mut self,
        config: &KtConfig,
        root: &SignedRoot,
    ) -> Result<(), ClientError> {
        root.verify(&config.signing_key)?;
        let Some(latest) = self.kt_latest_root()? else {
            self.save_roots(std::slice::from_ref(root))?;
            return Ok(());
        };
        if root.epoch < latest.epoch {
            return Err(KtError::StaleRoot {
                got: root.epoch,
                seen: latest.epoch,
            }
            .into());
        }
        if root.epoch == latest.epoch {
            latest.check_consistent(root)?;
            return Ok(());
        }
        self.extend_to(config, &latest, root.epoch, Some(root))
            .await
    }

    /// Fetches the roots after `latest` up to `epoch`, checks the audit
    /// proofs between them, and stores them. `expected`, when given, must be
    /// the root the server shows for `epoch`.
    async fn extend_to(
        &mut self,
        config: &KtConfig,
        latest: &SignedRoot,
        epoch: u64,
        expected: Option<&SignedRoot>,
    ) -> Result<(), ClientError> {
        let mut chain = vec![*latest];
        chain.extend(self.fetch_roots(config, latest.epoch + 1, epoch).await?);
        if let (Some(last), Some(want)) = (chain.last(), expected) {
            last.check_consistent(want)?;
        }
        // Audit in spans of at most MAX_AUDIT_SPAN epochs, each starting
        // where the previous one ended.
        // Steps that passed in this process before are not asked for
        // again (decision 0024): only the runs of steps not yet checked.
        let step = usize::try_from(MAX_AUDIT_SPAN).unwrap_or(100);
        let mut i = 0;
        while i + 1 < chain.len() {
            if step_audited(&chain[i], &chain[i + 1]) {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end + 1 < chain.len()
                && end - i < step
                && !step_audited(&chain[end], &chain[end + 1])
            {
                end += 1;
            }
            let span: Vec<&SignedRoot> = chain[i..=end].iter().collect();
            self.check_audit(&span).await?;
            i = end;
        }
        self.save_roots(&chain)?;
        Ok(())
    }

    async fn check_audit(&mut self, span: &[&SignedRoot]) -> Result<(), ClientError> {
        let (Some(first), Some(last)) = (span.first(), span.last()) else {
            return Ok(());
        };
        if first.epoch == last.epoch {
            return Ok(());
        }
        let (from, to) = (first.epoch, last.epoch);
        let resp: KtAuditResponse = self
            .transport
            .json::<(), _>(
                Method::GET,
                &format!("/v1/kt/audit?from={from}&to={to}"),
                None,
            )
            .await?;
        verify_audit(span, resp.proof.as_slice())
            .await
            .map_err(ClientError::KeyTransparency)
    }

    /// Looks `username` up in the directory and checks the proof against
    /// the directory answer. Retries a few times: a change the server has
    /// stored but not yet published shows as a mismatch for a moment.
    pub(crate) async fn kt_check_entry(
        &mut self,
        username: &Username,
        entry: &mut AccountResponse,
    ) -> Result<(KtValue, KtStatus), ClientError> {
        let config = self.kt_config().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp: KtProofResponse = self
                .transport
                .json::<(), _>(Method::GET, &format!("/v1/kt/lookup/{username}"), None)
                .await
                .map_err(|e| match e.code() {
                    Some(hush_wire::ErrorCode::NotFound) => {
                        ClientError::KeyTransparency(KtError::KeysNotInDirectory {
                            username: username.to_string(),
                            what: "the account is not in the key directory".into(),
                        })
                    }
                    _ => e,
                })?;
            let root = wire_to_root(&resp.root)?;
            self.accept_root(&config, &root).await?;
            let verified = verify_lookup(&config, &root, username, resp.proof.as_slice())?;
            match matches_directory(&verified.value, entry) {
                Ok(()) => {
                    let status = KtStatus {
                        epoch: root.epoch,
                        version: verified.version,
                        published_epoch: verified.published_epoch,
                        devices: verified.value.devices.iter().map(|d| d.device_id).collect(),
                    };
                    return Ok((verified.value, status));
                }
                Err(what) if attempt >= 3 => {
                    return Err(KtError::KeysNotInDirectory {
                        username: username.to_string(),
                        what,
                    }
                    .into());
                }
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    *entry = self
                        .transport
                        .json::<(), _>(Method::GET, &format!("/v1/accounts/{username}"), None)
                        .await?;
                }
            }
        }
    }

    /// What key transparency says about `username`'s current keys (for
    /// `hush verify`).
    pub async fn kt_status(&mut self, username: &str) -> Result<KtStatus, ClientError> {
        let (_entry, _changed, status) = self.lookup_verified(username).await?;
        Ok(status)
    }

    /// Whether self-monitoring has something to check whatever the server
    /// says: never run yet, or this client accepted a signed root newer
    /// than the last epoch it checked.
    pub(crate) fn kt_monitor_due(&self) -> Result<bool, ClientError> {
        let monitored: Option<u64> = self
            .store
            .meta_str("kt_monitored_epoch")?
            .and_then(|s| s.parse().ok());
        let accepted = self.kt_latest_root()?.map(|r| r.epoch);
        Ok(match monitored {
            None => true,
            Some(m) => accepted.is_some_and(|a| a > m),
        })
    }

    /// Checks this account's own key history: every version the directory
    /// ever published for it must be one this device made. Returns an alarm
    /// text for each version that is not (and remembers them).
    pub async fn kt_monitor(&mut self, force: bool) -> Result<Vec<String>, ClientError> {
        // Only when the directory moved since the last check (one cheap
        // request), unless forced. The server's word that it did not move
        // is unsigned, so it never stops a check up to the newest root this
        // client accepted from any signed answer.
        let monitored: Option<u64> = self
            .store
            .meta_str("kt_monitored_epoch")?
            .and_then(|s| s.parse().ok());
        let accepted = self.kt_latest_root()?.map(|r| r.epoch);
        if !force
            && let Some(m) = monitored
            && accepted.is_none_or(|a| a <= m)
        {
            let latest: KtRootsResponse = self
                .transport
                .json::<(), _>(Method::GET, "/v1/kt/roots", None)
                .await?;
            if latest.latest_epoch == m {
                self.note_monitor_complete()?;
                return Ok(Vec::new());
            }
        }
        let config = self.kt_config().await?;
        let me = self.username.clone();
        let resp: KtProofResponse = self
            .transport
            .json::<(), _>(Method::GET, &format!("/v1/kt/history/{me}"), None)
            .await?;
        let root = wire_to_root(&resp.root)?;
        self.accept_root(&config, &root).await?;
        let versions = verify_history(&config, &root, &me, resp.proof.as_slice())?;
        // Every device the account added is certified by its key: this
        // device's own, those it linked or learned of when it was linked,
        // and those the directory serves with a valid certificate (added by
        // another device of the account). A device in the history without
        // one is the server's.
        self.learn_own_devices().await;
        let known = crate::devices::roster(&self.store.conn)?;
        let removed: Vec<u32> = known
            .iter()
            .filter(|(_, r)| *r)
            .map(|(c, _)| c.device_id().0)
            .collect();
        let certs: Vec<hush_proto::DeviceCertificate> = known.into_iter().map(|(c, _)| c).collect();
        let mine = KtValue::from_certificates(self.account.public(), &certs);
        let ours = |v: &KtValue| {
            v.account_key == mine.account_key
                && v.devices
                    .iter()
                    .all(|d| mine.device(d.device_id) == Some(d))
        };
        // A username can be registered again after its account was deleted:
        // versions before this account's first one belonged to an earlier
        // owner. The first check (at registration) finds where ours begin.
        let first = match self
            .store
            .meta_str("kt_first_version")?
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(f) => Some(f),
            None => {
                let f = versions
                    .iter()
                    .filter(|v| ours(&v.value))
                    .map(|v| v.version)
                    .min();
                if let Some(f) = f {
                    LocalStore::set_meta(
                        &self.store.conn,
                        "kt_first_version",
                        f.to_string().as_bytes(),
                    )?;
                }
                f
            }
        };
        // Versions already reported are not reported again.
        let told: u64 = self
            .store
            .meta_str("kt_alarmed_version")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
            .max(first.unwrap_or(0).saturating_sub(1));
        let mut alarms = Vec::new();
        let mut newest_told = told;
        for v in &versions {
            if ours(&v.value) || v.version <= told {
                continue;
            }
            newest_told = newest_told.max(v.version);
            let what = if v.value.account_key != mine.account_key {
                "an account key this device never made".to_string()
            } else {
                let extra: Vec<String> = v
                    .value
                    .devices
                    .iter()
                    .filter(|d| mine.device(d.device_id) != Some(d))
                    .map(|d| d.device_id.to_string())
                    .collect();
                format!("device(s) {} this device never added", extra.join(", "))
            };
            alarms.push(format!(
                "SECURITY: the key directory lists {what} for your account {me} \
                 (version {}, published in epoch {}). Someone may be reading your messages: \
                 tell your contacts and your server's operator",
                v.version, v.published_epoch
            ));
        }
        // A device removed from here must stay out of the current keys.
        if let Some(last) = versions.iter().max_by_key(|v| v.version)
            && last.version > told
            && ours(&last.value)
        {
            let back: Vec<String> = (last.value.devices.iter())
                .filter(|d| removed.contains(&d.device_id))
                .map(|d| d.device_id.to_string())
                .collect();
            if !back.is_empty() {
                newest_told = newest_told.max(last.version);
                alarms.push(format!(
                    "SECURITY: the key directory lists device(s) {} again for your account \
                     {me}, which you removed (version {}). Remove them again and tell your \
                     server's operator",
                    back.join(", "),
                    last.version
                ));
            }
        }
        LocalStore::set_meta(
            &self.store.conn,
            "kt_monitored_epoch",
            root.epoch.to_string().as_bytes(),
        )?;
        self.note_monitor_complete()?;
        if !alarms.is_empty() {
            LocalStore::set_meta(&self.store.conn, "kt_alarm", alarms.join("\n").as_bytes())?;
            LocalStore::set_meta(
                &self.store.conn,
                "kt_alarmed_version",
                newest_told.to_string().as_bytes(),
            )?;
        }
        Ok(alarms)
    }

    /// Compares a contact's checkpoint with this client's view. Returns an
    /// alarm text when the server showed the two of them different
    /// directories. A checkpoint found to agree is remembered for the
    /// session (the roots this client holds never change), so the next
    /// message carrying it costs no check.
    pub(crate) async fn kt_check_checkpoint(
        &mut self,
        from: &str,
        cp: &KtCheckpoint,
    ) -> Result<Option<String>, ClientError> {
        let config = self.kt_config().await?;
        if cp.verify(&config.signing_key).is_err() {
            // Not the server's signature: the contact's client is broken or
            // lying; it proves nothing about the server.
            return Ok(None);
        }
        let fork = |epoch: u64| {
            Some(format!(
                "SECURITY: the server showed you and {from} different key directories \
                 (epoch {epoch}). It may be hiding a key it added to someone's account: \
                 do not trust new keys, and tell your server's operator"
            ))
        };
        let agreed = |c: &mut Self| {
            c.kt_agreed.insert((cp.epoch, cp.root_hash));
            Ok(None)
        };
        if let Some(mine) = self.stored_root(cp.epoch)? {
            return if mine.check_consistent(cp).is_err() {
                Ok(fork(cp.epoch))
            } else {
                agreed(self)
            };
        }
        let Some(latest) = self.kt_latest_root()? else {
            return Ok(None);
        };
        if cp.epoch < latest.epoch {
            // An epoch this client stepped over without fetching; fetch it.
            let roots = self.fetch_roots(&config, cp.epoch, cp.epoch).await?;
            return match roots.first() {
                Some(r) if r.check_consistent(cp).is_ok() => agreed(self),
                _ => Ok(fork(cp.epoch)),
            };
        }
        match self.extend_to(&config, &latest, cp.epoch, Some(cp)).await {
            Ok(()) => agreed(self),
            Err(ClientError::KeyTransparency(KtError::Fork { epoch })) => Ok(fork(epoch)),
            Err(ClientError::KeyTransparency(KtError::BadAuditProof { .. })) => Ok(fork(cp.epoch)),
            Err(e) => Err(e),
        }
    }

    /// Accepts `root` as this client's newest view of the directory (see
    /// the module docs): signed by the pinned key, never older than a root
    /// already seen, and proven to extend it.
    pub async fn kt_accept_root(&mut self, root: &SignedRoot) -> Result<(), ClientError> {
        let config = self.kt_config().await?;
        self.accept_root(&config, root).await
    }

    /// The checkpoint to put in outgoing messages.
    pub(crate) fn kt_checkpoint(&self) -> Option<KtCheckpoint> {
        self.kt_latest_root().ok().flatten()
    }

    /// A key-transparency alarm raised earlier and not yet shown, if any.
    pub fn kt_alarm(&self) -> Result<Option<String>, ClientError> {
        self.store.meta_str("kt_alarm")
    }

    pub(crate) fn raise_kt_alarm(&self, text: &str) -> Result<(), ClientError> {
        LocalStore::set_meta(&self.store.conn, "kt_alarm", text.as_bytes())
    }
}

/// Append-only steps between two signed roots (epoch and root hash each)
/// that passed in this process (decision 0024): about a day of a busy
/// directory's epochs; an entry is a key.
static AUDITED_STEPS: Memo<()> = Memo::new(1 << 16);

fn step_key(a: &SignedRoot, b: &SignedRoot) -> MemoKey {
    memo_key(
        "hush kt append-only step v1",
        &[
            &a.epoch.to_be_bytes()[..],
            &a.root_hash[..],
            &b.epoch.to_be_bytes()[..],
            &b.root_hash[..],
        ],
    )
}

/// Whether the append-only step from `a` to `b` passed before in this
/// process.
pub(crate) fn step_audited(a: &SignedRoot, b: &SignedRoot) -> bool {
    AUDITED_STEPS.contains(&step_key(a, b))
}

/// Checks an akd append-only proof over consecutive signed roots. Each step
/// is checked on its own (as akd's `audit_verify` does, one after the
/// other), and a step that passed before in this process, between the same
/// two roots, is not checked again.
pub async fn verify_audit(span: &[&SignedRoot], proof: &[u8]) -> Result<(), KtError> {
    let (Some(first), Some(last)) = (span.first(), span.last()) else {
        return Ok(());
    };
    let bad = |reason: String| KtError::BadAuditProof {
        from: first.epoch,
        to: last.epoch,
        reason,
    };
    if proof.len() > hush_proto::kt::MAX_PROOF_LEN {
        return Err(bad("the proof is too large".into()));
    }
    let msg = akd::proto::specs::types::AppendOnlyProof::parse_from_bytes(proof)
        .map_err(|e| bad(e.to_string()))?;
    let proof = akd::AppendOnlyProof::try_from(&msg).map_err(|e| bad(e.to_string()))?;
    if proof.epochs.len() + 1 != span.len() || proof.proofs.len() != proof.epochs.len() {
        return Err(bad(format!(
            "the proof has {} steps for {} roots",
            proof.proofs.len(),
            span.len()
        )));
    }
    let steps = proof.proofs.into_iter().zip(proof.epochs);
    for (pair, (single, epoch)) in span.windows(2).zip(steps) {
        let key = step_key(pair[0], pair[1]);
        if AUDITED_STEPS.contains(&key) {
            continue;
        }
        let step = akd::AppendOnlyProof {
            proofs: vec![single],
            epochs: vec![epoch],
        };
        akd::auditor::audit_verify::<KtConfiguration>(
            vec![pair[0].root_hash, pair[1].root_hash],
            step,
        )
        .await
        .map_err(|e| bad(e.to_string()))?;
        AUDITED_STEPS.insert(key, ());
    }
    Ok(())
}

/// Audits a server's whole chain of epochs `from..` as an outsider: every
/// root signed by the key the server names, every step append-only. Returns
/// the newest epoch checked.
pub async fn audit_server(
    transport: &crate::transport::Transport,
    from: u64,
    pinned_signing_key: Option<[u8; 32]>,
    mut progress: impl FnMut(u64),
) -> Result<u64, AuditFailure> {
    let config: KtConfigResponse = transport
        .json::<(), _>(Method::GET, "/v1/kt/config", None)
        .await
        .map_err(|e| AuditFailure::Network(e.to_string()))?;
    let key: [u8; 32] = config.signing_key.as_slice().try_into().map_err(|_| {
        AuditFailure::at(0, KtError::Malformed("signing key is not 32 bytes".into()))
    })?;
    if let Some(pinned) = pinned_signing_key
        && pinned != key
    {
        return Err(AuditFailure::at(
            from,
            KtError::BadRootSignature { epoch: from },
        ));
    }
    let mut previous: Option<SignedRoot> = None;
    let mut next = from;
    loop {
        let resp: KtRootsResponse = transport
            .json::<(), _>(Method::GET, &format!("/v1/kt/roots?from={next}"), None)
            .await
            .map_err(|e| AuditFailure::Network(e.to_string()))?;
        if resp.roots.is_empty() {
            break;
        }
        let mut batch: Vec<SignedRoot> = previous.into_iter().collect();
        for r in &resp.roots {
            let root = wire_to_root(r).map_err(|e| AuditFailure::at(r.epoch, e))?;
            if root.epoch != next {
                return Err(AuditFailure::at(
                    next,
                    KtError::Malformed(format!("the server skipped epoch {next}")),
                ));
            }
            root.verify(&key)
                .map_err(|e| AuditFailure::at(root.epoch, e))?;
            batch.push(root);
            next += 1;
        }
        for window in batch.windows(2) {
            let (a, b) = (&window[0], &window[1]);
            let audit: KtAuditResponse = transport
                .json::<(), _>(
                    Method::GET,
                    &format!("/v1/kt/audit?from={}&to={}", a.epoch, b.epoch),
                    None,
                )
                .await
                .map_err(|e| AuditFailure::Network(e.to_string()))?;
            verify_audit(&[a, b], audit.proof.as_slice())
                .await
                .map_err(|e| AuditFailure::at(b.epoch, e))?;
            progress(b.epoch);
        }
        previous = batch.last().copied();
        if next > resp.latest_epoch {
            break;
        }
    }
    Ok(next.saturating_sub(1))
}

/// Why an audit stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFailure {
    /// The chain breaks at `epoch`.
    #[error("epoch {epoch}: {error}")]
    Broken {
        /// The first epoch that does not check out.
        epoch: u64,
        /// Why.
        error: KtError,
    },
    /// The server could not be asked.
    #[error("network: {0}")]
    Network(String),
}

impl AuditFailure {
    fn at(epoch: u64, error: KtError) -> Self {
        Self::Broken { epoch, error }
    }
}
