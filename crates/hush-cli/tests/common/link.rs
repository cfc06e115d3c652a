//! Linking a new device with the real binaries: `hush link` on the new
//! device, `hush devices link CODE` on an existing one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;

use super::{User, keys};

/// `hush --json link` on `new`, running; returns it and the code it shows.
pub fn start_link(new: &User, url: &str, name: &str, timeout: &str) -> (Child, String) {
    let mut child = new
        .command(&[
            "--json",
            "link",
            "--server",
            url,
            "--name",
            name,
            "--timeout",
            timeout,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let v: Value = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("first line of `hush link` is not JSON: {first:?}: {e}"));
    assert_eq!(keys(&v), ["link_code"], "{v}");
    (child, v["link_code"].as_str().unwrap().to_owned())
}

/// Waits for `hush link` to end: (success, the rest of stdout, stderr).
pub fn finish_link(child: Child) -> (bool, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Links a new device `name` to `user`; returns it.
pub fn link(user: &User, url: &str, name: &str) -> User {
    link_with(user, url, name, "all").0
}

/// Links a new device `name` to `user` with `--history history`; returns
/// it and the progress objects of (approving, new) device.
pub fn link_with(
    user: &User,
    url: &str,
    name: &str,
    history: &str,
) -> (User, Vec<Value>, Vec<Value>) {
    let new = User::new(&format!("{}-{name}", user.name));
    let (child, code) = start_link(&new, url, name, "60s");
    let mut approved = user.json(&["devices", "link", &code, "--history", history]);
    let done = approved.pop().unwrap();
    assert_eq!(done["linked"], true, "{done:?}");
    assert!(
        approved.iter().all(|p| p.get("progress").is_some()),
        "{approved:?}"
    );
    let (ok, stdout, stderr) = finish_link(child);
    assert!(ok, "hush link failed: {stderr}");
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let linked = lines.pop().unwrap();
    assert!(
        lines.iter().all(|p| p.get("progress").is_some()),
        "{lines:?}"
    );
    assert_eq!(linked["linked"], true);
    assert_eq!(linked["username"], user.name.as_str());
    assert_eq!(linked["device_id"], done["device_id"]);
    (new, approved, lines)
}
