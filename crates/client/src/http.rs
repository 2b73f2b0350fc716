//! HTTP/1.1 calls over a fresh connection each, which keeps the client free of a pool.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body, Frame};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tern_protocol::http::{Account, Credentials, ErrorBody, HistoryPage, Session};
use tern_protocol::{ConversationId, WireError};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error body.
    #[error("{status}: {error}")]
    Api { status: u16, error: WireError },
    /// The server answered something that is not the expected JSON.
    #[error("unexpected response {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("transport: {0}")]
    Transport(String),
}

impl HttpError {
    /// The wire error code, when the server gave one.
    pub fn code(&self) -> Option<tern_protocol::ErrorCode> {
        match self {
            HttpError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

fn transport(err: impl std::fmt::Display) -> HttpError {
    HttpError::Transport(err.to_string())
}

/// A raw response: status, headers and body bytes.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error the body carries, if it is an error response.
    pub fn error(&self) -> Option<WireError> {
        serde_json::from_slice::<ErrorBody>(&self.body).ok().map(|b| b.error)
    }
}

/// One part of a multipart upload.
pub enum FormPart {
    Text { name: String, value: String },
    File(FilePart),
}

impl FormPart {
    pub fn text(name: &str, value: impl ToString) -> FormPart {
        FormPart::Text { name: name.into(), value: value.to_string() }
    }
}

/// A file part whose content arrives as a stream of chunks of `len` bytes in all.
pub struct FilePart {
    pub field: String,
    pub file_name: String,
    pub content_type: String,
    pub len: u64,
    pub chunks: std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send + Sync>>,
}

impl FilePart {
    /// A file part from bytes held in memory.
    pub fn bytes(file_name: &str, content_type: &str, content: impl Into<Bytes>) -> FilePart {
        let content = content.into();
        FilePart {
            field: "file".into(),
            file_name: file_name.into(),
            content_type: content_type.into(),
            len: content.len() as u64,
            chunks: Box::pin(stream::iter([content])),
        }
    }
}

/// Separates the parts of an upload; long and odd enough never to occur in the tests' content.
const BOUNDARY: &str = "tern-form-boundary-3f9c1e7a5b2d4c68";

/// Talks to one server, e.g. `http://127.0.0.1:8080`.
#[derive(Clone, Debug)]
pub struct HttpClient {
    host: String,
}

impl HttpClient {
    pub fn new(base: &str) -> HttpClient {
        let host = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        HttpClient { host }
    }

    /// The `host:port` this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn register(&self, username: &str, password: &str) -> Result<Account, HttpError> {
        let body = Credentials { username: username.into(), password: password.into() };
        self.json("POST", "/api/v1/accounts", None, Some(&body)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session, HttpError> {
        let body = Credentials { username: username.into(), password: password.into() };
        self.json("POST", "/api/v1/sessions", None, Some(&body)).await
    }

    /// Registers (ignoring a taken name) and logs in.
    pub async fn sign_up(&self, username: &str, password: &str) -> Result<Session, HttpError> {
        match self.register(username, password).await {
            Ok(_) => {}
            Err(err) if err.code() == Some(tern_protocol::ErrorCode::Conflict) => {}
            Err(err) => return Err(err),
        }
        self.login(username, password).await
    }

    pub async fn logout(&self, token: &str) -> Result<(), HttpError> {
        let response = self.raw("DELETE", "/api/v1/sessions/current", Some(token), None).await?;
        expect_empty(response)
    }

    pub async fn user_by_name(&self, token: &str, username: &str) -> Result<Account, HttpError> {
        let path = format!("/api/v1/users?username={username}");
        self.json::<(), _>("GET", &path, Some(token), None).await
    }

    /// A history page; `query` is e.g. `before=10&limit=20`.
    pub async fn history(
        &self,
        token: &str,
        conversation: ConversationId,
        query: &str,
    ) -> Result<HistoryPage, HttpError> {
        let path = format!("/api/v1/conversations/{conversation}/messages?{query}");
        self.json::<(), _>("GET", &path, Some(token), None).await
    }

    /// Any JSON call.
    pub async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, HttpError> {
        let bytes = match body {
            Some(body) => Some(Bytes::from(serde_json::to_vec(body).map_err(transport)?)),
            None => None,
        };
        let response = self.raw(method, path, token, bytes).await?;
        decode(response)
    }

    /// Any call, returning the raw status and body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<RawResponse, HttpError> {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        self.send(request, token, Full::new(body.unwrap_or_default())).await
    }

    /// A `GET` with extra headers (a `Range`, say), returning the raw response.
    pub async fn get(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Result<RawResponse, HttpError> {
        let mut request = Request::builder().method("GET").uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, token, Full::new(Bytes::new())).await
    }

    /// A multipart `POST /api/v1/uploads`, the file streamed from its chunks.
    pub async fn upload(&self, token: &str, parts: Vec<FormPart>) -> Result<RawResponse, HttpError> {
        let mut len = 0u64;
        let mut pieces: Vec<std::pin::Pin<Box<dyn Stream<Item = Bytes> + Send + Sync>>> = Vec::new();
        for part in parts {
            let (head, content) = match part {
                FormPart::Text { name, value } => {
                    let head = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
                    (head, None)
                }
                FormPart::File(file) => {
                    let head = format!(
                        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                        file.field, file.file_name, file.content_type
                    );
                    len += file.len + 2;
                    (head, Some(file.chunks))
                }
            };
            len += head.len() as u64;
            pieces.push(Box::pin(stream::iter([Bytes::from(head)])));
            if let Some(chunks) = content {
                pieces.push(chunks);
                pieces.push(Box::pin(stream::iter([Bytes::from_static(b"\r\n")])));
            }
        }
        let tail = format!("--{BOUNDARY}--\r\n");
        len += tail.len() as u64;
        pieces.push(Box::pin(stream::iter([Bytes::from(tail)])));
        let body = StreamBody::new(stream::iter(pieces).flatten().map(|b| Ok::<_, Infallible>(Frame::data(b))));
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/uploads")
            .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .header(CONTENT_LENGTH, len);
        self.send(request, Some(token), body).await
    }

    async fn send<B>(&self, request: hyper::http::request::Builder, token: Option<&str>, body: B) -> Result<RawResponse, HttpError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = TcpStream::connect(&self.host).await.map_err(transport)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(transport)?;
        tokio::spawn(connection);
        let mut request = request.header(HOST, &self.host);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(body).map_err(transport)?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.map_err(transport)?.to_bytes();
        Ok(RawResponse { status, headers, body })
    }
}

fn decode<T: DeserializeOwned>(response: RawResponse) -> Result<T, HttpError> {
    if (200..300).contains(&response.status) {
        return serde_json::from_slice(&response.body).map_err(|_| unexpected(&response));
    }
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) => Err(HttpError::Api { status: response.status, error: body.error }),
        Err(_) => Err(unexpected(&response)),
    }
}

fn expect_empty(response: RawResponse) -> Result<(), HttpError> {
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    decode::<serde_json::Value>(response).map(|_| ())
}

fn unexpected(response: &RawResponse) -> HttpError {
    HttpError::Unexpected {
        status: response.status,
        body: String::from_utf8_lossy(&response.body).chars().take(500).collect(),
    }
}
