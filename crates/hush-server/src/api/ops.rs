//! Health, metrics and the API description.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hush_wire::api::Health;

use crate::app::AppState;
use crate::error::{ApiResult, Failure};
use crate::metrics::METRICS;

/// `GET /healthz`: 200 when the database answers.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.store.ping().await {
        (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok".into(),
            }),
        )
            .into_response()
    } else {
        Failure::new(
            hush_wire::ErrorCode::Unavailable,
            "the database does not answer",
        )
        .into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let stats = state.store.stats().await.map_err(Failure::from)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(&stats),
    ))
}

/// `GET /openapi.json`
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
