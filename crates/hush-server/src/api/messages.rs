//! `POST /v1/messages`: a thin adapter over [`crate::delivery::accept`],
//! which a send over the device's WebSocket goes through too.

use axum::extract::State;
use hush_wire::api::{SendRequest, SendResponse};

use crate::app::AppState;
use crate::auth::AuthDevice;
use crate::error::ApiResult;
use crate::extract::Body;

/// `POST /v1/messages`
pub async fn send(
    State(state): State<AppState>,
    AuthDevice(me): AuthDevice,
    Body(req): Body<SendRequest>,
) -> ApiResult<axum::Json<SendResponse>> {
    crate::delivery::accept(&state, &me, req)
        .await
        .map(axum::Json)
}
