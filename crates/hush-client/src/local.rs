//! The encrypted local store: SQLCipher, keyed by a random database key that
//! is wrapped under Argon2id(passphrase).
//!
//! `keyfile.json` holds the Argon2id salt and parameters and the database key
//! sealed with AES-256-GCM under the derived key. A wrong passphrase fails to
//! open the seal, which is reported as [`ClientError::WrongPassphrase`] before
//! the database is touched, so it can never damage the store. Changing the
//! passphrase rewraps the key; the database is not re-encrypted.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ClientError;

const KEYFILE: &str = "keyfile.json";
const DATABASE: &str = "hush.db";

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (OWASP's second recommendation).
const ARGON_M_KIB: u32 = 64 * 1024;
const ARGON_T: u32 = 3;

/// The least Argon2id cost a keyfile may ask for: what every store was made
/// with (decision 0010). `keyfile.json` is not authenticated, so whoever
/// can write it could otherwise make the next unlock cheap to brute-force.
pub const ARGON_MIN_M_KIB: u32 = ARGON_M_KIB;
/// See [`ARGON_MIN_M_KIB`].
pub const ARGON_MIN_T: u32 = ARGON_T;
/// The most a keyfile may ask for (1 GiB, 16 passes, 8 lanes), so that an
/// edited keyfile cannot make opening exhaust memory or time either.
pub const ARGON_MAX_M_KIB: u32 = 1024 * 1024;
/// See [`ARGON_MAX_M_KIB`].
pub const ARGON_MAX_T: u32 = 16;
/// See [`ARGON_MAX_M_KIB`].
pub const ARGON_MAX_P: u32 = 8;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u8,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    wrapped_key: String,
}

/// Version 1: the schema as the first release wrote it (kept verbatim: a
/// store without a `user_version` is a version-1 store).
pub(crate) const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_roots (
    epoch     INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mls_state (
    key   BLOB PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    username     TEXT PRIMARY KEY,
    account_key  BLOB NOT NULL,
    first_seen   INTEGER NOT NULL,
    verified     INTEGER NOT NULL DEFAULT 0,
    key_changed  INTEGER NOT NULL DEFAULT 0,
    blocked      INTEGER NOT NULL DEFAULT 0,
    profile_key  BLOB,
    display_name TEXT
);
CREATE TABLE IF NOT EXISTS conversations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id       BLOB NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    peer           TEXT,
    name           TEXT,
    disappear_secs INTEGER,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_peer ON conversations(peer);
CREATE TABLE IF NOT EXISTS messages (
    rowid           INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    conversation    INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender          TEXT NOT NULL,
    sender_device   INTEGER NOT NULL,
    outgoing        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT,
    reply_to        TEXT,
    attachment      TEXT,
    sent_at         INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    expires_at      INTEGER,
    status          TEXT NOT NULL,
    edited          INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    franking        TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation, rowid);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    rowid      INTEGER PRIMARY KEY AUTOINCREMENT,
    request    TEXT NOT NULL,
    message_id TEXT
);
"#;

/// One persisted MLS state entry: key bytes and secret value.
pub type MlsEntry = (Vec<u8>, Zeroizing<Vec<u8>>);

/// The local database.
pub struct LocalStore {
    pub(crate) conn: Connection,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("dir", &self.dir)
            .finish()
    }
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, ClientError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| ClientError::Store(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *out)
        .map_err(|e| ClientError::Store(e.to_string()))?;
    Ok(out)
}

/// Refuses a keyfile whose Argon2id cost is outside the bounds above, before
/// the passphrase is used with it.
fn check_cost(kf: &KeyFile) -> Result<(), ClientError> {
    let weak = kf.m_kib < ARGON_MIN_M_KIB || kf.t < ARGON_MIN_T || kf.p < 1;
    let huge = kf.m_kib > ARGON_MAX_M_KIB || kf.t > ARGON_MAX_T || kf.p > ARGON_MAX_P;
    if weak || huge {
        return Err(ClientError::KeyfileCost {
            m_kib: kf.m_kib,
            t: kf.t,
            p: kf.p,
        });
    }
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>, ClientError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| ClientError::Store("keyfile is corrupt".into()))
}

/// Replaces the keyfile atomically (write, then rename).
fn write_keyfile(dir: &Path, keyfile: &KeyFile) -> Result<(), ClientError> {
    let tmp = dir.join("keyfile.json.tmp");
    let bytes =
        serde_json::to_vec_pretty(keyfile).map_err(|e| ClientError::Store(e.to_string()))?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(KEYFILE))?;
    Ok(())
}

/// Every schema change after version 1, in order: `MIGRATIONS[i]` takes a
/// store from version `i + 2 - 1` to `i + 2`. Applied at open, each in its
/// own transaction together with the new `user_version`.
const MIGRATIONS: &[&str] = &[
    // Version 2: the groups this device has ever been in, with the newest
    // epoch it saw (NULL: unknown, for groups left before this version), so
    // a replayed or overwriting Welcome is refused; and the account key a
    // contact was verified with, so a later key does not inherit it.
    r#"
CREATE TABLE known_groups (
    group_id   BLOB PRIMARY KEY,
    max_epoch  INTEGER,
    first_seen INTEGER NOT NULL
);
INSERT OR IGNORE INTO known_groups (group_id, max_epoch, first_seen)
    SELECT group_id, NULL, created_at FROM conversations;
ALTER TABLE contacts ADD COLUMN verified_key BLOB;
UPDATE contacts SET verified_key = account_key WHERE verified = 1;
"#,
    // Version 3: receipts to the sender (decision 0017). Who received and
    // who read each of this account's messages, one row per member, and how
    // many other members a group message was sent to (NULL: a 1:1 message,
    // or one sent before this version or from another device).
    r#"
CREATE TABLE receipts (
    message_id   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    member       TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    read_at      INTEGER,
    PRIMARY KEY (message_id, member)
) WITHOUT ROWID;
ALTER TABLE messages ADD COLUMN recipients INTEGER;
"#,
    // Version 4: this account's devices as this device knows them (decision
    // 0023): every certificate it has seen under the account key, the name
    // the user gave it, when a message from it last arrived here, and
    // whether it was removed; and the links this device approved that have
    // not answered yet, with their keys. The device itself is its first row.
    r#"
CREATE TABLE account_devices (
    device_id   INTEGER PRIMARY KEY,
    certificate BLOB NOT NULL,
    name        TEXT,
    last_seen   INTEGER,
    removed     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO account_devices (device_id, certificate)
    SELECT CAST(CAST(d.value AS TEXT) AS INTEGER), c.value FROM meta d, meta c
    WHERE d.key = 'device_id' AND c.key = 'certificate';
CREATE TABLE pending_links (
    device_id   INTEGER PRIMARY KEY,
    to_new      BLOB NOT NULL,
    to_existing BLOB NOT NULL,
    wanted      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    ready       BLOB
);
"#,
    // Version 5: this account's devices kept the same (decision 0025): per
    // synced setting (a contact's block or verification mark, the profile
    // key, the presence setting, a device's name), the logical clock of its
    // newest change and the value it set.
    r#"
CREATE TABLE sync_fields (
    field  TEXT PRIMARY KEY,
    at_ms  INTEGER NOT NULL,
    device INTEGER NOT NULL,
    value  BLOB
) WITHOUT ROWID;
"#,
    // Version 6: history read a page at a time (`Client::history_page`) in
    // its order, and unread counts without reading the history.
    r#"
CREATE INDEX messages_by_time ON messages(conversation, sent_at, id);
CREATE INDEX messages_unread ON messages(conversation) WHERE status = 'received';
"#,
    // Version 7: conversations moved from the legacy suite 65100 to X-Wing
    // (decision 0031). The successor a commit in the old group announced
    // (`done` 0: its Welcome not followed yet, `epoch` the old group's
    // epoch after the announcing commit), or the successor the row now
    // points to (`done` 1: the old group's late messages still land in the
    // conversation).
    r#"
CREATE TABLE successors (
    old_group_id BLOB PRIMARY KEY,
    new_group_id BLOB NOT NULL,
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    epoch        INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX successors_by_new ON successors(new_group_id);
"#,
];

/// The schema version this code writes.
pub(crate) const SCHEMA_VERSION: u32 = 1 + MIGRATIONS.len() as u32;

/// Brings the schema to [`SCHEMA_VERSION`]. A store from a newer release is
/// refused rather than misread.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), ClientError> {
    let mut version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        // A new store, or one written before versions were recorded: both
        // are version 1 once its tables exist.
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "user_version", 1)?;
        tx.commit()?;
        version = 1;
    }
    if version > SCHEMA_VERSION {
        return Err(ClientError::Store(format!(
            "the local store has schema version {version}, newer than this hush \
             understands ({SCHEMA_VERSION}); upgrade hush"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize - 1) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i as u32 + 2)?;
        tx.commit()?;
    }
    Ok(())
}

fn open_db(path: &Path, key: &[u8; 32]) -> Result<Connection, ClientError> {
    let mut conn = Connection::open(path)?;
    // SQLCipher's raw-key form: no second KDF, the key is already random.
    let hex_key = Zeroizing::new(format!("x'{}'", hex::encode(key)));
    conn.pragma_update(None, "key", &*hex_key)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    migrate(&mut conn)?;
    Ok(conn)
}

impl LocalStore {
    /// Whether `dir` holds a store.
    pub fn exists(dir: &Path) -> bool {
        dir.join(KEYFILE).exists()
    }

    /// Creates a new store in `dir` under `passphrase`.
    pub fn create(dir: &Path, passphrase: &str) -> Result<Self, ClientError> {
        if Self::exists(dir) {
            return Err(ClientError::AlreadyRegistered(dir.display().to_string()));
        }
        if passphrase.is_empty() {
            return Err(ClientError::InvalidInput("the passphrase is empty".into()));
        }
        std::fs::create_dir_all(dir)?;
        let mut db_key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *db_key);
        let keyfile = Self::wrap(&db_key, passphrase)?;
        let conn = open_db(&dir.join(DATABASE), &db_key)?;
        // The keyfile is written last: a store without one does not exist.
        write_keyfile(dir, &keyfile)?;
        Ok(Self {
            conn,
            dir: dir.to_owned(),
        })
    }

    fn wrap(db_key: &[u8; 32], passphrase: &str) -> Result<KeyFile, ClientError> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let kek = derive(passphrase, &salt, ARGON_M_KIB, ARGON_T, 1)?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &*kek).map_err(|_| ClientError::Store("aead".into()))?,
        );
        let mut sealed = db_key.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"hush keyfile v1"),
            &mut sealed,
        )
        .map_err(|_| ClientError::Store("cannot seal the database key".into()))?;
        Ok(KeyFile {
            version: 1,
            kdf: "argon2id".into(),
            m_kib: ARGON_M_KIB,
            t: ARGON_T,
            p: 1,
            salt: b64(&salt),
            nonce: b64(&nonce),
            wrapped_key: b64(&sealed),
        })
    }

    /// Opens the store in `dir`.
    pub fn open(dir: &Path, passphrase: &str) -> Result<Self, ClientError> {
        let raw = std::fs::read(dir.join(KEYFILE)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ClientError::NotRegistered(dir.display().to_string())
            } else {
                e.into()
            }
        })?;
        let kf: KeyFile = serde_json::from_slice(&raw)
            .map_err(|_| ClientError::Store("keyfile is corrupt".into()))?;
        if kf.version != 1 || kf.kdf != "argon2id" {
            return Err(ClientError::Store(
                "keyfile version is not supported".into(),
            ));
        }
        check_cost(&kf)?;
        let db_key = Self::unwrap_key(&kf, passphrase)?;
        let conn = open_db(&dir.join(DATABASE), &db_key)?;
        Ok(Self {
            conn,
            dir: dir.to_owned(),
        })
    }

    /// Rewraps the database key under a new passphrase.
    pub fn change_passphrase(&self, old: &str, new: &str) -> Result<(), ClientError> {
        if new.is_empty() {
            return Err(ClientError::InvalidInput("the passphrase is empty".into()));
        }
        let raw = std::fs::read(self.dir.join(KEYFILE))?;
        let kf: KeyFile = serde_json::from_slice(&raw)
            .map_err(|_| ClientError::Store("keyfile is corrupt".into()))?;
        check_cost(&kf)?;
        let db_key = Self::unwrap_key(&kf, old)?;
        write_keyfile(&self.dir, &Self::wrap(&db_key, new)?)
    }

    /// Opens the seal of the database key with `passphrase`.
    fn unwrap_key(kf: &KeyFile, passphrase: &str) -> Result<Zeroizing<[u8; 32]>, ClientError> {
        let kek = derive(passphrase, &unb64(&kf.salt)?, kf.m_kib, kf.t, kf.p)?;
        let nonce = <[u8; 12]>::try_from(unb64(&kf.nonce)?.as_slice())
            .map_err(|_| ClientError::Store("keyfile is corrupt".into()))?;
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &*kek).map_err(|_| ClientError::Store("aead".into()))?,
        );
        let mut sealed = Zeroizing::new(unb64(&kf.wrapped_key)?);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"hush keyfile v1"),
                &mut sealed,
            )
            .map_err(|_| ClientError::WrongPassphrase)?;
        let db_key = <[u8; 32]>::try_from(&*plain)
            .map_err(|_| ClientError::Store("keyfile is corrupt".into()))?;
        Ok(Zeroizing::new(db_key))
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// A UTF-8 value from the `meta` table.
    pub fn meta_str(&self, key: &str) -> Result<Option<String>, ClientError> {
        self.meta(key)?
            .map(|v| {
                String::from_utf8(v)
                    .map_err(|_| ClientError::Store(format!("meta {key} is not UTF-8")))
            })
            .transpose()
    }

    /// Sets a `meta` value (inside the caller's transaction if any).
    pub fn set_meta(conn: &Connection, key: &str, value: &[u8]) -> Result<(), ClientError> {
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Runs `sql` on the open store: only for tests that make a store look
    /// as an earlier release left it.
    #[cfg(feature = "test-hooks")]
    pub fn execute_for_tests(&self, sql: &str) -> Result<(), ClientError> {
        self.conn.execute_batch(sql)?;
        Ok(())
    }

    /// Every persisted MLS state entry.
    pub fn mls_entries(&self) -> Result<Vec<MlsEntry>, ClientError> {
        let mut stmt = self.conn.prepare("SELECT key, value FROM mls_state")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    Zeroizing::new(r.get::<_, Vec<u8>>(1)?),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Applies MLS state changes (inside the caller's transaction).
    pub fn apply_changes(
        conn: &Connection,
        changes: Vec<hush_proto::StateChange>,
    ) -> Result<(), ClientError> {
        for change in changes {
            match change {
                hush_proto::StateChange::Put(k, v) => {
                    conn.execute(
                        "INSERT INTO mls_state (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![k.to_bytes(), v.as_slice()],
                    )?;
                }
                hush_proto::StateChange::Delete(k) => {
                    conn.execute(
                        "DELETE FROM mls_state WHERE key = ?1",
                        params![k.to_bytes()],
                    )?;
                }
                _ => return Err(ClientError::Store("unknown state change".into())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passphrase_is_an_error_and_harms_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalStore::create(dir.path(), "correct horse").unwrap();
            LocalStore::set_meta(&s.conn, "k", b"v").unwrap();
        }
        let before = std::fs::read(dir.path().join(DATABASE)).unwrap();
        assert!(matches!(
            LocalStore::open(dir.path(), "wrong"),
            Err(ClientError::WrongPassphrase)
        ));
        assert_eq!(std::fs::read(dir.path().join(DATABASE)).unwrap(), before);
        let s = LocalStore::open(dir.path(), "correct horse").unwrap();
        assert_eq!(s.meta("k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn the_database_is_encrypted_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = LocalStore::create(dir.path(), "pw").unwrap();
            LocalStore::set_meta(&s.conn, "secret", b"attack at dawn attack at dawn").unwrap();
            s.conn
                .pragma_update(None, "wal_checkpoint", "TRUNCATE")
                .unwrap();
        }
        let raw = std::fs::read(dir.path().join(DATABASE)).unwrap();
        assert!(!raw.windows(13).any(|w| w == b"attack at daw"));
        assert!(!raw.starts_with(b"SQLite format 3"));
    }

    #[test]
    fn passphrase_can_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::create(dir.path(), "old").unwrap();
        assert!(matches!(
            s.change_passphrase("bad", "new"),
            Err(ClientError::WrongPassphrase)
        ));
        s.change_passphrase("old", "new").unwrap();
        drop(s);
        assert!(LocalStore::open(dir.path(), "old").is_err());
        LocalStore::open(dir.path(), "new").unwrap();
    }

    /// A store as the release before schema versions wrote it: the
    /// version-1 tables, `user_version` 0, and data in them.
    /// A store as the release of schema `version` wrote it: version 1 with
    /// its rows, the migrations up to `version`, then `sql`.
    fn write_store_at(dir: &Path, version: u32, sql: &str) {
        let db_key = write_v1_store(dir, "pw");
        let mut conn = Connection::open(dir.join(DATABASE)).unwrap();
        let hex_key = Zeroizing::new(format!("x'{}'", hex::encode(*db_key)));
        conn.pragma_update(None, "key", &*hex_key).unwrap();
        let tx = conn.transaction().unwrap();
        for m in &MIGRATIONS[..version as usize - 1] {
            tx.execute_batch(m).unwrap();
        }
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", version).unwrap();
        tx.commit().unwrap();
    }

    fn write_v1_store(dir: &Path, passphrase: &str) -> Zeroizing<[u8; 32]> {
        let mut db_key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *db_key);
        let keyfile = LocalStore::wrap(&db_key, passphrase).unwrap();
        let conn = Connection::open(dir.join(DATABASE)).unwrap();
        let hex_key = Zeroizing::new(format!("x'{}'", hex::encode(*db_key)));
        conn.pragma_update(None, "key", &*hex_key).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('username', X'616c696365');
             INSERT INTO kt_roots VALUES (7, X'01', X'02');
             INSERT INTO mls_state VALUES (X'0a', X'0b');
             INSERT INTO contacts (username, account_key, first_seen, verified)
                 VALUES ('bob', X'b0b0', 1, 1), ('carol', X'ca01', 2, 0);
             INSERT INTO conversations (group_id, kind, peer, name, active, created_at)
                 VALUES (X'aa', 'direct', 'bob', NULL, 1, 10),
                        (X'bb', 'group', NULL, 'family', 0, 11);
             INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
                 body, sent_at, received_at, status)
                 VALUES ('m1', 1, 'bob', 1, 0, 'text', 'hello', 5, 6, 'received');
             INSERT INTO outbox (request, message_id) VALUES ('{}', 'm1');",
        )
        .unwrap();
        assert_eq!(
            conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))
                .unwrap(),
            0
        );
        drop(conn);
        write_keyfile(dir, &keyfile).unwrap();
        db_key
    }

    #[test]
    fn a_version_1_store_opens_with_everything_in_it_after_migration() {
        let dir = tempfile::tempdir().unwrap();
        write_v1_store(dir.path(), "pw");
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(s.meta_str("username").unwrap().as_deref(), Some("alice"));
        assert_eq!(s.mls_entries().unwrap().len(), 1);
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM kt_roots WHERE epoch = 7"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM conversations"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM outbox"), 1);
        let body: String = c
            .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(body, "hello");
        // Groups left before the upgrade are remembered, epoch unknown.
        assert_eq!(
            count("SELECT COUNT(*) FROM known_groups WHERE max_epoch IS NULL"),
            2
        );
        // The key a contact was verified with is the one recorded then.
        let vk: Option<Vec<u8>> = c
            .query_row(
                "SELECT verified_key FROM contacts WHERE username = 'bob'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(vk, Some(vec![0xb0, 0xb0]));
        let vk: Option<Vec<u8>> = c
            .query_row(
                "SELECT verified_key FROM contacts WHERE username = 'carol'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(vk, None);
        drop(s);
        // Opening again applies nothing twice.
        LocalStore::open(dir.path(), "pw").unwrap();
    }

    /// A store as the previous release (version 2) wrote it, with a group
    /// and messages in it: the messages stay, and receipts can be recorded
    /// for them after the upgrade.
    #[test]
    fn a_version_2_store_with_messages_opens_and_takes_receipts() {
        let dir = tempfile::tempdir().unwrap();
        write_store_at(
            dir.path(),
            2,
            "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
                 body, sent_at, received_at, status)
                 VALUES ('m2', 2, 'alice', 1, 1, 'text', 'to the family', 7, 7, 'delivered');",
        );
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let row: (String, String, Option<i64>) = c
            .query_row(
                "SELECT body, status, recipients FROM messages WHERE id = 'm2'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("to the family".into(), "delivered".into(), None));
        c.execute(
            "INSERT INTO receipts (message_id, member, delivered_at) VALUES ('m2', 'bob', 8)",
            [],
        )
        .unwrap();
        // A receipt row cannot name a message that does not exist, and goes
        // with its message.
        assert!(
            c.execute(
                "INSERT INTO receipts (message_id, member, delivered_at) VALUES ('nope', 'bob', 8)",
                [],
            )
            .is_err()
        );
        c.execute("DELETE FROM messages WHERE id = 'm2'", [])
            .unwrap();
        let left: i64 = c
            .query_row("SELECT COUNT(*) FROM receipts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    /// A store as the previous release (version 3) wrote it: after the
    /// upgrade this device is the first row of its account's devices, and
    /// the messages stay.
    #[test]
    fn a_version_3_store_opens_with_this_device_listed() {
        let dir = tempfile::tempdir().unwrap();
        write_store_at(
            dir.path(),
            3,
            "INSERT INTO meta (key, value) VALUES ('device_id', CAST('3' AS BLOB)),
                     ('certificate', X'c0ffee');",
        );
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let row: (i64, Vec<u8>, Option<String>, bool) = c
            .query_row(
                "SELECT device_id, certificate, name, removed FROM account_devices",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (3, vec![0xc0, 0xff, 0xee], None, false));
        let pending: i64 = c
            .query_row("SELECT COUNT(*) FROM pending_links", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pending, 0);
        let body: String = c
            .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(body, "hello");
    }

    /// A store as the previous release (version 4) wrote it, with a second
    /// device, a blocked contact and a message: all of it stays, and synced
    /// settings can be recorded after the upgrade.
    #[test]
    fn a_version_4_store_opens_with_its_devices_and_contacts() {
        let dir = tempfile::tempdir().unwrap();
        write_store_at(
            dir.path(),
            4,
            "INSERT INTO account_devices (device_id, certificate, name, last_seen, removed)
                 VALUES (1, X'c0ffee', 'phone', NULL, 0), (2, X'beef', 'laptop', 9, 0);
             UPDATE contacts SET blocked = 1 WHERE username = 'carol';",
        );
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let names: Vec<String> = c
            .prepare("SELECT name FROM account_devices ORDER BY device_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["phone", "laptop"]);
        let blocked: bool = c
            .query_row(
                "SELECT blocked FROM contacts WHERE username = 'carol'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(blocked);
        let body: String = c
            .query_row("SELECT body FROM messages WHERE id = 'm1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(body, "hello");
        let held: i64 = c
            .query_row("SELECT COUNT(*) FROM sync_fields", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 0);
        c.execute(
            "INSERT INTO sync_fields (field, at_ms, device, value) VALUES ('presence', 5, 2, X'00')",
            [],
        )
        .unwrap();
        drop(s);
        // Opening again applies nothing twice and keeps what was synced.
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let held: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM sync_fields", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 1);
    }

    /// A store as the previous release (version 5) wrote it, with messages
    /// in two conversations: they stay, and the new indexes serve the
    /// paged read and the unread count.
    #[test]
    fn a_version_5_store_opens_with_its_messages_indexed() {
        let dir = tempfile::tempdir().unwrap();
        write_store_at(
            dir.path(),
            5,
            "INSERT INTO messages (id, conversation, sender, sender_device, outgoing, kind,
                 body, sent_at, received_at, status)
                 VALUES ('m2', 1, 'bob', 1, 0, 'text', 'again', 9, 9, 'received'),
                        ('m3', 2, 'alice', 1, 1, 'text', 'to the family', 7, 7, 'sent');",
        );
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let page: Vec<String> = c
            .prepare(
                "SELECT id FROM messages WHERE conversation = 1 AND (sent_at, id) < (100, '') \
                 ORDER BY sent_at DESC, id DESC LIMIT 5",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(page, ["m2", "m1"]);
        let unread: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE conversation = 1 AND status = 'received'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unread, 2);
        let plan = |sql: &str| -> String {
            c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let p = plan(
            "SELECT id FROM messages WHERE conversation = 1 AND (sent_at, id) < (100, '') \
             ORDER BY sent_at DESC, id DESC LIMIT 5",
        );
        assert!(
            p.contains("messages_by_time") && !p.contains("TEMP B-TREE"),
            "{p}"
        );
        let p =
            plan("SELECT COUNT(*) FROM messages WHERE conversation = 1 AND status = 'received'");
        assert!(p.contains("messages_unread"), "{p}");
        drop(s);
        LocalStore::open(dir.path(), "pw").unwrap();
    }

    /// A store as the previous release (version 6) wrote it: its
    /// conversations stay, and the table of successors (decision 0031)
    /// comes empty and takes a move of one of them.
    #[test]
    fn a_version_6_store_opens_with_a_table_of_successors() {
        let dir = tempfile::tempdir().unwrap();
        write_store_at(dir.path(), 6, "");
        let s = LocalStore::open(dir.path(), "pw").unwrap();
        let c = &s.conn;
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!((version, SCHEMA_VERSION), (7, 7));
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM conversations"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM successors"), 0);
        c.execute_batch(
            "INSERT INTO successors (old_group_id, new_group_id, conversation, epoch, done)
                 VALUES (X'aa', X'cc', 1, 3, 1);
             UPDATE conversations SET group_id = X'cc' WHERE id = 1;",
        )
        .unwrap();
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM successors s JOIN conversations c ON c.id = s.conversation"
            ),
            1
        );
        drop(s);
        LocalStore::open(dir.path(), "pw").unwrap();
    }

    #[test]
    fn a_store_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::create(dir.path(), "pw").unwrap();
        s.conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(s);
        let err = LocalStore::open(dir.path(), "pw").unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
