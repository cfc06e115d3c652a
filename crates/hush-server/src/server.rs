//! Running the service: open storage, bind, serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{AppState, router};
use crate::delivery::now_ms;

/// How often expired envelopes and attachments are deleted.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// Serves plain HTTP on `listener` until `shutdown` resolves, then drains:
/// `/healthz` answers 503, device connections close with 1012 (so they
/// reconnect elsewhere), and after [`crate::app::Settings::drain_delay`] the
/// server stops accepting and returns once in-flight requests have finished.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(expire_loop(state.clone()));
    let publisher = tokio::spawn(state.kt.clone().run());
    let revoker = tokio::spawn(revocation_loop(state.clone()));
    let drain = state.clone();
    let idle = state.settings.quotas.idle_timeout;
    let result = crate::timeouts::serve_http(listener, router(state), idle, async move {
        shutdown.await;
        drain.begin_drain();
        tokio::time::sleep(drain.settings.drain_delay).await;
    })
    .await;
    expiry.abort();
    publisher.abort();
    revoker.abort();
    result
}

/// Serves the operator listener ([`crate::app::operator_router`]:
/// `/metrics` without a token, `/healthz`) on `listener` until `shutdown`.
pub async fn serve_operator(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, crate::app::operator_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Closes, every [`crate::app::Settings::revocation_sweep`], the open
/// connections of suspended accounts: the operator suspends from another
/// process (`hush-server admin`), which only writes the database.
async fn revocation_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.settings.revocation_sweep);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.hub.connected() == 0 {
            continue;
        }
        match state.store.suspended_accounts().await {
            Ok(names) => {
                let n = state.hub.revoke_accounts(&names.into_iter().collect());
                if n > 0 {
                    tracing::info!(connections = n, "closed connections of suspended accounts");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look up suspended accounts"),
        }
    }
}

async fn expire_loop(state: AppState) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tick.tick().await;
        run_expiry(&state).await;
    }
}

/// Deletes what outlived the retention period.
pub async fn run_expiry(state: &AppState) {
    match state.store.expire(now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(envelopes = n, "expired undelivered envelopes"),
        Err(e) => tracing::warn!(error = %e, "envelope expiry failed"),
    }
    state.quotas.prune(now_ms());
    let retention_ms = u64::try_from(state.settings.retention.as_millis()).unwrap_or(u64::MAX);
    match state
        .store
        .expire_links(now_ms().saturating_sub(retention_ms))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(links = n, "forgot expired invite links"),
        Err(e) => tracing::warn!(error = %e, "invite link expiry failed"),
    }
    match state
        .store
        .expire_channel_posts(now_ms().saturating_sub(retention_ms))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(posts = n, "forgot channel posts past retention"),
        Err(e) => tracing::warn!(error = %e, "channel post expiry failed"),
    }
    match state
        .blobs
        .expire(now_ms().saturating_sub(retention_ms))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(attachments = n, "expired attachments"),
        Err(e) => tracing::warn!(error = %e, "attachment expiry failed"),
    }
}

/// A server on `127.0.0.1:0` for tests and embedding: returns its address and
/// a handle that stops it when dropped or triggered.
pub async fn spawn_local(state: AppState) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let task = tokio::spawn(serve(
        listener,
        state,
        async move { stop2.notified().await },
    ));
    Ok((addr, ServerHandle { stop, task }))
}

/// Stops a server started by [`spawn_local`].
#[derive(Debug)]
pub struct ServerHandle {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// Serves HTTPS on `listener` with the certificate in `tls`, until `shutdown`.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    state: AppState,
    tls: &crate::tls::TlsFiles,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // object_store's S3 client brings rustls' ring provider into the build
    // too; with two providers rustls needs a process default, and ours is
    // aws-lc-rs (the same library as MLS). An error means one is set already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key).await?;
    let expiry = tokio::spawn(expire_loop(state.clone()));
    let publisher = tokio::spawn(state.kt.clone().run());
    let revoker = tokio::spawn(revocation_loop(state.clone()));
    let drain = state.clone();
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        drain.begin_drain();
        tokio::time::sleep(drain.settings.drain_delay).await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let idle = state.settings.quotas.idle_timeout;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    listener.set_nonblocking(true)?;
    let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout((!idle.is_zero()).then_some(idle));
    let result = server.serve(app).await;
    expiry.abort();
    publisher.abort();
    revoker.abort();
    result
}
