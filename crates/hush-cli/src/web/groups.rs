//! Managing a group from the app: members added and removed, a new name,
//! leaving (`hush-client`'s `group_add`, `group_remove`, `group_rename` and
//! `group_leave`, each a real MLS commit). Each change is also published
//! on the event stream, as other members see it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hush_client::{Client, ClientError, ConversationView, Event};
use serde::Deserialize;

use crate::web::AppState;
use crate::web::api::{ApiError, on_client};
use crate::web::worker::Published;

fn publish(s: &AppState, ev: Event) {
    let _ = s.events.send(Published::Event(Box::new(ev)));
}

/// The group numbered `id`: its view (a 1:1 chat is refused).
fn group_of(c: &mut Client, id: i64) -> Result<ConversationView, ClientError> {
    let view = c
        .conversations()?
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| ClientError::NotFound(format!("no conversation {id}")))?;
    if view.kind != "group" {
        return Err(ClientError::InvalidInput(
            "this is a 1:1 chat, not a group".into(),
        ));
    }
    Ok(view)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    username: String,
}

/// `POST /api/conversations/{id}/members`: adds an account.
pub async fn add(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<Member>,
) -> Result<Json<ConversationView>, ApiError> {
    let user = body.username.clone();
    let view = on_client(&s, move |c| {
        Box::pin(async move {
            let g = group_of(c, id)?;
            c.group_add(&g.name, &user).await?;
            group_of(c, id)
        })
    })
    .await?;
    publish(
        &s,
        Event::Members {
            conversation: id,
            added: vec![body.username],
            removed: vec![],
        },
    );
    Ok(Json(view))
}

/// `DELETE /api/conversations/{id}/members/{username}`: removes an account.
pub async fn remove(
    State(s): State<AppState>,
    Path((id, username)): Path<(i64, String)>,
) -> Result<Json<ConversationView>, ApiError> {
    let user = username.clone();
    let view = on_client(&s, move |c| {
        Box::pin(async move {
            let g = group_of(c, id)?;
            c.group_remove(&g.name, &user).await?;
            group_of(c, id)
        })
    })
    .await?;
    publish(
        &s,
        Event::Members {
            conversation: id,
            added: vec![],
            removed: vec![username],
        },
    );
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewName {
    name: String,
}

/// `PUT /api/conversations/{id}/name`: renames the group for everyone.
pub async fn rename(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<NewName>,
) -> Result<StatusCode, ApiError> {
    let name = body.name.clone();
    on_client(&s, move |c| {
        Box::pin(async move {
            let g = group_of(c, id)?;
            c.group_rename(&g.name, &name).await
        })
    })
    .await?;
    publish(
        &s,
        Event::Renamed {
            conversation: id,
            name: body.name,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/conversations/{id}/leave`: leaves the group (its history
/// stays readable here).
pub async fn leave(State(s): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    on_client(&s, move |c| {
        Box::pin(async move {
            let g = group_of(c, id)?;
            c.group_leave(&g.name).await
        })
    })
    .await?;
    publish(&s, Event::Removed { conversation: id });
    Ok(StatusCode::NO_CONTENT)
}
