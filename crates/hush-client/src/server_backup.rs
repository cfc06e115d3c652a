//! Backups stored on the server (decision 0035).
//!
//! The sealed backup (the same bytes as a backup file) goes to the account's
//! one backup slot on the server, under a locator derived from the recovery
//! key ([`hush_proto::archive::backup_locator`]): the server never sees the
//! key, cannot open the backup, and finds it again only for someone who
//! knows the key. Restoring on a new machine derives the locator from the
//! key typed in, downloads the backup without a token and opens it as a
//! backup file is opened; a server that returns other bytes is caught by the
//! archive's AEAD.

use hush_proto::archive::{self, HEADER_LEN, MAX_PLAINTEXT, Purpose, backup_locator};
use hush_wire::ErrorCode;
use hush_wire::api::{BACKUP_LOCATOR, BackupStatus};
use reqwest::Method;

use crate::backup::{BACKUP_KEY, BackupReport, RecoveryKey, RestoreRequest};
use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;
use crate::transport::Transport;

/// The most bytes a download reads: the largest sealed archive.
const MAX_DOWNLOAD: u64 = HEADER_LEN as u64 + MAX_PLAINTEXT + 16;

fn locator_hex(key: &RecoveryKey) -> String {
    hex::encode(backup_locator(&key.0))
}

impl Client {
    /// Stores a backup of everything on the server under a new recovery
    /// key, returned once in the report, replacing the account's previous
    /// backup there (a backup stored under an older key is gone). The key
    /// is also kept in this device's encrypted store for scheduled backups.
    pub async fn create_server_backup(&mut self) -> Result<BackupReport, ClientError> {
        let key = RecoveryKey::generate();
        let mut report = self.upload_backup(&key).await?;
        LocalStore::set_meta(&self.store.conn, BACKUP_KEY, &key.0[..])?;
        report.recovery_key = Some(key);
        Ok(report)
    }

    /// Seals the account under `key` and stores it in the account's slot.
    pub(crate) async fn upload_backup(
        &mut self,
        key: &RecoveryKey,
    ) -> Result<BackupReport, ClientError> {
        let (sealed, report) = self.seal_backup(key)?;
        self.transport
            .raw(
                Method::PUT,
                "/v1/backup",
                &[(BACKUP_LOCATOR, locator_hex(key))],
                Some(sealed),
            )
            .await?;
        self.note_backup_written()?;
        Ok(report)
    }

    /// The size and time of the backup the server holds for the account.
    /// (`&mut self` like the rest of the API: [`Client`] is `Send` but not
    /// `Sync`, so only a future holding `&mut Client` can run on a spawned
    /// task, as `hush chat`'s does.)
    pub async fn server_backup(&mut self) -> Result<Option<BackupStatus>, ClientError> {
        let got: Result<BackupStatus, ClientError> = self
            .transport
            .json(Method::GET, "/v1/backup", None::<&()>)
            .await;
        match got {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the account's backup from the server; false if it had none.
    pub async fn delete_server_backup(&mut self) -> Result<bool, ClientError> {
        let gone = self
            .transport
            .call(Method::DELETE, "/v1/backup", None::<&()>)
            .await;
        match gone {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Downloads the backup stored on `req.server` under `key`'s locator and
/// checks its header (nothing is written). A wrong key finds nothing: a
/// clear error.
pub async fn download_backup(
    req: &RestoreRequest<'_>,
    key: &RecoveryKey,
) -> Result<Vec<u8>, ClientError> {
    let transport =
        Transport::with_options(req.server, req.fingerprint.map(str::to_owned), req.options)?;
    let path = format!("/v1/backups/{}", locator_hex(key));
    let mut resp = match transport.raw(Method::GET, &path, &[], None).await {
        Err(e) if e.code() == Some(ErrorCode::NotFound) => {
            return Err(ClientError::InvalidInput(
                "the server holds no backup for this recovery key: check the key (a newer \
                 `hush backup create --to-server` replaces the backup and its key)"
                    .into(),
            ));
        }
        other => other?,
    };
    let mut sealed = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::Network(format!("{}: {e}", transport.base())))?
    {
        if sealed.len() as u64 + chunk.len() as u64 > MAX_DOWNLOAD {
            return Err(ClientError::Archive(archive::ArchiveError::Corrupt));
        }
        sealed.extend_from_slice(&chunk);
    }
    archive::check_header(&sealed, Purpose::Backup)?;
    Ok(sealed)
}
