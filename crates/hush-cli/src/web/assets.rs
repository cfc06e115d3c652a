//! The app's files, compiled into the binary: nothing is read from disk or
//! fetched from anywhere else at run time.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Path, content type, contents.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("app/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("app/app.js"),
    ),
    (
        "/api.js",
        "text/javascript; charset=utf-8",
        include_str!("app/api.js"),
    ),
    (
        "/view.js",
        "text/javascript; charset=utf-8",
        include_str!("app/view.js"),
    ),
    (
        "/files.js",
        "text/javascript; charset=utf-8",
        include_str!("app/files.js"),
    ),
    (
        "/groups.js",
        "text/javascript; charset=utf-8",
        include_str!("app/groups.js"),
    ),
    (
        "/avatars.js",
        "text/javascript; charset=utf-8",
        include_str!("app/avatars.js"),
    ),
    (
        "/polls.js",
        "text/javascript; charset=utf-8",
        include_str!("app/polls.js"),
    ),
    (
        "/settings.js",
        "text/javascript; charset=utf-8",
        include_str!("app/settings.js"),
    ),
    (
        "/channels.js",
        "text/javascript; charset=utf-8",
        include_str!("app/channels.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("app/style.css"),
    ),
    ("/icon.svg", "image/svg+xml", include_str!("app/icon.svg")),
];

/// Serves an embedded file, or 404.
pub async fn serve(uri: Uri) -> Response {
    match ASSETS.iter().find(|(path, _, _)| *path == uri.path()) {
        Some((_, ctype, body)) => ([(header::CONTENT_TYPE, *ctype)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
