//! `hush web`: the messenger in a browser tab, served by this process.
//!
//! Three parts, as in `hush chat` ([`crate::tui`]):
//!
//! - the client task ([`worker`]) owns the [`Client`] (its methods take
//!   `&mut self`): it runs the API's jobs one at a time and between them
//!   syncs with a short wait, broadcasting every [`hush_client::Event`];
//! - the HTTP server ([`api`], [`events`], [`assets`]): axum on a loopback
//!   socket, a JSON API that only calls `hush-client`'s public API through
//!   the client task, an event stream (SSE) and the app's files, embedded in
//!   the binary;
//! - the guard ([`access`]) in front of all of it: the `Host` and `Origin`
//!   checks, the one-time access secret exchanged for an `HttpOnly`,
//!   `SameSite=Strict` session cookie, and the security headers.
//!
//! Keys and plaintext never leave the process except as the API's answers
//! to a request that passed the guard.

pub mod access;
pub mod api;
pub mod assets;
pub mod avatars;
pub mod channels;
pub mod edits;
pub mod events;
pub mod features;
pub mod files;
pub mod groups;
pub mod settings;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use hush_client::Client;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::output::Out;
use crate::web::access::Access;
use crate::web::worker::Jobs;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The guard's secret and sessions.
    pub access: Arc<Access>,
    /// Jobs for the client task.
    pub jobs: Jobs,
    /// The client's events, as they happen.
    pub events: broadcast::Sender<worker::Published>,
    /// Who this is (fixed for the process).
    pub me: Arc<api::Me>,
    /// Turns true when `hush web` stops (ends the event streams).
    pub stop: watch::Receiver<bool>,
    /// Where uploads wait while the client encrypts them (in the store's
    /// directory).
    pub scratch: Arc<std::path::PathBuf>,
    /// Files decrypted for the page, kept for a while.
    pub files: Arc<files::FileCache>,
    /// Contacts' avatars, kept for a while.
    pub avatars: Arc<avatars::AvatarCache>,
}

/// The whole app: API, events, assets, behind the guard.
pub fn router(state: AppState) -> Router {
    api::routes()
        .into_iter()
        .fold(Router::new(), |r, (path, _, route)| r.route(path, route))
        .route("/login", axum::routing::get(access::login))
        .fallback(assets::serve)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .with_state(state)
}

/// `--remote`: serving beyond loopback, over TLS, under a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The name browsers reach this machine by (the certificate's).
    pub host: String,
    /// The certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Its private key, PEM.
    pub key: std::path::PathBuf,
}

/// Serves the app on `listen` until Ctrl-C (or SIGTERM): plain HTTP on
/// loopback, or TLS under `remote`'s name.
pub async fn run(
    client: Client,
    listen: SocketAddr,
    open: bool,
    remote: Option<Remote>,
    out: &mut Out,
) -> Result<()> {
    // The certificate is read before anything listens: a wrong file is a
    // clear error, not a server that cannot answer.
    let tls = match &remote {
        Some(r) => Some({
            // One crypto provider for the process, as hush-server does
            // (several are linked in, so rustls will not pick one itself).
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            axum_server::tls_rustls::RustlsConfig::from_pem_file(&r.cert, &r.key)
                .await
                .with_context(|| {
                    format!(
                        "cannot use {} and {} as the TLS certificate and key",
                        r.cert.display(),
                        r.key.display()
                    )
                })?
        }),
        None => None,
    };
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let access = Arc::new(Access::new(
        local.port(),
        remote.as_ref().map(|r| r.host.clone()),
    ));
    let scratch = Arc::new(client.data_dir().join("tmp"));
    let me = Arc::new(api::Me {
        username: client.username().to_owned(),
        device_id: client.device_id(),
        server: client.server().to_owned(),
    });
    let (events, _) = broadcast::channel(1024);
    let (job_tx, job_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(tokio::sync::Notify::new());
    let worker = tokio::spawn(worker::run(client, job_rx, wake.clone(), events.clone()));
    let (stop_tx, stop) = watch::channel(false);
    let avatars = Arc::new(avatars::AvatarCache::default());
    tokio::spawn(avatars::forget_on_change(
        events.subscribe(),
        avatars.clone(),
    ));
    let state = AppState {
        access: access.clone(),
        jobs: Jobs::new(job_tx, wake),
        events,
        me,
        stop,
        scratch,
        files: Arc::default(),
        avatars,
    };
    let url = match &remote {
        Some(r) => format!(
            "https://{}:{}/login?secret={}",
            r.host,
            local.port(),
            access.secret_for_url()
        ),
        None => format!("http://{local}/login?secret={}", access.secret_for_url()),
    };
    out.emit(
        || {
            format!(
                "hush web: open {url}\n(the link works once; keep this running, Ctrl-C stops it)"
            )
        },
        json!({ "url": url }),
    )?;
    if open {
        open_browser(&url);
    }
    let app = router(state);
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        stopping.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let service = app.into_make_service();
    let served = match tls {
        Some(config) => {
            axum_server::tls_rustls::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(service)
                .await
        }
    };
    // Let the client task say goodbye (presence), but do not hang on it.
    let _ = tokio::time::timeout(Duration::from_secs(3), worker).await;
    served.context("the web server stopped")
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Starts the system browser on `url`; a failure is only reported.
fn open_browser(url: &str) {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Err(e) = cmd.spawn() {
        eprintln!("hush web: cannot start a browser ({e}); open the link yourself");
    }
}
