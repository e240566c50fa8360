//! HTTP errors of the read API: never SQL or internals in a response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What a read can answer besides data.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No row for a `one` route.
    #[error("not found")]
    NotFound,
    /// The request cannot be answered as asked (a bad parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The read store failed; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "read API query failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

impl From<crate::sink::SinkError> for ApiError {
    fn from(e: crate::sink::SinkError) -> Self {
        match e {
            crate::sink::SinkError::Refused { detail, .. } => ApiError::BadRequest(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
