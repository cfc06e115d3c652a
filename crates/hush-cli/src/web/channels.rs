//! Channels in the app (decision 0038): the list, creating one, its link,
//! joining by link, its posts, posting (the owner's device only) and
//! leaving (`hush-client`'s `channels`, `create_channel`, `channel_link`,
//! `join_channel`, `channel_history`, `post_to_channel` and
//! `leave_channel`), files posted and served (`post_file_to_channel`,
//! `open_channel_file`, through `files.rs`), and joining by either kind
//! of link (`POST /api/join`). New posts from the owner reach the page as
//! `channel_post` events, taken in by the client task's sync; a post made
//! here is published too, for the other tabs.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hush_client::{ChannelPostView, ChannelView, Client, ClientError, Event};
use hush_proto::channel::ChannelLink;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::web::api::{ApiError, bad_request, on_client};
use crate::web::worker::Published;
use crate::web::{AppState, files};

/// The default page of `GET /api/channels/{name}/posts`.
const PAGE: usize = 100;
/// Its largest.
const MAX_PAGE: usize = 1000;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// `GET /api/channels`: the channels this device follows or owns.
pub async fn list(State(s): State<AppState>) -> ApiResult<Vec<ChannelView>> {
    let list = on_client(&s, |c| Box::pin(async move { c.channels() })).await?;
    Ok(Json(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    name: String,
}

/// `POST /api/channels`: creates a channel owned by this device; answers
/// its link.
pub async fn create(State(s): State<AppState>, Json(body): Json<NewChannel>) -> ApiResult<Value> {
    let name = body.name;
    let (name, link) = on_client(&s, move |c| {
        Box::pin(async move {
            let link = c.create_channel(&name).await?;
            Ok((name, link))
        })
    })
    .await?;
    Ok(Json(json!({ "channel": name, "link": link })))
}

/// `GET /api/channels/{name}/link`: the link that subscribes.
pub async fn link(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Value> {
    let link = on_client(&s, move |c| Box::pin(async move { c.channel_link(&name) })).await?;
    Ok(Json(json!({ "link": link })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    link: String,
}

/// `POST /api/channels/join`: follows the channel behind a link (its
/// descriptor checked against the owner key in the link); answers its name.
pub async fn join(State(s): State<AppState>, Json(body): Json<JoinBody>) -> ApiResult<Value> {
    let link = body.link;
    let name = on_client(&s, move |c| {
        Box::pin(async move { c.join_channel(&link).await })
    })
    .await?;
    Ok(Json(json!({ "channel": name })))
}

/// `?limit=N`: the newest N posts.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<usize>,
}

/// One page of a channel: the newest posts, oldest first.
#[derive(Debug, Serialize)]
pub struct Posts {
    posts: Vec<ChannelPostView>,
    /// Older posts were left out.
    more: bool,
}

/// `GET /api/channels/{name}/posts`.
pub async fn posts(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Posts> {
    let limit = page.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit is 1 to {MAX_PAGE}")));
    }
    let mut all = on_client(&s, move |c| {
        Box::pin(async move { c.channel_history(&name) })
    })
    .await?;
    let more = all.len() > limit;
    let posts = all.split_off(all.len().saturating_sub(limit));
    Ok(Json(Posts { posts, more }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    text: String,
}

/// Whether this device owns the channel `name` (holds its owner key and
/// post token).
fn owns(c: &Client, name: &str) -> Result<bool, ClientError> {
    Ok(c.channels()?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ClientError::NotFound(format!("no channel named {name:?}")))?
        .owner)
}

/// The 403 of a device that follows the channel but does not own it.
fn not_owner() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "you follow this channel but do not own it: only its owner's device posts to it \
         (nothing was sent)",
    )
}

/// Tells the other tabs of a post made here, and answers it.
fn published(s: &AppState, posted: ChannelPostView) -> ApiResult<ChannelPostView> {
    let _ = s.events.send(Published::Event(Box::new(Event::ChannelPost(
        posted.clone(),
    ))));
    Ok(Json(posted))
}

/// `POST /api/channels/{name}/posts`: posts as the owner. A device that
/// only follows the channel gets a 403 and nothing is sent.
pub async fn post(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<PostBody>,
) -> ApiResult<ChannelPostView> {
    if body.text.trim().is_empty() {
        return Err(bad_request("nothing to post"));
    }
    let text = body.text;
    let posted = on_client(&s, move |c| {
        Box::pin(async move {
            if !owns(c, &name)? {
                return Ok(None);
            }
            c.post_to_channel(&name, &text).await.map(Some)
        })
    })
    .await?
    .ok_or_else(not_owner)?;
    published(&s, posted)
}

/// `?name=FILE&upload=TOKEN&caption=TEXT`.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    name: String,
    upload: Option<String>,
    caption: Option<String>,
}

/// `POST /api/channels/{name}/files?name=...`: the body is a file the
/// owner posts (progress on the event stream as for a message's file). A
/// device that only follows the channel gets a 403 before anything is
/// read, uploaded or posted.
pub async fn post_file(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
    body: Body,
) -> ApiResult<ChannelPostView> {
    let channel = name.clone();
    if !on_client(&s, move |c| Box::pin(async move { owns(c, &channel) })).await? {
        return Err(not_owner());
    }
    let (scratch, path) = files::receive(&s, &q.name, body).await?;
    let progress = files::progress(&s, q.upload);
    let caption = q.caption;
    let posted = on_client(&s, move |c| {
        Box::pin(async move {
            c.post_file_to_channel(&name, &path, caption.as_deref(), progress)
                .await
        })
    })
    .await?;
    drop(scratch);
    published(&s, posted)
}

/// `GET /api/channels/{name}/posts/{id}/file`: the decrypted file of a
/// post, served as a message's file is.
pub async fn file(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<files::FileQuery>,
) -> Result<Response, ApiError> {
    // Keyed apart from messages' files (a message id has no space).
    let key = format!("channel {name} {id}");
    files::serve(&s, key, q, move |c| {
        Box::pin(async move { c.open_channel_file(&name, &id).await })
    })
    .await
}

/// `POST /api/join`: joins by either kind of link. A channel's link
/// subscribes (`{"kind": "channel", "channel"}`); a group's invite link
/// files a request to join (`{"kind": "group", "group", "size",
/// "needs_approval"}`), which an admin's device admits, at once or once an
/// admin approves it; the group arrives with a later sync.
pub async fn join_any(State(s): State<AppState>, Json(body): Json<JoinBody>) -> ApiResult<Value> {
    let link = body.link;
    if ChannelLink::is_channel_link(&link) {
        let name = on_client(&s, move |c| {
            Box::pin(async move { c.join_channel(&link).await })
        })
        .await?;
        return Ok(Json(json!({ "kind": "channel", "channel": name })));
    }
    let outcome = on_client(&s, move |c| {
        Box::pin(async move { c.join_link(&link).await })
    })
    .await?;
    Ok(Json(json!({
        "kind": "group",
        "group": outcome.group,
        "size": outcome.size,
        "needs_approval": outcome.needs_approval,
    })))
}

/// `DELETE /api/channels/{name}`: forgets the channel on this device (its
/// posts and keys; on the owner's device the owner key and post token, so
/// nobody can post to it any more). The server is not told.
pub async fn leave(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    on_client(&s, move |c| Box::pin(async move { c.leave_channel(&name) })).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/channels/join`: the path of joining is also a name a
/// channel may have; this leaves the channel named "join".
pub async fn leave_join(s: State<AppState>) -> Result<StatusCode, ApiError> {
    leave(s, Path("join".to_owned())).await
}
