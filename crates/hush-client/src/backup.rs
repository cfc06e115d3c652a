//! Backups and restore (decision 0026).
//!
//! A backup is an account archive ([`hush_proto::archive`], purpose
//! `Backup`) with the account key in it, sealed under a recovery key: 32
//! random bytes shown once as 64 hex characters. The key has 256 bits of
//! entropy, so it is used as it is (through HKDF) with no password hash:
//! guessing it is not feasible, however fast the guesses.
//!
//! Restoring makes a new device: a new device key, certified by the
//! restored account key and registered with the signed `add` request
//! (which needs no token), so the account appears in the key directory
//! with one more device that it added itself. The history, contacts and
//! conversations come from the archive; the conversations stay inactive
//! until another member re-adds the new device
//! ([`Client::readd_devices`] on their side).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hush_proto::archive::{self, Archive, ArchiveError, Purpose};
use hush_proto::{AccountKey, Device, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
use hush_wire::Bytes;
use hush_wire::ErrorCode;
use hush_wire::api::{AddDeviceRequest, NewDeviceBody, RegisterResponse};
use reqwest::Method;
use zeroize::Zeroizing;

use crate::archive::{HistoryScope, import, random_key};
use crate::client::{Client, now_ms};
use crate::devices::{note_device, sha256, sign_device_request};
use crate::error::ClientError;
use crate::history::Progress;
use crate::local::LocalStore;
use crate::transport::{ConnectOptions, Transport, normalize_fingerprint};

/// A backup's recovery key: 256 random bits.
pub struct RecoveryKey(pub(crate) Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

impl RecoveryKey {
    /// A fresh key.
    pub fn generate() -> Self {
        Self(random_key())
    }

    /// Parses the 64 hexadecimal characters of a key; spaces, dashes and
    /// case are ignored.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let hex: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect::<String>()
                .to_ascii_lowercase(),
        );
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ClientError::InvalidInput(format!(
                "a recovery key is 64 characters 0-9 and a-f; this one has {} \
                 (spaces and dashes do not count)",
                hex.chars().count()
            )));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex.as_bytes(), &mut *key)
            .map_err(|_| ClientError::InvalidInput("the recovery key is not hexadecimal".into()))?;
        Ok(Self(key))
    }

    /// The 64 characters, in 16 groups of 4.
    pub fn display(&self) -> Zeroizing<String> {
        let hex = Zeroizing::new(hex::encode(*self.0));
        let groups: Vec<&str> = (0..16).map(|i| &hex[i * 4..i * 4 + 4]).collect();
        Zeroizing::new(groups.join(" "))
    }
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    /// The file, or `None` for a backup stored on the server.
    pub path: Option<PathBuf>,
    /// Its size.
    pub bytes: u64,
    /// Messages in it.
    pub messages: u64,
    /// Conversations in it.
    pub conversations: u64,
    /// The new recovery key (to show once), for `backup create`.
    pub recovery_key: Option<RecoveryKey>,
}

/// Where and how `hush restore` brings an account back.
#[derive(Debug, Clone)]
pub struct RestoreRequest<'a> {
    /// The account's server.
    pub server: &'a str,
    /// Its certificate's fingerprint, for a self-signed `https://` server.
    pub fingerprint: Option<&'a str>,
    /// A name for the new device.
    pub name: Option<&'a str>,
    /// How the server may be reached.
    pub options: ConnectOptions,
}

/// Where a scheduled backup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTarget {
    /// A file on this machine.
    File(PathBuf),
    /// The account's backup slot on the server (decision 0035).
    Server,
}

/// The stored schedule: file (or the server), period (s), last backup (ms).
const SCHEDULE: &str = "backup_schedule";
pub(crate) const BACKUP_KEY: &str = "backup_key";
const LAST_BACKUP: &str = "backup_last";

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

impl Client {
    /// Writes a backup of everything to `out` under a new recovery key,
    /// returned once in the report. The key is also kept in this device's
    /// encrypted store for [`Client::schedule_backup`].
    pub fn create_backup(&mut self, out: &Path) -> Result<BackupReport, ClientError> {
        let key = RecoveryKey::generate();
        let mut report = self.write_backup(out, &key)?;
        LocalStore::set_meta(&self.store.conn, BACKUP_KEY, &key.0[..])?;
        report.recovery_key = Some(key);
        Ok(report)
    }

    fn write_backup(&mut self, out: &Path, key: &RecoveryKey) -> Result<BackupReport, ClientError> {
        let (sealed, mut report) = self.seal_backup(key)?;
        write_atomically(out, &sealed)?;
        self.note_backup_written()?;
        report.path = Some(out.to_owned());
        Ok(report)
    }

    /// The whole account sealed under `key`, and what it holds.
    pub(crate) fn seal_backup(
        &mut self,
        key: &RecoveryKey,
    ) -> Result<(Vec<u8>, BackupReport), ClientError> {
        let archive = self.export_archive(HistoryScope::All, true)?;
        let sealed = archive::seal(&key.0, Purpose::Backup, &archive, &mut rand::rngs::OsRng);
        let report = BackupReport {
            path: None,
            bytes: sealed.len() as u64,
            messages: archive.message_count() as u64,
            conversations: archive.conversations.len() as u64,
            recovery_key: None,
        };
        Ok((sealed, report))
    }

    pub(crate) fn note_backup_written(&self) -> Result<(), ClientError> {
        LocalStore::set_meta(
            &self.store.conn,
            LAST_BACKUP,
            now_ms().to_string().as_bytes(),
        )
    }

    /// Keeps a backup at `target` no older than `every`:
    /// [`Client::backup_if_due`] (run by every `hush sync`) writes a new one
    /// under the recovery key of the last `hush backup create` when the last
    /// is older.
    pub fn schedule_backup(
        &mut self,
        target: BackupTarget,
        every: Duration,
    ) -> Result<(), ClientError> {
        if self.store.meta(BACKUP_KEY)?.is_none() {
            return Err(ClientError::InvalidInput(
                "no recovery key yet: run `hush backup create` once first (it shows the key \
                 the scheduled backups will use)"
                    .into(),
            ));
        }
        if every < Duration::from_secs(60) {
            return Err(ClientError::InvalidInput(
                "a backup period is at least a minute".into(),
            ));
        }
        let target = match target {
            BackupTarget::File(out) => BackupTarget::File(std::path::absolute(out)?),
            BackupTarget::Server => BackupTarget::Server,
        };
        let value = match &target {
            BackupTarget::File(path) => {
                serde_json::json!({"path": path.to_string_lossy(), "every_secs": every.as_secs()})
            }
            BackupTarget::Server => {
                serde_json::json!({"server": true, "every_secs": every.as_secs()})
            }
        };
        let moved = self.backup_schedule()?.map(|(t, _)| t) != Some(target);
        LocalStore::set_meta(&self.store.conn, SCHEDULE, value.to_string().as_bytes())?;
        if moved {
            // A new target is due at once: the next sync writes the first.
            LocalStore::set_meta(&self.store.conn, LAST_BACKUP, b"0")?;
        }
        Ok(())
    }

    /// The scheduled backup's target and period, if one is set.
    pub fn backup_schedule(&self) -> Result<Option<(BackupTarget, Duration)>, ClientError> {
        let Some(raw) = self.store.meta(SCHEDULE)? else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|_| ClientError::Store("the backup schedule is corrupt".into()))?;
        let target = match (v["path"].as_str(), v["server"].as_bool()) {
            (Some(p), None) => Some(BackupTarget::File(PathBuf::from(p))),
            (None, Some(true)) => Some(BackupTarget::Server),
            _ => None,
        };
        let every = v["every_secs"].as_u64().map(Duration::from_secs);
        match (target, every) {
            (Some(t), Some(e)) => Ok(Some((t, e))),
            _ => Err(ClientError::Store("the backup schedule is corrupt".into())),
        }
    }

    /// Writes (or uploads) the scheduled backup if the last one is older
    /// than its period; `None` when nothing was due.
    pub async fn backup_if_due(&mut self) -> Result<Option<BackupReport>, ClientError> {
        let Some((target, every)) = self.backup_schedule()? else {
            return Ok(None);
        };
        let last: u64 = self
            .store
            .meta_str(LAST_BACKUP)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let exists = match &target {
            BackupTarget::File(path) => path.exists(),
            BackupTarget::Server => true,
        };
        if exists && now_ms().saturating_sub(last) < every.as_millis() as u64 {
            return Ok(None);
        }
        let raw = crate::client::meta_required(&self.store, BACKUP_KEY)?;
        let key = RecoveryKey(Zeroizing::new(crate::client::seed(&raw)?));
        match target {
            BackupTarget::File(path) => self.write_backup(&path, &key).map(Some),
            BackupTarget::Server => self.upload_backup(&key).await.map(Some),
        }
    }

    /// Brings the account of backup `sealed` back on this machine as a new
    /// device: creates the store in `dir`, registers a new device certified
    /// by the restored account key, and imports the history, contacts and
    /// conversations. A wrong key or a damaged, cut-off or newer backup is
    /// refused before anything is created; on any later failure nothing is
    /// left in `dir` and the new device is taken off the server again.
    pub async fn restore(
        dir: &Path,
        passphrase: &str,
        req: RestoreRequest<'_>,
        sealed: &[u8],
        key: &RecoveryKey,
        mut progress: impl FnMut(Progress),
    ) -> Result<Client, ClientError> {
        let archive = archive::open(&key.0, Purpose::Backup, sealed)?;
        let seed = archive
            .account_seed
            .as_ref()
            .ok_or(ClientError::Archive(ArchiveError::WrongPurpose("backup")))?;
        let account = AccountKey::from_seed(**seed)?;
        let user = Username::new(&archive.username)
            .map_err(|_| ClientError::Archive(ArchiveError::Corrupt))?;
        let transport =
            Transport::with_options(req.server, req.fingerprint.map(str::to_owned), req.options)?;
        let store = LocalStore::create(dir, passphrase)?;
        let mut registered = None;
        let result = restore_in(
            store,
            dir,
            transport,
            &req,
            &archive,
            account,
            user,
            &mut registered,
        )
        .await;
        match result {
            Ok(client) => {
                progress(Progress::Imported {
                    messages: archive.message_count() as u64,
                    conversations: archive.conversations.len() as u64,
                });
                Ok(client)
            }
            Err(e) => {
                for file in ["keyfile.json", "hush.db", "hush.db-wal", "hush.db-shm"] {
                    let _ = std::fs::remove_file(dir.join(file));
                }
                if let Some(undo) = registered {
                    undo_registration(&archive, undo).await;
                }
                Err(e)
            }
        }
    }
}

/// What was registered on the server: transport, device id, certificate.
type Registered = (Transport, u32, DeviceCertificate);

#[allow(clippy::too_many_arguments)]
async fn restore_in(
    mut store: LocalStore,
    dir: &Path,
    transport: Transport,
    req: &RestoreRequest<'_>,
    archive: &Archive,
    account: AccountKey,
    user: Username,
    registered: &mut Option<Registered>,
) -> Result<Client, ClientError> {
    let known: Vec<(DeviceCertificate, &hush_proto::archive::ArchivedDevice)> = archive
        .devices
        .iter()
        .filter_map(|d| {
            let cert = DeviceCertificate::decode(&d.certificate).ok()?;
            (cert.verify().is_ok() && cert.account_key() == account.public()).then_some((cert, d))
        })
        .collect();
    let key = DeviceSigningKey::generate(&mut rand::rngs::OsRng)?;
    let token = Zeroizing::new(hex::encode(*random_key()));
    let mut id = known
        .iter()
        .map(|(c, _)| c.device_id().0)
        .max()
        .unwrap_or(0)
        + 1;
    // Devices linked after the backup hold higher ids: try the next ones.
    let cert = loop {
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(id), &key, now_ms())?;
        let encoded = cert.encode();
        let (timestamp_ms, nonce, signature) =
            sign_device_request(&account, &user, "add", id, &encoded)?;
        let added: Result<RegisterResponse, ClientError> = transport
            .json(
                Method::POST,
                &format!("/v1/accounts/{user}/devices"),
                Some(&AddDeviceRequest {
                    device: NewDeviceBody {
                        device_id: id,
                        certificate: Bytes(encoded),
                    },
                    timestamp_ms,
                    nonce,
                    signature,
                    token_hash: Some(Bytes(sha256(token.as_bytes()).to_vec())),
                }),
            )
            .await;
        match added {
            Ok(_) => break cert,
            Err(e) if e.code() == Some(ErrorCode::DeviceExists) && id < 1024 => id += 1,
            Err(e) => return Err(e),
        }
    };
    let transport = transport.with_token(token.to_string());
    *registered = Some((transport.clone(), id, cert.clone()));
    {
        let tx = store.conn.transaction()?;
        LocalStore::set_meta(&tx, "server", transport.base().as_bytes())?;
        if let Some(fp) = req.fingerprint {
            LocalStore::set_meta(&tx, "fingerprint", normalize_fingerprint(fp).as_bytes())?;
        }
        LocalStore::set_meta(&tx, "username", user.as_str().as_bytes())?;
        LocalStore::set_meta(&tx, "device_id", id.to_string().as_bytes())?;
        LocalStore::set_meta(&tx, "token", token.as_bytes())?;
        LocalStore::set_meta(&tx, "account_seed", &*account.to_seed())?;
        LocalStore::set_meta(&tx, "device_seed", &*key.to_seed())?;
        LocalStore::set_meta(&tx, "certificate", &cert.encode())?;
        LocalStore::set_meta(&tx, "last_seq", b"0")?;
        LocalStore::set_meta(&tx, "presence", b"contacts")?;
        if !archive.kt_signing_key.is_empty() && !archive.kt_vrf_key.is_empty() {
            LocalStore::set_meta(&tx, "kt_signing_key", &archive.kt_signing_key)?;
            LocalStore::set_meta(&tx, "kt_vrf_key", &archive.kt_vrf_key)?;
        }
        for (c, d) in &known {
            note_device(&tx, c, d.name.as_deref(), d.removed)?;
        }
        let name = req.name.map(str::trim).filter(|n| !n.is_empty());
        note_device(&tx, &cert, name, false)?;
        import(&tx, archive)?;
        tx.commit()?;
    }
    let device = Device::new(cert, &key)?;
    let mut client = Client::assemble(store, device, transport, account, dir);
    if archive.kt_signing_key.is_empty() {
        client.kt_config().await?;
    }
    let alarms = client.kt_monitor(true).await?;
    if let Some(a) = alarms.first() {
        return Err(ClientError::InvalidInput(a.clone()));
    }
    client.top_up_key_packages(true).await?;
    Ok(client)
}

/// Takes a device registered by a failed restore off the server again.
async fn undo_registration(archive: &Archive, undo: Registered) {
    let (transport, _, cert) = undo;
    let Some(seed) = archive.account_seed.as_ref() else {
        return;
    };
    let Ok(account) = AccountKey::from_seed(**seed) else {
        return;
    };
    unregister(&transport, &account, &cert).await;
}

/// Takes this account's device `cert` off the server with a request signed
/// by the account key (no token needed): for a restore that failed after
/// the device was registered, so that it does not stay listed.
async fn unregister(transport: &Transport, account: &AccountKey, cert: &DeviceCertificate) {
    let id = cert.device_id().0;
    let Ok((timestamp_ms, nonce, signature)) =
        sign_device_request(account, cert.username(), "remove", id, &cert.encode())
    else {
        return;
    };
    let gone = transport
        .call(
            Method::DELETE,
            &format!("/v1/accounts/{}/devices/{id}", cert.username()),
            Some(&hush_wire::api::RemoveDeviceRequest {
                timestamp_ms,
                nonce,
                signature,
            }),
        )
        .await;
    if let Err(e) = gone {
        tracing::warn!(error = %e, device = id, "could not remove the device of a failed restore");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_key_is_64_hex_characters_and_reads_back_however_typed() {
        let key = RecoveryKey::generate();
        let shown = key.display();
        assert_eq!(shown.split(' ').count(), 16);
        assert_eq!(shown.chars().filter(|c| *c != ' ').count(), 64);
        let typed = shown.to_uppercase().replace(' ', "-");
        assert_eq!(*RecoveryKey::parse(&typed).unwrap().0, *key.0);
        for bad in ["", "abcd", &"g".repeat(64), &"a".repeat(65)] {
            assert!(RecoveryKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_backup_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b");
        write_atomically(&file, b"first").unwrap();
        write_atomically(&file, b"second").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        assert!(!dir.path().join("b.partial").exists());
        // A directory in the way: the old file is untouched.
        assert!(write_atomically(dir.path(), b"x").is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
    }
}
