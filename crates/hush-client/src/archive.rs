//! The account archive (decision 0026) from and into the local store: what
//! a linked device receives as history and what a backup holds.
//!
//! Export reads the store in one read transaction. Import writes in the
//! caller's transaction, so an archive lands whole or not at all. Imported
//! conversations are inactive until this device is (re-)added to them: a
//! Welcome for the same group id reactivates the row and the history stays
//! with it; until then the history reads as an archived conversation.

use hush_proto::archive::{
    Archive, ArchivedContact, ArchivedConversation, ArchivedDevice, ArchivedMessage,
};
use rusqlite::{Connection, Row, Transaction, params};
use zeroize::Zeroizing;

use crate::archive_extras;
use crate::client::{Client, now_ms};
use crate::error::ClientError;

/// The settings (`meta` entries) an archive carries to another device.
pub const CARRIED_SETTINGS: &[&str] = &["presence", "profile_key", "profile_shared"];

/// How much history an archive carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryScope {
    /// Every message.
    All,
    /// No message (conversations, contacts and settings only).
    None,
    /// Messages sent in the last this many days.
    Days(u32),
}

impl HistoryScope {
    /// Parses `all`, `none` or a number of days.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        match s {
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|d| *d > 0)
                .map(Self::Days)
                .ok_or_else(|| {
                    ClientError::InvalidInput(format!(
                        "--history is all, none or a number of days, not {n:?}"
                    ))
                }),
        }
    }

    /// The earliest `sent_at` kept (ms), `None` for no message at all.
    fn since_ms(self, now: u64) -> Option<u64> {
        match self {
            Self::All => Some(0),
            Self::None => None,
            Self::Days(d) => Some(now.saturating_sub(u64::from(d) * 86_400_000)),
        }
    }
}

const MESSAGE_COLUMNS: &str = "id, sender, sender_device, outgoing, kind, body, reply_to, \
     attachment, sent_at, received_at, expires_at, status, edited, deleted, franking";

fn message(r: &Row<'_>) -> rusqlite::Result<ArchivedMessage> {
    Ok(ArchivedMessage {
        id: r.get(0)?,
        sender: r.get(1)?,
        sender_device: r.get(2)?,
        outgoing: r.get(3)?,
        kind: r.get(4)?,
        body: r.get(5)?,
        reply_to: r.get(6)?,
        attachment: r.get(7)?,
        sent_at: r.get::<_, i64>(8)? as u64,
        received_at: r.get::<_, i64>(9)? as u64,
        expires_at: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        status: r.get(11)?,
        edited: r.get(12)?,
        deleted: r.get(13)?,
        franking: r.get(14)?,
        extras: Default::default(),
    })
}

fn contacts(conn: &Connection) -> Result<Vec<ArchivedContact>, ClientError> {
    Ok(conn
        .prepare(
            "SELECT username, account_key, first_seen, verified, verified_key, key_changed, \
             blocked, profile_key, display_name FROM contacts ORDER BY username",
        )?
        .query_map([], |r| {
            Ok(ArchivedContact {
                username: r.get(0)?,
                account_key: r.get(1)?,
                first_seen: r.get::<_, i64>(2)? as u64,
                verified: r.get(3)?,
                verified_key: r.get(4)?,
                key_changed: r.get::<_, i64>(5)?.clamp(0, 2) as u8,
                blocked: r.get(6)?,
                profile_key: r.get(7)?,
                display_name: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

fn conversations(
    conn: &Connection,
    since: Option<u64>,
) -> Result<Vec<ArchivedConversation>, ClientError> {
    let mut convs: Vec<(i64, ArchivedConversation)> = conn
        .prepare(
            "SELECT id, group_id, kind, peer, name, disappear_secs, active, created_at \
             FROM conversations ORDER BY id",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                ArchivedConversation {
                    group_id: r.get(1)?,
                    kind: r.get(2)?,
                    peer: r.get(3)?,
                    name: r.get(4)?,
                    disappear_secs: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    active: r.get(6)?,
                    created_at: r.get::<_, i64>(7)? as u64,
                    messages: Vec::new(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    if let Some(since) = since {
        let mut stmt = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation = ?1 AND sent_at >= ?2 \
             AND (expires_at IS NULL OR expires_at > ?3) ORDER BY rowid"
        ))?;
        let now = now_ms() as i64;
        for (id, conv) in &mut convs {
            conv.messages = stmt
                .query_map(params![*id, since as i64, now], message)?
                .collect::<Result<_, _>>()?;
            let mut extras = archive_extras::load(conn, *id)?;
            for m in &mut conv.messages {
                m.extras = extras.remove(&m.id).unwrap_or_default();
            }
        }
    }
    Ok(convs.into_iter().map(|(_, c)| c).collect())
}

fn devices(conn: &Connection) -> Result<Vec<ArchivedDevice>, ClientError> {
    Ok(conn
        .prepare("SELECT certificate, name, removed FROM account_devices ORDER BY device_id")?
        .query_map([], |r| {
            Ok(ArchivedDevice {
                certificate: r.get(0)?,
                name: r.get(1)?,
                removed: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

impl Client {
    /// This account's archive: `scope` of the history, and the account key
    /// when `with_account_key` (backups).
    pub fn export_archive(
        &mut self,
        scope: HistoryScope,
        with_account_key: bool,
    ) -> Result<Archive, ClientError> {
        self.expire_messages()?;
        let tx = self.store.conn.transaction()?;
        let meta = |k: &str| -> Result<Vec<u8>, ClientError> {
            Ok(tx
                .query_row("SELECT value FROM meta WHERE key = ?1", params![k], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .unwrap_or_default())
        };
        let mut settings = Vec::new();
        for key in CARRIED_SETTINGS {
            let value = meta(key)?;
            if !value.is_empty() {
                settings.push(((*key).to_owned(), value));
            }
        }
        let archive = Archive {
            username: self.username.to_string(),
            created_at_ms: now_ms(),
            account_seed: with_account_key.then(|| self.account.to_seed()),
            kt_signing_key: meta("kt_signing_key")?,
            kt_vrf_key: meta("kt_vrf_key")?,
            devices: devices(&tx)?,
            settings,
            contacts: contacts(&tx)?,
            conversations: conversations(&tx, scope.since_ms(now_ms()))?,
        };
        tx.finish()?;
        Ok(archive)
    }
}

/// Writes `archive`'s contacts, conversations, history and settings into
/// the store (inside the caller's transaction). What this device already
/// has wins: an existing conversation keeps its state and gains the
/// messages it lacks; an existing contact keeps its key and takes the
/// archive's marks only when the key is the same.
pub(crate) fn import(tx: &Transaction<'_>, archive: &Archive) -> Result<usize, ClientError> {
    for (key, value) in &archive.settings {
        if CARRIED_SETTINGS.contains(&key.as_str()) {
            crate::local::LocalStore::set_meta(tx, key, value)?;
        }
    }
    for c in &archive.contacts {
        tx.execute(
            "INSERT INTO contacts (username, account_key, first_seen, verified, verified_key, \
             key_changed, blocked, profile_key, display_name) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (username) DO UPDATE SET verified = excluded.verified, \
             verified_key = excluded.verified_key, key_changed = excluded.key_changed, \
             blocked = excluded.blocked, \
             profile_key = COALESCE(excluded.profile_key, profile_key), \
             display_name = COALESCE(excluded.display_name, display_name) \
             WHERE account_key = excluded.account_key",
            params![
                c.username,
                c.account_key,
                c.first_seen as i64,
                c.verified,
                c.verified_key,
                c.key_changed,
                c.blocked,
                c.profile_key,
                c.display_name
            ],
        )?;
    }
    let now = now_ms();
    let mut imported = 0;
    for conv in &archive.conversations {
        tx.execute(
            "INSERT INTO conversations (group_id, kind, peer, name, disappear_secs, active, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) ON CONFLICT (group_id) DO NOTHING",
            params![
                conv.group_id,
                conv.kind,
                conv.peer,
                conv.name,
                conv.disappear_secs.map(|v| v as i64),
                conv.created_at as i64
            ],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM conversations WHERE group_id = ?1",
            params![conv.group_id],
            |r| r.get(0),
        )?;
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO messages (conversation, {MESSAGE_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ))?;
        for m in &conv.messages {
            if m.expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            imported += stmt.execute(params![
                id,
                m.id,
                m.sender,
                m.sender_device,
                m.outgoing,
                m.kind,
                m.body,
                m.reply_to,
                m.attachment,
                m.sent_at as i64,
                m.received_at as i64,
                m.expires_at.map(|v| v as i64),
                m.status,
                m.edited,
                m.deleted,
                m.franking
            ])?;
            archive_extras::store(tx, id, &m.id, &m.extras)?;
        }
    }
    Ok(imported)
}

/// A fresh random 32-byte key.
pub(crate) fn random_key() -> Zeroizing<[u8; 32]> {
    use rand::RngCore;
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *k);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_scopes_parse_and_bound_the_messages() {
        assert_eq!(HistoryScope::parse("all").unwrap(), HistoryScope::All);
        assert_eq!(HistoryScope::parse("none").unwrap(), HistoryScope::None);
        assert_eq!(HistoryScope::parse("30").unwrap(), HistoryScope::Days(30));
        for bad in ["0", "-1", "week", ""] {
            assert!(HistoryScope::parse(bad).is_err(), "{bad}");
        }
        let now = 10 * 86_400_000;
        assert_eq!(HistoryScope::All.since_ms(now), Some(0));
        assert_eq!(HistoryScope::None.since_ms(now), None);
        assert_eq!(HistoryScope::Days(3).since_ms(now), Some(7 * 86_400_000));
    }
}
