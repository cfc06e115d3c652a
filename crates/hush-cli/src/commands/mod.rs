//! Runs one resolved command against the account's [`hush_client::Client`].
//!
//! `register` creates the account; every other command opens it with the
//! passphrase first. Each command prints through [`crate::output::Out`].

mod account;
pub(crate) mod backup;
mod channels;
pub(crate) mod devices;
mod features;
mod files;
mod groups;
mod invites;
mod messages;
pub(crate) mod settings;

use anyhow::Result;
use hush_proto::channel::ChannelLink;

use crate::config::{Command, Config};
use crate::output::Out;

pub use channels::format_post;

/// A `hush backup schedule --every` period.
pub fn backup_period(s: &str) -> Option<std::time::Duration> {
    backup::parse_period(s)
}

/// Runs `config.command`.
pub async fn run(config: Config) -> Result<()> {
    let mut out = Out::new(config.json);
    let command = match config.command {
        Command::Register {
            server,
            fingerprint,
            username,
        } => {
            return account::register(
                &config.data_dir,
                &config.passphrase,
                config.connect,
                &server,
                fingerprint.as_deref(),
                &username,
                &mut out,
            )
            .await;
        }
        Command::Audit {
            server,
            from,
            fingerprint,
        } => {
            return settings::audit(
                &server,
                from,
                fingerprint.as_deref(),
                config.connect,
                &mut out,
            )
            .await;
        }
        Command::Link {
            server,
            fingerprint,
            name,
            timeout,
        } => {
            let args = devices::LinkArgs {
                server: &server,
                fingerprint: fingerprint.as_deref(),
                name: name.as_deref(),
                timeout,
            };
            return devices::link(
                &config.data_dir,
                &config.passphrase,
                config.connect,
                args,
                &mut out,
            )
            .await;
        }
        Command::Restore {
            server,
            fingerprint,
            name,
            file,
        } => {
            let args = backup::RestoreArgs {
                server: &server,
                fingerprint: fingerprint.as_deref(),
                name: name.as_deref(),
                file: file.as_deref(),
            };
            return backup::restore(
                &config.data_dir,
                &config.passphrase,
                config.connect,
                args,
                &mut out,
            )
            .await;
        }
        other => other,
    };
    let mut client = account::open(&config.data_dir, &config.passphrase, config.connect).await?;
    let c = &mut client;
    match command {
        Command::Register { .. }
        | Command::Audit { .. }
        | Command::Link { .. }
        | Command::Restore { .. } => Ok(()),
        Command::Backup(b) => backup::run(c, b, &mut out).await,
        Command::Readd { username } => backup::readd(c, &username, &mut out).await,
        Command::Devices(d) => devices::run(c, d, &mut out).await,
        Command::Send {
            target,
            text,
            reply_to,
        } => messages::send(c, &target, &text, reply_to.as_deref(), &mut out).await,
        Command::Sync { wait } => {
            messages::sync(c, wait, &mut out).await?;
            backup::scheduled(c, &mut out).await
        }
        Command::History { target } => messages::history(c, &target, &mut out).await,
        Command::Edit { id, text } => messages::edit(c, &id, &text, &mut out).await,
        Command::Delete { id } => messages::delete(c, &id, &mut out).await,
        Command::Poll(p) => features::poll(c, p, &mut out).await,
        Command::Forward { id, to } => features::forward(c, &id, &to, &mut out).await,
        Command::Pin { id, pinned } => features::pin(c, &id, pinned, &mut out).await,
        Command::Pins { target } => features::pins(c, &target, &mut out),
        Command::Search {
            text,
            target,
            limit,
        } => features::search(c, &text, target.as_ref(), limit, &mut out).await,
        Command::React { id, emoji } => features::react(c, &id, emoji.as_deref(), &mut out).await,
        Command::Report { id, reason } => messages::report(c, &id, &reason, &mut out).await,
        Command::Group(g) => groups::run(c, g, &mut out).await,
        Command::Channel(command) => channels::run(c, command, &mut out).await,
        Command::ChannelSend { name, text } => channels::send(c, &name, &text, &mut out).await,
        Command::ChannelHistory { name } => channels::history(c, &name, &mut out),
        Command::Join { link, .. } if ChannelLink::is_channel_link(&link) => {
            channels::join(c, &link, &mut out).await
        }
        Command::Join { link, wait } => invites::join(c, &link, wait, &mut out).await,
        Command::SendFile { target, path } => files::send(c, &target, &path, &mut out).await,
        Command::ChannelSendFile {
            name,
            path,
            caption,
        } => channels::send_file(c, &name, &path, caption.as_deref(), &mut out).await,
        Command::Download {
            id,
            out: path,
            force,
        } => files::download(c, &id, &path, force, &mut out).await,
        Command::Verify {
            username,
            mark_verified,
        } => settings::verify(c, &username, mark_verified, &mut out).await,
        Command::Contacts => settings::contacts(c, &mut out).await,
        Command::RotateToken => account::rotate_token(c, &mut out).await,
        Command::Presence(mode) => settings::presence(c, mode, &mut out).await,
        Command::Disappear { target, seconds } => {
            settings::disappear(c, &target, seconds, &mut out).await
        }
        Command::Mute { target, mute } => settings::mute(c, &target, mute, &mut out),
        Command::ProfileSet { name, avatar } => {
            settings::profile_set(c, &name, avatar.as_deref(), &mut out).await
        }
        Command::ProfileShow => settings::profile_show(c, &mut out).await,
        Command::Block { username, blocked } => {
            settings::block(c, &username, blocked, &mut out).await
        }
        Command::ExportKeyPackage { suite, out: path } => {
            settings::export_key_package(c, suite, &path, &mut out)
        }
        Command::Chat { target } => crate::tui::run(client, target).await,
        Command::Web {
            listen,
            open,
            remote,
        } => crate::web::run(client, listen, open, remote, &mut out).await,
    }
}
