//! Tests of `config.rs`: how arguments resolve into commands.

use super::*;
use clap::Parser;

fn resolve(argv: &[&str]) -> Result<Config, UsageError> {
    let args = LowArgs::try_parse_from(argv).unwrap();
    Config::resolve(args, Some(Zeroizing::new("pw".into())))
}

#[test]
fn targets_resolve() {
    let c = resolve(&["hush", "--data-dir", "/d", "send", "bob", "hi"]).unwrap();
    assert!(
        matches!(c.command, Command::Send { target: Target::User(u), text, .. } if u == "bob" && text == "hi")
    );
    let c = resolve(&["hush", "--data-dir", "/d", "send", "--group", "g", "hi"]).unwrap();
    assert!(
        matches!(c.command, Command::Send { target: Target::Group(g), text, .. } if g == "g" && text == "hi")
    );
    assert!(
        resolve(&[
            "hush",
            "--data-dir",
            "/d",
            "send",
            "--group",
            "g",
            "bob",
            "hi"
        ])
        .is_err()
    );
    assert!(resolve(&["hush", "--data-dir", "/d", "send", "hi"]).is_err());
    assert!(resolve(&["hush", "--data-dir", "/d", "history"]).is_err());
    assert!(resolve(&["hush", "--data-dir", "/d", "--json", "chat"]).is_err());
}

#[test]
fn web_listens_on_loopback_only() {
    let c = resolve(&["hush", "--data-dir", "/d", "web"]).unwrap();
    assert!(
        matches!(c.command, Command::Web { listen, open: false, remote: None } if listen.ip().is_loopback())
    );
    for ok in ["127.0.0.1:7790", "[::1]:0", "localhost:8000", "127.0.0.2:1"] {
        let addr = parse_listen(ok, false).unwrap();
        assert!(addr.ip().is_loopback(), "{ok}");
    }
    for bad in [
        "0.0.0.0:7790",
        "[::]:7790",
        "192.168.1.2:80",
        "example.org:80",
        "7790",
    ] {
        let e = parse_listen(bad, false).unwrap_err().to_string();
        assert!(e.contains(bad), "{bad}: {e}");
    }
    assert!(resolve(&["hush", "--data-dir", "/d", "web", "--listen", "0.0.0.0:1"]).is_err());
    // Beyond loopback only with --remote, which needs a certificate and
    // its key.
    let remote = ["hush", "--data-dir", "/d", "web", "--listen", "0.0.0.0:1"];
    let with = |extra: &[&'static str]| [&remote[..], extra].concat();
    // (clap itself refuses these: --remote requires both files, and
    // the files require --remote)
    assert!(LowArgs::try_parse_from(with(&["--remote", "hush.test"])).is_err());
    assert!(LowArgs::try_parse_from(with(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])).is_err());
    let full = with(&[
        "--remote",
        "Hush.Test",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ]);
    let c = resolve(&full).unwrap();
    assert!(matches!(&c.command, Command::Web { remote: Some(r), .. } if r.host == "hush.test"));
    let bad = with(&[
        "--remote",
        "https://x/",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
    ]);
    assert!(resolve(&bad).is_err());
}

#[test]
fn timers_parse() {
    assert_eq!(parse_timer("off").unwrap(), None);
    assert_eq!(parse_timer("30s").unwrap(), Some(30));
    assert_eq!(parse_timer("5m").unwrap(), Some(300));
    assert_eq!(parse_timer("1h").unwrap(), Some(3600));
    assert_eq!(parse_timer("7d").unwrap(), Some(604_800));
    assert!(parse_timer("0s").is_err());
    assert!(parse_timer("soon").is_err());
}

#[test]
fn the_passphrase_never_prints() {
    let c = resolve(&["hush", "--data-dir", "/d", "contacts"]).unwrap();
    assert!(!format!("{c:?}").contains("pw"));
}

#[test]
fn the_passphrase_is_kept_in_memory_that_is_wiped() {
    let c = resolve(&["hush", "--data-dir", "/d", "contacts"]).unwrap();
    let PassphraseSource::Env(p) = c.passphrase else {
        panic!("HUSH_PASSPHRASE was not used");
    };
    // Only a Zeroizing<String> fits here: a plain String would not
    // compile, so the wipe cannot be lost by a refactoring.
    let wiped: Zeroizing<String> = p;
    assert_eq!(wiped.as_str(), "pw");
}

#[test]
fn insecure_http_is_an_explicit_global_flag() {
    let c = resolve(&["hush", "--data-dir", "/d", "contacts"]).unwrap();
    assert!(!c.connect.insecure_http);
    let c = resolve(&["hush", "--data-dir", "/d", "contacts", "--insecure-http"]).unwrap();
    assert!(c.connect.insecure_http);
}

#[test]
fn send_file_to_a_channel_resolves() {
    let argv = ["hush", "--data-dir", "/d", "send-file", "--channel", "news"];
    let c = resolve(&[&argv[..], &["a.png", "--caption", "hi"]].concat()).unwrap();
    assert!(
        matches!(c.command, Command::ChannelSendFile { name, path, caption }
        if name == "news" && path == std::path::Path::new("a.png") && caption.as_deref() == Some("hi"))
    );
    assert!(resolve(&[&argv[..], &["bob", "a.png"]].concat()).is_err());
    let no_channel = [
        "hush",
        "--data-dir",
        "/d",
        "send-file",
        "bob",
        "a",
        "--caption",
        "x",
    ];
    assert!(LowArgs::try_parse_from(no_channel).is_err());
}
