//! `hush-server`: run the Hush delivery service, or administer its data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use hush_server::app::{AppState, MetricsToken, Settings};
use hush_server::blobs::Blobs;
use hush_server::cluster::ClusterConfig;
use hush_server::config::{Database, FileConfig, parse_duration, parse_size};
use hush_server::ratelimit::Rate;
use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::{AccountState, Store};
use hush_server::tls;

/// The Hush delivery service. With no arguments it serves on 127.0.0.1:7780
/// with its data (SQLite, attachments, TLS material) in ./hush-data.
#[derive(Debug, Parser)]
#[command(name = "hush-server", version)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct Opts {
    /// A TOML file with any of the options below (flags and HUSH_* win).
    #[arg(long, env = "HUSH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Where the database (by default), attachments and TLS material live.
    #[arg(long, env = "HUSH_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "HUSH_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// sqlite://PATH or postgres://URL (default: sqlite://DATA_DIR/hush.db).
    #[arg(long, env = "HUSH_DATABASE", global = true)]
    database: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "HUSH_TLS_CERT", global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "HUSH_TLS_KEY", global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long undelivered messages and attachments are kept (e.g. 30d).
    #[arg(long, env = "HUSH_RETENTION", global = true)]
    retention: Option<String>,
    /// Largest attachment accepted (e.g. 100MiB).
    #[arg(long, env = "HUSH_MAX_ATTACHMENT_SIZE", global = true)]
    max_attachment_size: Option<String>,
    /// Largest backup an account may store on the server (e.g. 100MiB).
    #[arg(long, env = "HUSH_MAX_BACKUP_SIZE", global = true)]
    max_backup_size: Option<String>,
    /// Requests per second per client IP (0: unlimited).
    #[arg(long, env = "HUSH_RATE_LIMIT_IP", global = true)]
    rate_limit_ip: Option<f64>,
    /// Authenticated requests per second per account (0: unlimited).
    #[arg(long, env = "HUSH_RATE_LIMIT_ACCOUNT", global = true)]
    rate_limit_account: Option<f64>,
    /// Join a cluster: nats://HOST:PORT of the NATS server the nodes share
    /// (with --database postgres://...). See docs/cluster.md.
    #[arg(long, env = "HUSH_NATS", global = true)]
    nats: Option<String>,
    /// First token of the NATS subjects (several deployments on one NATS).
    #[arg(long, env = "HUSH_NATS_SUBJECT_PREFIX", global = true)]
    nats_subject_prefix: Option<String>,
    /// In a cluster, how often each connection re-reads its queue in case a
    /// wake-up was lost (default 30s).
    #[arg(long, env = "HUSH_RECHECK_INTERVAL", global = true)]
    recheck_interval: Option<String>,
    /// In a cluster, each node numbers the queues of the devices connected
    /// to it and hands sends to other nodes' devices over NATS, so that an
    /// acknowledgement within the commit window spares the write (decision
    /// 0046). Experimental: a device that reconnects while sends to it are
    /// under way can get one twice.
    #[arg(long, env = "HUSH_EARLY_ACROSS_NODES", global = true)]
    early_across_nodes: bool,
    /// Where attachments live: s3://BUCKET[/PREFIX] (AWS_* variables
    /// configure it), file:///PATH or a directory (default DATA_DIR/blobs).
    #[arg(long, env = "HUSH_ATTACHMENTS", global = true)]
    attachments: Option<String>,
    /// On shutdown, how long to keep answering with /healthz failing before
    /// closing the listener, so a load balancer notices (default 0s).
    #[arg(long, env = "HUSH_DRAIN_DELAY", global = true)]
    drain_delay: Option<String>,
    /// How long a key-directory change (registration, device added or
    /// removed) waits for others before one epoch publishes them all
    /// (default 25ms; registrations answer once published).
    #[arg(long, env = "HUSH_KT_BATCH_WINDOW", global = true)]
    kt_batch_window: Option<String>,
    #[command(flatten)]
    quotas: hush_server::config::QuotaFlags,
    /// A reverse proxy (load balancer) whose X-Forwarded-For header names the
    /// client, as ADDRESS/PREFIX (repeatable; comma-separated in the
    /// variable). Without one the header is ignored.
    #[arg(long, env = "HUSH_TRUSTED_PROXY", global = true, value_delimiter = ',')]
    trusted_proxy: Vec<String>,
    /// Serve /metrics (and /healthz) on this operator-only address, plain
    /// HTTP; by default /metrics is not served at all.
    #[arg(long, env = "HUSH_METRICS_LISTEN", global = true)]
    metrics_listen: Option<SocketAddr>,
    /// Serve /metrics on the public listener too, to requests bearing this
    /// bearer token (prefer the variable: arguments are visible to `ps`).
    #[arg(
        long,
        env = "HUSH_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    metrics_token: Option<String>,
    /// Log lines as text (default) or as one JSON object per line (json),
    /// on standard error; RUST_LOG filters them.
    #[arg(long, env = "HUSH_LOG_FORMAT", global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the SHA-256 fingerprint of the server's TLS certificate.
    Fingerprint,
    /// Apply pending schema migrations to the database and exit (a server
    /// also applies them when it starts). A SQLite file is copied next to
    /// itself first; back up PostgreSQL with pg_dump.
    Migrate {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Operator commands on the server's data.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Abuse reports filed with franking proof.
    Reports {
        #[command(subcommand)]
        command: ReportsCommand,
    },
    /// Counts of accounts, devices, queued messages, KeyPackages and groups.
    Stats {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite database, consistently, while the server runs. DEST
    /// must not exist. For PostgreSQL use pg_dump.
    Backup { dest: PathBuf },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// List accounts with their devices and state.
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an account: its devices can no longer authenticate.
    Suspend { username: String },
    /// Lift a suspension.
    Unsuspend { username: String },
    /// Delete an account with its devices, queues, KeyPackages and profile.
    Delete { username: String },
}

#[derive(Debug, Subcommand)]
enum ReportsCommand {
    /// Open reports (newest first).
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One report with the reported message.
    Show {
        id: i64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a report, acting on the sender's account.
    Resolve {
        id: i64,
        /// dismiss, warn, suspend (the sender) or delete (the sender's account).
        #[arg(long, value_parser = ["dismiss", "warn", "suspend", "delete"])]
        action: String,
    },
}

fn report_json(r: &hush_server::store::ReportRecord) -> serde_json::Value {
    let (kind, text) = match hush_proto::Content::decode(&r.report.content) {
        Ok(c) => match c.body {
            hush_proto::Body::Text { text, .. } => ("text", Some(text)),
            hush_proto::Body::Attachment {
                pointer, caption, ..
            } => ("file", Some(caption.unwrap_or(pointer.file_name))),
            _ => ("other", None),
        },
        Err(_) => ("undecodable", None),
    };
    serde_json::json!({
        "id": r.id,
        "reporter": r.report.reporter,
        "sender": r.report.sender,
        "kind": kind,
        "text": text,
        "reason": r.report.reason,
        "received_at_ms": r.report.received_at_ms,
        "filed_at_ms": r.report.filed_at_ms,
        "status": r.status,
    })
}

/// Resolved configuration.
#[derive(Debug)]
struct Config {
    data_dir: PathBuf,
    listen: SocketAddr,
    database: Database,
    tls: Option<tls::TlsFiles>,
    settings: Settings,
    cluster: Option<ClusterConfig>,
    attachments: Option<String>,
    metrics_listen: Option<SocketAddr>,
}

fn resolve(opts: Opts) -> anyhow::Result<Config> {
    let file = match &opts.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut quotas = hush_server::quota::QuotaSettings::default();
    opts.quotas.apply(&file, &mut quotas)?;
    let data_dir = opts
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("hush-data"));
    let listen = opts
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7780)));
    let database = match opts.database.or(file.database) {
        Some(url) => Database::parse(&url)?,
        None => Database::Sqlite(data_dir.join("hush.db")),
    };
    let tls = match (
        opts.tls_cert.or(file.tls_cert),
        opts.tls_key.or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(tls::TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let mut settings = Settings {
        quotas,
        ..Settings::default()
    };
    if let Some(r) = opts.retention.or(file.retention) {
        settings.retention = parse_duration(&r)?;
    }
    if let Some(s) = opts.max_attachment_size.or(file.max_attachment_size) {
        settings.max_attachment_size = parse_size(&s)?;
    }
    if let Some(s) = opts.max_backup_size.or(file.max_backup_size) {
        settings.max_backup_size = parse_size(&s)?;
    }
    if let Some(r) = opts.rate_limit_ip.or(file.rate_limit_ip) {
        settings.per_ip = Rate {
            per_second: r,
            burst: r * 5.0,
        };
    }
    if let Some(r) = opts.rate_limit_account.or(file.rate_limit_account) {
        settings.per_account = Rate {
            per_second: r,
            burst: r * 5.0,
        };
    }
    if let Some(d) = opts.drain_delay.or(file.drain_delay) {
        settings.drain_delay = parse_duration(&d)?;
    }
    if let Some(w) = opts.kt_batch_window.or(file.kt_batch_window) {
        settings.kt_batch_window = parse_duration(&w)?;
        if settings.kt_batch_window > std::time::Duration::from_secs(5) {
            anyhow::bail!("--kt-batch-window must be at most 5s (registrations wait for it)");
        }
    }
    let proxies = if opts.trusted_proxy.is_empty() {
        file.trusted_proxy.unwrap_or_default()
    } else {
        opts.trusted_proxy
    };
    settings.trusted_proxies = proxies
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()
        .context("--trusted-proxy")?;
    if let Some(t) = opts.metrics_token.or(file.metrics_token) {
        if t.len() < 16 {
            anyhow::bail!("--metrics-token must be at least 16 characters (use a random one)");
        }
        settings.metrics_token = Some(MetricsToken(t));
    }
    let cluster = match opts.nats.or(file.nats) {
        None => None,
        Some(url) => {
            if url
                .split(',')
                .any(|u| !u.trim().starts_with("nats://") && !u.trim().starts_with("tls://"))
            {
                anyhow::bail!(
                    "--nats must be nats://HOST:PORT (or tls://...), comma-separated for \
                     several servers, not {url:?}"
                );
            }
            if matches!(database, Database::Sqlite(_)) {
                anyhow::bail!(
                    "--nats joins a cluster, whose nodes share one PostgreSQL database: \
                     give --database postgres://..."
                );
            }
            let mut c = ClusterConfig::new(&url);
            if let Some(p) = opts.nats_subject_prefix.or(file.nats_subject_prefix) {
                c.subject_prefix = p;
            }
            if let Some(r) = opts.recheck_interval.or(file.recheck_interval) {
                c.recheck = parse_duration(&r)?;
                if c.recheck.is_zero() {
                    anyhow::bail!("--recheck-interval must be more than 0");
                }
            }
            c.early_across_nodes = opts.early_across_nodes || file.early_across_nodes == Some(true);
            Some(c)
        }
    };
    Ok(Config {
        data_dir,
        listen,
        database,
        tls,
        settings,
        cluster,
        attachments: opts.attachments.or(file.attachments),
        metrics_listen: opts.metrics_listen.or(file.metrics_listen),
    })
}

/// This node's name to the database it serves alone: the machine's name
/// and the data directory, the same when the node is started again.
fn node_name(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    format!("{host}:{}", dir.display())
}

/// The database; `serve` when this process serves it (not an admin
/// command run beside the server). With it, the PostgreSQL store, to give
/// its claim on the queues back at the end.
async fn open_store(
    config: &Config,
    serve: bool,
) -> anyhow::Result<(Arc<dyn Store>, Option<PostgresStore>)> {
    Ok(match &config.database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let store =
                SqliteStore::open(path).with_context(|| format!("database {}", path.display()))?;
            (Arc::new(store), None)
        }
        Database::Postgres(url) => {
            let store = PostgresStore::connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            // Alone, the node numbers and hands over envelopes before their
            // write; in a cluster, it makes sure no node runs alone beside it.
            match (serve, &config.cluster) {
                (false, _) => {}
                (true, Some(cluster)) => {
                    store
                        .join_cluster()
                        .await
                        .context("cannot join the cluster")?;
                    if cluster.early_across_nodes {
                        store.number_devices_here()?;
                    }
                }
                (true, None) => store
                    .serve_alone(&node_name(&config.data_dir))
                    .await
                    .context("cannot serve this database alone")?,
            }
            (Arc::new(store.clone()), Some(store))
        }
    })
}

/// The TLS files to use, making a self-signed certificate when the address
/// is not loopback and none was given. `None`: plain HTTP on loopback.
fn tls_for(config: &Config) -> anyhow::Result<Option<tls::TlsFiles>> {
    if let Some(files) = &config.tls {
        return Ok(Some(files.clone()));
    }
    if config.listen.ip().is_loopback() {
        return Ok(None);
    }
    let mut names = vec!["localhost".to_owned()];
    if !config.listen.ip().is_unspecified() {
        names.push(config.listen.ip().to_string());
    }
    Ok(Some(tls::ensure_self_signed(&config.data_dir, names)?))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: no new connections; devices will reconnect");
}

async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let (store, postgres) = open_store(&config, true).await?;
    let blobs = match &config.attachments {
        Some(location) => {
            Blobs::open(location).with_context(|| format!("attachment store {location}"))?
        }
        None => Blobs::local(&config.data_dir.join("blobs"))?,
    };
    let mut state = AppState::new(store, blobs, config.settings.clone());
    if let Some(cluster) = config.cluster.clone() {
        state = state.join_cluster(cluster).await?;
    }
    #[cfg(feature = "fault-injection")]
    tracing::warn!("{}", hush_server::FAULT_INJECTION_BANNER);
    let operator = match config.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
            println!(
                "metrics on http://{}/metrics (operator listener)",
                listener.local_addr()?
            );
            Some(tokio::spawn(hush_server::server::serve_operator(
                listener,
                state.clone(),
                std::future::pending(),
            )))
        }
        None => None,
    };
    let tls = tls_for(&config)?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    match tls {
        Some(files) => {
            let fp = tls::fingerprint(&files.cert)?;
            println!("hush-server listening on https://{addr}");
            println!("TLS certificate SHA-256 fingerprint: {fp}");
            hush_server::server::serve_tls(listener, state, &files, shutdown_signal()).await?;
        }
        None => {
            println!("hush-server listening on http://{addr} (plain HTTP: loopback only)");
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            hush_server::server::serve(listener, state, shutdown_signal()).await?;
        }
    }
    if let Some(task) = operator {
        task.abort();
    }
    if let Some(pg) = postgres {
        // The next node need not wait for the claim to lapse.
        pg.release_queues().await;
    }
    Ok(())
}

/// `hush-server migrate`: the schema brought to this release's version.
async fn migrate(config: &Config, json: bool) -> anyhow::Result<()> {
    let (backend, from, to, backup) = match &config.database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let m = hush_server::store::sqlite_migrate::migrate_file(path)
                .with_context(|| format!("database {}", path.display()))?;
            ("sqlite", i64::from(m.from), i64::from(m.to), m.backup)
        }
        Database::Postgres(url) => {
            let (from, to) = hush_server::store::postgres_migrate::migrate_url(url)
                .await
                .context("PostgreSQL")?;
            ("postgres", from, to, None)
        }
    };
    if json {
        let backup = backup.as_ref().map(|b| b.display().to_string());
        println!(
            "{}",
            serde_json::json!({"backend": backend, "from": from, "to": to, "backup": backup})
        );
    } else if from == to {
        println!("schema version {to}: up to date");
    } else {
        println!("schema version {from} -> {to}");
        if let Some(b) = backup {
            println!("the database before: {}", b.display());
        }
    }
    Ok(())
}

/// `hush-server admin backup DEST`.
fn backup(config: &Config, dest: &std::path::Path) -> anyhow::Result<()> {
    let Database::Sqlite(path) = &config.database else {
        anyhow::bail!(
            "admin backup copies a SQLite database; back up PostgreSQL with its own tools, \
             e.g. pg_dump --format=custom --file=DEST URL (see docs/cluster.md)"
        );
    };
    let bytes = hush_server::store::sqlite_backup::backup_file(path, dest)?;
    println!(
        "copied {} to {} ({bytes} bytes)",
        path.display(),
        dest.display()
    );
    Ok(())
}

async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    if let AdminCommand::Backup { dest } = &command {
        return backup(&config, dest);
    }
    let (store, _) = open_store(&config, false).await?;
    match command {
        AdminCommand::Stats { json } => {
            let s = store.stats().await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "accounts": s.accounts, "devices": s.devices,
                        "queued_envelopes": s.queued_envelopes,
                        "payloads": s.payloads, "payload_bytes": s.payload_bytes,
                        "key_packages": s.key_packages, "groups": s.groups,
                    })
                );
            } else {
                println!("accounts          {}", s.accounts);
                println!("devices           {}", s.devices);
                println!("queued envelopes  {}", s.queued_envelopes);
                println!(
                    "stored payloads   {} ({} bytes)",
                    s.payloads, s.payload_bytes
                );
                println!("key packages      {}", s.key_packages);
                println!("groups            {}", s.groups);
            }
        }
        AdminCommand::Reports { command } => match command {
            ReportsCommand::List { all, json } => {
                for r in store.list_reports(all).await? {
                    let v = report_json(&r);
                    if json {
                        println!("{v}");
                    } else {
                        println!(
                            "#{}\t{}\tfrom {} reported by {}\t{}",
                            r.id,
                            r.status,
                            r.report.sender,
                            r.report.reporter,
                            v["text"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            ReportsCommand::Show { id, json } => {
                let r = store
                    .get_report(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no report #{id}"))?;
                let v = report_json(&r);
                if json {
                    println!("{v}");
                } else {
                    println!("report #{}  ({})", r.id, r.status);
                    println!("sender    {} (proven by franking)", r.report.sender);
                    println!("reporter  {}", r.report.reporter);
                    println!("reason    {}", r.report.reason);
                    println!(
                        "message   [{}] {}",
                        v["kind"].as_str().unwrap_or(""),
                        v["text"].as_str().unwrap_or("")
                    );
                }
            }
            ReportsCommand::Resolve { id, action } => {
                let r = store
                    .get_report(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no report #{id}"))?;
                let status = match action.as_str() {
                    "suspend" => {
                        store
                            .set_account_state(&r.report.sender, AccountState::Suspended)
                            .await
                            .with_context(|| format!("cannot suspend {}", r.report.sender))?;
                        "suspended"
                    }
                    "delete" => {
                        delete_closing_connections(store.as_ref(), &r.report.sender).await?;
                        "deleted"
                    }
                    "warn" => "warned",
                    _ => "dismissed",
                };
                store.resolve_report(id, status).await?;
                println!("report #{id} {status} ({})", r.report.sender);
            }
        },
        // Above, without opening (and so migrating) the store.
        AdminCommand::Backup { .. } => {}
        AdminCommand::Accounts { command } => match command {
            AccountsCommand::List { json } => {
                for a in store.list_accounts().await? {
                    let state = match a.state {
                        AccountState::Active => "active",
                        AccountState::Suspended => "suspended",
                    };
                    let devices: Vec<u32> = a.devices.iter().map(|d| d.device_id).collect();
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "username": a.username, "state": state,
                                "devices": devices, "created_at_ms": a.created_at_ms,
                            })
                        );
                    } else {
                        println!("{}\t{state}\tdevices {devices:?}", a.username);
                    }
                }
            }
            AccountsCommand::Suspend { username } => {
                store
                    .set_account_state(&username, AccountState::Suspended)
                    .await
                    .with_context(|| format!("cannot suspend {username}"))?;
                println!("suspended {username}");
            }
            AccountsCommand::Unsuspend { username } => {
                store
                    .set_account_state(&username, AccountState::Active)
                    .await
                    .with_context(|| format!("cannot unsuspend {username}"))?;
                println!("unsuspended {username}");
            }
            AccountsCommand::Delete { username } => {
                delete_closing_connections(store.as_ref(), &username).await?;
                println!("deleted {username}");
            }
        },
    }
    Ok(())
}

/// Logs to standard error, as text or one JSON object per line.
fn init_logs(format: Option<&str>) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hush_server=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr);
    if format == Some("json") {
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.opts.log_format.as_deref());
    let result = (|| -> anyhow::Result<()> {
        let config = resolve(cli.opts)?;
        let rt = tokio::runtime::Runtime::new()?;
        match cli.command {
            None => rt.block_on(run(config)),
            Some(Command::Admin { command }) => rt.block_on(admin(config, command)),
            Some(Command::Migrate { json }) => rt.block_on(migrate(&config, json)),
            Some(Command::Fingerprint) => {
                let files = match &config.tls {
                    Some(f) => f.clone(),
                    None => tls::self_signed_paths(&config.data_dir),
                };
                if !files.cert.exists() {
                    anyhow::bail!(
                        "no certificate at {}: the server makes one on its first start on a non-loopback address",
                        files.cert.display()
                    );
                }
                println!("{}", tls::fingerprint(&files.cert)?);
                Ok(())
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long an account stays suspended before it is deleted: longer than
/// every node's sweep of suspended accounts (1 s), so that each node has
/// closed its open connections first.
const DELETE_AFTER_SUSPENSION: Duration = Duration::from_millis(2500);

/// Deletes an account from this admin process, which shares only the
/// database with the running nodes: it suspends the account first and waits
/// for the nodes' sweep to close its connections, so that a deleted account
/// keeps no open socket anywhere.
async fn delete_closing_connections(store: &dyn Store, username: &str) -> anyhow::Result<()> {
    store
        .set_account_state(username, AccountState::Suspended)
        .await
        .with_context(|| format!("cannot delete {username}"))?;
    tokio::time::sleep(DELETE_AFTER_SUSPENSION).await;
    store
        .delete_account(username)
        .await
        .with_context(|| format!("cannot delete {username}"))
}
