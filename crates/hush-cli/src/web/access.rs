//! The guard of the local server: who may talk to it, and from where.
//!
//! - **Host** must be this server's own loopback name and port
//!   (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, and with `--remote
//!   HOST`, served over TLS only, `HOST:PORT`): a page on
//!   `evil.example` whose name an attacker re-points at 127.0.0.1 (DNS
//!   rebinding) sends `Host: evil.example` and is refused with 403.
//! - **Origin**, when a browser sends one, must be this server's own origin,
//!   and `Sec-Fetch-Site`, when sent, must say `same-origin` or `none` (typed
//!   or opened from outside a page): a cross-site request is refused with
//!   403 before anything runs.
//! - **The session**: `hush web` prints a link with a one-time access secret
//!   (32 random bytes). `GET /login?secret=...` with it, once, answers with a
//!   session cookie (`HttpOnly`, `SameSite=Strict`, named after the port so
//!   two `hush web` processes do not overwrite each other's) and a redirect
//!   to the app. Every other request without a live session cookie gets 401
//!   with the same short text, whatever it asked for.
//!
//! Every answer, refusals included, carries a strict Content-Security-Policy
//! (only this origin's scripts, styles and connections, no framing) and
//! headers that keep it out of caches, referrers and other origins.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;

use crate::web::AppState;

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The body of every 401: the same whatever was asked.
pub const UNAUTHORIZED: &str = "Open the link that `hush web` printed in its terminal.\n";

/// The one-time secret and the live sessions of one `hush web` process.
#[derive(Debug)]
pub struct Access {
    port: u16,
    /// `--remote`'s host name: served over TLS under it (and on loopback).
    remote: Option<String>,
    /// `None` once redeemed.
    secret: Mutex<Option<String>>,
    /// What the link prints; kept apart from `secret`, which is taken.
    printed: String,
    sessions: Mutex<HashSet<String>>,
}

/// What the guard decided about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// On to the handler.
    Pass,
    /// A foreign Host or Origin: 403.
    Foreign,
    /// No session: 401.
    Unauthorized,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    /// A fresh secret for the server on `port`, over TLS under the host
    /// name `remote` when given.
    pub fn new(port: u16, remote: Option<String>) -> Self {
        let secret = random_hex();
        Access {
            port,
            remote,
            printed: secret.clone(),
            secret: Mutex::new(Some(secret)),
            sessions: Mutex::new(HashSet::new()),
        }
    }

    /// The secret for the printed link.
    pub fn secret_for_url(&self) -> &str {
        &self.printed
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> String {
        format!("hush_session_{}", self.port)
    }

    /// The `Host` values this server answers to.
    fn hosts(&self) -> Vec<String> {
        let p = self.port;
        let mut hosts = vec![
            format!("127.0.0.1:{p}"),
            format!("localhost:{p}"),
            format!("[::1]:{p}"),
        ];
        hosts.extend(self.remote.iter().map(|h| format!("{h}:{p}")));
        hosts
    }

    /// The scheme of this server's own origin.
    fn scheme(&self) -> &'static str {
        if self.remote.is_some() {
            "https://"
        } else {
            "http://"
        }
    }

    /// The session cookie's attributes (`Secure` over TLS).
    pub fn cookie_attributes(&self) -> &'static str {
        if self.remote.is_some() {
            "HttpOnly; SameSite=Strict; Secure; Path=/"
        } else {
            "HttpOnly; SameSite=Strict; Path=/"
        }
    }

    /// Trades the secret, once, for a new session token.
    pub fn redeem(&self, offered: &str) -> Option<String> {
        let mut secret = self.secret.lock().ok()?;
        let matches = secret
            .as_deref()
            .is_some_and(|s| same(s.as_bytes(), offered.as_bytes()));
        if !matches {
            return None;
        }
        *secret = None;
        let token = random_hex();
        self.sessions.lock().ok()?.insert(token.clone());
        Some(token)
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie_name();
        let Ok(sessions) = self.sessions.lock() else {
            return false;
        };
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| {
                k == name
                    && sessions
                        .iter()
                        .any(|s| same(s.as_bytes(), v.trim().as_bytes()))
            })
    }

    /// Host, then Origin and Sec-Fetch-Site, then the session (except for
    /// `/login`, which checks the secret itself).
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Verdict {
        let hosts = self.hosts();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| hosts.iter().any(|ok| ok == h)) {
            return Verdict::Foreign;
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix(self.scheme()))
                .is_some_and(|o| hosts.iter().any(|h| h == o));
            if !ok {
                return Verdict::Foreign;
            }
        }
        if let Some(site) = headers.get("sec-fetch-site")
            && !matches!(site.to_str(), Ok("same-origin" | "none"))
        {
            return Verdict::Foreign;
        }
        if path == "/login" || self.has_session(headers) {
            Verdict::Pass
        } else {
            Verdict::Unauthorized
        }
    }
}

/// The 401 every unauthenticated request gets.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        UNAUTHORIZED,
    )
        .into_response()
}

/// The middleware in front of every route.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let verdict = state.access.check(req.uri().path(), req.headers());
    let mut resp = match verdict {
        Verdict::Pass => next.run(req).await,
        Verdict::Foreign => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Refused: this server answers only to its own page.\n",
        )
            .into_response(),
        Verdict::Unauthorized => unauthorized(),
    };
    secure_headers(resp.headers_mut());
    resp
}

fn secure_headers(h: &mut HeaderMap) {
    let set = [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
        ("cache-control", "no-store"),
    ];
    for (name, value) in set {
        // A handler's own policy is a stricter one (a file's `sandbox`).
        if name == "content-security-policy" && h.contains_key(name) {
            continue;
        }
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// `GET /login?secret=...`.
#[derive(Debug, Deserialize)]
pub struct Login {
    secret: Option<String>,
}

/// Trades the one-time secret for a session cookie and sends the browser to
/// the app; a wrong or used secret gets the same 401 as everything else.
pub async fn login(
    State(state): State<AppState>,
    method: Method,
    Query(q): Query<Login>,
) -> Response {
    if method != Method::GET {
        return unauthorized();
    }
    let Some(token) = q.secret.as_deref().and_then(|s| state.access.redeem(s)) else {
        return unauthorized();
    };
    let cookie = format!(
        "{}={token}; {}",
        state.access.cookie_name(),
        state.access.cookie_attributes()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_secret_works_once() {
        let a = Access::new(4000, None);
        let secret = a.secret_for_url().to_owned();
        assert!(a.redeem("wrong").is_none());
        assert!(a.redeem(&secret[..10]).is_none());
        let token = a.redeem(&secret).unwrap();
        assert!(a.redeem(&secret).is_none());
        let cookie = format!("other=1; hush_session_4000={token}");
        let h = headers(&[("host", "127.0.0.1:4000"), ("cookie", &cookie)]);
        assert_eq!(a.check("/api/me", &h), Verdict::Pass);
        // The secret itself is no session, nor is another port's cookie.
        let h = headers(&[
            ("host", "127.0.0.1:4000"),
            ("cookie", &format!("hush_session_4000={secret}")),
        ]);
        assert_eq!(a.check("/api/me", &h), Verdict::Unauthorized);
        let h = headers(&[
            ("host", "127.0.0.1:4000"),
            ("cookie", &format!("hush_session_4001={token}")),
        ]);
        assert_eq!(a.check("/api/me", &h), Verdict::Unauthorized);
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused_before_the_session() {
        let a = Access::new(4000, None);
        let token = a.redeem(a.secret_for_url()).unwrap();
        let cookie = format!("hush_session_4000={token}");
        for host in ["evil.example:4000", "127.0.0.1:4001", "127.0.0.1", ""] {
            let h = headers(&[("host", host), ("cookie", &cookie)]);
            assert_eq!(a.check("/", &h), Verdict::Foreign, "{host}");
        }
        assert_eq!(
            a.check("/", &headers(&[("cookie", &cookie)])),
            Verdict::Foreign
        );
        for origin in [
            "http://evil.example",
            "https://127.0.0.1:4000",
            "http://127.0.0.1:4001",
            "null",
        ] {
            let h = headers(&[
                ("host", "localhost:4000"),
                ("origin", origin),
                ("cookie", &cookie),
            ]);
            assert_eq!(a.check("/api/me", &h), Verdict::Foreign, "{origin}");
        }
        let h = headers(&[
            ("host", "localhost:4000"),
            ("origin", "http://localhost:4000"),
            ("cookie", &cookie),
        ]);
        assert_eq!(a.check("/api/me", &h), Verdict::Pass);
        let h = headers(&[
            ("host", "[::1]:4000"),
            ("sec-fetch-site", "cross-site"),
            ("cookie", &cookie),
        ]);
        assert_eq!(a.check("/api/me", &h), Verdict::Foreign);
    }

    #[test]
    fn a_remote_server_answers_to_its_name_over_https_only() {
        let a = Access::new(4000, Some("hush.test".into()));
        assert!(a.cookie_attributes().contains("Secure"));
        let token = a.redeem(a.secret_for_url()).unwrap();
        let cookie = format!("hush_session_4000={token}");
        let at = |host: &str, origin: &str| {
            let h = headers(&[("host", host), ("origin", origin), ("cookie", &cookie)]);
            a.check("/api/me", &h)
        };
        assert_eq!(
            at("hush.test:4000", "https://hush.test:4000"),
            Verdict::Pass
        );
        assert_eq!(
            at("hush.test:4000", "http://hush.test:4000"),
            Verdict::Foreign
        );
        assert_eq!(
            at("evil.example:4000", "https://evil.example:4000"),
            Verdict::Foreign
        );
        assert_eq!(
            at("hush.test:4001", "https://hush.test:4001"),
            Verdict::Foreign
        );
        assert!(
            !Access::new(4000, None)
                .cookie_attributes()
                .contains("Secure")
        );
    }
}
