//! Files and pictures. The page uploads a file's bytes to this process,
//! which encrypts and uploads it (`Client::send_file`, progress on the
//! event stream as `progress`); a received file is fetched, checked and
//! decrypted here (`Client::open_file`) and handed to the page under the
//! same guard. The page makes picture thumbnails itself, in the browser's
//! sandboxed image decoders: this process, which holds the keys, never
//! parses a picture (decision 0034).
//!
//! What a file holds is the sender's: it is never served as something the
//! browser would run. Only raster pictures (PNG, JPEG, GIF, WebP) are served
//! inline, with their type; everything else as `application/octet-stream`
//! and `Content-Disposition: attachment`, all under `nosniff` and a
//! `sandbox` Content-Security-Policy.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hush_client::{Client, ClientError, Event, MessageView, OpenedFile};
use rand::RngCore;
use serde::Deserialize;

use crate::web::AppState;
use crate::web::api::{ApiError, bad_request, on_client, target_of};
use crate::web::worker::{ClientFuture, Published};

/// The largest file the page may upload (the server's default limit).
pub const MAX_UPLOAD: u64 = 100 * 1024 * 1024;
/// Decrypted files kept in memory for the page (pictures shown again on
/// every redraw), at most this many bytes in all.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Served inline; anything else is a download.
const INLINE: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// What a file's answer may do in a browser: nothing.
pub const FILE_CSP: &str = "default-src 'none'; img-src 'self'; sandbox; frame-ancestors 'none'";

/// Recently opened files, newest last.
#[derive(Debug, Default)]
pub struct FileCache {
    files: Mutex<VecDeque<(String, Arc<OpenedFile>)>>,
}

impl FileCache {
    fn get(&self, id: &str) -> Option<Arc<OpenedFile>> {
        let files = self.files.lock().ok()?;
        files.iter().find(|(k, _)| k == id).map(|(_, f)| f.clone())
    }

    fn put(&self, id: &str, file: Arc<OpenedFile>) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        files.retain(|(k, _)| k != id);
        files.push_back((id.to_owned(), file));
        let mut total: usize = files.iter().map(|(_, f)| f.bytes.len()).sum();
        while total > CACHE_BYTES && files.len() > 1 {
            if let Some((_, f)) = files.pop_front() {
                total -= f.bytes.len();
            }
        }
    }
}

/// `?name=FILE&upload=TOKEN`.
#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    pub name: String,
    pub upload: Option<String>,
}

/// A file name the page sent, reduced to a plain name.
fn plain_name(name: &str) -> Result<String, ApiError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .chars()
        .take(200)
        .collect();
    if clean.is_empty() {
        return Err(bad_request("the file needs a name"));
    }
    Ok(clean)
}

/// A scratch directory for one upload, removed on drop.
pub struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the request body to `path`, refusing more than [`MAX_UPLOAD`].
async fn save_body(body: Body, path: &std::path::Path) -> Result<u64, ApiError> {
    let mut file = std::fs::File::create(path).map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad_request(format!("the upload broke off: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_UPLOAD {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("a file is at most {MAX_UPLOAD} bytes"),
            ));
        }
        file.write_all(&chunk).map_err(internal)?;
    }
    file.flush().map_err(internal)?;
    if total == 0 {
        return Err(bad_request("the file is empty"));
    }
    Ok(total)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The request body saved under the plain form of `name` in a fresh
/// scratch directory (removed when the [`Scratch`] is dropped).
pub async fn receive(s: &AppState, name: &str, body: Body) -> Result<(Scratch, PathBuf), ApiError> {
    let name = plain_name(name)?;
    let mut nonce = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let dir = s.scratch.join(format!("web-up-{}", hex::encode(nonce)));
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let scratch = Scratch(dir);
    let path = scratch.0.join(&name);
    save_body(body, &path).await?;
    Ok((scratch, path))
}

/// Reports an upload's progress on the event stream, as `progress` with
/// the page's token for it.
pub fn progress(s: &AppState, token: Option<String>) -> impl FnMut(u64, u64) + Send + 'static {
    let (events, token) = (s.events.clone(), token.unwrap_or_default());
    move |done, total| {
        let _ = events.send(Published::Progress {
            upload: token.clone(),
            done,
            total,
        });
    }
}

/// `POST /api/conversations/{id}/files?name=...`: the body is the file.
pub async fn upload(
    State(s): State<AppState>,
    Path(conversation): Path<i64>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<Json<MessageView>, ApiError> {
    let (scratch, path) = receive(&s, &q.name, body).await?;
    let progress = progress(&s, q.upload);
    let sent = on_client(&s, move |c| {
        Box::pin(async move {
            let t = target_of(c, conversation)?;
            c.send_file(&t, &path, progress).await
        })
    })
    .await?;
    drop(scratch);
    let _ = s
        .events
        .send(Published::Event(Box::new(Event::Message(sent.clone()))));
    Ok(Json(sent))
}

/// `?download=true`: always as an attachment.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    #[serde(default)]
    download: bool,
}

/// `GET /api/messages/{id}/file`: the decrypted file of a message.
pub async fn file(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let key = id.clone();
    serve(&s, id, q, move |c| {
        Box::pin(async move { c.open_file(&key).await })
    })
    .await
}

/// Serves a decrypted file: from the cache under `key`, else opened by
/// `open` on the client task. Inline only as a raster picture; always
/// under the sandbox policy.
pub async fn serve<F>(
    s: &AppState,
    key: String,
    q: FileQuery,
    open: F,
) -> Result<Response, ApiError>
where
    F: for<'a> FnOnce(&'a mut Client) -> ClientFuture<'a, Result<OpenedFile, ClientError>>
        + Send
        + 'static,
{
    let opened = match s.files.get(&key) {
        Some(f) => f,
        None => {
            let f = Arc::new(on_client(s, open).await?);
            s.files.put(&key, f.clone());
            f
        }
    };
    let inline = !q.download && INLINE.contains(&opened.media_type.as_str());
    let ctype = if inline {
        opened.media_type.as_str()
    } else {
        "application/octet-stream"
    };
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(&opened.file_name)
    );
    let mut resp = Body::from(opened.bytes.clone()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(static_type(ctype)),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    Ok(resp)
}

fn static_type(t: &str) -> &'static str {
    INLINE
        .iter()
        .find(|i| **i == t)
        .copied()
        .unwrap_or("application/octet-stream")
}

/// RFC 5987 encoding of a file name.
fn percent_encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reduced_to_a_plain_name() {
        assert_eq!(plain_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(plain_name("C:\\x\\a b.png").unwrap(), "a b.png");
        assert_eq!(plain_name("..hidden").unwrap(), "hidden");
        assert_eq!(plain_name("a\u{0}\nb").unwrap(), "ab");
        assert!(plain_name("dir/").is_err());
        assert!(plain_name("..").is_err());
        assert_eq!(percent_encode("a b\"é.png"), "a%20b%22%C3%A9.png");
    }

    #[test]
    fn only_raster_pictures_are_inline() {
        assert_eq!(static_type("image/png"), "image/png");
        assert_eq!(static_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(static_type("text/html"), "application/octet-stream");
    }
}
