//! `hush verify`, `contacts`, `presence`, `disappear`, `profile set`,
//! `block`/`unblock`, `keys export-key-package`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hush_client::{Client, PresenceMode, Target};
use hush_proto::Suite;
use serde_json::json;

use crate::inert;
use crate::output::Out;

/// Shows the safety number with `username` (digits and a QR code), and
/// records the comparison with `mark`.
pub async fn verify(client: &mut Client, username: &str, mark: bool, out: &mut Out) -> Result<()> {
    let number = client.safety_number(username).await?;
    // The safety number's lookup already refused keys the directory does
    // not prove; this says what it proved.
    let kt = client.kt_status(username).await?;
    if mark {
        // Marks the key the number above was made from, and only that key.
        client.mark_verified(username, &number)?;
        share(client).await;
    }
    let verified = client
        .contacts()?
        .into_iter()
        .any(|c| c.username == username && c.verified);
    let groups = number.groups();
    let qr = render_qr(&number.qr_payload())?;
    out.emit(
        || {
            let rows: Vec<String> = groups.chunks(4).map(|row| row.join(" ")).collect();
            let status = if mark {
                format!("{username} is now marked verified.")
            } else if verified {
                format!("{username} is marked verified.")
            } else {
                format!(
                    "If the digits match {username}'s screen (or their app scans the code), \
                     run `hush verify {username} --mark-verified`."
                )
            };
            let kt_line = format!(
                "Key transparency: the server's directory vouches for these keys \
                 (version {} of {username}'s keys, published in epoch {}; checked against \
                 the signed root of epoch {}; devices {}).",
                kt.version,
                kt.published_epoch,
                kt.epoch,
                kt.devices
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            format!(
                "Safety number with {username}:\n\n    {}\n\n{qr}\n{kt_line}\n{status}",
                rows.join("\n    ")
            )
        },
        json!({
            "username": username,
            "safety_number": groups.join(" "),
            "qr_payload": hex_string(&number.qr_payload()),
            "verified": verified,
            "key_transparency": {
                "vouched": true,
                "epoch": kt.epoch,
                "version": kt.version,
                "published_epoch": kt.published_epoch,
                "devices": kt.devices,
            },
        }),
    )?;
    Ok(())
}

/// `hush audit`: checks the server's whole chain of epoch roots.
pub async fn audit(
    server: &str,
    from: u64,
    fingerprint: Option<&str>,
    connect: hush_client::ConnectOptions,
    out: &mut Out,
) -> Result<()> {
    let transport = hush_client::transport::Transport::with_options(
        server,
        fingerprint.map(str::to_owned),
        connect,
    )?;
    let mut checked = 0u64;
    let result = hush_client::audit_server(&transport, from, None, |_| checked += 1).await;
    match result {
        Ok(latest) => Ok(out.emit(
            || {
                format!(
                    "ok: epochs {from} to {latest} are signed by the server's key and each \
                     extends the one before ({checked} append-only proofs checked)"
                )
            },
            json!({"ok": true, "from": from, "latest_epoch": latest, "proofs_checked": checked}),
        )?),
        Err(hush_client::AuditFailure::Broken { epoch, error }) => {
            if out.is_json() {
                out.emit(
                    String::new,
                    json!({"ok": false, "failed_epoch": epoch, "error": error.to_string()}),
                )?;
            }
            anyhow::bail!("audit failed at epoch {epoch}: {error}")
        }
        Err(e) => anyhow::bail!("audit could not run: {e}"),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A QR code drawn with Unicode half blocks, two modules per character
/// row, light on dark so terminals with dark backgrounds scan well.
pub fn render_qr(payload: &[u8]) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(payload).map_err(|e| anyhow!("cannot draw the QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The same QR code as an SVG picture, dark on light (the web app's
/// safety-number dialog shows it).
pub fn render_qr_svg(payload: &[u8]) -> Result<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(payload).map_err(|e| anyhow!("cannot draw the QR code: {e}"))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// Lists contacts, refreshing display names where a profile was shared.
pub async fn contacts(client: &mut Client, out: &mut Out) -> Result<()> {
    for c in client.contacts()? {
        // Best effort: a profile that cannot be fetched keeps the stored name.
        let _ = client.refresh_profile(&c.username).await;
    }
    // A name that changed goes to this account's other devices.
    share(client).await;
    for c in client.contacts()? {
        out.emit(
            || {
                let mut line = crate::inert::name(&c.username).into_owned();
                if let Some(n) = &c.display_name {
                    line.push_str(&format!(" ({})", crate::inert::name(n)));
                }
                if c.verified {
                    line.push_str("  verified");
                }
                if c.key_changed {
                    line.push_str("  KEY CHANGED: run `hush verify`");
                }
                if c.blocked {
                    line.push_str("  blocked");
                }
                line
            },
            serde_json::to_value(&c).unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// Sends a change to this account's other devices now (decision 0025);
/// when the server cannot be reached it stays queued and goes with the
/// next command that reaches it.
pub async fn share(client: &mut Client) {
    if let Err(e) = client.flush_outbox().await {
        eprintln!("note: the change reaches your other devices with the next command ({e})");
    }
}

/// Sets who sees this account's presence.
pub async fn presence(client: &mut Client, mode: PresenceMode, out: &mut Out) -> Result<()> {
    client.set_presence_mode(mode)?;
    share(client).await;
    out.emit(
        || format!("presence is now shown to: {}", mode.as_str()),
        json!({"presence": mode.as_str()}),
    )?;
    Ok(())
}

/// Sets a conversation's disappearing-message timer.
pub async fn disappear(
    client: &mut Client,
    target: &Target,
    seconds: Option<u32>,
    out: &mut Out,
) -> Result<()> {
    client.set_disappearing(target, seconds).await?;
    let (kind, name) = match target {
        Target::User(u) => ("direct", u.as_str()),
        Target::Group(g) => ("group", g.as_str()),
    };
    out.emit(
        || match seconds {
            Some(s) => format!(
                "messages with {name} now disappear after {}",
                humantime::format_duration(Duration::from_secs(u64::from(s)))
            ),
            None => format!("disappearing messages with {name} are off"),
        },
        json!({"kind": kind, "name": name, "seconds": seconds}),
    )?;
    Ok(())
}

/// `hush mute` (for a while, or until unmuted) and `hush unmute`.
pub fn mute(
    client: &mut Client,
    target: &Target,
    mute: Option<Option<Duration>>,
    out: &mut Out,
) -> Result<()> {
    let until = mute.map(|d| match d {
        Some(d) => hush_client::client::now_ms().saturating_add(d.as_millis() as u64),
        None => hush_client::mute::FOREVER,
    });
    client.mute(target, until)?;
    let (kind, raw) = match target {
        Target::User(u) => ("direct", u.as_str()),
        Target::Group(g) => ("group", g.as_str()),
    };
    let name = match target {
        Target::User(u) => inert::name(u).into_owned(),
        Target::Group(g) => format!("#{}", inert::name(g)),
    };
    out.emit(
        || match mute {
            Some(Some(d)) => format!(
                "{name} is muted on this device for {} (mentions still notify)",
                humantime::format_duration(d)
            ),
            Some(None) => format!("{name} is muted on this device until you unmute it"),
            None => format!("{name} is unmuted"),
        },
        json!({"kind": kind, "name": raw, "muted_until": until}),
    )?;
    Ok(())
}

/// Sets the display name and avatar.
pub async fn profile_set(
    client: &mut Client,
    name: &str,
    avatar: Option<&Path>,
    out: &mut Out,
) -> Result<()> {
    let avatar = avatar
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let avatar_bytes = avatar.as_ref().map(Vec::len);
    client.set_profile(name, avatar).await?;
    out.emit(
        || format!("profile set: {name}"),
        json!({"name": name, "avatar_bytes": avatar_bytes}),
    )?;
    Ok(())
}

/// Shows this account's profile as the server holds it.
pub async fn profile_show(client: &mut Client, out: &mut Out) -> Result<()> {
    let p = client.own_profile().await?;
    let name = p.as_ref().and_then(|p| p.name.clone());
    let avatar_type = p.as_ref().and_then(hush_client::Profile::avatar_type);
    let avatar_bytes = p.as_ref().and_then(|p| p.avatar.as_ref().map(Vec::len));
    out.emit(
        || match (&p, avatar_type, avatar_bytes) {
            (None, _, _) => {
                "no profile yet: set one with `hush profile set --name NAME`".to_owned()
            }
            (Some(_), Some(t), Some(n)) => {
                format!("{} (avatar: {t}, {n} bytes)", name.as_deref().unwrap_or(""))
            }
            (Some(_), _, _) => format!("{} (no avatar)", name.as_deref().unwrap_or("")),
        },
        json!({"name": name, "avatar_bytes": avatar_bytes, "avatar_type": avatar_type}),
    )?;
    Ok(())
}

/// Blocks or unblocks a contact.
pub async fn block(
    client: &mut Client,
    username: &str,
    blocked: bool,
    out: &mut Out,
) -> Result<()> {
    client.set_blocked(username, blocked)?;
    share(client).await;
    out.emit(
        || {
            if blocked {
                format!("blocked {username}")
            } else {
                format!("unblocked {username}")
            }
        },
        json!({"username": username, "blocked": blocked}),
    )?;
    Ok(())
}

/// Writes a fresh KeyPackage (RFC 9420 MLSMessage) to `path`.
pub fn export_key_package(
    client: &mut Client,
    suite: Suite,
    path: &Path,
    out: &mut Out,
) -> Result<()> {
    let bytes = client.export_key_package(suite)?;
    std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    let name = suite.name();
    out.emit(
        || {
            format!(
                "wrote a {name} KeyPackage ({} bytes) to {}",
                bytes.len(),
                path.display()
            )
        },
        json!({"path": path.display().to_string(), "suite": name, "bytes": bytes.len()}),
    )?;
    Ok(())
}
