//! Black-box harness: the real `hush-server` binary on a loopback port with a
//! temporary data directory, and the real `hush` binary run once per command
//! for each user, each with their own `--data-dir` and `HUSH_PASSPHRASE`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

pub mod link;
pub mod png;
pub mod web;

/// The `hush` binary under test.
pub const HUSH: &str = env!("CARGO_BIN_EXE_hush");

/// No single command may take longer than this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The `hush-server` binary, built if it is missing or older than the
/// sources it is made of.
///
/// hush-cli must not depend on hush-server (a client never links the
/// server), so Cargo does not build it for us the way `CARGO_BIN_EXE_*`
/// works for our own binary. It lands in the same directory as `hush`
/// whenever the workspace is built (`cargo test --workspace` builds it for
/// hush-server's own tests). When it is missing, or older than any source of
/// hush-server, hush-wire or hush-proto (so a `cargo test -p hush-cli` never
/// runs a stale server), we run `$CARGO build -p hush-server` once per test
/// binary, for the same profile and target directory. Cargo releases its
/// build lock before it runs tests, so this nested build does not deadlock.
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(HUSH).parent().unwrap().to_owned();
        let bin = profile_dir.join(format!("hush-server{}", std::env::consts::EXE_SUFFIX));
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let sources = newest_source(&workspace);
        if built.is_some_and(|b| b >= sources) {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&workspace).args([
            "build",
            "--quiet",
            "-p",
            "hush-server",
            "--bin",
            "hush-server",
        ]);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        let built_now = cmd.status().is_ok_and(|s| s.success());
        match (built_now, bin.exists()) {
            (true, true) => {}
            // The sources are mid-edit (another change in the work tree):
            // the last good build still exercises the client.
            (false, true) => {
                eprintln!("warning: cannot rebuild hush-server; testing against {bin:?}")
            }
            _ => panic!("`cargo build -p hush-server` failed; build it and run the tests again"),
        }
        bin
    })
}

/// The newest modification time among the server's sources.
fn newest_source(workspace: &Path) -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(t);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    for krate in ["hush-server", "hush-wire", "hush-proto"] {
        let dir = workspace.join("crates").join(krate);
        walk(&dir.join("src"), &mut newest);
        if let Ok(t) = std::fs::metadata(dir.join("Cargo.toml")).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    newest
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running `hush-server`.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// Extra flags (TLS).
    extra: Vec<String>,
}

impl Server {
    /// Starts a server on a free loopback port with a fresh data directory.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// [`Server::start`] with extra `hush-server` flags.
    pub fn start_with(flags: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            addr: free_addr(),
            extra: flags.iter().map(|f| f.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Starts a server speaking TLS on loopback with a self-signed
    /// certificate. The server makes one only on a non-loopback address, so
    /// it is started once on 0.0.0.0 port 0 until the certificate exists,
    /// then on loopback with that certificate given.
    pub fn start_tls() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cert = data.join("tls").join("cert.pem");
        let key = data.join("tls").join("key.pem");
        let mut maker = Command::new(server_bin())
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "0.0.0.0:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(cert.exists() && key.exists()) {
            assert!(
                Instant::now() < deadline,
                "no self-signed certificate was made"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let it finish writing the key before it is stopped.
        std::thread::sleep(Duration::from_millis(200));
        let _ = maker.kill();
        let _ = maker.wait();
        let mut s = Server {
            child: None,
            dir,
            addr: free_addr(),
            extra: vec![
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ],
        };
        s.spawn();
        s
    }

    /// `https://127.0.0.1:PORT`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// What `hush-server fingerprint` prints for this server.
    pub fn fingerprint(&self) -> String {
        let mut cmd = Command::new(server_bin());
        cmd.arg("fingerprint")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra);
        let out = run(cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(server_bin())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("hush-server exited with {status}:\n{}", self.log());
            }
            let up = if self.extra.is_empty() {
                healthz(self.addr)
            } else {
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok()
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hush-server never became healthy:\n{}", self.log());
    }

    /// Kills the server process (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `hush-server admin ARGS` on this server's data directory.
    pub fn admin(&self, args: &[&str]) {
        let mut cmd = Command::new(server_bin());
        cmd.arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir());
        let out = run(cmd);
        assert!(
            out.status.success(),
            "hush-server admin {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

/// One user: a data directory and a passphrase.
pub struct User {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub passphrase: String,
}

impl User {
    /// A user not registered yet.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_owned(),
            dir: tempfile::tempdir().unwrap(),
            passphrase: format!("correct horse {name}"),
        }
    }

    /// Registers `name` on `server`.
    pub fn register(server: &Server, name: &str) -> User {
        let u = User::new(name);
        u.ok(&["register", "--server", &server.url(), name]);
        u
    }

    /// `hush --data-dir DIR ARGS` with this user's passphrase.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(HUSH);
        cmd.arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env("HUSH_PASSPHRASE", &self.passphrase)
            .env_remove("HUSH_DATA_DIR")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `hush ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.command(args))
    }

    /// Runs `hush ARGS`, expects success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: `hush {}` failed: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `hush --json ARGS`, expects success, returns one value per line
    /// (and checks nothing but JSON objects reached stdout).
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let stdout = self.ok(&full);
        stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("not JSON from `hush {}`: {l:?}: {e}", args.join(" "))
                });
                assert!(v.is_object(), "not an object: {l}");
                v
            })
            .collect()
    }

    /// Runs `hush ARGS`, expects failure with exactly one line
    /// `hush: <reason>` on stderr; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "`hush {}` should have failed; stdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        one_error_line(&out)
    }

    /// `sync --json`: the messages received (objects without "event").
    pub fn sync_messages(&self) -> Vec<Value> {
        self.json(&["sync"])
            .into_iter()
            .filter(|v| v.get("event").is_none())
            .collect()
    }

    /// The texts of the messages `sync` brings.
    pub fn sync_texts(&self) -> Vec<String> {
        texts(&self.sync_messages())
    }
}

/// The `text` fields of messages.
pub fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

/// Checks stderr is exactly one line `hush: ...` and returns it.
pub fn one_error_line(out: &Output) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got {stderr:?}"
    );
    assert!(lines[0].starts_with("hush: "), "got {stderr:?}");
    lines[0].to_owned()
}

/// Runs a command, killing it if it outlives [`COMMAND_TIMEOUT`].
pub fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("{cmd:?} did not finish in {COMMAND_TIMEOUT:?}");
        }
    }
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The exact key set of a message object.
pub fn assert_message_shape(v: &Value) {
    let mut want = vec![
        "conversation",
        "from",
        "group",
        "id",
        "kind",
        "sent_at",
        "text",
    ];
    if v["kind"] == "file" {
        want.extend(["file_name", "size"]);
    }
    // This account's own group message says who received and read it.
    if v.get("delivered_to").is_some() {
        want.extend(["delivered_to", "read_by", "recipients"]);
        assert!(v["group"].is_string(), "receipt lists outside a group: {v}");
        assert!(v["delivered_to"].is_array() && v["read_by"].is_array());
    }
    // Mentions, reactions and pins show only when there are some (decision 0039).
    if v["kind"] == "poll" {
        want.push("poll");
        assert!(v["poll"]["options"].is_array() && v["poll"]["multiple"].is_boolean());
    }
    if v.get("forwarded").is_some() {
        want.push("forwarded");
        assert_eq!(v["forwarded"], true);
    }
    if v.get("pinned").is_some() {
        want.push("pinned");
        assert_eq!(v["pinned"], true);
    }
    if v.get("mentions").is_some() {
        want.extend(["mentions", "mentions_me"]);
        assert!(v["mentions"].is_array() && v["mentions_me"].is_boolean());
    }
    if v.get("reply_to").is_some() {
        want.extend(["reply_to", "quoted"]);
        assert!(v["reply_to"].is_string());
        assert!(v["quoted"].is_null() || v["quoted"]["from"].is_string());
    }
    if v.get("reactions").is_some() {
        want.push("reactions");
        assert!(v["reactions"].as_array().is_some_and(|r| !r.is_empty()));
    }
    want.sort();
    assert_eq!(keys(v), want, "message shape: {v}");
    assert!(v["id"].is_string() && v["conversation"].is_i64() && v["sent_at"].is_u64());
    assert!(v["group"].is_string() || v["group"].is_null());
}

/// Bytes that look random but are the same every run.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A runtime for the tests that drive an in-process `TestServer`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
