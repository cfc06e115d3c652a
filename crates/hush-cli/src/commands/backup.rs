//! `hush backup ...`, `hush restore` and `hush readd` (decision 0026), and
//! the progress lines of a history transfer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hush_client::local::LocalStore;
use hush_client::{
    BackupReport, BackupTarget, Client, ConnectOptions, Progress, RecoveryKey, RestoreRequest,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::config::{BackupCommand, PassphraseSource};
use crate::output::{Out, format_size};

/// The variable `hush restore` reads the recovery key from.
pub const RECOVERY_KEY_ENV: &str = "HUSH_RECOVERY_KEY";

/// Prints each step of a history transfer or restore: a line for people
/// (downloads and uploads at most every tenth), a `{"progress": ...}`
/// object with `--json`.
pub fn progress_printer(json: bool, who: &'static str) -> impl FnMut(Progress) {
    let mut out = Out::new(json);
    let mut step = progress_steps(who);
    move |p: Progress| {
        if let Some((human, value)) = step(p) {
            let _ = out.emit(|| human, value);
        }
    }
}

/// Turns each step of a history transfer or restore into a line for
/// people and a `{"progress": ...}` object; `None` for an upload or
/// download step within the same tenth as the last one shown.
pub fn progress_steps(who: &'static str) -> impl FnMut(Progress) -> Option<(String, Value)> {
    let mut last_tenth = None;
    move |p: Progress| {
        Some(match &p {
            Progress::Packed { messages, bytes } => (
                format!(
                    "{who}: packed {messages} messages ({})",
                    format_size(*bytes)
                ),
                json!({"progress": "packed", "messages": messages, "bytes": bytes}),
            ),
            Progress::Uploaded { done, total } | Progress::Downloaded { done, total } => {
                let tenth = (done * 10).checked_div(*total).unwrap_or(10);
                if last_tenth == Some(tenth) && done != total {
                    return None;
                }
                last_tenth = Some(tenth);
                let step = if matches!(p, Progress::Uploaded { .. }) {
                    "uploaded"
                } else {
                    "downloaded"
                };
                (
                    format!(
                        "{who}: {step} {} of {}",
                        format_size(*done),
                        format_size(*total)
                    ),
                    json!({"progress": step, "done": done, "total": total}),
                )
            }
            Progress::Sent => (
                format!("{who}: sent to the new device"),
                json!({"progress": "sent"}),
            ),
            Progress::Imported {
                messages,
                conversations,
            } => (
                format!("{who}: imported {messages} messages in {conversations} conversations"),
                json!({"progress": "imported", "messages": messages, "conversations": conversations}),
            ),
        })
    }
}

/// `hush backup ...`
pub async fn run(client: &mut Client, command: BackupCommand, out: &mut Out) -> Result<()> {
    match command {
        BackupCommand::Create {
            out: file,
            to_server,
        } => {
            let report = if to_server {
                client
                    .create_server_backup()
                    .await
                    .context("no backup was stored on the server")?
            } else {
                let file = file.unwrap_or_else(default_file);
                client
                    .create_backup(&file)
                    .with_context(|| format!("no backup was written to {}", file.display()))?
            };
            created(&report, out)
        }
        BackupCommand::Schedule { target, every } => {
            match (target, every) {
                (Some(target), Some(every)) => client.schedule_backup(target, every)?,
                (None, None) => {}
                _ => bail!(
                    "give --out FILE (or --to-server) and --every DURATION, or neither to see \
                     the schedule"
                ),
            }
            show_schedule(client, out)
        }
        BackupCommand::Status => {
            let stored = client.server_backup().await?;
            out.emit(
                || match &stored {
                    Some(s) => format!(
                        "the server holds a backup of {} stored {}",
                        format_size(s.size),
                        when(s.updated_at_ms)
                    ),
                    None => "the server holds no backup of this account".into(),
                },
                json!({"server_backup": stored.as_ref().map(|s| json!({
                    "bytes": s.size, "updated_at_ms": s.updated_at_ms,
                }))}),
            )?;
            show_schedule(client, out)
        }
        BackupCommand::Delete => {
            let deleted = client.delete_server_backup().await?;
            out.emit(
                || {
                    if deleted {
                        "deleted the backup stored on the server".into()
                    } else {
                        "the server held no backup of this account".into()
                    }
                },
                json!({"deleted": deleted}),
            )?;
            Ok(())
        }
    }
}

/// A time (ms since the Unix epoch) as RFC 3339 to the second, UTC.
pub fn when(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Where a backup went, for people and for `--json`.
fn place(report: &BackupReport) -> (String, Value) {
    match &report.path {
        Some(p) => (p.display().to_string(), json!(p.display().to_string())),
        None => ("the server".into(), json!("server")),
    }
}

fn created(report: &BackupReport, out: &mut Out) -> Result<()> {
    let key = report
        .recovery_key
        .as_ref()
        .map(RecoveryKey::display)
        .unwrap_or_default();
    let (human, value) = place(report);
    let how = if report.path.is_some() {
        "Restore on a new machine with `hush restore --server URL FILE`; keep the key apart \
         from the file."
    } else {
        "Restore on a new machine with `hush restore --server URL --from-server`: the key \
         alone finds and opens it. A new `backup create --to-server` replaces it (and its key)."
    };
    out.emit(
        || {
            format!(
                "wrote {human} ({}, {} messages in {} conversations)\n\n\
                 Recovery key (shown once; write it down):\n\n    {}\n\n{how}",
                format_size(report.bytes),
                report.messages,
                report.conversations,
                key.as_str()
            )
        },
        json!({
            "backup": value,
            "bytes": report.bytes,
            "messages": report.messages,
            "conversations": report.conversations,
            "recovery_key": key.as_str(),
        }),
    )?;
    Ok(())
}

fn show_schedule(client: &Client, out: &mut Out) -> Result<()> {
    match client.backup_schedule()? {
        Some((target, every)) => {
            let (human, value) = match &target {
                BackupTarget::File(p) => (p.display().to_string(), json!(p.display().to_string())),
                BackupTarget::Server => ("the server".into(), json!("server")),
            };
            out.emit(
                || {
                    format!(
                        "a backup is kept at {human} no older than {} (checked by each \
                         `hush sync`)",
                        humantime::format_duration(every)
                    )
                },
                json!({"schedule": value, "every_secs": every.as_secs()}),
            )?
        }
        None => out.emit(
            || "no backup is scheduled".into(),
            json!({"schedule": null}),
        )?,
    }
    Ok(())
}

/// `hush-backup-YYYY-MM-DD.hushbackup`, in the current directory.
pub fn default_file() -> PathBuf {
    let day = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    PathBuf::from(format!("hush-backup-{}.hushbackup", &day[..10]))
}

/// Writes the scheduled backup when due (after `hush sync`).
pub async fn scheduled(client: &mut Client, out: &mut Out) -> Result<()> {
    if let Some(report) = client
        .backup_if_due()
        .await
        .context("the scheduled backup failed")?
    {
        let (human, value) = place(&report);
        out.emit(
            || format!("backup: wrote {human} ({})", format_size(report.bytes)),
            json!({"backup": value, "bytes": report.bytes}),
        )?;
    }
    Ok(())
}

/// What `hush restore` was given.
pub struct RestoreArgs<'a> {
    pub server: &'a str,
    pub fingerprint: Option<&'a str>,
    pub name: Option<&'a str>,
    /// The backup file; `None`: the backup stored on the server.
    pub file: Option<&'a Path>,
}

fn recovery_key() -> Result<RecoveryKey> {
    let text = match std::env::var(RECOVERY_KEY_ENV) {
        Ok(k) if !k.is_empty() => Zeroizing::new(k),
        _ => rpassword::prompt_password("Recovery key (64 characters): ")
            .map(Zeroizing::new)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot ask for the recovery key ({e}): set {RECOVERY_KEY_ENV} or run hush \
                     in a terminal"
                )
            })?,
    };
    Ok(RecoveryKey::parse(&text)?)
}

/// `hush restore`: the account of a backup, as a new device in `dir`.
pub async fn restore(
    dir: &Path,
    passphrase: &PassphraseSource,
    connect: ConnectOptions,
    args: RestoreArgs<'_>,
    out: &mut Out,
) -> Result<()> {
    hush_client::transport::check_plain_http(args.server, connect)?;
    if LocalStore::exists(dir) {
        bail!(
            "an account is already in {}: restore into another --data-dir",
            dir.display()
        );
    }
    let request = RestoreRequest {
        server: args.server,
        fingerprint: args.fingerprint,
        name: args.name,
        options: connect,
    };
    let (sealed, key) = match args.file {
        Some(file) => {
            let sealed = std::fs::read(file)
                .with_context(|| format!("cannot read the backup {}", file.display()))?;
            // A cut-off or newer file is refused before the key is asked for.
            hush_proto::archive::check_header(&sealed, hush_proto::archive::Purpose::Backup)
                .map_err(hush_client::ClientError::from)
                .context("not restored")?;
            (sealed, recovery_key()?)
        }
        None => {
            let key = recovery_key()?;
            let sealed = hush_client::server_backup::download_backup(&request, &key)
                .await
                .context("not restored")?;
            (sealed, key)
        }
    };
    let pass = crate::commands::account::passphrase_for_new(passphrase)?;
    let client = Client::restore(
        dir,
        &pass,
        request,
        &sealed,
        &key,
        progress_printer(out.is_json(), "restore"),
    )
    .await
    .context("not restored")?;
    out.emit(
        || {
            format!(
                "restored {} as device {} on {}; the store is in {}. Your conversations come \
                 back as their other members run `hush readd {}` (or a device of yours that \
                 is still in them does); their history is here already",
                client.username(),
                client.device_id(),
                client.server(),
                dir.display(),
                client.username()
            )
        },
        json!({
            "restored": true,
            "username": client.username(),
            "device_id": client.device_id(),
            "server": client.server(),
            "data_dir": dir.display().to_string(),
        }),
    )?;
    Ok(())
}

/// `hush readd USER`
pub async fn readd(client: &mut Client, user: &str, out: &mut Out) -> Result<()> {
    let n = client
        .readd_devices(user)
        .await
        .with_context(|| format!("{user}'s devices were not added"))?;
    out.emit(
        || format!("added {n} device(s) of {user} to the conversations you share"),
        json!({"readded": n, "username": user}),
    )?;
    Ok(())
}

/// The period `hush backup schedule --every` takes (1 minute to a year).
pub fn parse_period(s: &str) -> Option<Duration> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| (Duration::from_secs(60)..=Duration::from_secs(366 * 86_400)).contains(d))
}
