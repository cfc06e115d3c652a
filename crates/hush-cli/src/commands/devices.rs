//! `hush link` (on a new device) and `hush devices ...` (decision 0023).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hush_client::local::LocalStore;
use hush_client::{Client, ConnectOptions, LinkRequest};
use serde_json::json;

use crate::config::{DevicesCommand, PassphraseSource};
use crate::output::Out;

/// What `hush link` was given.
pub struct LinkArgs<'a> {
    pub server: &'a str,
    pub fingerprint: Option<&'a str>,
    pub name: Option<&'a str>,
    pub timeout: Duration,
}

/// `hush link`: shows the code (and its QR code on stderr for people),
/// waits for the approval.
pub async fn link(
    dir: &Path,
    passphrase: &PassphraseSource,
    connect: ConnectOptions,
    args: LinkArgs<'_>,
    out: &mut Out,
) -> Result<()> {
    hush_client::transport::check_plain_http(args.server, connect)?;
    if LocalStore::exists(dir) {
        bail!(
            "an account is already in {}: link into another --data-dir",
            dir.display()
        );
    }
    let pass = crate::commands::account::passphrase_for_new(passphrase)?;
    let json = out.is_json();
    let mut shown = Ok(());
    let request = LinkRequest {
        server: args.server,
        fingerprint: args.fingerprint,
        name: args.name,
        timeout: args.timeout,
        options: connect,
    };
    let progress = crate::commands::backup::progress_printer(json, "history");
    let client = Client::link_with_progress(
        dir,
        &pass,
        request,
        |code| {
            shown = show_code(code, json, out);
        },
        progress,
    )
    .await
    .context("not linked")?;
    shown?;
    out.emit(
        || {
            format!(
                "linked: this is device {} of {} on {}; the store is in {}",
                client.device_id(),
                client.username(),
                client.server(),
                dir.display()
            )
        },
        json!({
            "linked": true,
            "username": client.username(),
            "device_id": client.device_id(),
            "server": client.server(),
            "data_dir": dir.display().to_string(),
        }),
    )?;
    Ok(())
}

fn show_code(code: &str, json: bool, out: &mut Out) -> Result<()> {
    if json {
        out.emit(String::new, json!({ "link_code": code }))?;
        return Ok(());
    }
    let qr = crate::commands::settings::render_qr(code.as_bytes())?;
    eprintln!("{qr}");
    out.human(&format!(
        "On a device where you are signed in, run:\n\n    hush devices link {code}\n\n\
         (or scan the QR code above). Waiting for the approval..."
    ))?;
    Ok(())
}

/// `hush devices ...`
pub async fn run(client: &mut Client, command: DevicesCommand, out: &mut Out) -> Result<()> {
    match command {
        DevicesCommand::List => list(client, out).await,
        DevicesCommand::Link {
            code,
            timeout,
            history,
        } => {
            let progress = crate::commands::backup::progress_printer(out.is_json(), "history");
            let id = client
                .link_device_with(&code, timeout, history, progress)
                .await
                .context("the device was not linked")?;
            out.emit(
                || format!("linked device {id}; it was added to your conversations"),
                json!({ "linked": true, "device_id": id }),
            )?;
            Ok(())
        }
        DevicesCommand::Rename { id, name } => {
            client.rename_device(id, &name)?;
            super::settings::share(client).await;
            out.emit(
                || format!("device {id} is now called {name}"),
                json!({ "renamed": true, "device_id": id, "name": name }),
            )?;
            Ok(())
        }
        DevicesCommand::Remove { id } => {
            client
                .remove_device(id)
                .await
                .with_context(|| format!("device {id} was not removed"))?;
            out.emit(
                || format!("removed device {id} from your account and every conversation"),
                json!({ "removed": true, "device_id": id }),
            )?;
            Ok(())
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the Unix epoch.
pub fn day(ms: u64) -> String {
    humantime::format_rfc3339(UNIX_EPOCH + Duration::from_millis(ms)).to_string()[..10].to_owned()
}

async fn list(client: &mut Client, out: &mut Out) -> Result<()> {
    for d in client.devices().await? {
        let name = d.name.clone().unwrap_or_else(|| format!("device {}", d.id));
        let last_seen = d.last_seen_ms.map(day);
        out.emit(
            || {
                format!(
                    "{}{:>3}  {}  added {}  last seen {}",
                    if d.this { "*" } else { " " },
                    d.id,
                    crate::inert::name(&name),
                    day(d.added_at_ms),
                    last_seen.clone().unwrap_or_else(|| "never here".into())
                )
            },
            json!({
                "id": d.id,
                "name": d.name,
                "this": d.this,
                "added_at": day(d.added_at_ms),
                "last_seen": last_seen,
            }),
        )?;
    }
    Ok(())
}
