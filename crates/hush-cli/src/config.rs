//! Resolves the parsed command line ([`crate::cli::LowArgs`]) into a
//! [`Config`]: the data directory chosen, targets (contact or group) and
//! durations checked, the passphrase source decided. Everything here is
//! pure, so a bad command line fails before anything is opened or sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hush_client::{ConnectOptions, PresenceMode, Target};
use hush_proto::Suite;
use zeroize::Zeroizing;

use crate::cli::{
    AccountCommand, ChannelCommand, GroupCommand, GroupOpt, KeysCommand, LowArgs, LowCommand,
    PollCommand, PresenceArg, ProfileCommand, SuiteArg,
};

/// The environment variable the passphrase is read from.
pub const PASSPHRASE_ENV: &str = "HUSH_PASSPHRASE";

/// What to run, and where.
#[derive(Debug)]
pub struct Config {
    /// The account's data directory.
    pub data_dir: PathBuf,
    /// One JSON object per line on stdout.
    pub json: bool,
    /// Where the passphrase comes from.
    pub passphrase: PassphraseSource,
    /// How the server may be reached (`--insecure-http`).
    pub connect: ConnectOptions,
    /// The command.
    pub command: Command,
}

/// Where the passphrase of the local store comes from. Every copy of a
/// passphrase hush makes is a [`Zeroizing`] string, wiped when dropped.
pub enum PassphraseSource {
    /// `HUSH_PASSPHRASE`.
    Env(Zeroizing<String>),
    /// Asked for on the terminal.
    Prompt,
}

impl std::fmt::Debug for PassphraseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(_) => f.write_str("Env(<redacted>)"),
            Self::Prompt => f.write_str("Prompt"),
        }
    }
}

/// A command with its arguments resolved.
#[derive(Debug)]
pub enum Command {
    Register {
        server: String,
        fingerprint: Option<String>,
        username: String,
    },
    Send {
        target: Target,
        text: String,
        reply_to: Option<String>,
    },
    Sync {
        wait: Duration,
    },
    History {
        target: Target,
    },
    Group(GroupCommand),
    Channel(ChannelCommand),
    ChannelSend {
        name: String,
        text: String,
    },
    ChannelHistory {
        name: String,
    },
    SendFile {
        target: Target,
        path: PathBuf,
    },
    ChannelSendFile {
        name: String,
        path: PathBuf,
        caption: Option<String>,
    },
    Download {
        id: String,
        out: PathBuf,
        force: bool,
    },
    Edit {
        id: String,
        text: String,
    },
    Delete {
        id: String,
    },
    React {
        id: String,
        emoji: Option<String>,
    },
    Forward {
        id: String,
        to: Target,
    },
    Poll(PollCommand),
    Pin {
        id: String,
        pinned: bool,
    },
    Pins {
        target: Target,
    },
    Search {
        text: String,
        target: Option<Target>,
        limit: usize,
    },
    Report {
        id: String,
        reason: String,
    },
    Verify {
        username: String,
        mark_verified: bool,
    },
    Audit {
        server: String,
        from: u64,
        fingerprint: Option<String>,
    },
    Contacts,
    Presence(PresenceMode),
    Disappear {
        target: Target,
        seconds: Option<u32>,
    },
    /// Mute for a while (`None`: until unmuted), or unmute.
    Mute {
        target: Target,
        mute: Option<Option<std::time::Duration>>,
    },
    ProfileSet {
        name: String,
        avatar: Option<PathBuf>,
    },
    ProfileShow,
    Block {
        username: String,
        blocked: bool,
    },
    ExportKeyPackage {
        suite: Suite,
        out: PathBuf,
    },
    Chat {
        target: Option<Target>,
    },
    Web {
        listen: SocketAddr,
        open: bool,
        remote: Option<crate::web::Remote>,
    },
    RotateToken,
    Link {
        server: String,
        fingerprint: Option<String>,
        name: Option<String>,
        timeout: Duration,
    },
    Devices(DevicesCommand),
    Backup(BackupCommand),
    Restore {
        server: String,
        fingerprint: Option<String>,
        name: Option<String>,
        /// The backup file; `None`: the backup stored on the server.
        file: Option<PathBuf>,
    },
    Readd {
        username: String,
    },
    Join {
        link: String,
        wait: Duration,
    },
}

/// `hush backup ...`, resolved.
#[derive(Debug)]
pub enum BackupCommand {
    Create {
        out: Option<PathBuf>,
        to_server: bool,
    },
    Schedule {
        target: Option<hush_client::BackupTarget>,
        every: Option<Duration>,
    },
    Status,
    Delete,
}

/// `hush devices ...`, resolved.
#[derive(Debug)]
pub enum DevicesCommand {
    List,
    Link {
        code: String,
        timeout: Duration,
        history: hush_client::HistoryScope,
    },
    Rename {
        id: u32,
        name: String,
    },
    Remove {
        id: u32,
    },
}

/// A command line that parsed but makes no sense.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

impl Config {
    /// Resolves `args`; `passphrase_env` is the value of `HUSH_PASSPHRASE`.
    pub fn resolve(
        args: LowArgs,
        passphrase_env: Option<Zeroizing<String>>,
    ) -> Result<Self, UsageError> {
        let data_dir = match args.data_dir {
            Some(d) => d,
            None => dirs::data_dir()
                .map(|d| d.join("hush"))
                .ok_or_else(|| usage("this platform has no data directory: pass --data-dir"))?,
        };
        let passphrase = match passphrase_env {
            Some(p) if !p.is_empty() => PassphraseSource::Env(p),
            _ => PassphraseSource::Prompt,
        };
        let command = resolve_command(args.command)?;
        if args.json && matches!(command, Command::Chat { .. }) {
            return Err(usage("`hush chat` is interactive; --json does not apply"));
        }
        Ok(Config {
            data_dir,
            json: args.json,
            passphrase,
            connect: ConnectOptions {
                insecure_http: args.insecure_http,
            },
            command,
        })
    }
}

fn resolve_command(cmd: LowCommand) -> Result<Command, UsageError> {
    Ok(match cmd {
        LowCommand::Register {
            server,
            trust_fingerprint,
            username,
        } => Command::Register {
            server,
            fingerprint: trust_fingerprint,
            username,
        },
        LowCommand::Send {
            channel: Some(name),
            mut args,
            ..
        } => {
            if args.len() != 1 {
                return Err(usage(
                    "with --channel NAME, give only TEXT (not a USERNAME too)",
                ));
            }
            Command::ChannelSend {
                name,
                text: args.remove(0),
            }
        }
        LowCommand::Send {
            group,
            reply_to,
            args,
            ..
        } => {
            let (target, text) = target_and_one(group, args, "TEXT")?;
            Command::Send {
                target,
                text,
                reply_to,
            }
        }
        LowCommand::Sync { wait } => {
            if !wait.is_finite() || !(0.0..=86_400.0).contains(&wait) {
                return Err(usage("--wait is a number of seconds from 0 to 86400"));
            }
            Command::Sync {
                wait: Duration::from_secs_f64(wait),
            }
        }
        LowCommand::History {
            channel: Some(name),
            username,
            ..
        } => {
            if username.is_some() {
                return Err(usage("give a USERNAME or --channel NAME, not both"));
            }
            Command::ChannelHistory { name }
        }
        LowCommand::History {
            group, username, ..
        } => Command::History {
            target: target_only(group, username)?,
        },
        LowCommand::Group { command } => Command::Group(command),
        LowCommand::Channel { command } => Command::Channel(command),
        LowCommand::Join { link, wait } => {
            if !wait.is_finite() || !(0.0..=86_400.0).contains(&wait) {
                return Err(usage("--wait is a number of seconds from 0 to 86400"));
            }
            Command::Join {
                link,
                wait: Duration::from_secs_f64(wait),
            }
        }
        LowCommand::SendFile {
            channel: Some(name),
            caption,
            args,
            ..
        } => match <[String; 1]>::try_from(args) {
            Ok([path]) => Command::ChannelSendFile {
                name,
                path: PathBuf::from(path),
                caption,
            },
            Err(_) => return Err(usage("with --channel NAME, give only PATH")),
        },
        LowCommand::SendFile { group, args, .. } => {
            let (target, path) = target_and_one(group, args, "PATH")?;
            Command::SendFile {
                target,
                path: PathBuf::from(path),
            }
        }
        LowCommand::Download {
            message_id,
            out,
            force,
        } => Command::Download {
            id: message_id,
            out,
            force,
        },
        LowCommand::Edit { message_id, text } => Command::Edit {
            id: message_id,
            text,
        },
        LowCommand::Delete { message_id } => Command::Delete { id: message_id },
        LowCommand::Pin { message_id, remove } => Command::Pin {
            id: message_id,
            pinned: !remove,
        },
        LowCommand::Pins { group, username } => Command::Pins {
            target: target_only(group, username)?,
        },
        LowCommand::Search { text, conv, limit } => Command::Search {
            text,
            target: conv.map(conversation),
            limit,
        },
        LowCommand::Poll { command } => Command::Poll(command),
        LowCommand::Forward { message_id, to } => Command::Forward {
            id: message_id,
            to: conversation(to),
        },
        LowCommand::React {
            message_id, emoji, ..
        } => Command::React {
            id: message_id,
            emoji,
        },
        LowCommand::Report { message_id, reason } => Command::Report {
            id: message_id,
            reason,
        },
        LowCommand::Verify {
            username,
            mark_verified,
        } => Command::Verify {
            username,
            mark_verified,
        },
        LowCommand::Audit {
            server,
            from,
            trust_fingerprint,
        } => Command::Audit {
            server,
            from,
            fingerprint: trust_fingerprint,
        },
        LowCommand::Contacts => Command::Contacts,
        LowCommand::Account {
            command: AccountCommand::RotateToken,
        } => Command::RotateToken,
        LowCommand::Presence { mode } => Command::Presence(match mode {
            PresenceArg::Everyone => PresenceMode::Everyone,
            PresenceArg::Contacts => PresenceMode::Contacts,
            PresenceArg::Nobody => PresenceMode::Nobody,
        }),
        LowCommand::Disappear { group, args } => {
            let (target, duration) = target_and_one(group, args, "DURATION")?;
            Command::Disappear {
                target,
                seconds: parse_timer(&duration)?,
            }
        }
        LowCommand::Profile {
            command: ProfileCommand::Set { name, avatar },
        } => Command::ProfileSet { name, avatar },
        LowCommand::Profile {
            command: ProfileCommand::Show,
        } => Command::ProfileShow,
        LowCommand::Mute {
            group,
            username,
            duration,
        } => Command::Mute {
            target: target_only(group, username)?,
            mute: Some(duration.as_deref().map(parse_mute).transpose()?),
        },
        LowCommand::Unmute { group, username } => Command::Mute {
            target: target_only(group, username)?,
            mute: None,
        },
        LowCommand::Block { username } => Command::Block {
            username,
            blocked: true,
        },
        LowCommand::Unblock { username } => Command::Block {
            username,
            blocked: false,
        },
        LowCommand::Keys {
            command: KeysCommand::ExportKeyPackage { suite, out },
        } => Command::ExportKeyPackage {
            suite: match suite {
                SuiteArg::Classical => Suite::Classical,
                SuiteArg::Pq => Suite::Hybrid,
            },
            out,
        },
        LowCommand::Link {
            server,
            trust_fingerprint,
            name,
            timeout,
        } => Command::Link {
            server,
            fingerprint: trust_fingerprint,
            name,
            timeout: parse_wait(&timeout)?,
        },
        LowCommand::Devices { command } => Command::Devices(match command {
            crate::cli::DevicesCommand::List => DevicesCommand::List,
            crate::cli::DevicesCommand::Link {
                code,
                timeout,
                history,
            } => DevicesCommand::Link {
                code,
                timeout: parse_wait(&timeout)?,
                history: hush_client::HistoryScope::parse(&history)
                    .map_err(|e| usage(e.to_string()))?,
            },
            crate::cli::DevicesCommand::Rename { id, name } => DevicesCommand::Rename { id, name },
            crate::cli::DevicesCommand::Remove { id } => DevicesCommand::Remove { id },
        }),
        LowCommand::Web {
            listen,
            open,
            remote,
            tls_cert,
            tls_key,
        } => {
            let remote = match (remote, tls_cert, tls_key) {
                (Some(host), Some(cert), Some(key)) => Some(crate::web::Remote {
                    host: parse_host(&host)?,
                    cert,
                    key,
                }),
                _ => None,
            };
            Command::Web {
                listen: parse_listen(&listen, remote.is_some())?,
                open,
                remote,
            }
        }
        LowCommand::Backup { command } => Command::Backup(match command {
            crate::cli::BackupCommand::Create { out, to_server } => {
                BackupCommand::Create { out, to_server }
            }
            crate::cli::BackupCommand::Status => BackupCommand::Status,
            crate::cli::BackupCommand::Delete => BackupCommand::Delete,
            crate::cli::BackupCommand::Schedule {
                out,
                to_server,
                every,
            } => BackupCommand::Schedule {
                target: match (out, to_server) {
                    (Some(f), _) => Some(hush_client::BackupTarget::File(f)),
                    (None, true) => Some(hush_client::BackupTarget::Server),
                    (None, false) => None,
                },
                every: every
                    .map(|e| {
                        crate::commands::backup_period(&e).ok_or_else(|| {
                            usage(format!(
                                "{e:?} is not a period like 12h or 7d (1m to 1 year)"
                            ))
                        })
                    })
                    .transpose()?,
            },
        }),
        LowCommand::Restore {
            server,
            trust_fingerprint,
            name,
            file,
            from_server: _,
        } => Command::Restore {
            server,
            fingerprint: trust_fingerprint,
            name,
            file,
        },
        LowCommand::Readd { username } => Command::Readd { username },
        LowCommand::Chat { group, username } => Command::Chat {
            target: match (group.group, username) {
                (None, None) => None,
                (g, u) => Some(target_only(GroupOpt { group: g }, u)?),
            },
        },
    })
}

/// A mute's length: a minute to a year.
fn parse_mute(s: &str) -> Result<std::time::Duration, UsageError> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| d.as_secs() >= 60 && d.as_secs() <= 366 * 86_400)
        .ok_or_else(|| {
            usage(format!(
                "--for {s:?} is not a duration like 8h or 7d (1m to 1 year)"
            ))
        })
}

/// `USERNAME` or `--group NAME`, exactly one.
fn target_only(group: GroupOpt, username: Option<String>) -> Result<Target, UsageError> {
    match (group.group, username) {
        (Some(g), None) => Ok(Target::Group(g)),
        (None, Some(u)) => Ok(Target::User(u)),
        (Some(_), Some(_)) => Err(usage("give a USERNAME or --group NAME, not both")),
        (None, None) => Err(usage("give a USERNAME or --group NAME")),
    }
}

/// `USERNAME X` or `--group NAME X`.
fn target_and_one(
    group: GroupOpt,
    mut args: Vec<String>,
    what: &str,
) -> Result<(Target, String), UsageError> {
    match (group.group, args.len()) {
        (Some(g), 1) => Ok((Target::Group(g), args.remove(0))),
        (Some(_), _) => Err(usage(format!(
            "with --group NAME, give only {what} (not a USERNAME too)"
        ))),
        (None, 2) => {
            let rest = args.remove(1);
            Ok((Target::User(args.remove(0)), rest))
        }
        (None, _) => Err(usage(format!(
            "give USERNAME {what}, or --group NAME {what}"
        ))),
    }
}

/// `off`, or a duration like `30s`, `5m`, `1h`, `7d`, as whole seconds.
pub fn parse_timer(s: &str) -> Result<Option<u32>, UsageError> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d = humantime::parse_duration(s).map_err(|e| {
        usage(format!(
            "{s:?} is not a duration like 30s, 5m, 1h, 7d or off: {e}"
        ))
    })?;
    let secs = u32::try_from(d.as_secs())
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            usage(format!(
                "{s:?} must be between 1 second and about 136 years"
            ))
        })?;
    Ok(Some(secs))
}

/// `hush web --listen`: a loopback address and port (`localhost:PORT` is
/// 127.0.0.1). Anything else is refused: the app would be served in the
/// clear to whoever can reach the address, and the access secret with it.
pub fn parse_listen(s: &str, remote: bool) -> Result<SocketAddr, UsageError> {
    let addr = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_owned(),
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        usage(format!(
            "--listen {s:?} is not an address and port like 127.0.0.1:7790"
        ))
    })?;
    if !addr.ip().is_loopback() && !remote {
        return Err(usage(format!(
            "--listen {s}: `hush web` serves only on loopback (127.0.0.1 or [::1]); \
             over another address the app, the access secret and every message would \
             travel in the clear: add --remote HOST --tls-cert PEM --tls-key PEM to serve \
             over TLS"
        )));
    }
    Ok(addr)
}

/// `--remote HOST`: a DNS name or an IP address, no port, no scheme.
fn parse_host(s: &str) -> Result<String, UsageError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(usage(format!(
            "--remote {s:?} is not a host name like hush.example.org"
        )))
    }
}

/// A `--timeout` like `90s` or `10m` (1 second to 1 day).
fn parse_wait(s: &str) -> Result<Duration, UsageError> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(d))
        .ok_or_else(|| usage(format!("{s:?} is not a wait like 90s or 10m (1s to 1d)")))
}

/// A conversation named on the command line: `#GROUP`, or a contact.
fn conversation(name: String) -> Target {
    match name.strip_prefix('#') {
        Some(group) => Target::Group(group.to_owned()),
        None => Target::User(name),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
