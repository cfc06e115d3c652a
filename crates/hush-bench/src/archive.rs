//! `archive`: history archives and backups (decision 0026) with a real
//! client and server. An account sends 10,000 messages (by default; not
//! measured), then, measured:
//!
//! - linking a new device with all of that history (`--history all`),
//!   against linking one with none (`--history none`) in the same run;
//! - writing a backup (size and time), against copying the client's
//!   encrypted store file;
//! - restoring that backup as a new device, against restoring the backup of
//!   an account with no history.
//!
//! This process hosts every client; the server runs in its own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hush_client::{Client, HistoryScope, LinkRequest, RecoveryKey, RestoreRequest, Target};
use serde_json::{Value, json};

use crate::scenarios::Ctx;
use crate::stats::{Report, histogram, round3};

const PASSPHRASE: &str = "hush-bench passphrase";
const LINK_TIMEOUT: Duration = Duration::from_secs(600);

/// Links a new device in `dir` to `approver` with `scope` of the history;
/// returns the seconds from the approval's start to the new device's
/// return (history imported) and the messages the new device holds with
/// `peer`.
async fn link(
    approver: &mut Client,
    url: &str,
    dir: &Path,
    scope: HistoryScope,
    peer: &str,
) -> anyhow::Result<(f64, usize)> {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let request = LinkRequest {
        server: url,
        fingerprint: None,
        name: Some("bench"),
        timeout: LINK_TIMEOUT,
        options: Default::default(),
    };
    let new = Client::link(dir, PASSPHRASE, request, |code| {
        let _ = tx.send(code.to_owned());
    });
    let approve = async {
        let code = rx.await.context("the new device showed no code")?;
        let start = Instant::now();
        approver
            .link_device_with(&code, LINK_TIMEOUT, scope, |_| {})
            .await?;
        Ok::<_, anyhow::Error>(start)
    };
    let (new, start) = tokio::join!(new, approve);
    let mut new = new.context("linking")?;
    let seconds = start?.elapsed().as_secs_f64();
    let held = new.history(&Target::User(peer.to_owned()))?.len();
    Ok((seconds, held))
}

/// Writes a backup of `client` to `file`; (seconds, bytes, key).
fn back_up(client: &mut Client, file: &Path) -> anyhow::Result<(f64, u64, RecoveryKey)> {
    let start = Instant::now();
    let report = client.create_backup(file)?;
    let seconds = start.elapsed().as_secs_f64();
    let key = report.recovery_key.context("no recovery key")?;
    Ok((seconds, report.bytes, key))
}

/// Restores `file` into `dir`; seconds.
async fn restore(url: &str, dir: &Path, file: &Path, key: &RecoveryKey) -> anyhow::Result<f64> {
    let sealed = std::fs::read(file)?;
    let request = RestoreRequest {
        server: url,
        fingerprint: None,
        name: None,
        options: Default::default(),
    };
    let start = Instant::now();
    Client::restore(dir, PASSPHRASE, request, &sealed, key, |_| {}).await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Runs the archive scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Value> {
    let messages = ctx.pick(ctx.opts.messages, 10_000, 200);
    let target = ctx.hush("archive").await?;
    let url = target.urls.first().cloned().context("no server")?;
    let dir = ctx.scratch.path().join("archive-clients");
    let prefix = ctx.prefix("h");
    let text = "x".repeat(ctx.opts.size.max(1));
    let register = |name: String| {
        let dir = dir.join(&name);
        let url = url.clone();
        async move {
            Client::register(&dir, PASSPHRASE, &url, &name, None)
                .await
                .with_context(|| format!("registering {name}"))
        }
    };
    let alice_name = format!("{prefix}a");
    let mut alice = register(alice_name.clone()).await?;
    let bob = register(format!("{prefix}b")).await?;
    let bob_name = bob.username().to_owned();
    drop(bob);
    let mut empty = register(format!("{prefix}c")).await?;
    let to_bob = Target::User(bob_name.clone());
    let fill = Instant::now();
    for _ in 0..messages {
        alice.send_text(&to_bob, &text).await?;
    }
    let fill_seconds = fill.elapsed().as_secs_f64();

    let (link_none, _) = link(
        &mut alice,
        &url,
        &dir.join("link-none"),
        HistoryScope::None,
        &bob_name,
    )
    .await?;
    let (link_all, held) = link(
        &mut alice,
        &url,
        &dir.join("link-all"),
        HistoryScope::All,
        &bob_name,
    )
    .await?;
    if (held as u64) < messages {
        bail!("the linked device holds {held} of {messages} messages");
    }

    let store = dir.join(&alice_name).join("hush.db");
    let copy_start = Instant::now();
    std::fs::copy(&store, dir.join("store-copy.db"))?;
    std::fs::File::open(dir.join("store-copy.db"))?.sync_all()?;
    let copy_seconds = copy_start.elapsed().as_secs_f64();
    let store_bytes = std::fs::metadata(&store)?.len();

    let file = dir.join("alice.hushbackup");
    let (backup_seconds, backup_bytes, key) = back_up(&mut alice, &file)?;
    let empty_file = dir.join("empty.hushbackup");
    let (_, empty_bytes, empty_key) = back_up(&mut empty, &empty_file)?;
    let restore_empty = restore(&url, &dir.join("restore-empty"), &empty_file, &empty_key).await?;
    let restore_full = restore(&url, &dir.join("restore-full"), &file, &key).await?;

    let ratio = |a: f64, b: f64| round3(a / b.max(1e-9));
    let lat = histogram()?;
    let mut r = Report::new("archive", messages, link_all, &lat);
    ctx.common(&mut r, Some(&target));
    r.set("lost", json!(messages.saturating_sub(held as u64)));
    r.set("duplicated", json!((held as u64).saturating_sub(messages)));
    r.set("fill_seconds", json!(round3(fill_seconds)));
    r.set(
        "link",
        json!({
            "seconds_with_history": round3(link_all),
            "baseline_seconds_without_history": round3(link_none),
            "ratio": ratio(link_all, link_none),
        }),
    );
    r.set(
        "backup",
        json!({
            "seconds": round3(backup_seconds),
            "bytes": backup_bytes,
            "bytes_per_message": (backup_bytes as f64 / messages.max(1) as f64).round(),
            "empty_account_bytes": empty_bytes,
            "baseline_store_copy_seconds": round3(copy_seconds),
            "store_bytes": store_bytes,
            "ratio_to_store_copy": ratio(backup_seconds, copy_seconds),
        }),
    );
    r.set(
        "restore",
        json!({
            "seconds": round3(restore_full),
            "baseline_seconds_empty_backup": round3(restore_empty),
            "ratio": ratio(restore_full, restore_empty),
        }),
    );
    r.set(
        "params",
        json!({"messages": messages, "size": ctx.opts.size}),
    );
    Ok(r.into_value())
}
