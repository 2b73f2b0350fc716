//! The 64-bit message id clients see.
//!
//! ```text
//!  63 62                              32 31                               0
//! +--+----------------------------------+----------------------------------+
//! | 0|   conversation id (31 bits)      |   seq within the conversation    |
//! +--+----------------------------------+----------------------------------+
//! ```
//!
//! The top bit stays clear so the id is also a positive `i64` (PostgreSQL and MySQL have no
//! unsigned 64-bit column type that all three backends share). Two messages get the same id only
//! if they have the same conversation and seq, which the allocator never hands out twice, so
//! ids are unique across the whole system without any coordination between nodes. Within one
//! conversation the id grows with the seq. An id reveals the conversation it belongs to and how
//! many seqs that conversation has used, which its members can see anyway; it says nothing
//! about the traffic of other conversations or of the server.
//!
//! JavaScript loses integer precision above 2^53, so the protocol carries these ids as strings.

/// The largest seq a conversation can use: the low 32 bits of the id.
pub const MAX_SEQ: u64 = u32::MAX as u64;

/// The largest conversation id that fits the high 31 bits.
pub const MAX_CONVERSATION_ID: i64 = (1 << 31) - 1;

const SEQ_BITS: u32 = 32;

/// Builds the client-visible id of message `seq` in `conversation_id`.
///
/// Both values must be in range (`0..=MAX_CONVERSATION_ID`, `0..=MAX_SEQ`), which everything
/// the allocator returns is; [`try_message_id`] checks instead of assuming.
pub fn message_id(conversation_id: i64, seq: u64) -> u64 {
    debug_assert!((0..=MAX_CONVERSATION_ID).contains(&conversation_id));
    debug_assert!(seq <= MAX_SEQ);
    ((conversation_id as u64) << SEQ_BITS) | (seq & MAX_SEQ)
}

/// Like [`message_id`], but `None` when either part is out of range.
pub fn try_message_id(conversation_id: i64, seq: u64) -> Option<u64> {
    let in_range = (0..=MAX_CONVERSATION_ID).contains(&conversation_id) && seq <= MAX_SEQ;
    in_range.then(|| message_id(conversation_id, seq))
}

/// Splits a message id back into its conversation id and seq.
///
/// The top bit of a well-formed id is clear; a client-supplied id with it set yields a
/// conversation id above [`MAX_CONVERSATION_ID`], which no conversation has.
pub fn split(message_id: u64) -> (i64, u64) {
    ((message_id >> SEQ_BITS) as i64, message_id & MAX_SEQ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_inverts_message_id_at_the_edges() {
        for conv in [0, 1, 2, 77, MAX_CONVERSATION_ID - 1, MAX_CONVERSATION_ID] {
            for seq in [0, 1, 2, 1 << 20, MAX_SEQ - 1, MAX_SEQ] {
                assert_eq!(split(message_id(conv, seq)), (conv, seq));
            }
        }
    }

    #[test]
    fn ids_are_positive_i64_values() {
        let largest = message_id(MAX_CONVERSATION_ID, MAX_SEQ);
        assert!(i64::try_from(largest).is_ok());
    }

    #[test]
    fn ids_increase_with_seq_within_a_conversation() {
        let mut last = message_id(9, 1);
        for seq in (2..MAX_SEQ).step_by(99_991).chain([MAX_SEQ]) {
            let id = message_id(9, seq);
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn ids_of_different_conversations_never_collide() {
        // The last id of one conversation sits below the first of the next.
        assert!(message_id(5, MAX_SEQ) < message_id(6, 1));
    }

    #[test]
    fn out_of_range_parts_are_refused() {
        assert_eq!(try_message_id(-1, 1), None);
        assert_eq!(try_message_id(MAX_CONVERSATION_ID + 1, 1), None);
        assert_eq!(try_message_id(1, MAX_SEQ + 1), None);
        assert_eq!(try_message_id(1, 1), Some((1 << 32) | 1));
    }
}
