//! `hush web` processes for the web tests: started with `--json`, their
//! printed link parsed, killed on drop; and a raw HTTP/1.1 request helper
//! (so a test controls every header, Host included).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::User;

/// A running `hush web`.
pub struct Web {
    child: Child,
    /// The socket it serves on.
    pub addr: SocketAddr,
    /// The whole printed link (`http://ADDR/login?secret=...`).
    pub url: String,
    /// The one-time secret in the link.
    pub secret: String,
}

impl Web {
    /// Starts `hush web --json` for `user` on a free loopback port and
    /// reads the link it prints (within 60 s).
    pub fn start(user: &User) -> Web {
        let (child, url) = spawn(user, &["--listen", "127.0.0.1:0"]);
        let rest = url.strip_prefix("http://").unwrap();
        let (addr, query) = rest.split_once("/login?secret=").unwrap();
        Web {
            child,
            addr: addr.parse().unwrap(),
            url: url.clone(),
            secret: query.to_owned(),
        }
    }

    /// Starts `hush web --json --remote HOST` on every address, over TLS
    /// with `cert` and `key`; `addr` is its loopback socket, `url` the
    /// printed `https://HOST:PORT/login?secret=...`.
    pub fn start_remote(user: &User, host: &str, cert: &Path, key: &Path) -> Web {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let args = [
            "--listen",
            "0.0.0.0:0",
            "--remote",
            host,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ];
        let (child, url) = spawn(user, &args);
        let rest = url.strip_prefix(&format!("https://{host}:")).unwrap();
        let (port, query) = rest.split_once("/login?secret=").unwrap();
        Web {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())),
            url: url.clone(),
            secret: query.to_owned(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The right Host header value.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Redeems the secret; returns the `Cookie` header value.
    pub fn login(&self) -> String {
        let r = raw(
            self.addr,
            &format!(
                "GET /login?secret={} HTTP/1.1\r\nHost: {}\r\n",
                self.secret,
                self.host()
            ),
            "",
        );
        assert_eq!(r.status, 303, "login: {}", r.head);
        let set = r.header("set-cookie").unwrap();
        set.split(';').next().unwrap().trim().to_owned()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Runs `hush web --json ARGS` for `user`; returns it and the link it
/// printed on its one line (within 60 s).
fn spawn(user: &User, args: &[&str]) -> (Child, String) {
    let mut argv = vec!["web", "--json"];
    argv.extend_from_slice(args);
    let mut child = user
        .command(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        // Keep draining so the process never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(Ok(line))) => line,
        other => {
            let _ = child.kill();
            panic!("hush web printed no link: {other:?}");
        }
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["url"], "one line {{\"url\": ...}}: {line}");
    (child, v["url"].as_str().unwrap().to_owned())
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// A header's value (the first, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends `head` (request line and headers, each ending in CRLF, without
/// the blank line) and `body`, with `Connection: close`, and reads the
/// whole answer (10 s timeouts).
pub fn raw(addr: SocketAddr, head: &str, body: &str) -> Answer {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = head.to_owned();
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
