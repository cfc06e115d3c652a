//! Invite links in the SQLite backend (see `links`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use super::backend;
use super::links::{JoinFiled, LinkRecord, LinkStore, MAX_PENDING_REQUESTS, NewLink};
use super::sqlite::SqliteStore;

fn record(conn: &Connection, link_id: &[u8]) -> StoreResult<Option<LinkRecord>> {
    conn.query_row(
        "SELECT blob, manage_hash, expires_at_ms, max_uses, uses, approve, revoked, created_at_ms \
         FROM invite_links WHERE link_id = ?1",
        params![link_id],
        |r| {
            let hash: Vec<u8> = r.get(1)?;
            Ok(LinkRecord {
                link: NewLink {
                    blob: r.get(0)?,
                    manage_hash: <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0; 32]),
                    expires_at_ms: r.get::<_, i64>(2)? as u64,
                    max_uses: r.get::<_, i64>(3)? as u32,
                    approve: r.get(5)?,
                    now_ms: r.get::<_, i64>(7)? as u64,
                },
                uses: r.get::<_, i64>(4)? as u32,
                revoked: r.get(6)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

fn file(conn: &Connection, link_id: &[u8], sealed: &[u8], now_ms: u64) -> StoreResult<JoinFiled> {
    let Some(link) = record(conn, link_id)? else {
        return Ok(JoinFiled::Unknown);
    };
    if !link.is_open(now_ms) {
        return Ok(JoinFiled::Closed);
    }
    let pending: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM invite_requests WHERE link_id = ?1",
            params![link_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if pending as u64 >= MAX_PENDING_REQUESTS {
        return Ok(JoinFiled::Full);
    }
    conn.execute(
        "UPDATE invite_links SET uses = uses + 1 WHERE link_id = ?1",
        params![link_id],
    )
    .map_err(backend)?;
    conn.execute(
        "INSERT INTO invite_requests (link_id, sealed, received_at_ms) VALUES (?1, ?2, ?3)",
        params![link_id, sealed, now_ms as i64],
    )
    .map_err(backend)?;
    Ok(JoinFiled::Filed(conn.last_insert_rowid()))
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn create_link(&self, link_id: [u8; 32], link: NewLink) -> StoreResult<bool> {
        self.write(move |conn| {
            let n = conn
                .execute(
                    "INSERT INTO invite_links (link_id, blob, manage_hash, expires_at_ms, max_uses, \
                     approve, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (link_id) DO NOTHING",
                    params![
                        link_id.as_slice(),
                        link.blob,
                        link.manage_hash.as_slice(),
                        link.expires_at_ms as i64,
                        i64::from(link.max_uses),
                        link.approve,
                        link.now_ms as i64
                    ],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn link(&self, link_id: [u8; 32]) -> StoreResult<Option<LinkRecord>> {
        self.read(move |conn| record(conn, &link_id)).await
    }

    async fn file_join_request(
        &self,
        link_id: [u8; 32],
        sealed: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<JoinFiled> {
        self.write(move |conn| file(conn, &link_id, &sealed, now_ms))
            .await
    }

    async fn join_requests(&self, link_id: [u8; 32]) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        self.read(move |conn| {
            conn.prepare("SELECT id, sealed FROM invite_requests WHERE link_id = ?1 ORDER BY id")
                .map_err(backend)?
                .query_map(params![link_id.as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)
        })
        .await
    }

    async fn delete_join_requests(&self, link_id: [u8; 32], ids: Vec<i64>) -> StoreResult<u64> {
        self.write(move |conn| {
            let mut n = 0;
            for id in ids {
                n += conn
                    .execute(
                        "DELETE FROM invite_requests WHERE link_id = ?1 AND id = ?2",
                        params![link_id.as_slice(), id],
                    )
                    .map_err(backend)? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn revoke_link(&self, link_id: [u8; 32]) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE invite_links SET revoked = 1 WHERE link_id = ?1",
                params![link_id.as_slice()],
            )
            .map_err(backend)?;
            conn.execute(
                "DELETE FROM invite_requests WHERE link_id = ?1",
                params![link_id.as_slice()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn expire_links(&self, before_ms: u64) -> StoreResult<u64> {
        self.write(move |conn| {
            let [requests, links] = super::links::EXPIRE_SQL;
            conn.execute(requests, params![before_ms as i64])
                .map_err(backend)?;
            let n = conn
                .execute(links, params![before_ms as i64])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}
