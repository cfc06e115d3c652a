//! `hush register`, and opening the account for every other command.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use hush_client::local::LocalStore;
use hush_client::{Client, ConnectOptions};
use serde_json::json;
use zeroize::Zeroizing;

use crate::config::{PASSPHRASE_ENV, PassphraseSource};
use crate::output::Out;

/// Creates the account `username` on `server` with its store in `dir`.
pub async fn register(
    dir: &Path,
    passphrase: &PassphraseSource,
    connect: ConnectOptions,
    server: &str,
    fingerprint: Option<&str>,
    username: &str,
    out: &mut Out,
) -> Result<()> {
    // Refused before any question is asked or connection made.
    hush_client::transport::check_plain_http(server, connect)?;
    if LocalStore::exists(dir) {
        bail!(
            "an account is already registered in {}: use another --data-dir",
            dir.display()
        );
    }
    let pinned = match fingerprint {
        Some(fp) => Some(fp.to_owned()),
        None if server.starts_with("https://") => Some(confirm_fingerprint(server).await?),
        None => None,
    };
    let pass = passphrase_for_new(passphrase)?;
    let client =
        Client::register_with(dir, &pass, server, username, pinned.as_deref(), connect).await?;
    out.emit(
        || {
            format!(
                "registered {} on {} (device {}); the store is in {}",
                client.username(),
                client.server(),
                client.device_id(),
                dir.display()
            )
        },
        json!({
            "username": client.username(),
            "device_id": client.device_id(),
            "server": client.server(),
            "data_dir": dir.display().to_string(),
        }),
    )?;
    Ok(())
}

/// The passphrase for a new store: from the environment, or asked twice.
pub fn passphrase_for_new(passphrase: &PassphraseSource) -> Result<Zeroizing<String>> {
    Ok(match passphrase {
        PassphraseSource::Env(p) => p.clone(),
        PassphraseSource::Prompt => new_passphrase()?,
    })
}

/// Opens the account in `dir` (Argon2id runs off the async threads).
pub async fn open(
    dir: &Path,
    passphrase: &PassphraseSource,
    connect: ConnectOptions,
) -> Result<Client> {
    if !LocalStore::exists(dir) {
        bail!(
            "no account in {}: run `hush register --server URL USERNAME` first, or pass --data-dir",
            dir.display()
        );
    }
    let pass = match passphrase {
        PassphraseSource::Env(p) => p.clone(),
        PassphraseSource::Prompt => prompt(&format!("Passphrase for {}: ", dir.display()))?,
    };
    let dir = dir.to_owned();
    let client = tokio::task::spawn_blocking(move || Client::open_with(&dir, &pass, connect))
        .await
        .context("opening the store was interrupted")??;
    Ok(client)
}

/// `hush account rotate-token`: a new server token for this device.
pub async fn rotate_token(client: &mut Client, out: &mut Out) -> Result<()> {
    client
        .rotate_token()
        .await
        .context("cannot rotate the token")?;
    out.emit(
        || "this device has a new server token; the old one no longer works".to_owned(),
        json!({ "rotated": true }),
    )?;
    Ok(())
}

fn prompt(text: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(text).map(Zeroizing::new).map_err(|e| {
        anyhow::anyhow!(
            "cannot ask for the passphrase ({e}): set {PASSPHRASE_ENV} or run hush in a terminal"
        )
    })
}

fn new_passphrase() -> Result<Zeroizing<String>> {
    let first = prompt("New passphrase for the local store: ")?;
    if first.is_empty() {
        bail!("the passphrase is empty");
    }
    let second = prompt("Repeat the passphrase: ")?;
    if first != second {
        bail!("the passphrases do not match; nothing was created");
    }
    Ok(first)
}

/// Shows a new https:// server's certificate fingerprint and asks whether to
/// trust it; without a terminal to ask on, refuses.
async fn confirm_fingerprint(server: &str) -> Result<String> {
    let seen = hush_client::probe_fingerprint(server)
        .await
        .with_context(|| format!("cannot reach {server} to read its certificate"))?;
    if !std::io::stdin().is_terminal() {
        bail!(
            "cannot confirm the certificate of {server} without a terminal: check its fingerprint \
             with the operator (`hush-server fingerprint`) and pass --trust-fingerprint FP \
             (the server presents {seen})"
        );
    }
    let mut err = std::io::stderr();
    writeln!(
        err,
        "The server {server} presents a certificate with SHA-256 fingerprint\n\n    {seen}\n\n\
         Compare it with what the operator gives you (`hush-server fingerprint`)."
    )?;
    write!(err, "Trust this certificate? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("not registered: the certificate of {server} was not trusted");
    }
    Ok(seen)
}
