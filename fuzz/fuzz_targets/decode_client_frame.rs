//! Feeds arbitrary bytes to both client-frame decoders: they must return a frame or a typed
//! error, never panic, and a decoded frame must re-encode to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_protocol::codec::{decode_client_binary, decode_client_text, encode_binary, encode_text};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_client_binary(data) {
        assert_eq!(decode_client_binary(&encode_binary(&frame)).ok(), Some(frame));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = decode_client_text(text) {
            assert_eq!(decode_client_text(&encode_text(&frame)).ok(), Some(frame));
        }
    }
});
