//! The HTTP upgrade to WebSocket: checks, subprotocol choice, and the hand-off to a session.
//!
//! Browsers send `Origin` on WebSocket requests but do not enforce same-origin for them, so
//! without this check any web page a user visits could open a socket with the user's
//! credentials (cross-site WebSocket hijacking). Native clients send no `Origin` and pass.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tern_protocol::codec::{Encoding, encode_text};
use tern_protocol::http::ErrorBody;
use tern_protocol::{ErrorCode, WireError};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::{Gateway, session};

/// The subprotocol that selects MessagePack binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "tern.msgpack";
/// The subprotocol that selects JSON text frames (also the default without one).
pub const SUBPROTOCOL_JSON: &str = "tern.json";

/// Whether a request asks for a WebSocket upgrade.
pub fn is_websocket_request<B>(req: &Request<B>) -> bool {
    header_has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Answers an upgrade request and, when it is accepted, starts the session task.
pub fn accept(gateway: &Arc<Gateway>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if header_has_token(headers, header::CONNECTION, "upgrade") => key.clone(),
        _ => return plain(StatusCode::BAD_REQUEST, "not a WebSocket upgrade request"),
    };
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 required");
    }
    if !origin_allowed(headers, &gateway.config.allowed_origins) {
        tracing::info!("WebSocket refused: origin not allowed");
        return plain(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let Ok(permit) = gateway.connections.clone().try_acquire_owned() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let (encoding, protocol) = choose_encoding(headers);
    let config = socket_config(gateway);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let gateway = gateway.clone();
    tokio::spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                session::run(gateway, socket, encoding).await;
            }
            Err(err) => tracing::debug!(error = %err, "upgrade failed"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        out.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    response
}

/// Small buffers and hard limits: an idle connection should cost a few KiB, and no single
/// client can make the server buffer more than `max_message_bytes` for it.
fn socket_config(gateway: &Gateway) -> WebSocketConfig {
    let limits = &gateway.config;
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(limits.max_message_bytes)
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
}

fn choose_encoding(headers: &HeaderMap) -> (Encoding, Option<&'static str>) {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if offered.iter().any(|p| p == SUBPROTOCOL_MSGPACK) {
        (Encoding::MessagePack, Some(SUBPROTOCOL_MSGPACK))
    } else if offered.iter().any(|p| p == SUBPROTOCOL_JSON) {
        (Encoding::Json, Some(SUBPROTOCOL_JSON))
    } else {
        (Encoding::Json, None)
    }
}

/// No `Origin`: a native client. Otherwise the origin must be listed, `*` must be listed, or
/// it must be this server itself (the bundled web page).
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A refusal in the same JSON error body as every other HTTP error.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let code = match status {
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        _ => ErrorCode::InvalidRequest,
    };
    let body = ErrorBody { error: WireError::new(code, text) };
    let mut response = Response::new(Full::new(Bytes::from(encode_text(&body))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn foreign_origins_are_refused_unless_listed() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(&headers(&[("host", "a:1")]), &none));
        assert!(origin_allowed(&headers(&[("host", "a:1"), ("origin", "http://a:1")]), &none));
        assert!(!origin_allowed(&headers(&[("host", "a:1"), ("origin", "http://evil")]), &none));
        let listed = vec!["http://evil".to_owned()];
        assert!(origin_allowed(&headers(&[("host", "a:1"), ("origin", "http://evil")]), &listed));
    }

    #[test]
    fn the_msgpack_subprotocol_selects_binary_frames() {
        let offered = headers(&[("sec-websocket-protocol", "tern.json, tern.msgpack")]);
        assert_eq!(choose_encoding(&offered).0, Encoding::MessagePack);
        assert_eq!(choose_encoding(&HeaderMap::new()), (Encoding::Json, None));
    }
}
