//! The message features of decision 0039 on the local API: reactions and
//! pins, and the others as they come. Each change is also published on the event
//! stream, so other tabs and bots see it as the other members do.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hush_client::{Event, MessageView};
use serde::Deserialize;

use crate::web::AppState;
use crate::web::api::{ApiError, on_client, target_of};
use crate::web::worker::Published;

fn publish(s: &AppState, ev: Event) {
    let _ = s.events.send(Published::Event(Box::new(ev)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReaction {
    emoji: String,
}

/// `PUT /api/messages/{id}/reaction`: this account's reaction (replacing
/// the one before).
pub async fn react(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<NewReaction>,
) -> Result<StatusCode, ApiError> {
    set_reaction(s, id, Some(body.emoji)).await
}

/// `DELETE /api/messages/{id}/reaction`: takes this account's reaction back.
pub async fn unreact(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_reaction(s, id, None).await
}

async fn set_reaction(
    s: AppState,
    id: String,
    emoji: Option<String>,
) -> Result<StatusCode, ApiError> {
    let (msg, e) = (id.clone(), emoji.clone());
    let me = on_client(&s, move |c| {
        Box::pin(async move {
            c.react(&msg, e.as_deref()).await?;
            Ok(c.username().to_owned())
        })
    })
    .await?;
    publish(
        &s,
        Event::Reaction {
            id,
            from: me,
            emoji,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/messages/{id}/pin`: pins a message for every member.
pub async fn pin(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    set_pin(s, id, true).await
}

/// `DELETE /api/messages/{id}/pin`: unpins it.
pub async fn unpin(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_pin(s, id, false).await
}

async fn set_pin(s: AppState, id: String, pinned: bool) -> Result<StatusCode, ApiError> {
    let msg = id.clone();
    let me = on_client(&s, move |c| {
        Box::pin(async move {
            c.pin(&msg, pinned).await?;
            Ok(c.username().to_owned())
        })
    })
    .await?;
    publish(
        &s,
        Event::Pinned {
            id,
            from: me,
            pinned,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/conversations/{id}/pins`: the pinned messages, the most
/// recently pinned first.
pub async fn pins(
    State(s): State<AppState>,
    Path(conversation): Path<i64>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let found = on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, conversation)?;
            c.pinned(&t)
        })
    })
    .await?;
    Ok(Json(found))
}
