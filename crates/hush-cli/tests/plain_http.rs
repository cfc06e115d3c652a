//! Plain HTTP reaches only loopback: `http://` to any other host is refused
//! before a connection is made (the bearer token would cross the network in
//! clear), unless the user passes `--insecure-http`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn assert_refused_for_plain_http(line: &str, host: &str) {
    assert!(
        line.contains(&format!("refusing plain http:// to {host}")),
        "{line}"
    );
    assert!(line.contains("--insecure-http"), "{line}");
}

#[test]
fn register_over_plain_http_to_a_remote_host_is_refused_before_connecting() {
    let alice = User::new("alice");
    let started = Instant::now();
    let line = alice.fails(&["register", "--server", "http://example.invalid:1", "alice"]);
    assert_refused_for_plain_http(&line, "example.invalid");
    // Refused from the URL alone: no name lookup, no store created.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!alice.dir.path().join("keyfile.json").exists());
    // The same for `hush audit`, which never has a store.
    let line = alice.fails(&["audit", "--server", "http://192.0.2.1:7780"]);
    assert_refused_for_plain_http(&line, "192.0.2.1");
}

/// Forwards every connection to `to`, counting them.
fn relay(bind: IpAddr, to: SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((bind, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(to) else {
                continue;
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    (port, count)
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// This machine's name and an address it resolves to, when the name is not
/// literally a loopback one (`localhost`).
fn machine_name() -> Option<(String, IpAddr)> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        })?
        .trim()
        .to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let ip = (name.as_str(), 0)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)?;
    Some((name, ip))
}

#[test]
fn plain_http_to_a_name_that_is_not_loopback_needs_insecure_http() {
    let Some((name, ip)) = machine_name() else {
        eprintln!("NOTICE: this machine's name does not resolve; only the refusal is tested");
        return;
    };
    let server = Server::start();
    // The machine's own name: not a loopback literal, whatever it resolves to.
    let (port, connections) = relay(ip, server.addr);
    let url = format!("http://{name}:{port}");
    let alice = User::new("alice");

    let line = alice.fails(&["register", "--server", &url, "alice"]);
    assert_refused_for_plain_http(&line, &name.to_ascii_lowercase());
    assert_eq!(connections.load(Ordering::SeqCst), 0, "it connected first");
    assert!(!alice.dir.path().join("keyfile.json").exists());

    // Explicitly allowed: it works, through the relay.
    alice.ok(&["register", "--server", &url, "alice", "--insecure-http"]);
    assert!(connections.load(Ordering::SeqCst) > 0);
    // Every later command needs the flag too: the consent is not stored.
    let line = alice.fails(&["contacts"]);
    assert_refused_for_plain_http(&line, &name.to_ascii_lowercase());
    alice.ok(&["--insecure-http", "contacts"]);
}
