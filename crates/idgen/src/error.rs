/// Why the allocator could not hand out a seq.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdgenError {
    /// The database could not be reached or did not answer, and no buffered seq was left; or a
    /// burst emptied both buffers and the claim in flight did not land within `max_wait`.
    /// Retrying later is the right response; the allocator recovers by itself.
    #[error("message ids are unavailable for conversation {conversation_id}: {reason}")]
    Unavailable {
        conversation_id: i64,
        reason: String,
    },

    /// The conversation has used every seq the id layout can carry (2^32 - 1).
    #[error("conversation {conversation_id} has used all {max} seqs the id layout allows", max = crate::layout::MAX_SEQ)]
    SeqSpaceExhausted { conversation_id: i64 },

    /// The conversation id does not fit the id layout (`0..=layout::MAX_CONVERSATION_ID`).
    #[error("conversation id {0} is outside the range the id layout can carry")]
    InvalidConversationId(i64),

    /// Other processes kept claiming segments for this conversation between our read and our
    /// update, more often than the bounded retry allows.
    #[error(
        "gave up claiming a segment for conversation {conversation_id} after {attempts} lost races"
    )]
    Contended { conversation_id: i64, attempts: u32 },

    /// Another node took the conversation over (its owner epoch is now `epoch`); this one
    /// must stop serving it. Seqs it still hands out fail the commit check.
    #[error("conversation {conversation_id} is now owned by another node (epoch {epoch})")]
    NotOwner { conversation_id: i64, epoch: i64 },

    /// The segment table holds a value no claim could have written.
    #[error("segment row for conversation {conversation_id} is inconsistent: {detail}")]
    CorruptRow {
        conversation_id: i64,
        detail: String,
    },

    /// `shutdown` was called; this allocator hands out nothing more.
    #[error("the id allocator has shut down")]
    ShutDown,
}

impl IdgenError {
    pub(crate) fn unavailable(conversation_id: i64, reason: impl Into<String>) -> IdgenError {
        IdgenError::Unavailable {
            conversation_id,
            reason: reason.into(),
        }
    }
}
