//! Invite links in the PostgreSQL backend (see `links`).

use async_trait::async_trait;
use sqlx::Row;

use super::StoreResult;
use super::backend;
use super::links::{JoinFiled, LinkRecord, LinkStore, MAX_PENDING_REQUESTS, NewLink};
use super::postgres::PostgresStore;

fn record(r: &sqlx::postgres::PgRow) -> Result<LinkRecord, sqlx::Error> {
    let hash: Vec<u8> = r.try_get("manage_hash")?;
    Ok(LinkRecord {
        link: NewLink {
            blob: r.try_get("blob")?,
            manage_hash: <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0; 32]),
            expires_at_ms: r.try_get::<i64, _>("expires_at_ms")? as u64,
            max_uses: r.try_get::<i64, _>("max_uses")? as u32,
            approve: r.try_get("approve")?,
            now_ms: r.try_get::<i64, _>("created_at_ms")? as u64,
        },
        uses: r.try_get::<i64, _>("uses")? as u32,
        revoked: r.try_get("revoked")?,
    })
}

const SELECT: &str = "SELECT blob, manage_hash, expires_at_ms, max_uses, uses, approve, revoked, \
                      created_at_ms FROM invite_links WHERE link_id = $1";

#[async_trait]
impl LinkStore for PostgresStore {
    async fn create_link(&self, link_id: [u8; 32], link: NewLink) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO invite_links (link_id, blob, manage_hash, expires_at_ms, max_uses, \
             approve, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (link_id) DO NOTHING",
        )
        .bind(link_id.as_slice())
        .bind(&link.blob)
        .bind(link.manage_hash.as_slice())
        .bind(link.expires_at_ms as i64)
        .bind(i64::from(link.max_uses))
        .bind(link.approve)
        .bind(link.now_ms as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn link(&self, link_id: [u8; 32]) -> StoreResult<Option<LinkRecord>> {
        let row = sqlx::query(SELECT)
            .bind(link_id.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(record).transpose().map_err(backend)
    }

    async fn file_join_request(
        &self,
        link_id: [u8; 32],
        sealed: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<JoinFiled> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The row lock serialises concurrent requests on one link.
        let row = sqlx::query(&format!("{SELECT} FOR UPDATE"))
            .bind(link_id.as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(link) = row.as_ref().map(record).transpose().map_err(backend)? else {
            return Ok(JoinFiled::Unknown);
        };
        if !link.is_open(now_ms) {
            return Ok(JoinFiled::Closed);
        }
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM invite_requests WHERE link_id = $1")
                .bind(link_id.as_slice())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if pending as u64 >= MAX_PENDING_REQUESTS {
            return Ok(JoinFiled::Full);
        }
        sqlx::query("UPDATE invite_links SET uses = uses + 1 WHERE link_id = $1")
            .bind(link_id.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO invite_requests (link_id, sealed, received_at_ms) \
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(link_id.as_slice())
        .bind(&sealed)
        .bind(now_ms as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(JoinFiled::Filed(id))
    }

    async fn join_requests(&self, link_id: [u8; 32]) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let rows =
            sqlx::query("SELECT id, sealed FROM invite_requests WHERE link_id = $1 ORDER BY id")
                .bind(link_id.as_slice())
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("sealed")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn delete_join_requests(&self, link_id: [u8; 32], ids: Vec<i64>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM invite_requests WHERE link_id = $1 AND id = ANY($2)")
            .bind(link_id.as_slice())
            .bind(&ids)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn revoke_link(&self, link_id: [u8; 32]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("UPDATE invite_links SET revoked = TRUE WHERE link_id = $1")
            .bind(link_id.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM invite_requests WHERE link_id = $1")
            .bind(link_id.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn expire_links(&self, before_ms: u64) -> StoreResult<u64> {
        let [requests, links] = super::links::EXPIRE_SQL;
        sqlx::query(requests)
            .bind(before_ms as i64)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        let done = sqlx::query(links)
            .bind(before_ms as i64)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
