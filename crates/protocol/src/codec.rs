//! The two frame encodings and the one place a frame is parsed.
//!
//! - JSON in WebSocket text frames: readable, the default.
//! - MessagePack in WebSocket binary frames: compact, with mature libraries in JavaScript,
//!   Kotlin, Swift and Go. The mapping is the JSON one, field for field (maps with the same
//!   keys, ids as strings), so a client can switch encodings without learning a second schema.
//!
//! Decoding tells apart the three ways a frame can be wrong, so a client learns which one it
//! made: not parseable at all (`bad_frame`), a `type` this server does not know
//! (`unknown_type`), or a known type with missing or mistyped fields (`invalid_field`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ClientFrame, ErrorCode, ServerFrame, WireError};

/// Which encoding a connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    MessagePack,
}

/// Parses a client frame from a text (JSON) frame.
pub fn decode_client_text(text: &str) -> Result<ClientFrame, WireError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| WireError::new(ErrorCode::BadFrame, format!("not JSON: {err}")))?;
    typed_frame(value, ClientFrame::TYPES)
}

/// Parses a client frame from a binary (MessagePack) frame.
pub fn decode_client_binary(bytes: &[u8]) -> Result<ClientFrame, WireError> {
    let value: Value = rmp_serde::from_slice(bytes)
        .map_err(|err| WireError::new(ErrorCode::BadFrame, format!("not MessagePack: {err}")))?;
    typed_frame(value, ClientFrame::TYPES)
}

/// Parses a server frame; used by clients.
pub fn decode_server_text(text: &str) -> Result<ServerFrame, WireError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| WireError::new(ErrorCode::BadFrame, format!("not JSON: {err}")))?;
    from_value(value)
}

/// Parses a server frame from MessagePack; used by clients.
pub fn decode_server_binary(bytes: &[u8]) -> Result<ServerFrame, WireError> {
    rmp_serde::from_slice(bytes)
        .map_err(|err| WireError::new(ErrorCode::BadFrame, format!("not MessagePack: {err}")))
}

/// Encodes a frame as JSON text.
pub fn encode_text<T: Serialize>(frame: &T) -> String {
    // Serialising these types cannot fail: every map key is a string and no Serialize impl
    // here returns an error.
    serde_json::to_string(frame).unwrap_or_default()
}

/// Encodes a frame as MessagePack, with field names, matching the JSON mapping.
pub fn encode_binary<T: Serialize>(frame: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(frame).unwrap_or_default()
}

/// The `client_msg_id` of a frame that failed to parse, if it had one, so the error can name
/// the send it answers.
pub fn client_msg_id_of_text(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    value.get("client_msg_id")?.as_str().map(str::to_owned)
}

fn typed_frame<T: DeserializeOwned>(value: Value, known: &[&str]) -> Result<T, WireError> {
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(WireError::new(ErrorCode::InvalidField, "frame has no string field `type`"));
    };
    if !known.contains(&kind) {
        let shown: String = kind.chars().take(40).collect();
        return Err(WireError::new(ErrorCode::UnknownType, format!("unknown frame type `{shown}`")));
    }
    from_value(value)
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, WireError> {
    serde_json::from_value(value).map_err(|err| WireError::new(ErrorCode::InvalidField, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::Content;
    use crate::ids::UserId;

    #[test]
    fn the_three_kinds_of_bad_frame_get_their_own_codes() {
        let code = |text: &str| decode_client_text(text).err().map(|e| e.code);
        assert_eq!(code("{nope"), Some(ErrorCode::BadFrame));
        assert_eq!(code(r#"{"type":"fly"}"#), Some(ErrorCode::UnknownType));
        assert_eq!(code(r#"{"type":"send"}"#), Some(ErrorCode::InvalidField));
        assert_eq!(code(r#"[1,2]"#), Some(ErrorCode::InvalidField));
    }

    #[test]
    fn a_send_reads_the_same_from_json_and_messagepack() -> Result<(), WireError> {
        let frame = ClientFrame::Send {
            client_msg_id: "c1".into(),
            to_user: Some(UserId(7)),
            conversation_id: None,
            content: Content::Text { text: "hi".into() },
        };
        assert_eq!(decode_client_text(&encode_text(&frame))?, frame);
        assert_eq!(decode_client_binary(&encode_binary(&frame))?, frame);
        let parsed = decode_client_text(
            r#"{"type":"send","client_msg_id":"c1","to_user":"7","kind":"text","text":"hi"}"#,
        )?;
        assert_eq!(parsed, frame);
        Ok(())
    }
}
