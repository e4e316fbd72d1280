//! The HTTP error policy.
//!
//! Every error the API returns, its own and warp's rejections alike, is an
//! RFC 7807 `application/problem+json` document with a `detail` that says
//! what to fix. A client's mistake is a 4xx, never a 5xx: 400 for a
//! malformed request, 401 for missing or bad credentials (403 for a media
//! socket token that is wrong or spent), 404 for anything
//! the caller cannot see (another tenant's id is a 404, never a 403), 405,
//! 408 for a body that did not arrive within its read deadline, 409 for a
//! state conflict, 411, 413 for a body or upload past its limit, 415 for a
//! wrong content type, 422 for well-formed input that fails validation
//! (with `errors` naming each field; a text holding a NUL character, which
//! PostgreSQL cannot store, is one), 429 with `Retry-After` for an API key
//! over its request rate. 5xx means our side:
//! 503 when PostgreSQL or Redis cannot be reached or a request overran its
//! deadline, 500 for a bug. The cause of a 5xx is logged, never sent.

use std::convert::Infallible;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::db::DbError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A field that failed validation.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    /// JSON path of the field (`agent.greeting`) or CSV column.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 7807 problem document.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "urn:talky:problem:validation")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong this time, and what to do about it.
    pub detail: String,
    /// Per-field errors of a validation problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error of the HTTP boundary.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON syntax, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials were given but do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing the caller may see is there.
    #[error("{0}")]
    NotFound(String),
    /// The path exists, but not with this method.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// A body without Content-Length where one is needed.
    #[error("{0}")]
    LengthRequired(String),
    /// A body or upload past its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request body did not arrive within its read deadline.
    #[error("{0}")]
    RequestTimeout(String),
    /// The API key is over its request rate; retry after this many seconds.
    #[error("{detail}")]
    TooManyRequests {
        /// What happened.
        detail: String,
        /// Whole seconds until a request would be accepted (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The body's content type is not one this route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed input that fails validation.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Each failing field.
        errors: Vec<FieldError>,
    },
    /// A dependency is down or the deadline passed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug; the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

/// The detail a client gets when PostgreSQL does not answer: never the
/// driver's or pool's own text (logged instead).
pub const DB_UNAVAILABLE: &str = "the database is unavailable; retry later";

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => {
                // The cause (pool and driver text) is for the log only.
                tracing::warn!(%cause, "PostgreSQL unavailable");
                ApiError::Unavailable(DB_UNAVAILABLE.into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl ApiError {
    /// A validation problem about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::LengthRequired(_) => "length-required",
            ApiError::RequestTimeout(_) => "request-timeout",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Validation { .. } => "validation",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem document; a 500's cause is logged here and replaced.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:talky:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            errors: match self {
                ApiError::Validation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response {
        let problem = self.to_problem();
        let mut response = json_response(self.status(), &problem);
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static(PROBLEM_JSON),
        );
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from(*retry_after_secs),
            );
        }
        if matches!(self, ApiError::RequestTimeout(_)) {
            // The rest of a body that came too slowly is not waited for.
            response.headers_mut().insert(
                warp::http::header::CONNECTION,
                warp::http::HeaderValue::from_static("close"),
            );
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A JSON response with a status.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(bytes.into());
            *response.status_mut() = status;
            response.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => ApiError::Internal(format!("serialising a response: {e}")).into_response(),
    }
}

/// Turns every rejection into a problem document.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge("the request body is larger than this route accepts".into())
    } else if rejection.find::<reject::LengthRequired>().is_some() {
        ApiError::LengthRequired("this route needs a Content-Length header".into())
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::UnsupportedMediaType("unsupported content type".into())
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        ApiError::BadRequest(format!("invalid query string: {e}"))
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        ApiError::BadRequest(format!("invalid header {}", e.name()))
    } else if let Some(e) = rejection.find::<reject::MissingHeader>() {
        ApiError::BadRequest(format!("missing header {}", e.name()))
    } else if rejection
        .find::<warp::filters::ws::MissingConnectionUpgrade>()
        .is_some()
    {
        ApiError::BadRequest("this route is a WebSocket: send an upgrade request".into())
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::BadRequest(format!("invalid body: {e}"))
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such resource".into())
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_details_do_not_leak_internal_text() {
        let e = ApiError::from(DbError::Unavailable(
            "Timed out in bb8 (pool of 16, host 10.0.0.5)".into(),
        ));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let p = e.to_problem();
        assert_eq!(p.detail, DB_UNAVAILABLE);
        assert!(!p.detail.contains("bb8") && !p.detail.contains("10.0.0.5"));
        assert_eq!(p.kind, "urn:talky:problem:unavailable");
    }
}
