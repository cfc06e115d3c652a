//! The command line as clap parses it: flags and positionals, nothing
//! resolved yet (ripgrep's "low-level arguments"). [`crate::config`] turns
//! this into what the commands run on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hush: an end-to-end encrypted messenger for the terminal.
///
/// The passphrase of the local store is read from HUSH_PASSPHRASE, or asked
/// for on the terminal.
#[derive(Debug, Parser)]
#[command(name = "hush", version, propagate_version = true)]
pub struct LowArgs {
    /// Where this account's encrypted store lives [default: the platform
    /// data directory + /hush].
    #[arg(long, env = "HUSH_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print one JSON object per line on stdout, and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// Allow plain http:// to a server that is not on this machine. Without
    /// it, only https:// reaches other machines (loopback needs no flag):
    /// over plain HTTP the device's token and all traffic can be read and
    /// changed by anyone on the way.
    #[arg(long, global = true)]
    pub insecure_http: bool,

    #[command(subcommand)]
    pub command: LowCommand,
}

/// One subcommand.
#[derive(Debug, Subcommand)]
pub enum LowCommand {
    /// Create an account on a server and this device's encrypted store.
    Register {
        /// The server, e.g. https://hush.example.org or http://127.0.0.1:7780.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The SHA-256 fingerprint of a self-signed server's certificate, as
        /// `hush-server fingerprint` prints it.
        #[arg(long, value_name = "FP")]
        trust_fingerprint: Option<String>,
        /// The username to register.
        username: String,
    },
    /// Make this a new device of an existing account: shows a one-time link
    /// code (and its QR code) and waits until another device of the account
    /// approves it with `hush devices link CODE`.
    Link {
        /// The account's server, e.g. https://hush.example.org.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The SHA-256 fingerprint of a self-signed server's certificate.
        #[arg(long, value_name = "FP")]
        trust_fingerprint: Option<String>,
        /// A name for this device (shown by `hush devices list`).
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for the approval, like 90s or 10m.
        #[arg(long, value_name = "DURATION", default_value = "5m")]
        timeout: String,
    },
    /// This account's devices: link a new one, list, rename, remove.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Encrypted backups under a recovery key: write one, or keep one fresh.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Bring an account back from a backup as a new device of it. The
    /// recovery key is read from HUSH_RECOVERY_KEY, or asked for.
    Restore {
        /// The account's server.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The SHA-256 fingerprint of a self-signed server's certificate.
        #[arg(long, value_name = "FP")]
        trust_fingerprint: Option<String>,
        /// A name for this device.
        #[arg(long)]
        name: Option<String>,
        /// The backup file (from `hush backup create`).
        #[arg(required_unless_present = "from_server")]
        file: Option<PathBuf>,
        /// Download the backup stored on the server under the recovery key
        /// (from `hush backup create --to-server`) instead of reading a file.
        #[arg(long, conflicts_with = "file")]
        from_server: bool,
    },
    /// Add USER's new devices (a restored or newly linked device the key
    /// directory lists under the key you know) to the conversations you
    /// share with them.
    Readd {
        /// The account whose devices to add (may be your own).
        username: String,
    },
    /// Send a text message: `hush send USERNAME TEXT`, `hush send --group
    /// NAME TEXT`, or post to a channel you own: `hush send --channel NAME TEXT`.
    Send {
        #[command(flatten)]
        group: GroupOpt,
        /// Post to a channel you own (by name) instead.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["group", "reply_to"])]
        channel: Option<String>,
        /// Answer this message (its id).
        #[arg(long, value_name = "ID")]
        reply_to: Option<String>,
        /// USERNAME and TEXT, or only TEXT with --group.
        #[arg(value_name = "USERNAME|TEXT", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Receive what is waiting and print each event as it arrives.
    Sync {
        /// Keep listening this many seconds after the queue is drained.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        wait: f64,
    },
    /// Print a conversation and mark it read (or a channel's posts).
    History {
        #[command(flatten)]
        group: GroupOpt,
        /// A channel (by name) instead.
        #[arg(long, value_name = "NAME", conflicts_with = "group")]
        channel: Option<String>,
        /// The contact (omit with --group).
        username: Option<String>,
    },
    /// Join a group through an invite link (`hush group invite`); a link
    /// that needs approval files a request for the group's admins. A
    /// channel's link (`hush channel invite`) subscribes to the channel.
    Join {
        /// The invite link, or a channel's link.
        link: String,
        /// Wait up to this many seconds for the group to arrive.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        wait: f64,
    },
    /// Manage groups.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Channels: posts by their owner that whoever has the link reads,
    /// end-to-end encrypted, with no list of subscribers anywhere.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// Encrypt, upload and send a file (or post it to a channel you own:
    /// `hush send-file --channel NAME PATH`).
    SendFile {
        #[command(flatten)]
        group: GroupOpt,
        /// Post the file to a channel you own (by name) instead.
        #[arg(long, value_name = "NAME", conflicts_with = "group")]
        channel: Option<String>,
        /// A caption for the file (with --channel).
        #[arg(long, value_name = "TEXT", requires = "channel")]
        caption: Option<String>,
        /// USERNAME and PATH, or only PATH with --group.
        #[arg(value_name = "USERNAME|PATH", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Download and decrypt the file of a message or of a channel post.
    Download {
        /// The message's id (or the channel post's).
        message_id: String,
        /// Where to write the file.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Replace the text of one of your messages, for everyone.
    Edit {
        /// The message id.
        message_id: String,
        /// The new text.
        text: String,
    },
    /// Delete one of your messages for everyone (a group's admins: any member's message in it).
    Delete {
        /// The message id.
        message_id: String,
    },
    /// Forward a message (text or file) to another conversation, marked
    /// forwarded; a file is not uploaded again.
    Forward {
        /// The message id.
        message_id: String,
        /// Where to: a contact's username, or #GROUP.
        #[arg(long, value_name = "CONVERSATION")]
        to: String,
    },
    /// Polls in groups: create one, vote, see the results.
    Poll {
        #[command(subcommand)]
        command: PollCommand,
    },
    /// Pin a message for every member of its conversation (in a group
    /// where only admins send, only admins pin), or unpin it with --remove.
    Pin {
        /// The message id.
        message_id: String,
        /// Unpin it.
        #[arg(long)]
        remove: bool,
    },
    /// List a conversation's pinned messages, the most recently pinned first.
    Pins {
        #[command(flatten)]
        group: GroupOpt,
        /// The contact (omit with --group).
        username: Option<String>,
    },
    /// Search the text of every conversation's local history (or one
    /// conversation's), newest first.
    Search {
        /// The text to find (any case, anywhere in a message).
        text: String,
        /// Only in this conversation: a contact's username, or #GROUP.
        #[arg(long, value_name = "CONVERSATION")]
        conv: Option<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// React to a message with an emoji (one per member: a new one
    /// replaces yours), or take your reaction back with --remove.
    React {
        /// The message id.
        message_id: String,
        /// The emoji.
        #[arg(required_unless_present = "remove", conflicts_with = "remove")]
        emoji: Option<String>,
        /// Take your reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// Report a received message to the server's moderators, with proof of
    /// who sent it. Only this message is revealed.
    Report {
        /// The message id (from `hush history` or `hush sync`).
        message_id: String,
        /// Why you report it.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Show the safety number with a contact, as digits and a QR code.
    Verify {
        /// The contact.
        username: String,
        /// Record that you compared it and it matched.
        #[arg(long)]
        mark_verified: bool,
    },
    /// Audit a server's key directory as an outsider: check that every epoch
    /// root is signed by its key and that the directory only ever grew.
    /// Exits non-zero, naming the failing epoch, on any break.
    Audit {
        /// The server, e.g. https://hush.example.org.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The first epoch to check.
        #[arg(long, value_name = "EPOCH", default_value_t = 0)]
        from: u64,
        /// The SHA-256 fingerprint of a self-signed server's certificate.
        #[arg(long, value_name = "FP")]
        trust_fingerprint: Option<String>,
    },
    /// List the contacts this account has met.
    Contacts,
    /// Choose who sees when you are online.
    Presence {
        /// everyone, contacts or nobody.
        mode: PresenceArg,
    },
    /// Set the disappearing-message timer of a conversation.
    Disappear {
        #[command(flatten)]
        group: GroupOpt,
        /// USERNAME and DURATION, or only DURATION with --group. A duration
        /// is like 30s, 5m, 1h or 7d; `off` turns the timer off.
        #[arg(value_name = "USERNAME|DURATION", num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Your profile, shared with your contacts (encrypted).
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Mute a conversation on this device: no notifications, except
    /// when you are mentioned. Without --for, until you unmute it.
    Mute {
        #[command(flatten)]
        group: GroupOpt,
        /// The other person of a 1:1 chat (or --group NAME).
        username: Option<String>,
        /// How long, like 8h or 7d.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Unmute a conversation on this device.
    Unmute {
        #[command(flatten)]
        group: GroupOpt,
        /// The other person of a 1:1 chat (or --group NAME).
        username: Option<String>,
    },
    /// Drop every message from a contact.
    Block {
        /// The contact.
        username: String,
    },
    /// Receive a blocked contact's messages again.
    Unblock {
        /// The contact.
        username: String,
    },
    /// This device's keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// This device's access to the server.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// The messenger in a browser tab: serves a local web app (and its
    /// JSON API) on loopback and prints the link to open, with a one-time
    /// access secret. Keys and decryption stay in this process.
    Web {
        /// The address and port to serve on (port 0: any free one). Only
        /// loopback addresses, unless --remote is given.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
        listen: String,
        /// Open the link in the system's web browser.
        #[arg(long)]
        open: bool,
        /// Serve beyond loopback, over TLS, to browsers that reach this
        /// machine as HOST (the name the certificate is for).
        #[arg(long, value_name = "HOST", requires_all = ["tls_cert", "tls_key"])]
        remote: Option<String>,
        /// The TLS certificate chain (PEM) for --remote.
        #[arg(long, value_name = "PEM", requires = "remote")]
        tls_cert: Option<PathBuf>,
        /// The TLS private key (PEM) for --remote.
        #[arg(long, value_name = "PEM", requires = "remote")]
        tls_key: Option<PathBuf>,
    },
    /// The terminal UI: conversations and channels, messages and posts, a
    /// composer; F2 this account's devices, F3 its backups.
    Chat {
        #[command(flatten)]
        group: GroupOpt,
        /// Open the chat with this contact.
        username: Option<String>,
    },
}

/// `--group NAME`, for commands that take a contact or a group.
#[derive(Debug, Args)]
pub struct GroupOpt {
    /// A group (by name) instead of a contact.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

/// `hush group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group.
    Create {
        /// Its name.
        name: String,
        /// Members to invite, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "USER,...")]
        members: Vec<String>,
    },
    /// Add someone to a group.
    Add {
        /// The group.
        name: String,
        /// Who to add.
        user: String,
    },
    /// Remove someone from a group.
    Remove {
        /// The group.
        name: String,
        /// Who to remove.
        user: String,
    },
    /// Leave a group.
    Leave {
        /// The group.
        name: String,
    },
    /// List your groups.
    List,
    /// List a group's members.
    Members {
        /// The group.
        name: String,
    },
    /// Rename a group.
    Rename {
        /// The group.
        name: String,
        /// Its new name.
        new_name: String,
    },
    /// Show a group: members, admins and settings.
    Info {
        /// The group.
        name: String,
    },
    /// Make a member an admin, or no longer one (admins only).
    Admin {
        /// `add` or `remove`.
        #[arg(value_parser = ["add", "remove"])]
        action: String,
        /// The group.
        name: String,
        /// The member.
        user: String,
    },
    /// Make an invite link to a group, or revoke its links (admins only).
    /// Whoever has the link can ask to join; `hush join LINK`.
    Invite {
        /// The group.
        name: String,
        /// How long the link works, like 7d or 12h [default: no limit].
        #[arg(long, value_name = "DURATION", conflicts_with = "revoke")]
        expires: Option<String>,
        /// How many people may join through it [default: no limit].
        #[arg(long, value_name = "N", conflicts_with = "revoke")]
        max_uses: Option<u32>,
        /// An admin approves each request (`hush group requests|approve|deny`).
        #[arg(long, conflicts_with = "revoke")]
        approve: bool,
        /// Revoke every invite link of the group, at once.
        #[arg(long)]
        revoke: bool,
    },
    /// List the requests to join a group that wait for an admin.
    Requests {
        /// The group.
        name: String,
    },
    /// Approve a request to join a group: adds the account.
    Approve {
        /// The group.
        name: String,
        /// Who asked.
        user: String,
    },
    /// Deny a request to join a group.
    Deny {
        /// The group.
        name: String,
        /// Who asked.
        user: String,
    },
    /// Change a group's settings (admins only).
    Settings {
        /// The group.
        name: String,
        /// Whether only admins may send: `on` or `off`.
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        only_admins_send: Option<String>,
    },
}

/// `hush channel ...`
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel and print its link; whoever has the link reads it
    /// (`hush join LINK`), and only this device posts (`hush send --channel`).
    Create {
        /// Its name.
        name: String,
    },
    /// Print the link that subscribes to a channel.
    Invite {
        /// The channel.
        name: String,
    },
    /// List the channels you follow or own.
    List,
    /// Forget a channel on this device: its keys and posts (the server
    /// never knew you followed it, and is not told).
    Leave {
        /// The channel.
        name: String,
    },
    /// Move a channel you own to a new key: subscribers reading on get it,
    /// later subscribers cannot read the posts before it.
    Rotate {
        /// The channel.
        name: String,
    },
    /// Name the channel's admins (owner's device only).
    Admin {
        #[command(subcommand)]
        command: ChannelAdminCommand,
    },
}

/// `hush channel admin ...`
#[derive(Debug, Subcommand)]
pub enum ChannelAdminCommand {
    /// Let USER post to a channel you own: a new admin key, listed in the
    /// channel's descriptor, sent with the post token over your 1:1 chat.
    Add {
        /// The channel.
        name: String,
        /// The account.
        user: String,
    },
}

/// `hush profile ...`
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Set your display name (and avatar).
    Set {
        /// The display name.
        #[arg(long)]
        name: String,
        /// A picture for the avatar: PNG, JPEG or WebP, at most 512 KiB.
        #[arg(long, value_name = "FILE")]
        avatar: Option<PathBuf>,
    },
    /// Show your profile as your contacts see it.
    Show,
}

/// `hush keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a fresh KeyPackage of this device (RFC 9420 MLSMessage).
    ExportKeyPackage {
        /// classical (X25519/Ed25519) or pq (X-Wing hybrid).
        #[arg(long)]
        suite: SuiteArg,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `hush devices ...`
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List this account's devices.
    List,
    /// Approve the new device showing CODE (from `hush link` on it).
    Link {
        /// The link code the new device shows.
        code: String,
        /// How long to wait for the new device's answer, like 90s or 10m.
        #[arg(long, value_name = "DURATION", default_value = "5m")]
        timeout: String,
        /// How much history the new device gets: all, none, or the last
        /// DAYS days.
        #[arg(long, value_name = "all|none|DAYS", default_value = "all")]
        history: String,
    },
    /// Name a device.
    Rename {
        /// The device id (from `hush devices list`).
        id: u32,
        /// Its new name.
        name: String,
    },
    /// Remove a device from the account and every conversation.
    Remove {
        /// The device id (from `hush devices list`).
        id: u32,
    },
}

/// `hush backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write an encrypted backup of the account, its contacts, conversations,
    /// history and settings under a new recovery key (shown once).
    Create {
        /// The file [default: hush-backup-DATE.hushbackup here].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Store it on the server instead, replacing the account's previous
        /// backup there (the server cannot open it; restore with
        /// `hush restore --from-server`).
        #[arg(long, conflicts_with = "out")]
        to_server: bool,
    },
    /// Keep a backup at FILE (or on the server) no older than DURATION: each
    /// `hush sync` writes a new one (under the last `backup create`'s key)
    /// when it is older. Without options, shows the schedule.
    Schedule {
        /// The file to keep fresh.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Keep the backup on the server fresh instead.
        #[arg(long, conflicts_with = "out")]
        to_server: bool,
        /// The longest a backup may age, like 1d or 12h.
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
    },
    /// Show the backup stored on the server (size, time) and the schedule.
    Status,
    /// Delete the account's backup from the server.
    Delete,
}

/// `hush poll ...`
#[derive(Debug, Subcommand)]
pub enum PollCommand {
    /// Ask the group a question: `hush poll create --group NAME QUESTION
    /// --option A --option B [--multiple]`.
    Create {
        /// The group.
        #[arg(long, value_name = "NAME")]
        group: String,
        /// The question.
        question: String,
        /// An option (2 to 12, in order).
        #[arg(long = "option", value_name = "TEXT", required = true)]
        options: Vec<String>,
        /// Members may choose several options.
        #[arg(long)]
        multiple: bool,
    },
    /// Vote for options by number (from 1), replacing your vote; --retract
    /// takes it back.
    Vote {
        /// The poll's message id.
        message_id: String,
        /// The options chosen.
        #[arg(required_unless_present = "retract", conflicts_with = "retract")]
        choices: Vec<usize>,
        /// Take your vote back.
        #[arg(long)]
        retract: bool,
    },
    /// Show a poll with who chose what.
    Show {
        /// The poll's message id.
        message_id: String,
    },
}

/// `hush account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Replace this device's server token with a new one; the old one stops
    /// working at once (use it if the token may have leaked).
    RotateToken,
}

/// A presence mode on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PresenceArg {
    /// Every member of every conversation.
    Everyone,
    /// Only people with a 1:1 chat.
    Contacts,
    /// No one.
    Nobody,
}

/// A ciphersuite on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SuiteArg {
    /// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
    Classical,
    /// X-Wing (ML-KEM-768 + X25519) hybrid.
    Pq,
}
