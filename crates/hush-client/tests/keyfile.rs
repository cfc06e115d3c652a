//! `keyfile.json` is not authenticated: whoever can write it chooses the
//! Argon2id cost the next unlock uses. An edited keyfile asking for less than
//! the minimum (or absurdly much) is refused before the passphrase is used,
//! and nothing in the store changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use hush_client::ClientError;
use hush_client::local::{ARGON_MIN_M_KIB, ARGON_MIN_T, LocalStore};
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Rewrites the keyfile's cost fields.
fn edit_keyfile(dir: &Path, m_kib: u64, t: u64, p: u64) {
    let path = dir.join("keyfile.json");
    let mut kf: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    kf["m_kib"] = m_kib.into();
    kf["t"] = t.into();
    kf["p"] = p.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&kf).unwrap()).unwrap();
}

#[test]
fn a_keyfile_edited_to_a_cheap_argon2_cost_is_refused_and_the_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalStore::create(dir.path(), PASS).unwrap());
    let original = std::fs::read(dir.path().join("keyfile.json")).unwrap();

    // The attacker's edit: 8 KiB, one pass.
    edit_keyfile(dir.path(), 8, 1, 1);
    let before = files(dir.path());
    let e = LocalStore::open(dir.path(), PASS).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::KeyfileCost {
                m_kib: 8,
                t: 1,
                p: 1
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("65536 KiB") && text.contains("3 passes"),
        "{text}"
    );
    assert_eq!(files(dir.path()), before, "the store changed");

    // Just under the minimum, in either figure, is refused too.
    for (m, t) in [
        (ARGON_MIN_M_KIB - 1, ARGON_MIN_T),
        (ARGON_MIN_M_KIB, ARGON_MIN_T - 1),
    ] {
        edit_keyfile(dir.path(), m.into(), t.into(), 1);
        assert!(matches!(
            LocalStore::open(dir.path(), PASS),
            Err(ClientError::KeyfileCost { .. })
        ));
    }
    // So is a cost meant to exhaust memory, and zero lanes.
    for (m, t, p) in [
        (u64::from(u32::MAX), 3, 1),
        (65_536, 100_000, 1),
        (65_536, 3, 0),
    ] {
        edit_keyfile(dir.path(), m, t, p);
        assert!(matches!(
            LocalStore::open(dir.path(), PASS),
            Err(ClientError::KeyfileCost { .. })
        ));
    }

    // The real keyfile back: the store opens as before.
    std::fs::write(dir.path().join("keyfile.json"), original).unwrap();
    LocalStore::open(dir.path(), PASS).unwrap();
}
