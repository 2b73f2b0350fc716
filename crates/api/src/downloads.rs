//! Downloads of attachments and their thumbnails, streamed from disk with byte ranges.
//!
//! The caller must be allowed to read the message that carries the attachment: a member
//! whose membership window covers it. An attachment whose message is not committed, or was
//! recalled, is not served. Every answer carries headers that keep a browser from running
//! what it downloads: no sniffing, a sandboxing CSP, `attachment` disposition, and a type
//! that is either a checked picture type or on a short list of harmless ones.

use std::io::{self, SeekFrom};

use bytes::BytesMut;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use tern_chat::Chat;
use tern_protocol::{ConversationId, ErrorCode, WireError};
use tern_storage::attachments::{self, AttachmentRow};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::auth::authenticate;
use crate::errors::ApiError;
use crate::files::{Files, is_valid_id};
use crate::media;
use crate::raw::{RawBody, error_response, error_with_status};

/// How much of a file one body chunk carries.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What a download asks for.
pub struct Ask<'a> {
    pub id: &'a str,
    pub thumbnail: bool,
    /// The `Range` header, if any.
    pub range: Option<&'a str>,
}

pub async fn serve(
    chat: &Chat,
    files: &Files,
    authorization: Option<&str>,
    ask: Ask<'_>,
) -> Response<RawBody> {
    match answer(chat, files, authorization, ask).await {
        Ok(response) => response,
        Err(ApiError(err)) => error_response(err),
    }
}

async fn answer(
    chat: &Chat,
    files: &Files,
    authorization: Option<&str>,
    ask: Ask<'_>,
) -> Result<Response<RawBody>, ApiError> {
    let auth = authenticate(chat, authorization).await?;
    let row = readable(chat, auth.user, ask.id).await?;
    if ask.thumbnail && !row.thumbnail {
        return Err(not_found("this attachment has no thumbnail"));
    }
    let path = if ask.thumbnail {
        files.thumbnail(&row.id)
    } else {
        files.original(&row.id)
    };
    let path = path.ok_or_else(|| not_found("no such attachment"))?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) => {
            tracing::warn!(error = %err, attachment.id = %row.id, "an attachment's content is missing");
            return Err(not_found("the attachment's content is gone"));
        }
    };
    let size = file.metadata().await.map_err(read_failure)?.len();
    let headers = safe_headers(&row, ask.thumbnail)?;
    match parse_range(ask.range, size) {
        Range::Unsatisfiable => {
            let err = WireError::new(
                ErrorCode::InvalidRequest,
                format!("the range is outside the file's {size} bytes"),
            );
            let mut response = error_with_status(err, StatusCode::RANGE_NOT_SATISFIABLE);
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}"))?);
            response
                .headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            Ok(response)
        }
        Range::Full => {
            let mut response = Response::new(file_body(file, size));
            *response.headers_mut() = headers;
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, value(&size.to_string())?);
            Ok(response)
        }
        Range::Part { start, end } => {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(read_failure)?;
            let len = end - start + 1;
            let mut response = Response::new(file_body(file, len));
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            *response.headers_mut() = headers;
            let h = response.headers_mut();
            h.insert(header::CONTENT_LENGTH, value(&len.to_string())?);
            h.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {start}-{end}/{size}"))?,
            );
            Ok(response)
        }
    }
}

/// The attachment, if `reader` may download it.
async fn readable(
    chat: &Chat,
    reader: tern_protocol::UserId,
    id: &str,
) -> Result<AttachmentRow, ApiError> {
    if !is_valid_id(id) {
        return Err(not_found("no such attachment"));
    }
    let lookup = id.to_owned();
    let found = chat
        .blocking(move |conn| {
            let Some(mut row) = attachments::find(conn, &lookup)? else {
                return Ok(None);
            };
            let carrier = if row.seq.is_none() {
                attachments::carrier_seq(conn, &row)?
            } else {
                None
            };
            if let Some(seq) = carrier {
                attachments::set_seq(conn, &row.id, seq)?;
                row.seq = Some(seq);
            }
            let live = match row.seq {
                Some(seq) => {
                    attachments::carrier_is_live(conn, ConversationId(row.conversation_id), seq)?
                }
                None => false,
            };
            Ok(Some((row, live)))
        })
        .await?;
    let (row, live) = found.ok_or_else(|| not_found("no such attachment"))?;
    let seq = row
        .seq
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| not_found("no such attachment"))?;
    if !chat
        .can_read(reader, ConversationId(row.conversation_id), seq)
        .await?
    {
        return Err(ApiError(WireError::new(
            ErrorCode::NotMember,
            "not a member of this conversation",
        )));
    }
    if !live {
        return Err(not_found(
            "the message carrying this attachment was recalled",
        ));
    }
    Ok(row)
}

/// The headers every successful download carries.
fn safe_headers(row: &AttachmentRow, thumbnail: bool) -> Result<HeaderMap, ApiError> {
    let content_type = if thumbnail {
        media::thumbnail_type(&row.mime)
    } else {
        media::download_type(&row.mime)
    };
    let name = if thumbnail {
        format!("thumbnail-{}", row.name)
    } else {
        row.name.clone()
    };
    let etag = if thumbnail {
        format!("\"{}-thumbnail\"", row.sha256)
    } else {
        format!("\"{}\"", row.sha256)
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&content_disposition(&name))?,
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag)?);
    Ok(h)
}

/// `attachment` with an ASCII `filename` for old clients and the exact name, percent-encoded
/// as UTF-8, in `filename*` (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        // RFC 8187 attr-char: sent as it is; everything else as %XX.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// No range, or one this server ignores (several ranges, another unit, a malformed one):
    /// the whole file.
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A well-formed range that lies outside the file.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.map(str::trim) else {
        return Range::Full;
    };
    let Some(spec) = spec.strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `bytes=-n`: the last n bytes.
        let Ok(n) = last.parse::<u64>() else {
            return Range::Full;
        };
        if n == 0 || size == 0 {
            return Range::Unsatisfiable;
        }
        return Range::Part {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return Range::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return Range::Full,
        }
    };
    if start >= size {
        return Range::Unsatisfiable;
    }
    Range::Part {
        start,
        end: end.min(size - 1),
    }
}

/// `len` bytes of `file` from where it stands, in chunks.
fn file_body(file: tokio::fs::File, len: u64) -> RawBody {
    let chunks = stream::unfold((file.take(len), len), |(mut reader, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        match reader.read_buf(&mut buf).await {
            Ok(0) => {
                let short = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than it was",
                );
                Some((Err(short), (reader, 0)))
            }
            Ok(n) => Some((Ok(Frame::data(buf.freeze())), (reader, left - n as u64))),
            Err(err) => Some((Err(err), (reader, 0))),
        }
    });
    StreamBody::new(chunks).boxed()
}

fn value(text: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(text).map_err(|_| {
        ApiError::from(tern_chat::ChatError::Internal(format!(
            "bad header value {text:?}"
        )))
    })
}

fn not_found(message: &str) -> ApiError {
    ApiError(WireError::new(ErrorCode::NotFound, message))
}

fn read_failure(err: io::Error) -> ApiError {
    ApiError::from(tern_chat::ChatError::Internal(format!(
        "reading an attachment: {err}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_understood_and_others_ignored() {
        assert_eq!(parse_range(None, 10), Range::Full);
        assert_eq!(
            parse_range(Some("bytes=2-5"), 10),
            Range::Part { start: 2, end: 5 }
        );
        assert_eq!(
            parse_range(Some("bytes=7-"), 10),
            Range::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Range::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Range::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Range::Part { start: 5, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Range::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Range::Full);
    }

    #[test]
    fn names_in_the_disposition_are_quoted_safely() {
        assert_eq!(
            content_disposition("cat.png"),
            "attachment; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition("résumé \"v2\".pdf"),
            "attachment; filename=\"r_sum_ _v2_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
    }
}
