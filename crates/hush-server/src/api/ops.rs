//! Health, metrics and the API description.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use hush_wire::api::Health;

use crate::app::AppState;
use crate::auth::{bearer, token_hash};
use crate::error::{ApiResult, Failure};
use crate::metrics::{Exposition, METRICS};

/// `GET /healthz`: readiness for a load balancer. 200 when the database
/// answers and, in a cluster, NATS too; 503 while draining.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let problem = if state.is_draining() {
        Some("draining: this node is shutting down")
    } else if !state.store.ping().await {
        Some("the database does not answer")
    } else if state.cluster.as_ref().is_some_and(|c| !c.is_connected()) {
        Some("NATS does not answer: delivery across nodes is delayed")
    } else {
        None
    };
    match problem {
        None => (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok".into(),
            }),
        )
            .into_response(),
        Some(p) => Failure::new(hush_wire::ErrorCode::Unavailable, p).into_response(),
    }
}

/// `GET /metrics` on the public listener: only with `--metrics-token`, and
/// then only for a request that presents it (401 otherwise); without a
/// token 404, as if the route did not exist (operators scrape the
/// `--metrics-listen` listener instead).
pub async fn public_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<axum::response::Response> {
    let Some(expected) = &state.settings.metrics_token else {
        return Err(Failure::not_found(
            "no metrics here: the operator serves them on another listener",
        ));
    };
    // Compared as hashes, so the time taken says nothing about the token.
    let given = bearer(&headers).map(token_hash);
    if given != Some(token_hash(&expected.0)) {
        return Err(Failure::new(
            hush_wire::ErrorCode::Unauthorized,
            "/metrics needs the operator's metrics token as a bearer token",
        ));
    }
    Ok(metrics(State(state)).await?.into_response())
}

/// `GET /metrics`: the OpenMetrics text format.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let stats = state.store.stats().await.map_err(Failure::from)?;
    let mut out = Exposition::default();
    METRICS.register(&mut out, &stats);
    state.quotas.register_metrics(&mut out);
    if let Some(cluster) = &state.cluster {
        cluster.register_metrics(&mut out);
    }
    Ok((
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        out.render(),
    ))
}

/// `GET /openapi.json`
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
