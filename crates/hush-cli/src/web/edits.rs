//! Changing what was sent: edits, deletes for everyone and the
//! disappearing-message timer (`hush-client`'s `edit`, `delete` and
//! `set_disappearing`). Replies go through `POST /api/messages`
//! (`reply_to`). Each change is also published on the event stream, so
//! other tabs and bots see it as the other members do.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hush_client::Event;
use serde::Deserialize;

use crate::web::AppState;
use crate::web::api::{ApiError, bad_request, on_client, target_of};
use crate::web::worker::Published;

/// The longest disappearing timer: a year.
const MAX_TIMER: u32 = 365 * 24 * 3600;

fn publish(s: &AppState, ev: Event) {
    let _ = s.events.send(Published::Event(Box::new(ev)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewText {
    text: String,
}

/// `PUT /api/messages/{id}`: new text for one of this account's messages.
pub async fn edit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<NewText>,
) -> Result<StatusCode, ApiError> {
    if body.text.trim().is_empty() {
        return Err(bad_request(
            "the new text is empty (delete the message instead)",
        ));
    }
    let (msg, text) = (id.clone(), body.text.clone());
    on_client(&s, move |c| {
        Box::pin(async move { c.edit(&msg, &text).await })
    })
    .await?;
    publish(
        &s,
        Event::Edited {
            id,
            text: body.text,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/messages/{id}`: deletes one of this account's messages
/// for everyone.
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let msg = id.clone();
    on_client(&s, move |c| Box::pin(async move { c.delete(&msg).await })).await?;
    publish(&s, Event::Deleted { id });
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    seconds: Option<u32>,
}

/// `PUT /api/conversations/{id}/disappearing`: the timer for every member
/// (`null`: off).
pub async fn disappearing(
    State(s): State<AppState>,
    Path(conversation): Path<i64>,
    Json(body): Json<Timer>,
) -> Result<StatusCode, ApiError> {
    let seconds = body.seconds;
    if seconds.is_some_and(|n| !(1..=MAX_TIMER).contains(&n)) {
        return Err(bad_request(format!(
            "seconds is 1 to {MAX_TIMER}, or null for off"
        )));
    }
    on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, conversation)?;
            c.set_disappearing(&t, seconds).await
        })
    })
    .await?;
    publish(
        &s,
        Event::Disappearing {
            conversation,
            seconds,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    until_ms: Option<u64>,
}

/// `PUT /api/conversations/{id}/mute`: mutes the conversation on this
/// device until `until_ms` (`hush_client::mute::FOREVER` until unmuted), or
/// unmutes it (`null`). Only this device's notifications change.
pub async fn mute(
    State(s): State<AppState>,
    Path(conversation): Path<i64>,
    Json(body): Json<Mute>,
) -> Result<StatusCode, ApiError> {
    let until = body.until_ms;
    on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, conversation)?;
            c.mute(&t, until)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
