//! Routes whose answers are streamed from disk or from the database: downloads and history
//! export.
//!
//! warp has no public way to build a response from a stream, so these are served by a small
//! handler on hyper's own types, which the listener asks before handing a request to warp.
//! Only `GET` on these paths is taken; anything else falls through to warp and its usual
//! answers. Errors leave in the same JSON format as the warp routes'.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tern_chat::Chat;
use tern_protocol::WireError;
use tern_protocol::http::ErrorBody;

use crate::ApiConfig;
use crate::files::Files;
use crate::{downloads, export};

/// The body of a streamed answer.
pub type RawBody = BoxBody<Bytes, io::Error>;

/// The streamed routes of one server.
pub struct RawRoutes {
    chat: Arc<Chat>,
    files: Files,
}

/// A request this handler serves, parsed from its path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `/api/v1/attachments/{id}` and `/api/v1/attachments/{id}/thumbnail`.
    Attachment { id: String, thumbnail: bool },
    /// `/api/v1/conversations/{id}/export`.
    Export { conversation: i64 },
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        if let Some(rest) = path.strip_prefix("/api/v1/attachments/") {
            let (id, thumbnail) = match rest.split_once('/') {
                None => (rest, false),
                Some((id, "thumbnail")) => (id, true),
                Some(_) => return None,
            };
            return (!id.is_empty()).then(|| Route::Attachment {
                id: id.to_owned(),
                thumbnail,
            });
        }
        let rest = path.strip_prefix("/api/v1/conversations/")?;
        let (id, "export") = rest.split_once('/')? else {
            return None;
        };
        Some(Route::Export {
            conversation: id.parse().ok()?,
        })
    }
}

impl RawRoutes {
    pub fn new(chat: Arc<Chat>, config: &ApiConfig) -> Arc<RawRoutes> {
        Arc::new(RawRoutes {
            chat,
            files: Files::new(config),
        })
    }

    /// The answer to `req` if it is one of these routes; `None` hands it on to warp.
    pub fn handle<B>(
        self: &Arc<Self>,
        req: &Request<B>,
    ) -> Option<impl Future<Output = Response<RawBody>> + Send + use<B>> {
        if req.method() != Method::GET {
            return None;
        }
        let route = Route::parse(req.uri().path())?;
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let authorization = header(header::AUTHORIZATION);
        let range = header(header::RANGE);
        let query = req.uri().query().map(str::to_owned);
        let path = req.uri().path().to_owned();
        let this = self.clone();
        Some(async move {
            let started = Instant::now();
            let response = match route {
                Route::Attachment { id, thumbnail } => {
                    let ask = downloads::Ask {
                        id: &id,
                        thumbnail,
                        range: range.as_deref(),
                    };
                    downloads::serve(&this.chat, &this.files, authorization.as_deref(), ask).await
                }
                Route::Export { conversation } => {
                    export::serve(
                        this.chat.clone(),
                        authorization.as_deref(),
                        conversation,
                        query.as_deref(),
                    )
                    .await
                }
            };
            tracing::debug!(
                method = "GET",
                path,
                status = response.status().as_u16(),
                duration_ms = started.elapsed().as_millis() as u64,
                "http request"
            );
            response
        })
    }
}

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> RawBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The JSON error answer, with the status its code maps to.
pub fn error_response(err: WireError) -> Response<RawBody> {
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_with_status(err, status)
}

/// The JSON error answer with a status of the caller's choosing (416 has no code of its own).
pub fn error_with_status(err: WireError, status: StatusCode) -> Response<RawBody> {
    let body = serde_json::to_vec(&ErrorBody { error: err }).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_streamed_paths_are_taken() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            Route::parse(&format!("/api/v1/attachments/{id}")),
            Some(Route::Attachment {
                id: id.into(),
                thumbnail: false
            })
        );
        assert_eq!(
            Route::parse(&format!("/api/v1/attachments/{id}/thumbnail")),
            Some(Route::Attachment {
                id: id.into(),
                thumbnail: true
            })
        );
        assert_eq!(
            Route::parse("/api/v1/conversations/7/export"),
            Some(Route::Export { conversation: 7 })
        );
        assert_eq!(Route::parse("/api/v1/conversations/7/messages"), None);
        assert_eq!(Route::parse("/api/v1/conversations/x/export"), None);
        assert_eq!(
            Route::parse(&format!("/api/v1/attachments/{id}/other")),
            None
        );
        assert_eq!(Route::parse("/api/v1/attachments/"), None);
        assert_eq!(Route::parse("/api/v1/uploads"), None);
    }
}
