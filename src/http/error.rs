//! `ApiError`: every REST failure as JSON `{"error": "...", "code": status}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::admission::Full;
use crate::auth::AuthError;
use crate::store::StoreError;

/// The body of every REST failure.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "no such group team-1", "code": 404}))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The HTTP status, repeated.
    pub code: u16,
}

/// A REST failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this endpoint expects a WebSocket upgrade: {0}")]
    Upgrade(String),
    #[error("storage unavailable")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    /// No room for another WebSocket: 503 (the node) or 429 (the client's address), each
    /// with a Retry-After of this many seconds.
    #[error("{}", match .0 {
        Full::Node => "this node holds as many connections as it takes: retry later or elsewhere",
        Full::Address => "too many connections from your address",
    })]
    Full(Full, u64),
    #[error("{0}")]
    HeadersTooLarge(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Upgrade(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Full(Full::Node, _) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Full(Full::Address, _) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Store(e) = &self {
            tracing::warn!(error = %e, "request failed on storage");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
                code: status.as_u16(),
            }),
        )
            .into_response();
        if let ApiError::Full(_, seconds) = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*seconds).into());
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(format!("invalid JSON body: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// A JSON body whose rejections are `ApiError`s.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Path parameters whose rejections are `ApiError`s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathOf<T>(pub T);
