//! Profiles and avatars on the local API (decision 0040): this account's
//! profile (name and avatar, set through `Client::set_profile`), and
//! contacts' avatars, fetched and opened by `Client::contact_profile` and
//! kept in memory for a while (nothing is stored on disk).
//!
//! An avatar is served only as the raster picture its first bytes say it
//! is (PNG, JPEG, GIF or WebP; `hush-client` drops anything else a profile
//! carries), under `nosniff` and the files' `sandbox` policy: a contact
//! cannot make this page run what their profile holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hush_client::{Event, MAX_AVATAR_BYTES, Profile, avatar_media_type, check_avatar};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::web::AppState;
use crate::web::api::{ApiError, bad_request, on_client};
use crate::web::files::FILE_CSP;
use crate::web::worker::Published;

/// How long a contact's avatar (or that they have none) is kept before it
/// is fetched again; a `profile` event (they changed it) forgets it now.
const KEEP: Duration = Duration::from_secs(10 * 60);
/// An upload this much bigger than an avatar may be is not read to its
/// end (the connection is closed instead of answering 413 cleanly).
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// An avatar: its media type and bytes.
type Avatar = Arc<(&'static str, Vec<u8>)>;

/// Contacts' avatars, by username: `None` for "no avatar".
#[derive(Debug, Default)]
pub struct AvatarCache {
    entries: Mutex<HashMap<String, (Instant, Option<Avatar>)>>,
}

impl AvatarCache {
    fn get(&self, user: &str) -> Option<Option<Avatar>> {
        let entries = self.entries.lock().ok()?;
        let (at, avatar) = entries.get(user)?;
        (at.elapsed() < KEEP).then(|| avatar.clone())
    }

    fn put(&self, user: &str, avatar: Option<Avatar>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (at, _)| at.elapsed() < KEEP);
            entries.insert(user.to_owned(), (Instant::now(), avatar));
        }
    }

    fn forget(&self, user: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(user);
        }
    }

    /// Forgets the avatar of whoever `item` says changed their profile.
    pub fn forget_changed(&self, item: &Published) {
        if let Published::Event(ev) = item
            && let Event::Profile { username } = ev.as_ref()
        {
            self.forget(username);
        }
    }
}

/// Forgets a contact's avatar when they share their profile again (they
/// changed it), until `hush web` stops.
pub async fn forget_on_change(mut rx: broadcast::Receiver<Published>, cache: Arc<AvatarCache>) {
    loop {
        match rx.recv().await {
            Ok(item) => cache.forget_changed(&item),
            // Events were missed: any of them may have been a change.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if let Ok(mut e) = cache.entries.lock() {
                    e.clear();
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The picture answer: its own type, inline, under the files' policy.
fn picture(avatar: &Avatar) -> Response {
    let (ctype, bytes) = (avatar.0, avatar.1.clone());
    let mut resp = Body::from(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"avatar\""),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    resp
}

fn as_avatar(p: &Profile) -> Option<Avatar> {
    let bytes = p.avatar.clone()?;
    let ctype = avatar_media_type(&bytes)?;
    Some(Arc::new((ctype, bytes)))
}

fn no_avatar(who: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("{who} has no avatar"))
}

/// `GET /api/contacts/{username}/avatar`: a contact's avatar, or 404 when
/// they shared none.
pub async fn contact_avatar(
    State(s): State<AppState>,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    let cached = s.avatars.get(&username);
    let avatar = match cached {
        Some(a) => a,
        None => {
            let user = username.clone();
            let profile = on_client(&s, move |c| {
                Box::pin(async move { c.contact_profile(&user).await })
            })
            .await?;
            let avatar = profile.as_ref().and_then(as_avatar);
            s.avatars.put(&username, avatar.clone());
            avatar
        }
    };
    avatar
        .map(|a| picture(&a))
        .ok_or_else(|| no_avatar(&username))
}

/// `GET /api/profile`.
#[derive(Debug, Serialize)]
pub struct OwnProfile {
    /// The name contacts see (none before a profile is set).
    display_name: Option<String>,
    /// The avatar's type, if there is one.
    avatar_type: Option<&'static str>,
    /// Its size.
    avatar_bytes: Option<usize>,
}

async fn own(s: &AppState) -> Result<Option<Profile>, ApiError> {
    on_client(s, |c| Box::pin(async move { c.own_profile().await })).await
}

pub async fn profile(State(s): State<AppState>) -> Result<Json<OwnProfile>, ApiError> {
    let p = own(&s).await?;
    Ok(Json(OwnProfile {
        display_name: p.as_ref().and_then(|p| p.name.clone()),
        avatar_type: p.as_ref().and_then(Profile::avatar_type),
        avatar_bytes: p.as_ref().and_then(|p| p.avatar.as_ref().map(Vec::len)),
    }))
}

/// `GET /api/profile/avatar`: this account's own avatar.
pub async fn own_avatar(State(s): State<AppState>) -> Result<Response, ApiError> {
    own(&s)
        .await?
        .as_ref()
        .and_then(as_avatar)
        .map(|a| picture(&a))
        .ok_or_else(|| no_avatar("this account"))
}

/// Reads an avatar upload: 413 past [`MAX_AVATAR_BYTES`] (read on up to
/// [`DRAIN_LIMIT`] so the browser gets the answer, not a reset).
async fn read_avatar(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let (mut bytes, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad_request(format!("the upload broke off: {e}")))?;
        total += chunk.len();
        if total <= MAX_AVATAR_BYTES {
            bytes.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > MAX_AVATAR_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "an avatar is at most {} KiB (this one is {} KiB)",
                MAX_AVATAR_BYTES / 1024,
                total.div_ceil(1024)
            ),
        ));
    }
    Ok(bytes)
}

/// `PUT /api/profile/avatar`: the body is a PNG, JPEG or WebP picture;
/// the name stays (this account's username if no profile was set yet).
pub async fn set_avatar(State(s): State<AppState>, body: Body) -> Result<StatusCode, ApiError> {
    let bytes = read_avatar(body).await?;
    if let Err(e) = check_avatar(&bytes) {
        let status = if bytes.is_empty() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        };
        return Err(ApiError::new(status, e.to_string()));
    }
    change(&s, None, Some(Some(bytes))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/profile/avatar`: the profile without an avatar.
pub async fn remove_avatar(State(s): State<AppState>) -> Result<StatusCode, ApiError> {
    change(&s, None, Some(None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the name or the avatar and keeps the other as it is; other
/// tabs and bots see a `profile` event.
pub async fn change(
    s: &AppState,
    name: Option<String>,
    avatar: Option<Option<Vec<u8>>>,
) -> Result<(), ApiError> {
    on_client(s, move |c| {
        Box::pin(async move {
            let held = c.own_profile().await?;
            let name = name
                .or_else(|| held.as_ref().and_then(|p| p.name.clone()))
                .unwrap_or_else(|| c.username().to_owned());
            let avatar = avatar.unwrap_or_else(|| held.and_then(|p| p.avatar));
            c.set_profile(&name, avatar).await
        })
    })
    .await?;
    let _ = s.events.send(Published::Event(Box::new(Event::Profile {
        username: s.me.username.clone(),
    })));
    Ok(())
}
