//! The HTTP and WebSocket application: shared state and the route table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use hush_wire::limits::MAX_JSON_BODY;

use crate::api;
use crate::error::Failure;
use crate::hub::Hub;
use crate::proxy::Cidr;
use crate::ratelimit::{Limits, Rate, StrictRates};
use crate::store::Store;

/// Behaviour an operator can tune.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long undelivered envelopes and attachments are kept.
    pub retention: Duration,
    /// Largest attachment accepted, in bytes.
    pub max_attachment_size: u64,
    /// Largest backup an account may store (it has one slot), in bytes.
    pub max_backup_size: u64,
    /// Most devices per account.
    pub max_devices: usize,
    /// Requests per client IP.
    pub per_ip: Rate,
    /// Authenticated requests per account.
    pub per_account: Rate,
    /// How long a key-directory change waits for others before its epoch
    /// is published.
    pub kt_batch_window: Duration,
    /// Stricter limits: registration, signed device requests, audits and
    /// KeyPackage claims. A zero `per_ip` turns the per-address ones off too,
    /// a zero `per_account` the per-account and per-claim ones.
    pub strict: StrictRates,
    /// Reverse proxies (load balancers) whose `X-Forwarded-For` names the
    /// client; none by default, and then the header is ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// Token that `/metrics` on the public listener requires; without one
    /// `/metrics` is served only on the operator listener (`--metrics-listen`).
    pub metrics_token: Option<MetricsToken>,
    /// How often each node looks up suspended accounts to close their open
    /// sockets (the operator suspends from another process).
    pub revocation_sweep: Duration,
    /// On shutdown, how long the node keeps answering HTTP (with `/healthz`
    /// at 503 and device sockets closed) before it stops accepting, so a
    /// load balancer notices first.
    pub drain_delay: Duration,
    /// Quotas per account and device, and request timeouts.
    pub quotas: crate::quota::QuotaSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            max_attachment_size: 100 * 1024 * 1024,
            max_backup_size: 100 * 1024 * 1024,
            max_devices: hush_wire::limits::MAX_DEVICES_PER_ACCOUNT,
            per_ip: Rate {
                per_second: 200.0,
                burst: 1000.0,
            },
            per_account: Rate {
                per_second: 200.0,
                burst: 1000.0,
            },
            kt_batch_window: crate::kt::service::DEFAULT_BATCH_WINDOW,
            strict: StrictRates::default(),
            trusted_proxies: Vec::new(),
            metrics_token: None,
            revocation_sweep: Duration::from_secs(1),
            drain_delay: Duration::ZERO,
            quotas: crate::quota::QuotaSettings::default(),
        }
    }
}

/// The bearer token of `/metrics` on the public listener (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// The client address of a request, after trusted proxies
/// ([`crate::proxy::client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Devices connected to this node.
    pub hub: Arc<Hub>,
    /// Tunables.
    pub settings: Arc<Settings>,
    /// Rate limits.
    pub limits: Arc<Limits>,
    /// Encrypted attachments.
    pub blobs: Arc<crate::blobs::Blobs>,
    /// The franking key, loaded from the database on first use.
    pub franking: Arc<tokio::sync::OnceCell<[u8; 32]>>,
    /// The key-transparency directory.
    pub kt: Arc<crate::kt::KeyDirectory>,
    /// This node's place in a cluster (NATS), if it is in one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Set once shutdown began: `/healthz` fails and new WebSockets are refused.
    pub draining: Arc<AtomicBool>,
    /// Quotas per account and device.
    pub quotas: Arc<crate::quota::Quotas>,
    /// The channels that held fetches wait on (decision 0038).
    pub channels: Arc<crate::channel_watch::ChannelWatches>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `store` and `blobs` with `settings`.
    pub fn new(store: Arc<dyn Store>, blobs: crate::blobs::Blobs, settings: Settings) -> Self {
        Self {
            limits: Arc::new(Limits::with_strict(
                settings.per_ip,
                settings.per_account,
                settings
                    .strict
                    .within(settings.per_ip, settings.per_account),
            )),
            kt: Arc::new(crate::kt::KeyDirectory::new(
                store.clone(),
                settings.kt_batch_window,
            )),
            quotas: Arc::new(crate::quota::Quotas::new(settings.quotas.clone())),
            store,
            hub: Arc::new(Hub::default()),
            settings: Arc::new(settings),
            blobs: Arc::new(blobs),
            franking: Arc::new(tokio::sync::OnceCell::new()),
            cluster: None,
            draining: Arc::new(AtomicBool::new(false)),
            channels: Arc::default(),
        }
    }

    /// Joins the cluster over NATS: wake-ups, ephemeral traffic and
    /// replaced connections then reach devices on the other nodes, and
    /// channel posts the fetches held on them.
    pub async fn join_cluster(
        mut self,
        config: crate::cluster::ClusterConfig,
    ) -> Result<Self, crate::cluster::ClusterError> {
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
        let key = self
            .store
            .server_secret("cluster forwards", fresh.to_vec())
            .await
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
            .ok_or(crate::cluster::ClusterError::Key)?;
        let cluster = crate::cluster::Cluster::join(config, &self.hub, &self.channels).await?;
        // Sends other nodes ask of this one, for devices connected here. The
        // handler's state has no cluster: dropping the node's drops it.
        let local = self.clone();
        let handler: crate::cluster::ForwardHandler = Arc::new(move |device, send| {
            let state = local.clone();
            Box::pin(async move { crate::delivery::take_forwarded(&state, device, send).await })
        });
        cluster.on_forward(handler, crate::cluster::ForwardKey::new(key));
        self.cluster = Some(Arc::new(cluster));
        Ok(self)
    }

    /// Whether shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Begins the drain: `/healthz` fails, new WebSockets are refused, and
    /// every device socket is closed with 1012 so its client reconnects (to
    /// another node), and held channel fetches are answered.
    pub fn begin_drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
        self.hub.kick_all();
        self.channels.close();
    }
}

/// The route table.
pub fn router(state: AppState) -> Router {
    let attachments = Router::new()
        .route("/v1/attachments", post(api::attachments::create))
        .route(
            "/v1/attachments/{id}",
            get(api::attachments::download)
                .patch(api::attachments::upload)
                .delete(api::attachments::delete),
        )
        .route("/v1/attachments/{id}/status", get(api::attachments::status))
        .layer(DefaultBodyLimit::max(
            usize::try_from(state.settings.max_attachment_size).unwrap_or(usize::MAX),
        ));
    let profile = Router::new()
        .route("/v1/profile", put(api::accounts::put_profile))
        .layer(DefaultBodyLimit::max(hush_wire::limits::MAX_PROFILE_LEN));
    // One sealed backup per account (decision 0035).
    let backup = Router::new()
        .route(
            "/v1/backup",
            put(api::backups::put)
                .get(api::backups::status)
                .delete(api::backups::delete),
        )
        .layer(DefaultBodyLimit::max(
            usize::try_from(state.settings.max_backup_size)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        ));
    // Unauthenticated and costly: a stricter limit per client network.
    let costly = Router::new()
        .route("/v1/accounts", post(api::accounts::register))
        .route(
            "/v1/accounts/{username}/devices",
            post(api::accounts::add_device),
        )
        .route(
            "/v1/accounts/{username}/devices/{device_id}",
            delete(api::accounts::remove_device),
        )
        // Downloads by locator: no token (a restoring machine has none).
        .route("/v1/backups/{locator}", get(api::backups::download))
        .route_layer(middleware::from_fn_with_state(state.clone(), costly_limit));
    // Auditors' requests count against their network, devices' against
    // their account.
    let audit = Router::new()
        .route("/v1/kt/audit", get(api::kt::audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit_limit));
    Router::new()
        .route("/v1/accounts/{username}", get(api::accounts::directory))
        .route("/v1/token/rotate", post(api::accounts::rotate_token))
        .route(
            "/v1/accounts/{username}/key-packages/claim",
            post(api::keys::claim),
        )
        .route(
            "/v1/accounts/{username}/profile",
            get(api::accounts::profile),
        )
        .route("/v1/key-packages", put(api::keys::upload))
        .route("/v1/key-packages/count", get(api::keys::count))
        .route("/v1/messages", post(api::messages::send))
        .route("/v1/reports", post(api::reports::file))
        .route(
            "/v1/links/{link_id}",
            get(api::links::preview).put(api::links::create),
        )
        .route("/v1/links/{link_id}/requests", post(api::links::request))
        .route("/v1/links/{link_id}/manage", post(api::links::manage))
        .route(
            "/v1/channels/{channel_id}",
            get(api::channels::get).put(api::channels::put),
        )
        .route(
            "/v1/channels/{channel_id}/posts",
            get(api::channels::posts).post(api::channels::post),
        )
        .route("/v1/ws", get(api::ws::connect))
        .route("/v1/kt/config", get(api::kt::config))
        .route("/v1/kt/roots", get(api::kt::roots))
        .route("/v1/kt/lookup", post(api::kt::batch_lookup))
        .route("/v1/kt/lookup/{username}", get(api::kt::lookup))
        .route("/v1/kt/history/{username}", get(api::kt::history))
        .route("/healthz", get(api::ops::healthz))
        .route("/metrics", get(api::ops::public_metrics))
        .route("/openapi.json", get(api::ops::openapi))
        .merge(costly)
        .merge(audit)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(attachments)
        .merge(profile)
        .merge(backup)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::quota::hold_slot))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::timeouts::limit_body,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), per_ip_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Failure {
    Failure::not_found("no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> Response {
    let mut r = Failure::new(
        hush_wire::ErrorCode::BadRequest,
        "method not allowed on this endpoint; see /openapi.json",
    )
    .into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// The operator listener (`--metrics-listen`): `/metrics` without a token,
/// and `/healthz`. Bind it to an address only operators reach.
pub fn operator_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(api::ops::metrics))
        .route("/healthz", get(api::ops::healthz))
        .fallback(not_found)
        .with_state(state)
}

/// Finds the client's address (after trusted proxies) and applies the
/// per-address limit.
async fn per_ip_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = crate::proxy::client_ip(addr.ip(), req.headers(), &state.settings.trusted_proxies);
        if let Err(refusal) = state.limits.check_ip(ip) {
            return refusal.into_response();
        }
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

/// The limit of `/v1/kt/audit`: per account when a device asks with a
/// valid token, else the stricter per-address one.
async fn audit_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let account = match crate::auth::bearer(req.headers()) {
        Some(token) => state
            .store
            .authenticate(&crate::auth::token_hash(token))
            .await
            .ok()
            .flatten()
            .map(|auth| auth.device.username),
        None => None,
    };
    let verdict = match (account, req.extensions().get::<ClientIp>()) {
        (Some(account), _) => state.limits.check_audit(&account),
        (None, Some(ClientIp(ip))) => state.limits.check_costly(*ip),
        (None, None) => Ok(()),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The stricter per-address limit of registration and signed device
/// requests.
async fn costly_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>()
        && let Err(refusal) = state.limits.check_costly(*ip)
    {
        return refusal.into_response();
    }
    next.run(req).await
}
