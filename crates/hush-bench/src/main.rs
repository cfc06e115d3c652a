//! `hush-bench`: a load generator that speaks the real Hush protocol to real
//! `hush-server` processes over loopback, and the baselines it is compared
//! with in the same run (a raw tokio-tungstenite relay, NATS JetStream).
//!
//! Each scenario prints one JSON object (`--json`: on one line):
//!
//! ```text
//! cargo build --release -p hush-bench -p hush-server
//! target/release/hush-bench relay --json
//! target/release/hush-bench durable --quick --json
//! ```
//!
//! Data flow: the generator registers devices, opens their WebSockets from
//! many source addresses in 127.0.0.0/8, sends opaque payloads that carry a
//! message id and a send time, and records the time from send to delivery at
//! each recipient in an HdrHistogram. The server runs as a separate process
//! (pinned to CPU 0 with `taskset` when there are two CPUs; the generator
//! takes CPU 1), so that it can be measured (RSS, CPU) and `kill -9`ed.
//! `BENCHMARKS.md` at the repository root has the figures and how to get them.

#![forbid(unsafe_code)]

mod archive;
mod backlog;
mod channel;
mod e2e;
mod http1;
mod load;
mod nats;
mod net;
mod proc;
mod raw;
mod scenarios;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Load generator and benchmarks for hush-server.
#[derive(Debug, Parser)]
#[command(name = "hush-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 1:1 online: N sender/recipient pairs; baseline: the raw relay.
    Relay(Opts),
    /// Recipients offline, then drain; baseline: NATS JetStream (file, fsync).
    Durable(Opts),
    /// One sender to a group of N devices; last-recipient latency.
    Fanout(Opts),
    /// N authenticated, subscribed connections: RSS per connection, idle CPU.
    Idle(Opts),
    /// Real clients and real MLS, 1:1 and a group, receivers driven as
    /// `hush chat` drives its client (syncs listening on the kept
    /// connection); CPU per message.
    E2e(Opts),
    /// kill -9 the server under load, restart it, count lost and duplicated.
    Crash(Opts),
    /// A real client syncs a backlog of messages waiting for its device.
    Backlog(Opts),
    /// One channel post to N subscribers each holding a fetch (decision
    /// 0038): time to every subscriber, server CPU, storage; baseline:
    /// every subscriber pulls the post at once.
    Channel(Opts),
    /// Link a device with 10,000 messages of history, back them up and
    /// restore (decision 0026); baselines: no history, a store copy, an
    /// empty backup.
    Archive(Opts),
    /// Run the raw WebSocket relay baseline (the scenarios start it themselves).
    BaselineRelay {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7790")]
        listen: SocketAddr,
    },
    /// Run hush-server from the library (used when no hush-server binary sits
    /// next to hush-bench).
    Serve {
        /// Data directory (SQLite database, attachments).
        #[arg(long)]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Accepted for the same command line as hush-server; limits are off.
        #[arg(long)]
        rate_limit_ip: Option<f64>,
        /// Accepted for the same command line as hush-server; limits are off.
        #[arg(long)]
        rate_limit_account: Option<f64>,
        /// PostgreSQL instead of SQLite in the data directory.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
}

/// Options of every scenario (each uses those that apply to it).
#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// Print the result as one JSON object on one line.
    #[arg(long)]
    pub json: bool,
    /// A small run that finishes in under 20 seconds (CI smoke test).
    #[arg(long)]
    pub quick: bool,
    /// A running Hush server to use instead of starting one; repeat for
    /// several nodes (devices are spread round-robin).
    #[arg(long = "server", value_name = "URL")]
    pub server: Vec<String>,
    /// The hush-server binary to start (default: the one next to hush-bench).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Run the server from the hush-server library built into hush-bench
    /// (`hush-bench serve`, its own process) even when a hush-server binary
    /// sits next to it: the smoke test uses this so that it always tests the
    /// server of the same build.
    #[arg(long, conflicts_with = "server_bin")]
    pub embedded_server: bool,
    /// Do not pin the server and the generator to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Run the server this run starts on this PostgreSQL database instead
    /// of SQLite in its data directory.
    #[arg(long, value_name = "URL", conflicts_with = "server")]
    pub database: Option<String>,
    /// Payload bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Messages to send.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Offered load in messages per second (open loop); default: as fast as
    /// the window allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Unacknowledged sends per sender (closed loop).
    #[arg(long)]
    pub window: Option<usize>,
    /// Sender/recipient pairs.
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Subscribers holding a fetch on the channel (channel).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Group size (fanout, e2e) or connections (idle); `--group-size` too.
    #[arg(long, visible_alias = "group-size")]
    pub devices: Option<usize>,
    /// Longest time to send (or to sit idle), in seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Also run the durable baseline against this NATS server as configured.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// The nats-server binary for the JetStream baselines (default: the first
    /// on PATH that is 2.10 or newer).
    #[arg(long)]
    pub nats_server_bin: Option<PathBuf>,
    /// Server kills (crash).
    #[arg(long)]
    pub kills: Option<u64>,
    /// Seconds between kills (crash).
    #[arg(long)]
    pub kill_every: Option<f64>,
    /// How Hush devices send: on their WebSocket or one HTTP request each.
    #[arg(long, value_enum, default_value = "ws")]
    pub send_over: net::SendOver,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (scenario, opts) = match cli.command {
        Command::BaselineRelay { listen } => {
            return runtime(available())?.block_on(raw::serve(listen));
        }
        Command::Serve {
            data_dir,
            listen,
            database,
            ..
        } => return runtime(available())?.block_on(serve(data_dir, listen, database)),
        Command::Relay(o) => ("relay", o),
        Command::Durable(o) => ("durable", o),
        Command::Fanout(o) => ("fanout", o),
        Command::Idle(o) => ("idle", o),
        Command::E2e(o) => ("e2e", o),
        Command::Crash(o) => ("crash", o),
        Command::Backlog(o) => ("backlog", o),
        Command::Archive(o) => ("archive", o),
        Command::Channel(o) => ("channel", o),
    };
    // Pin before the runtime starts its threads: they inherit the mask.
    let pinning = proc::Pinning::setup(!opts.no_pin);
    let nofile = proc::raise_nofile();
    let ctx = scenarios::Ctx {
        pinning,
        scratch: tempfile::Builder::new().prefix("hush-bench").tempdir()?,
        nofile,
        opts: opts.clone(),
    };
    let rt = runtime(available())?;
    let value = rt.block_on(async {
        match scenario {
            "relay" => scenarios::relay(&ctx).await,
            "durable" => scenarios::durable(&ctx).await,
            "fanout" => scenarios::fanout(&ctx).await,
            "idle" => scenarios::idle(&ctx).await,
            "crash" => scenarios::crash(&ctx).await,
            "backlog" => backlog::run(&ctx).await,
            "archive" => archive::run(&ctx).await,
            "channel" => channel::run(&ctx).await,
            _ => e2e::run(&ctx).await,
        }
    })?;
    let text = if opts.json {
        serde_json::to_string(&value)?
    } else {
        serde_json::to_string_pretty(&value)?
    };
    println!("{text}");
    Ok(())
}

/// Threads the runtime may use: the CPUs this process is allowed on.
fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    database: Option<String>,
) -> anyhow::Result<()> {
    use hush_server::app::{AppState, Settings};
    use hush_server::ratelimit::Rate;
    use hush_server::store::Store;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let store: Arc<dyn Store> = match database {
        Some(url) => {
            let store = hush_server::store::postgres::PostgresStore::connect(&url).await?;
            // One node: it serves the database alone, as hush-server does
            // without --nats.
            store
                .serve_alone(&format!("hush-bench:{}", data_dir.display()))
                .await?;
            Arc::new(store)
        }
        None => Arc::new(hush_server::store::sqlite::SqliteStore::open(
            &data_dir.join("hush.db"),
        )?),
    };
    let blobs = hush_server::blobs::Blobs::local(&data_dir.join("blobs"))?;
    let off = Rate {
        per_second: 0.0,
        burst: 0.0,
    };
    let settings = Settings {
        per_ip: off,
        per_account: off,
        // Load from few accounts: no connection or queue quota either.
        quotas: hush_server::quota::QuotaSettings {
            max_connections: 0,
            max_queue_bytes: 0,
            max_send_bytes: 0,
            ..Default::default()
        },
        ..Settings::default()
    };
    let state = AppState::new(store, blobs, settings);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    hush_server::server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
