//! `hush web` beyond loopback (`--remote HOST` with a certificate): only
//! over TLS, only under its name, with a `Secure` session cookie; without
//! `--remote` a non-loopback address is refused before anything listens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::web::Web;
use common::*;

const HOST: &str = "hush.test";

/// A TLS client that trusts `cert_pem` and finds HOST at `web`'s port.
fn https(web: &Web, cert_pem: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .resolve(HOST, web.addr)
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn beyond_loopback_only_over_tls_and_under_its_name() {
    let server = Server::start();
    let alice = User::register(&server, "alice");

    // Without --remote: refused, and it says what to add.
    let line = alice.fails(&["web", "--listen", "0.0.0.0:0"]);
    assert!(line.contains("--remote"), "{line}");

    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec![HOST.to_owned()]).unwrap();
    let cert_pem = made.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    // A key that is not one: a clear error before anything listens.
    std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
    let line = alice.fails(&[
        "web",
        "--listen",
        "0.0.0.0:0",
        "--remote",
        HOST,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        dir.path().join("bad.pem").to_str().unwrap(),
    ]);
    assert!(line.contains("TLS certificate and key"), "{line}");

    let web = Web::start_remote(&alice, HOST, &cert, &key);
    assert!(web.url.starts_with("https://hush.test:"), "{}", web.url);
    let client = https(&web, &cert_pem);
    let login = client.get(&web.url).send().unwrap();
    assert_eq!(login.status(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let base = format!("https://{HOST}:{}", web.addr.port());
    let me = client
        .get(format!("{base}/api/me"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(me.text().unwrap().contains("alice"));
    // An http:// page of the same name is another origin.
    let cross = client
        .get(format!("{base}/api/me"))
        .header("cookie", &cookie)
        .header("origin", format!("http://{HOST}:{}", web.addr.port()))
        .send()
        .unwrap();
    assert_eq!(cross.status(), 403);
    // Plain HTTP on the same port gets no page.
    let mut plain = std::net::TcpStream::connect(web.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(plain, "GET /api/me HTTP/1.1\r\nHost: {HOST}\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("alice"));
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}
