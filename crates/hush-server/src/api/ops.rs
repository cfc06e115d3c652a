//! Health, metrics and the API description.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hush_wire::api::Health;

use crate::app::AppState;
use crate::error::{ApiResult, Failure};
use crate::metrics::METRICS;

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

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let stats = state.store.stats().await.map_err(Failure::from)?;
    let mut text = METRICS.render(&stats);
    state.quotas.render_metrics(&mut text);
    if let Some(cluster) = &state.cluster {
        cluster.render_metrics(&mut text);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// `GET /openapi.json`
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
