//! Search, the account's settings (presence, profile name) and its linked
//! devices, all through `hush-client` (`search`, `set_presence_mode`,
//! `set_profile` by way of [`crate::web::avatars`], `devices`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use hush_client::{DeviceView, MessageView, PresenceMode};
use serde::{Deserialize, Serialize};

use crate::web::AppState;
use crate::web::api::{ApiError, bad_request, on_client, target_of};

/// The most results one search returns.
const MAX_RESULTS: usize = 200;

/// `?q=TEXT&conversation=ID&limit=N`.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: String,
    conversation: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/search`: messages containing the text, newest first.
pub async fn search(
    State(s): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(bad_request(format!("limit is 1 to {MAX_RESULTS}")));
    }
    let found = on_client(&s, move |c| {
        Box::pin(async move {
            let t = match q.conversation {
                Some(id) => Some(target_of(c, id)?),
                None => None,
            };
            c.search(t.as_ref(), &q.q, limit)
        })
    })
    .await?;
    Ok(Json(found))
}

/// `GET /api/settings`.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Who sees this account online.
    presence: PresenceMode,
}

pub async fn settings(State(s): State<AppState>) -> Result<Json<Settings>, ApiError> {
    let presence = on_client(&s, |c| Box::pin(async move { c.presence_setting() })).await?;
    Ok(Json(Settings { presence }))
}

/// `PUT /api/settings`: what is given changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSettings {
    presence: Option<String>,
    display_name: Option<String>,
}

pub async fn set_settings(
    State(s): State<AppState>,
    Json(body): Json<NewSettings>,
) -> Result<StatusCode, ApiError> {
    let presence = match body.presence.as_deref() {
        None => None,
        Some(p) => Some(
            PresenceMode::parse(p)
                .ok_or_else(|| bad_request("presence is everyone, contacts or nobody"))?,
        ),
    };
    let name = body.display_name.map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.is_empty() || n.len() > 128) {
        return Err(bad_request("a display name is 1 to 128 bytes"));
    }
    if let Some(mode) = presence {
        on_client(&s, move |c| {
            Box::pin(async move { c.set_presence_mode(mode) })
        })
        .await?;
    }
    if name.is_some() {
        // The avatar stays as it is.
        crate::web::avatars::change(&s, name, None).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One of this account's devices.
#[derive(Debug, Serialize)]
pub struct Device {
    id: u32,
    name: Option<String>,
    this: bool,
    added_at_ms: u64,
    last_seen_ms: Option<u64>,
}

impl From<DeviceView> for Device {
    fn from(d: DeviceView) -> Self {
        Device {
            id: d.id,
            name: d.name,
            this: d.this,
            added_at_ms: d.added_at_ms,
            last_seen_ms: d.last_seen_ms,
        }
    }
}

/// `GET /api/devices`: this account's devices, as the key directory lists
/// them.
pub async fn devices(State(s): State<AppState>) -> Result<Json<Vec<Device>>, ApiError> {
    let list = on_client(&s, |c| Box::pin(async move { c.devices().await })).await?;
    Ok(Json(list.into_iter().map(Device::from).collect()))
}
