//! The local JSON API (documented in `openapi.json` beside this file; a
//! test holds the document to [`routes`]). Every handler runs
//! `hush-client`'s public API on the client task ([`crate::web::worker`]):
//! no SQL and no cryptography here.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use hush_client::{Client, ClientError, ConversationView, Event, HistoryPage, MessageView, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::web::AppState;
use crate::web::worker::{ClientFuture, Gone, Published};

/// The default and largest page of `GET /api/conversations/{id}/messages`.
pub const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Every API route: path (OpenAPI syntax), method, handler.
pub fn routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    vec![
        ("/api/me", Method::GET, get(me)),
        ("/api/conversations", Method::GET, get(conversations)),
        (
            "/api/conversations/{id}/messages",
            Method::GET,
            get(history),
        ),
        (
            "/api/conversations/{id}/read",
            Method::POST,
            post(mark_read),
        ),
        ("/api/conversations/{id}/typing", Method::POST, post(typing)),
        ("/api/messages", Method::POST, post(send)),
        (
            "/api/messages/{id}",
            Method::PUT,
            put(crate::web::edits::edit),
        ),
        (
            "/api/messages/{id}",
            Method::DELETE,
            delete(crate::web::edits::delete),
        ),
        (
            "/api/messages/{id}/reaction",
            Method::PUT,
            put(crate::web::features::react),
        ),
        (
            "/api/messages/{id}/reaction",
            Method::DELETE,
            delete(crate::web::features::unreact),
        ),
        (
            "/api/polls",
            Method::POST,
            post(crate::web::features::create_poll),
        ),
        (
            "/api/messages/{id}/vote",
            Method::PUT,
            put(crate::web::features::vote),
        ),
        (
            "/api/messages/{id}/forward",
            Method::POST,
            post(crate::web::features::forward),
        ),
        (
            "/api/messages/{id}/pin",
            Method::PUT,
            put(crate::web::features::pin),
        ),
        (
            "/api/messages/{id}/pin",
            Method::DELETE,
            delete(crate::web::features::unpin),
        ),
        (
            "/api/conversations/{id}/pins",
            Method::GET,
            get(crate::web::features::pins),
        ),
        (
            "/api/conversations/{id}/disappearing",
            Method::PUT,
            put(crate::web::edits::disappearing),
        ),
        (
            "/api/conversations/{id}/mute",
            Method::PUT,
            put(crate::web::edits::mute),
        ),
        (
            "/api/conversations/{id}/files",
            Method::POST,
            post(crate::web::files::upload),
        ),
        (
            "/api/messages/{id}/file",
            Method::GET,
            get(crate::web::files::file),
        ),
        ("/api/groups", Method::POST, post(create_group)),
        (
            "/api/conversations/{id}/members",
            Method::POST,
            post(crate::web::groups::add),
        ),
        (
            "/api/conversations/{id}/members/{username}",
            Method::DELETE,
            delete(crate::web::groups::remove),
        ),
        (
            "/api/conversations/{id}/name",
            Method::PUT,
            put(crate::web::groups::rename),
        ),
        (
            "/api/conversations/{id}/leave",
            Method::POST,
            post(crate::web::groups::leave),
        ),
        (
            "/api/channels",
            Method::GET,
            get(crate::web::channels::list),
        ),
        (
            "/api/channels",
            Method::POST,
            post(crate::web::channels::create),
        ),
        (
            "/api/channels/join",
            Method::POST,
            post(crate::web::channels::join),
        ),
        (
            "/api/channels/join",
            Method::DELETE,
            delete(crate::web::channels::leave_join),
        ),
        (
            "/api/channels/{name}",
            Method::DELETE,
            delete(crate::web::channels::leave),
        ),
        (
            "/api/channels/{name}/link",
            Method::GET,
            get(crate::web::channels::link),
        ),
        (
            "/api/channels/{name}/posts",
            Method::GET,
            get(crate::web::channels::posts),
        ),
        (
            "/api/channels/{name}/posts",
            Method::POST,
            post(crate::web::channels::post),
        ),
        (
            "/api/channels/{name}/files",
            Method::POST,
            post(crate::web::channels::post_file),
        ),
        (
            "/api/channels/{name}/posts/{id}/file",
            Method::GET,
            get(crate::web::channels::file),
        ),
        (
            "/api/join",
            Method::POST,
            post(crate::web::channels::join_any),
        ),
        ("/api/contacts", Method::GET, get(contacts)),
        (
            "/api/contacts/{username}/avatar",
            Method::GET,
            get(crate::web::avatars::contact_avatar),
        ),
        (
            "/api/profile",
            Method::GET,
            get(crate::web::avatars::profile),
        ),
        (
            "/api/profile/avatar",
            Method::GET,
            get(crate::web::avatars::own_avatar),
        ),
        (
            "/api/profile/avatar",
            Method::PUT,
            put(crate::web::avatars::set_avatar),
        ),
        (
            "/api/profile/avatar",
            Method::DELETE,
            delete(crate::web::avatars::remove_avatar),
        ),
        (
            "/api/contacts/{username}/safety-number",
            Method::GET,
            get(safety_number),
        ),
        (
            "/api/contacts/{username}/verify",
            Method::POST,
            post(verify),
        ),
        (
            "/api/search",
            Method::GET,
            get(crate::web::settings::search),
        ),
        (
            "/api/settings",
            Method::GET,
            get(crate::web::settings::settings),
        ),
        (
            "/api/settings",
            Method::PUT,
            put(crate::web::settings::set_settings),
        ),
        (
            "/api/devices",
            Method::GET,
            get(crate::web::settings::devices),
        ),
        ("/api/events", Method::GET, get(crate::web::events::stream)),
        ("/api/openapi.json", Method::GET, get(openapi)),
    ]
}

/// This API's OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// An API failure: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        let status = match &e {
            ClientError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            ClientError::NotFound(_) => StatusCode::NOT_FOUND,
            ClientError::KeyChanged(_) | ClientError::KeyTransparency(_) => StatusCode::CONFLICT,
            ClientError::Network(_) | ClientError::Server(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<Gone> for ApiError {
    fn from(_: Gone) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "hush web is stopping".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl ApiError {
    /// A failure with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// A 400.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs `f` on the client task.
pub async fn on_client<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut Client) -> ClientFuture<'a, Result<T, ClientError>> + Send + 'static,
{
    Ok(state.jobs.run(f).await??)
}

/// The conversation numbered `id`, as a target for the client's commands.
pub fn target_of(client: &mut Client, id: i64) -> Result<Target, ClientError> {
    let c = client
        .conversations()?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ClientError::NotFound(format!("no conversation {id}")))?;
    Ok(target_of_view(&c))
}

fn target_of_view(c: &ConversationView) -> Target {
    if c.kind == "group" {
        Target::Group(c.name.clone())
    } else {
        Target::User(c.name.clone())
    }
}

/// `GET /api/me`.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    /// This account's username.
    pub username: String,
    /// This device's id.
    pub device_id: u32,
    /// The account's server.
    pub server: String,
}

async fn me(State(s): State<AppState>) -> Json<Me> {
    Json((*s.me).clone())
}

/// A conversation as the list shows it.
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    view: ConversationView,
    /// Received messages not read yet.
    unread: usize,
    /// Of those, how many mention this account.
    unread_mentions: usize,
    /// The newest message.
    last_message: Option<MessageView>,
}

async fn conversations(State(s): State<AppState>) -> ApiResult<Vec<Summary>> {
    let mut list = on_client(&s, |c| {
        Box::pin(async move {
            let mut out = Vec::new();
            for view in c.conversations()? {
                let t = target_of_view(&view);
                out.push(Summary {
                    unread: c.unread_count(&t)?,
                    unread_mentions: c.unread_mentions(&t)?,
                    last_message: c.history_page(&t, None, 1)?.messages.pop(),
                    view,
                });
            }
            Ok(out)
        })
    })
    .await?;
    // Newest activity first; conversations without messages last.
    list.sort_by_key(|s| std::cmp::Reverse(s.last_message.as_ref().map(|m| m.sent_at)));
    Ok(Json(list))
}

/// `?before=ID&limit=N`.
#[derive(Debug, Deserialize)]
struct Page {
    before: Option<String>,
    limit: Option<usize>,
}

/// One page of a conversation, oldest first (`Client::history_page`: only
/// the page is read).
async fn history(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
) -> ApiResult<HistoryPage> {
    let limit = page.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit is 1 to {MAX_PAGE}")));
    }
    let page = on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, id)?;
            c.history_page(&t, page.before.as_deref(), limit)
        })
    })
    .await?;
    Ok(Json(page))
}

async fn mark_read(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<Value> {
    let marked = on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, id)?;
            c.mark_read(&t).await
        })
    })
    .await?;
    Ok(Json(json!({ "marked": marked })))
}

#[derive(Debug, Deserialize)]
struct Typing {
    started: bool,
}

async fn typing(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<Typing>,
) -> Result<StatusCode, ApiError> {
    on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, id)?;
            c.send_typing(&t, body.started).await
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/messages`: exactly one of `conversation`, `user`, `group`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    conversation: Option<i64>,
    user: Option<String>,
    group: Option<String>,
    text: String,
    reply_to: Option<String>,
}

async fn send(State(s): State<AppState>, Json(body): Json<SendBody>) -> ApiResult<MessageView> {
    enum To {
        Conversation(i64),
        Target(Target),
    }
    let to = match (body.conversation, body.user, body.group) {
        (Some(id), None, None) => To::Conversation(id),
        (None, Some(u), None) => To::Target(Target::User(u)),
        (None, None, Some(g)) => To::Target(Target::Group(g)),
        _ => {
            return Err(bad_request(
                "give exactly one of conversation, user and group",
            ));
        }
    };
    let (text, reply_to) = (body.text, body.reply_to);
    let sent = on_client(&s, move |c| {
        Box::pin(async move {
            let t = match to {
                To::Conversation(id) => target_of(c, id)?,
                To::Target(t) => t,
            };
            c.send_reply(&t, &text, reply_to.as_deref()).await
        })
    })
    .await?;
    // Other tabs (and bots) see it on the event stream.
    let _ = s
        .events
        .send(Published::Event(Box::new(Event::Message(sent.clone()))));
    Ok(Json(sent))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

async fn create_group(
    State(s): State<AppState>,
    Json(body): Json<NewGroup>,
) -> ApiResult<ConversationView> {
    let view = on_client(&s, move |c| {
        Box::pin(async move { c.create_group(&body.name, &body.members).await })
    })
    .await?;
    let _ = s.events.send(Published::Event(Box::new(Event::Joined {
        conversation: view.clone(),
    })));
    Ok(Json(view))
}

async fn contacts(State(s): State<AppState>) -> ApiResult<Vec<hush_client::ContactView>> {
    let list = on_client(&s, |c| Box::pin(async move { c.contacts() })).await?;
    Ok(Json(list))
}

async fn safety_number(
    State(s): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<Value> {
    let (digits, groups, payload) = on_client(&s, move |c| {
        Box::pin(async move {
            let n = c.safety_number(&username).await?;
            let groups: Vec<String> = n.groups().into_iter().map(str::to_owned).collect();
            Ok((n.digits().to_owned(), groups, n.qr_payload()))
        })
    })
    .await?;
    // The same QR code `hush verify` draws in a terminal, as an SVG picture
    // for the page (drawn here: the page carries no QR encoder).
    let svg = crate::commands::settings::render_qr_svg(&payload)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({
        "digits": digits,
        "groups": groups,
        "qr_payload": hex::encode(&payload),
        "qr_svg": svg,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    digits: String,
}

/// Marks `username` verified, if `digits` (the number the user compared)
/// is still the safety number: a key that changed meanwhile is refused.
async fn verify(
    State(s): State<AppState>,
    Path(username): Path<String>,
    Json(body): Json<Verify>,
) -> Result<StatusCode, ApiError> {
    on_client(&s, move |c| {
        Box::pin(async move {
            let n = c.safety_number(&username).await?;
            if n.digits() != body.digits {
                return Err(ClientError::KeyChanged(username));
            }
            c.mark_verified(&username, &n)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The document lists exactly the router's API routes (and `/login`),
    /// each with the 401 and 403 every route can answer.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                documented.insert((path.clone(), method.to_uppercase()));
                let responses = op["responses"].as_object().unwrap();
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
        let mut routed: BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(path, method, _)| (path.to_owned(), method.to_string()))
            .collect();
        routed.insert(("/login".into(), "GET".into()));
        assert_eq!(documented, routed);
        // Every route is under /api (the rest of the namespace is assets).
        assert!(routes().iter().all(|(p, _, _)| p.starts_with("/api/")));
    }
}
