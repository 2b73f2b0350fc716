//! Newtype ids, so that a user id can never be passed where a conversation id is meant.
//!
//! On the wire every id is a decimal string; readers also accept a JSON number, which older or
//! hand-written clients tend to send.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! wire_id {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(IdVisitor::<$inner>::default()).map($name)
            }
        }
    };
}

wire_id!(
    /// A registered account.
    UserId(i64)
);
wire_id!(
    /// A one-to-one or group conversation.
    ConversationId(i64)
);
wire_id!(
    /// A message, unique across the whole system and increasing within its conversation.
    /// Its layout is described in the `tern-idgen` crate.
    MessageId(u64)
);

struct IdVisitor<T>(std::marker::PhantomData<T>);

impl<T> Default for IdVisitor<T> {
    fn default() -> Self {
        IdVisitor(std::marker::PhantomData)
    }
}

impl<T> Visitor<'_> for IdVisitor<T>
where
    T: TryFrom<u64> + TryFrom<i64> + std::str::FromStr,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id as a decimal string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        // Digits only: no sign, no spaces, no leading zeros, so one id has one spelling.
        let canonical = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
        if !canonical {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        if v < 0 {
            return Err(E::invalid_value(de::Unexpected::Signed(v), &self));
        }
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_strings_and_read_from_numbers_too() -> Result<(), serde_json::Error> {
        let big = MessageId(u64::MAX - 1);
        let text = serde_json::to_string(&big)?;
        assert_eq!(text, "\"18446744073709551614\"");
        assert_eq!(serde_json::from_str::<MessageId>(&text)?, big);
        assert_eq!(serde_json::from_str::<UserId>("42")?, UserId(42));
        assert!(serde_json::from_str::<UserId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<MessageId>("-1").is_err());
        for bad in ["\"+2\"", "\"02\"", "\"-1\"", "\" 1\"", "\"\"", "-1"] {
            assert!(serde_json::from_str::<UserId>(bad).is_err(), "{bad} accepted");
        }
        Ok(())
    }
}
