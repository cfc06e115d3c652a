//! Channels in the PostgreSQL backend (see `channels`). A post takes its
//! number under the channel row's lock (`FOR UPDATE`), in the transaction
//! that stores it.

use async_trait::async_trait;
use sqlx::Row;

use super::StoreResult;
use super::backend;
use super::channels::{
    ChannelPage, ChannelPut, ChannelRecord, ChannelStore, EXPIRE_SQL, PAGE_SQL, PostFiled,
    StoredPost, TRIM_SQL, token_matches, trim_below,
};
use super::postgres::PostgresStore;

const HEAD: &str = "SELECT post_token_hash, latest FROM channels WHERE channel_id = $1";

fn head(row: &sqlx::postgres::PgRow) -> Result<(Vec<u8>, u64), sqlx::Error> {
    Ok((
        row.try_get("post_token_hash")?,
        row.try_get::<i64, _>("latest")? as u64,
    ))
}

fn post(row: &sqlx::postgres::PgRow) -> Result<StoredPost, sqlx::Error> {
    Ok(StoredPost {
        number: row.try_get::<i64, _>("number")? as u64,
        post: row.try_get("post")?,
        received_at_ms: row.try_get::<i64, _>("received_at_ms")? as u64,
    })
}

#[async_trait]
impl ChannelStore for PostgresStore {
    async fn put_channel(
        &self,
        channel_id: [u8; 32],
        descriptor: Vec<u8>,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<ChannelPut> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let created = sqlx::query(
            "INSERT INTO channels (channel_id, descriptor, post_token_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id) DO NOTHING",
        )
        .bind(channel_id.as_slice())
        .bind(&descriptor)
        .bind(token_hash.as_slice())
        .bind(now_ms as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if created.rows_affected() == 1 {
            tx.commit().await.map_err(backend)?;
            return Ok(ChannelPut::Created);
        }
        let row = sqlx::query(&format!("{HEAD} FOR UPDATE"))
            .bind(channel_id.as_slice())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let (stored, _) = head(&row).map_err(backend)?;
        if !token_matches(&stored, &token_hash) {
            return Ok(ChannelPut::Forbidden);
        }
        sqlx::query("UPDATE channels SET descriptor = $2 WHERE channel_id = $1")
            .bind(channel_id.as_slice())
            .bind(&descriptor)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(ChannelPut::Replaced)
    }

    async fn channel(&self, channel_id: [u8; 32]) -> StoreResult<Option<ChannelRecord>> {
        let row = sqlx::query("SELECT descriptor, latest FROM channels WHERE channel_id = $1")
            .bind(channel_id.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(ChannelRecord {
                descriptor: r.try_get("descriptor")?,
                latest: r.try_get::<i64, _>("latest")? as u64,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| backend(e))
    }

    async fn add_channel_post(
        &self,
        channel_id: [u8; 32],
        token_hash: [u8; 32],
        post: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<PostFiled> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The row lock serialises concurrent posts on one channel.
        let row = sqlx::query(&format!("{HEAD} FOR UPDATE"))
            .bind(channel_id.as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some((stored, latest)) = row.as_ref().map(head).transpose().map_err(backend)? else {
            return Ok(PostFiled::Unknown);
        };
        if !token_matches(&stored, &token_hash) {
            return Ok(PostFiled::Forbidden);
        }
        let number = latest.saturating_add(1);
        sqlx::query("UPDATE channels SET latest = $2 WHERE channel_id = $1")
            .bind(channel_id.as_slice())
            .bind(number as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO channel_posts (channel_id, number, post, received_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(channel_id.as_slice())
        .bind(number as i64)
        .bind(&post)
        .bind(now_ms as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(TRIM_SQL)
            .bind(channel_id.as_slice())
            .bind(trim_below(number) as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(PostFiled::Filed(number))
    }

    async fn channel_posts(
        &self,
        channel_id: [u8; 32],
        after: u64,
        limit: u32,
    ) -> StoreResult<Option<ChannelPage>> {
        let row = sqlx::query(HEAD)
            .bind(channel_id.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some((_, latest)) = row.as_ref().map(head).transpose().map_err(backend)? else {
            return Ok(None);
        };
        let rows = sqlx::query(PAGE_SQL)
            .bind(channel_id.as_slice())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(latest as i64)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let posts = rows
            .iter()
            .map(post)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        Ok(Some(ChannelPage { latest, posts }))
    }

    async fn expire_channel_posts(&self, before_ms: u64) -> StoreResult<u64> {
        let done = sqlx::query(EXPIRE_SQL)
            .bind(before_ms as i64)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
