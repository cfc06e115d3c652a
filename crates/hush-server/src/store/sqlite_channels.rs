//! Channels in the SQLite backend (see `channels`). Writes run on the one
//! writer connection, each in its savepoint, so a post's number is taken
//! and stored with nothing in between.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use super::backend;
use super::channels::{
    ChannelPage, ChannelPut, ChannelRecord, ChannelStore, EXPIRE_SQL, PAGE_SQL, PostFiled,
    StoredPost, TRIM_SQL, token_matches, trim_below,
};
use super::sqlite::SqliteStore;

/// The channel's token hash and newest number.
fn head(conn: &Connection, id: &[u8]) -> StoreResult<Option<(Vec<u8>, u64)>> {
    conn.query_row(
        "SELECT post_token_hash, latest FROM channels WHERE channel_id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
    )
    .optional()
    .map_err(backend)
}

fn put(
    conn: &Connection,
    id: &[u8],
    descriptor: &[u8],
    token_hash: &[u8; 32],
    now_ms: u64,
) -> StoreResult<ChannelPut> {
    let Some((stored, _)) = head(conn, id)? else {
        conn.execute(
            "INSERT INTO channels (channel_id, descriptor, post_token_hash, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4)",
            params![id, descriptor, token_hash.as_slice(), now_ms as i64],
        )
        .map_err(backend)?;
        return Ok(ChannelPut::Created);
    };
    if !token_matches(&stored, token_hash) {
        return Ok(ChannelPut::Forbidden);
    }
    conn.execute(
        "UPDATE channels SET descriptor = ?2 WHERE channel_id = ?1",
        params![id, descriptor],
    )
    .map_err(backend)?;
    Ok(ChannelPut::Replaced)
}

fn add_post(
    conn: &Connection,
    id: &[u8],
    token_hash: &[u8; 32],
    post: &[u8],
    now_ms: u64,
) -> StoreResult<PostFiled> {
    let Some((stored, latest)) = head(conn, id)? else {
        return Ok(PostFiled::Unknown);
    };
    if !token_matches(&stored, token_hash) {
        return Ok(PostFiled::Forbidden);
    }
    let number = latest.saturating_add(1);
    conn.execute(
        "UPDATE channels SET latest = ?2 WHERE channel_id = ?1",
        params![id, number as i64],
    )
    .map_err(backend)?;
    conn.execute(
        "INSERT INTO channel_posts (channel_id, number, post, received_at_ms) \
         VALUES (?1, ?2, ?3, ?4)",
        params![id, number as i64, post, now_ms as i64],
    )
    .map_err(backend)?;
    conn.execute(TRIM_SQL, params![id, trim_below(number) as i64])
        .map_err(backend)?;
    Ok(PostFiled::Filed(number))
}

fn page(conn: &Connection, id: &[u8], after: u64, limit: u32) -> StoreResult<Option<ChannelPage>> {
    let Some((_, latest)) = head(conn, id)? else {
        return Ok(None);
    };
    let posts = conn
        .prepare_cached(PAGE_SQL)
        .map_err(backend)?
        .query_map(
            params![
                id,
                i64::try_from(after).unwrap_or(i64::MAX),
                latest as i64,
                i64::from(limit)
            ],
            |r| {
                Ok(StoredPost {
                    number: r.get::<_, i64>(0)? as u64,
                    post: r.get(1)?,
                    received_at_ms: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    Ok(Some(ChannelPage { latest, posts }))
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn put_channel(
        &self,
        channel_id: [u8; 32],
        descriptor: Vec<u8>,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<ChannelPut> {
        self.write(move |conn| put(conn, &channel_id, &descriptor, &token_hash, now_ms))
            .await
    }

    async fn channel(&self, channel_id: [u8; 32]) -> StoreResult<Option<ChannelRecord>> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT descriptor, latest FROM channels WHERE channel_id = ?1",
                params![channel_id.as_slice()],
                |r| {
                    Ok(ChannelRecord {
                        descriptor: r.get(0)?,
                        latest: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn add_channel_post(
        &self,
        channel_id: [u8; 32],
        token_hash: [u8; 32],
        post: Vec<u8>,
        now_ms: u64,
    ) -> StoreResult<PostFiled> {
        self.write(move |conn| add_post(conn, &channel_id, &token_hash, &post, now_ms))
            .await
    }

    async fn channel_posts(
        &self,
        channel_id: [u8; 32],
        after: u64,
        limit: u32,
    ) -> StoreResult<Option<ChannelPage>> {
        self.read(move |conn| page(conn, &channel_id, after, limit))
            .await
    }

    async fn expire_channel_posts(&self, before_ms: u64) -> StoreResult<u64> {
        self.write(move |conn| {
            conn.execute(EXPIRE_SQL, params![before_ms as i64])
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }
}
