//! History export: a conversation as one download, streamed a history page at a time.
//!
//! `format=jsonl` writes one message per line exactly as the history API shows it;
//! `format=text` writes lines for people: time, sender, content, with pictures and files
//! described by name, size and type, and notices told in words. The export goes through
//! [`Chat::history`], so it sees what the caller's membership lets them see (a member who
//! left exports up to their leaving) and never holds more than one page in memory.
//!
//! If the database fails part way, the body stops without its end and the client sees a
//! broken transfer rather than a short file that looks complete.

use std::collections::HashMap;
use std::fmt::Write;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use tern_chat::{Chat, Direction};
use tern_protocol::frames::{Attachment, Content, MessageView, SystemEvent};
use tern_protocol::http::HistoryPage;
use tern_protocol::{ConversationId, ErrorCode, UserId, WireError};

use crate::auth::authenticate;
use crate::errors::ApiError;
use crate::raw::{RawBody, error_response};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    JsonLines,
    Text,
}

pub async fn serve(
    chat: Arc<Chat>,
    authorization: Option<&str>,
    conversation: i64,
    query: Option<&str>,
) -> Response<RawBody> {
    match answer(chat, authorization, ConversationId(conversation), query).await {
        Ok(response) => response,
        Err(ApiError(err)) => error_response(err),
    }
}

async fn answer(
    chat: Arc<Chat>,
    authorization: Option<&str>,
    conversation: ConversationId,
    query: Option<&str>,
) -> Result<Response<RawBody>, ApiError> {
    let format = parse_format(query)?;
    let auth = authenticate(&chat, authorization).await?;
    let page_size = chat.config.history_max_limit;
    // The first page is read before answering, so a refusal is a proper error response.
    let first = chat
        .history(auth.user, conversation, Direction::After, None, page_size)
        .await?;
    let mut export = Export {
        chat,
        reader: auth.user,
        conversation,
        format,
        page_size,
        names: HashMap::new(),
        next: Next::Page(first),
        started: false,
    };
    if format == Format::Text {
        export.name_of(auth.user).await;
    }
    let body = stream::unfold(export, |mut export| async move {
        let chunk = export.next_chunk().await?;
        Some((chunk.map(Frame::data), export))
    });
    let (content_type, extension) = match format {
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
        Format::Text => ("text/plain; charset=utf-8", "txt"),
    };
    let mut response = Response::new(StreamBody::new(body).boxed());
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"conversation-{conversation}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

fn parse_format(query: Option<&str>) -> Result<Format, ApiError> {
    let asked = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "format")
        .map(|(_, value)| value);
    match asked {
        None | Some("jsonl") => Ok(Format::JsonLines),
        Some("text") => Ok(Format::Text),
        Some(_) => Err(ApiError(WireError::new(
            ErrorCode::InvalidRequest,
            "format must be jsonl or text",
        ))),
    }
}

/// What the export writes next.
enum Next {
    /// A page read and not yet written.
    Page(HistoryPage),
    /// Read the page after this seq.
    After(u64),
    Done,
}

struct Export {
    chat: Arc<Chat>,
    reader: UserId,
    conversation: ConversationId,
    format: Format,
    page_size: usize,
    /// Usernames met so far; a conversation has a bounded number of members.
    names: HashMap<UserId, String>,
    next: Next,
    started: bool,
}

impl Export {
    /// The next piece of the body: a heading, then one page after another.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, io::Error>> {
        if !self.started {
            self.started = true;
            if self.format == Format::Text {
                return Some(Ok(Bytes::from(self.heading())));
            }
        }
        let page = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return None,
            Next::Page(page) => page,
            Next::After(seq) => {
                let read = self.chat.history(
                    self.reader,
                    self.conversation,
                    Direction::After,
                    Some(seq),
                    self.page_size,
                );
                match read.await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(error = %err, conv.id = self.conversation.0, "export stopped part way");
                        return Some(Err(io::Error::other("the export could not be completed")));
                    }
                }
            }
        };
        if let Some(last) = page.messages.last().filter(|_| page.has_more) {
            self.next = Next::After(last.seq);
        }
        Some(Ok(Bytes::from(self.render(&page.messages).await)))
    }

    fn heading(&self) -> String {
        let by = self
            .names
            .get(&self.reader)
            .map(String::as_str)
            .unwrap_or("?");
        let at = format_time(tern_chat::clock::now_ms());
        format!(
            "Conversation {}, exported by {by} at {at}\n\n",
            self.conversation
        )
    }

    async fn render(&mut self, messages: &[MessageView]) -> String {
        let mut out = String::new();
        for message in messages {
            match self.format {
                Format::JsonLines => {
                    if let Ok(line) = serde_json::to_string(message) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                Format::Text => {
                    let line = self.text_line(message).await;
                    out.push_str(&line);
                }
            }
        }
        out
    }

    /// One message for people: `[time] sender: content`, continuation lines indented.
    async fn text_line(&mut self, message: &MessageView) -> String {
        let at = format_time(message.created_at);
        let sender = self.name_of(message.sender_id).await;
        let body = match &message.content {
            Content::Text { text } => text.clone(),
            Content::Image { attachment } => format!("[picture {}]", describe(attachment)),
            Content::File { attachment } => format!("[file {}]", describe(attachment)),
            Content::Custom {
                custom_type,
                payload,
            } => format!("[{custom_type}] {payload}"),
            Content::Recalled {} => "(message recalled)".to_owned(),
            Content::System { event } => {
                let notice = self.tell(event).await;
                return format!("[{at}] * {notice}\n");
            }
        };
        let mut line = format!("[{at}] {sender}: ");
        for (i, part) in body.split('\n').enumerate() {
            if i > 0 {
                line.push_str("\n    ");
            }
            line.push_str(part.trim_end_matches('\r'));
        }
        line.push('\n');
        line
    }

    /// A notice in words.
    async fn tell(&mut self, event: &SystemEvent) -> String {
        match event {
            SystemEvent::GroupCreated { title, by } => {
                format!("{} created the group \"{title}\"", self.name_of(*by).await)
            }
            SystemEvent::MemberJoined { user_id, by } if user_id == by => {
                format!("{} joined", self.name_of(*user_id).await)
            }
            SystemEvent::MemberJoined { user_id, by } => {
                format!(
                    "{} added {}",
                    self.name_of(*by).await,
                    self.name_of(*user_id).await
                )
            }
            SystemEvent::MemberLeft { user_id, by } if user_id == by => {
                format!("{} left", self.name_of(*user_id).await)
            }
            SystemEvent::MemberLeft { user_id, by } => {
                format!(
                    "{} removed {}",
                    self.name_of(*by).await,
                    self.name_of(*user_id).await
                )
            }
            SystemEvent::MessageRecalled { by, .. } => {
                format!("{} recalled a message", self.name_of(*by).await)
            }
            SystemEvent::FriendRequested { user_id } => {
                format!("friend request from {}", self.name_of(*user_id).await)
            }
            SystemEvent::FriendAccepted { user_id } => {
                format!("{} accepted a friend request", self.name_of(*user_id).await)
            }
            SystemEvent::FriendRejected { user_id } => {
                format!("{} declined a friend request", self.name_of(*user_id).await)
            }
            SystemEvent::FriendRemoved { user_id } => {
                format!("{} is no longer a friend", self.name_of(*user_id).await)
            }
        }
    }

    async fn name_of(&mut self, user: UserId) -> String {
        if let Some(name) = self.names.get(&user) {
            return name.clone();
        }
        let name = match self.chat.account_by_id(user).await {
            Ok(Some(account)) => account.username,
            _ => format!("user {user}"),
        };
        self.names.insert(user, name.clone());
        name
    }
}

fn describe(attachment: &Attachment) -> String {
    let mut text = format!(
        "{}, {}, {}",
        attachment.name,
        human_size(attachment.size),
        attachment.mime
    );
    if let (Some(w), Some(h)) = (attachment.width, attachment.height) {
        let _ = write!(text, ", {w}x{h}");
    }
    text
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`...
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2025-12-04 14:00:00 UTC` from milliseconds since the Unix epoch.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01, computed in
/// 400-year eras (each exactly 146,097 days) with years starting in March, so the leap day
/// falls at the end of the year.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_764_856_800_123), "2025-12-04 14:00:00 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_time(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
        assert_eq!(format_time(-1_000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(12_595), "12.3 KiB");
        assert_eq!(human_size(4 * 1024 * 1024), "4.0 MiB");
    }

    #[test]
    fn the_format_is_jsonl_unless_text_is_asked() {
        assert_eq!(parse_format(None).ok(), Some(Format::JsonLines));
        assert_eq!(parse_format(Some("format=text")).ok(), Some(Format::Text));
        assert_eq!(
            parse_format(Some("x=1&format=jsonl")).ok(),
            Some(Format::JsonLines)
        );
        assert!(parse_format(Some("format=html")).is_err());
    }
}
