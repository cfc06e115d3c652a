//! Time limits on what a client sends: request bodies and idle connections.
//!
//! - A request body must arrive within [`QuotaSettings::body_timeout`] and
//!   never pause longer than [`QuotaSettings::idle_timeout`]; otherwise the
//!   request is answered `408 body_timeout` and the connection closed (a
//!   slow-loris body holds nothing for long).
//! - A connection must send a request's headers within the idle timeout,
//!   which also closes an idle keep-alive connection (hyper's header read
//!   timeout).
//!
//! [`QuotaSettings::body_timeout`]: crate::quota::QuotaSettings::body_timeout
//! [`QuotaSettings::idle_timeout`]: crate::quota::QuotaSettings::idle_timeout

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use hush_wire::ErrorCode;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

use crate::app::AppState;
use crate::error::Failure;
use crate::quota::{Quota, refused};

/// The error a timed-out body yields to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body with a deadline for the whole and for each pause.
struct TimedBody {
    inner: Body,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    deadline: Option<Pin<Box<Sleep>>>,
    fired: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Body, idle: Duration, total: Duration, fired: Arc<AtomicBool>) -> Self {
        let sleep = |d: Duration| Box::pin(tokio::time::sleep(d));
        Self {
            inner,
            idle: (!idle.is_zero()).then(|| (idle, sleep(idle))),
            deadline: (!total.is_zero()).then(|| sleep(total)),
            fired,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some((idle, sleep)) = &mut this.idle {
                sleep.as_mut().reset(Instant::now() + *idle);
            }
            return Poll::Ready(frame);
        }
        let idle_over = this
            .idle
            .as_mut()
            .is_some_and(|(_, s)| s.as_mut().poll(cx).is_ready());
        let deadline_over = this
            .deadline
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready());
        if idle_over || deadline_over {
            this.fired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: puts the body under its time limits, and answers a request
/// whose body ran out of time with `408 body_timeout` (closing the
/// connection, since the rest of the body was never read).
pub async fn limit_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let s = state.quotas.settings();
    if (s.body_timeout.is_zero() && s.idle_timeout.is_zero()) || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let fired = Arc::new(AtomicBool::new(false));
    let (idle, total) = (s.idle_timeout, s.body_timeout);
    let flag = fired.clone();
    let req = req.map(|body| Body::new(TimedBody::new(body, idle, total, flag)));
    let response = next.run(req).await;
    if !fired.load(Ordering::Acquire) {
        return response;
    }
    refused(Quota::BodyTimeout);
    let mut r = Failure::new(
        ErrorCode::BodyTimeout,
        format!(
            "the request body must arrive within {}s and never pause for {}s: send it faster, \
             or in smaller parts",
            total.as_secs(),
            idle.as_secs()
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Serves `app` over plain HTTP/1.1 on `listener` until `shutdown`
/// resolves (then waits for the requests in progress): like `axum::serve`,
/// with a header read timeout of `idle` (none if zero).
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    idle: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            addr,
            app.clone(),
            idle,
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    app: Router,
    idle: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _done: tokio::sync::watch::Receiver<()>,
) {
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        let mut app = app.clone();
        async move {
            use tower::Service as _;
            app.call(req.map(Body::new)).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout((!idle.is_zero()).then_some(idle));
    let io = hyper_util::rt::TokioIo::new(stream);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service).with_upgrades());
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
