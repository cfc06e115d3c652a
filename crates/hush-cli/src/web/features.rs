//! The message features of decision 0039 on the local API: reactions,
//! pins, forwarding and polls. Each change is also published on the event
//! stream, so other tabs and bots see it as the other members do.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hush_client::{Event, MessageView, Target};
use serde::Deserialize;

use crate::web::AppState;
use crate::web::api::{ApiError, bad_request, on_client, target_of};
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
pub async fn pin(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
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

/// Where to forward: exactly one of a conversation number, a contact, a
/// group name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardTo {
    conversation: Option<i64>,
    user: Option<String>,
    group: Option<String>,
}

/// `POST /api/messages/{id}/forward`: sends a copy of a text or file,
/// marked forwarded (a file is not uploaded again); answers the new message.
pub async fn forward(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(to): Json<ForwardTo>,
) -> Result<Json<MessageView>, ApiError> {
    let to = match (to.conversation, to.user, to.group) {
        (Some(n), None, None) => Err(n),
        (None, Some(u), None) => Ok(Target::User(u)),
        (None, None, Some(g)) => Ok(Target::Group(g)),
        _ => {
            return Err(bad_request(
                "give exactly one of conversation, user and group",
            ));
        }
    };
    let sent = on_client(&s, move |c| {
        Box::pin(async move {
            let t = match to {
                Ok(t) => t,
                Err(n) => target_of(c, n)?,
            };
            c.forward(&id, &t).await
        })
    })
    .await?;
    publish(&s, Event::Message(sent.clone()));
    Ok(Json(sent))
}

/// A new poll, in a group given by conversation number or name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPoll {
    conversation: Option<i64>,
    group: Option<String>,
    question: String,
    options: Vec<String>,
    #[serde(default)]
    multiple: bool,
}

/// `POST /api/polls`: asks a group; answers the poll as a message.
pub async fn create_poll(
    State(s): State<AppState>,
    Json(p): Json<NewPoll>,
) -> Result<Json<MessageView>, ApiError> {
    let to = match (p.conversation, p.group) {
        (Some(n), None) => Err(n),
        (None, Some(g)) => Ok(Target::Group(g)),
        _ => return Err(bad_request("give exactly one of conversation and group")),
    };
    let sent = on_client(&s, move |c| {
        Box::pin(async move {
            let t = match to {
                Ok(t) => t,
                Err(n) => target_of(c, n)?,
            };
            c.create_poll(&t, &p.question, &p.options, p.multiple).await
        })
    })
    .await?;
    publish(&s, Event::Message(sent.clone()));
    Ok(Json(sent))
}

/// A vote: the options chosen, from 0; none takes the vote back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVote {
    options: Vec<usize>,
}

/// `PUT /api/messages/{id}/vote`: this account's vote, replacing the one
/// before.
pub async fn vote(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(v): Json<NewVote>,
) -> Result<StatusCode, ApiError> {
    let (poll, options) = (id.clone(), v.options.clone());
    let me = on_client(&s, move |c| {
        Box::pin(async move {
            c.vote(&poll, &options).await?;
            Ok(c.username().to_owned())
        })
    })
    .await?;
    let mut options = v.options;
    options.sort_unstable();
    options.dedup();
    publish(
        &s,
        Event::Voted {
            id,
            from: me,
            options,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}
