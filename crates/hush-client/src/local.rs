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
pub(crate) use crate::schema::migrate;

pub(crate) const KEYFILE: &str = "keyfile.json";
pub(crate) const DATABASE: &str = "hush.db";

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
pub(crate) struct KeyFile {
    version: u8,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    wrapped_key: String,
}

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
pub(crate) fn write_keyfile(dir: &Path, keyfile: &KeyFile) -> Result<(), ClientError> {
    let tmp = dir.join("keyfile.json.tmp");
    let bytes =
        serde_json::to_vec_pretty(keyfile).map_err(|e| ClientError::Store(e.to_string()))?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(KEYFILE))?;
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

    pub(crate) fn wrap(db_key: &[u8; 32], passphrase: &str) -> Result<KeyFile, ClientError> {
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
}
