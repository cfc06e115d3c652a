//! The deployment files under `deploy/` hold together: the dashboard and
//! the alert rules query only metrics a real server exports, the compose
//! files parse and name files and variables that exist, the systemd unit
//! passes `systemd-analyze verify`, the Dockerfile builds hush-server and
//! runs it unprivileged. Where a tool is missing the test says so on the
//! terminal (not captured), never silently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_hush-server");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("deploy/{rel} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "deploy/{rel}: one document");
    docs.remove(0)
}

/// Said on the terminal even when the test passes (libtest captures only
/// the print macros).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "NOTE: {text}");
}

/// Every `hush_...` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hush_") {
        let before = text.len() - rest.len() + i;
        let starts_word = text[..before]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if starts_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sample names a real `hush-server` with `extra` arguments exports on
/// its operator listener.
async fn scrape(extra: &[&str]) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let operator = free_addr();
    let _server = Server(
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &free_addr().to_string()])
            .args(["--metrics-listen", &operator.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("http://{operator}/metrics")).send().await
            && r.status() == 200
        {
            let text = r.text().await.unwrap();
            return text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no /metrics on {operator}");
}

/// What the server exports: a single node's scrape, and a cluster node's
/// when PostgreSQL and NATS are at hand; else the cluster metrics the
/// source renders (said on the terminal).
async fn exported() -> BTreeSet<String> {
    let mut names = scrape(&[]).await;
    assert!(names.contains("hush_sends_total"), "{names:?}");
    match common::pg::env() {
        Some(env) => {
            let schema = common::pg::PgSchema::create(&env.pg).await;
            let cluster = scrape(&["--database", &schema.node_url(), "--nats", &env.nats]).await;
            assert!(
                cluster.contains("hush_cluster_nats_connected"),
                "{cluster:?}"
            );
            names.extend(cluster);
        }
        None => {
            note(
                "HUSH_TEST_POSTGRES_URL/HUSH_TEST_NATS_URL unset: hush_cluster_* names \
                 checked against src/cluster.rs, not against a cluster node's scrape",
            );
            names.extend(metric_names(include_str!("../src/cluster.rs")));
        }
    }
    names
}

/// Every `expr` (and templating query) string in the dashboard.
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_query_only_metrics_the_server_exports() {
    let exported = exported().await;
    let dashboard: serde_json::Value = serde_json::from_str(&read("grafana/hush.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.iter().filter(|p| p["type"] != "row").count() >= 10);
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let mut used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();

    let alerts = yaml("prometheus/alerts.yaml");
    let mut seen = BTreeSet::new();
    for group in alerts["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            assert!(seen.insert(name.to_owned()), "alert {name} twice");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: expr"));
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("warning" | "critical")
                ),
                "{name}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: summary"
            );
            used.extend(metric_names(expr));
        }
    }
    for failure in [
        "HushNodeDown",
        "HushNatsDisconnected",
        "HushDatabaseSaturated",
        "HushServerErrors",
    ] {
        assert!(seen.contains(failure), "no alert {failure}");
    }
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    assert!(used.len() >= 20, "{used:?}");
    if which("promtool").is_none() {
        note("promtool is not installed: alerts.yaml checked structurally, not by promtool");
    } else {
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(deploy().join("prometheus/alerts.yaml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// The environment variable names `hush-server --help` documents.
fn documented_variables() -> BTreeSet<String> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    help.split("[env: ")
        .skip(1)
        .map(|s| s.split([']', '=']).next().unwrap().to_owned())
        .collect()
}

fn strings(v: &Yaml) -> Vec<String> {
    match v {
        Yaml::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        Yaml::Hash(h) => h
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Checks one compose file; returns its services by name.
fn check_compose(rel: &str) -> yaml_rust2::yaml::Hash {
    let doc = yaml(rel);
    let dir = deploy();
    let services = doc["services"].as_hash().expect("services").clone();
    let volumes: BTreeSet<String> = strings(&doc["volumes"]).into_iter().collect();
    let names: BTreeSet<&str> = services.keys().filter_map(Yaml::as_str).collect();
    let variables = documented_variables();
    for (name, s) in &services {
        let name = name.as_str().unwrap();
        assert!(s["image"].as_str().is_some(), "{rel}: {name} has no image");
        if let Some(context) = s["build"]["context"].as_str() {
            let context = dir.join(context);
            assert!(context.is_dir(), "{rel}: {name}: no {}", context.display());
            let dockerfile = s["build"]["dockerfile"].as_str().unwrap();
            assert!(
                context.join(dockerfile).is_file(),
                "{rel}: {name}: no {dockerfile}"
            );
        }
        for volume in strings(&s["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with('.') || source.starts_with('/') {
                assert!(dir.join(source).exists(), "{rel}: {name}: no {source}");
            } else {
                assert!(
                    volumes.contains(source),
                    "{rel}: {name}: volume {source} undeclared"
                );
            }
        }
        for dep in strings(&s["depends_on"]) {
            assert!(
                names.contains(dep.as_str()),
                "{rel}: {name} depends on unknown {dep}"
            );
        }
        for var in strings(&s["environment"])
            .iter()
            .filter(|v| v.starts_with("HUSH_"))
        {
            assert!(
                variables.contains(var),
                "{rel}: {name}: hush-server knows no {var}"
            );
        }
    }
    services
}

#[test]
fn compose_files_parse_and_name_what_exists() {
    let single = check_compose("compose.yaml");
    let hush = &single[&Yaml::String("hush".into())];
    assert_eq!(
        hush["environment"]["HUSH_LISTEN"].as_str(),
        Some("0.0.0.0:7780")
    );

    let cluster = check_compose("compose.cluster.yaml");
    for service in ["postgres", "nats", "node1", "node2", "haproxy"] {
        assert!(
            cluster.contains_key(&Yaml::String(service.into())),
            "no {service}"
        );
    }
    for node in ["node1", "node2"] {
        let env = &cluster[&Yaml::String(node.into())]["environment"];
        assert!(
            env["HUSH_DATABASE"]
                .as_str()
                .unwrap()
                .starts_with("postgres://")
        );
        assert_eq!(env["HUSH_NATS"].as_str(), Some("nats://nats:4222"));
    }
    // The load balancer sends to the nodes, on the port they listen on.
    let servers: Vec<(String, String)> = read("haproxy/haproxy.cfg")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|l| {
            let target = l.split_whitespace().nth(1).unwrap();
            let (host, port) = target.split_once(':').unwrap();
            (host.to_owned(), port.to_owned())
        })
        .collect();
    assert_eq!(servers.len(), 2, "{servers:?}");
    for (host, port) in servers {
        let node = &cluster[&Yaml::String(host.clone())];
        let listen = node["environment"]["HUSH_LISTEN"].as_str().unwrap();
        assert!(
            listen.ends_with(&format!(":{port}")),
            "{host}: {listen} vs {port}"
        );
    }
    let cfg = deploy().join("haproxy/haproxy.cfg");
    if which("haproxy").is_some() {
        let out = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        note(
            "haproxy is not installed: haproxy.cfg checked for its servers only, not by haproxy -c",
        );
    }
    if which("docker").is_some_and(|_| {
        Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) {
        note("docker compose is present but not run here: run `docker compose config` in deploy/");
    } else {
        note("docker compose is not available: compose files checked structurally only");
    }
}

#[test]
fn the_systemd_unit_is_sandboxed_and_verifies() {
    let unit = read("hush-server.service");
    for line in [
        "ExecStart=/usr/local/bin/hush-server",
        "DynamicUser=yes",
        "StateDirectory=hush",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "Environment=HUSH_DATA_DIR=/var/lib/hush",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    for var in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let name = var.split('=').next().unwrap();
        assert!(documented_variables().contains(name), "unknown {name}");
    }
    if which("systemd-analyze").is_none() {
        note("systemd-analyze is not installed: the unit was checked structurally, not verified");
        return;
    }
    // verify wants the binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hush-server.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/hush-server", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    // It only warns (exit 0) about a directive it cannot parse: any word
    // about the unit fails the test.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("hush-server.service"),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_dockerfile_builds_hush_server_and_runs_it_unprivileged() {
    let file = read("Dockerfile");
    let stages: Vec<&str> = file.split("\nFROM ").skip(1).collect();
    assert!(stages.len() >= 2, "a build stage and a run stage");
    assert!(stages[0].contains("cargo build --release --locked -p hush-server"));
    let run = stages.last().unwrap();
    assert!(run.contains("COPY --from=build"));
    let user = run
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the run stage sets USER");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "USER {user}");
    assert!(run.contains("ENTRYPOINT [\"hush-server\"]"));
    // Built from the repository's root, as the compose files do.
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.dockerignore")
            .is_file()
    );
}
