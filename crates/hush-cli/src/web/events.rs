//! `GET /api/events`: the client's events as Server-Sent Events.
//!
//! Each SSE event is named after the client event (`message`, `receipt`,
//! `typing`, `presence`, `edited`, `deleted`, `joined`, `members`,
//! `removed`, `renamed`, `disappearing`, `key_changed`, `profile`,
//! `key_transparency_alarm`, `security_alarm`, `channel_post`) and its
//! data is the event as JSON (the same shape `hush sync --json` prints). Two more: `connection`
//! (`{"online": bool, "error": string|null}`), `lagged` (events were
//! dropped for a slow reader: reload what is shown) and `progress` (a file
//! upload: `{"upload": token, "done": bytes, "total": bytes}`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::web::AppState;
use crate::web::avatars::AvatarCache;
use crate::web::worker::Published;

/// The SSE form of one published item.
pub fn to_sse(item: &Published) -> Sse {
    match item {
        Published::Event(ev) => {
            let value = serde_json::to_value(ev).unwrap_or_default();
            let name = value
                .get("event")
                .and_then(|n| n.as_str())
                .unwrap_or("unknown")
                .to_owned();
            Sse::default().event(name).data(value.to_string())
        }
        Published::Connection(error) => Sse::default()
            .event("connection")
            .data(json!({ "online": error.is_none(), "error": error }).to_string()),
        Published::Progress {
            upload,
            done,
            total,
        } => Sse::default()
            .event("progress")
            .data(json!({ "upload": upload, "done": done, "total": total }).to_string()),
    }
}

fn events(
    rx: broadcast::Receiver<Published>,
    stop: watch::Receiver<bool>,
    avatars: Arc<AvatarCache>,
) -> impl Stream<Item = Result<Sse, Infallible>> {
    stream::unfold((rx, stop), move |(mut rx, mut stop)| {
        let avatars = avatars.clone();
        async move {
            loop {
                if *stop.borrow() {
                    return None;
                }
                tokio::select! {
                    item = rx.recv() => {
                        let ev = match item {
                            Ok(item) => {
                                // A page that hears of a new profile asks for
                                // the avatar at once: it must not get the old.
                                avatars.forget_changed(&item);
                                to_sse(&item)
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                Sse::default().event("lagged").data(json!({ "missed": n }).to_string())
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        };
                        return Some((Ok(ev), (rx, stop)));
                    }
                    changed = stop.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                }
            }
        }
    })
}

/// The handler: one stream per request, ended when `hush web` stops.
pub async fn stream(State(s): State<AppState>) -> Response {
    let rx = s.events.subscribe();
    axum::response::Sse::new(events(rx, s.stop.clone(), s.avatars.clone()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
