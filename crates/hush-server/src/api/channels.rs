//! Channels (decision 0038): the server files a sealed descriptor and
//! sealed posts under an id derived from a secret it never sees, numbers the
//! posts, and holds fetches until a post arrives. It stores a post (or
//! replaces the descriptor) only with the channel's post token, whose hash
//! it keeps; it cannot read the channel's name, keys or posts, and keeps no
//! list of who reads: a fetch leaves nothing in the database.

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hush_proto::channel::MAX_SEALED_POST;
use hush_wire::api::{
    ChannelPost, ChannelPostRequest, ChannelPostResponse, ChannelPostsResponse, ChannelResponse,
    PutChannelRequest,
};
use hush_wire::{Bytes, ErrorCode};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::delivery::now_ms;
use crate::error::{Failure, Refusal};
use crate::extract::{Body, PathParams, QueryParams};
use crate::store::{ChannelPage, ChannelPut, PostFiled};

/// Most posts one fetch returns (and its default).
pub const MAX_POSTS_PER_FETCH: u32 = 256;
/// Longest a fetch is held waiting for a post, in ms.
pub const MAX_WAIT_MS: u64 = 30_000;
/// The length of a post token.
pub const POST_TOKEN_LEN: usize = 32;

/// The channel id of a path: 64 lowercase hex digits.
fn channel_id(hex: &str) -> Result<[u8; 32], Failure> {
    let bad = || Failure::bad_request("a channel id is 64 lowercase hex digits");
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(bad());
    }
    let mut id = [0u8; 32];
    for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = (digit(pair[0]), digit(pair[1]));
        *out = (hi.ok_or_else(bad)? << 4) | lo.ok_or_else(bad)?;
    }
    Ok(id)
}

/// SHA-256 of a post token, refusing one of the wrong length.
fn token_hash(token: &[u8]) -> Result<[u8; 32], Failure> {
    if token.len() != POST_TOKEN_LEN {
        return Err(Failure::bad_request("post_token must be 32 bytes"));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token).as_ref());
    Ok(out)
}

fn too_large(what: &str) -> Failure {
    Failure::new(
        ErrorCode::TooLarge,
        format!("the sealed {what} is larger than {MAX_SEALED_POST} bytes"),
    )
}

fn unknown() -> Failure {
    Failure::not_found("no such channel")
}

fn wrong_token() -> Failure {
    Failure::forbidden("wrong post token for this channel: nothing was stored")
}

/// `PUT /v1/channels/{channel_id}`: files a channel (201), or replaces its
/// descriptor with the token it was filed with (204).
pub async fn put(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    PathParams(id): PathParams<String>,
    Body(req): Body<PutChannelRequest>,
) -> Result<StatusCode, Refusal> {
    let id = channel_id(&id)?;
    state.limits.check_link(&me.username)?;
    if req.descriptor.0.len() > MAX_SEALED_POST {
        return Err(too_large("descriptor").into());
    }
    let hash = token_hash(&req.post_token.0)?;
    match state
        .store
        .put_channel(id, req.descriptor.0, hash, now_ms())
        .await?
    {
        ChannelPut::Created => Ok(StatusCode::CREATED),
        ChannelPut::Replaced => Ok(StatusCode::NO_CONTENT),
        ChannelPut::Forbidden => Err(Failure::forbidden(
            "this channel id is taken and the post token is not its own: nothing changed",
        )
        .into()),
    }
}

/// `GET /v1/channels/{channel_id}`: the sealed descriptor and the newest
/// post's number.
pub async fn get(
    State(state): State<AppState>,
    AuthDevice(_me): AuthDevice,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<ChannelResponse>, Refusal> {
    let id = channel_id(&id)?;
    let channel = state.store.channel(id).await?.ok_or_else(unknown)?;
    Ok(axum::Json(ChannelResponse {
        descriptor: Bytes(channel.descriptor),
        latest: channel.latest,
    }))
}

/// `POST /v1/channels/{channel_id}/posts`: stores a post by a holder of the
/// post token and wakes the fetches waiting on the channel here and, over
/// the cluster bus, on the other nodes.
pub async fn post(
    State(state): State<AppState>,
    AuthDevice(_me): AuthDevice,
    PathParams(id): PathParams<String>,
    Body(req): Body<ChannelPostRequest>,
) -> Result<impl IntoResponse, Refusal> {
    let id = channel_id(&id)?;
    if req.post.0.len() > MAX_SEALED_POST {
        return Err(too_large("post").into());
    }
    let hash = token_hash(&req.post_token.0)?;
    match state
        .store
        .add_channel_post(id, hash, req.post.0, now_ms())
        .await?
    {
        PostFiled::Filed(number) => {
            state.channels.posted(&id, number);
            if let Some(cluster) = &state.cluster {
                cluster.channel_posted(&id, number);
            }
            Ok(axum::Json(ChannelPostResponse { number }))
        }
        PostFiled::Unknown => Err(unknown().into()),
        PostFiled::Forbidden => Err(wrong_token().into()),
    }
}

/// The query of `GET /v1/channels/{channel_id}/posts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostsQuery {
    /// Posts numbered above this one.
    #[serde(default)]
    pub after: u64,
    /// At most this many (at most [`MAX_POSTS_PER_FETCH`], its default).
    pub limit: Option<u32>,
    /// With nothing newer, how long to wait for a post (at most
    /// [`MAX_WAIT_MS`]).
    #[serde(default)]
    pub wait_ms: u64,
}

fn answer(page: ChannelPage) -> axum::Json<ChannelPostsResponse> {
    axum::Json(ChannelPostsResponse {
        latest: page.latest,
        posts: page
            .posts
            .into_iter()
            .map(|p| ChannelPost {
                number: p.number,
                post: Bytes(p.post),
                received_at_ms: p.received_at_ms,
            })
            .collect(),
    })
}

/// `GET /v1/channels/{channel_id}/posts?after=N&limit=L&wait_ms=W`: posts
/// numbered above `after`, oldest first; with `wait_ms` and nothing newer,
/// held until a post arrives (on any node of the cluster) or the wait ends
/// (then empty).
pub async fn posts(
    State(state): State<AppState>,
    AuthDevice(_me): AuthDevice,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<PostsQuery>,
) -> Result<axum::Json<ChannelPostsResponse>, Refusal> {
    let id = channel_id(&id)?;
    let limit = q
        .limit
        .unwrap_or(MAX_POSTS_PER_FETCH)
        .clamp(1, MAX_POSTS_PER_FETCH);
    let read = || async {
        state
            .store
            .channel_posts(id, q.after, limit)
            .await?
            .ok_or_else(|| Refusal::from(unknown()))
    };
    if q.wait_ms == 0 {
        return Ok(answer(read().await?));
    }
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(q.wait_ms.min(MAX_WAIT_MS));
    // Joined before the first read: a post stored after it wakes this wait.
    let mut waiting = state.channels.wait(id);
    loop {
        let page = read().await?;
        if !page.posts.is_empty() || !waiting.next(deadline).await {
            return Ok(answer(page));
        }
    }
}
