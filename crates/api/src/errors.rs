//! The one place HTTP errors are turned into responses.

use std::convert::Infallible;

use tern_chat::ChatError;
use tern_protocol::http::ErrorBody;
use tern_protocol::{ErrorCode, WireError};
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

/// A refusal on its way out as a rejection.
#[derive(Debug)]
pub struct ApiError(pub WireError);

impl Reject for ApiError {}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> Self {
        if !matches!(err, ChatError::Refused(_)) {
            tracing::warn!(error = %err, "request failed");
        }
        ApiError(err.to_wire())
    }
}

pub fn reject(err: impl Into<ApiError>) -> Rejection {
    warp::reject::custom(err.into())
}

/// Builds the JSON error response for a code and message.
pub fn response(err: WireError) -> warp::reply::Response {
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(warp::reply::json(&ErrorBody { error: err }), status).into_response()
}

/// Maps every rejection, ours or warp's, to the wire error format.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let err = if let Some(ApiError(err)) = rejection.find::<ApiError>() {
        err.clone()
    } else if rejection.is_not_found() {
        WireError::new(ErrorCode::NotFound, "no such route")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        WireError::new(ErrorCode::FrameTooLarge, "request body too large")
    } else if let Some(e) = rejection.find::<warp::body::BodyDeserializeError>() {
        WireError::new(ErrorCode::InvalidField, e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        WireError::new(ErrorCode::InvalidField, e.to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        WireError::new(ErrorCode::NotFound, "method not allowed on this route")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        WireError::new(ErrorCode::InvalidRequest, "Content-Length required")
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        WireError::new(ErrorCode::InvalidRequest, "unsupported content type")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        WireError::new(ErrorCode::InvalidRequest, e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        WireError::new(ErrorCode::Unauthorized, e.to_string())
    } else {
        // Mostly bodies that failed to arrive (a client that gave up or stalled): the
        // client's problem, so not worth a warning each time.
        tracing::debug!(rejection = ?rejection, "unmapped rejection");
        WireError::new(ErrorCode::InvalidRequest, "bad request")
    };
    Ok(response(err))
}
