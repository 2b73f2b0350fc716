use std::ops::Range;

use crate::IdgenError;

/// Where segments come from: the durable record of how far each conversation's seqs have been
/// handed out.
///
/// The allocator calls a store from its loader threads (and, for a conversation's very first
/// segment, from the caller's thread), never while holding a lock the hot path needs.
pub trait SegmentStore: Send + Sync + 'static {
    /// Claims `[start, start + step)` for the conversation; the first claim starts at 1.
    ///
    /// Ranges never overlap, across threads and across processes sharing the store. A store may
    /// return a shorter range than asked near the end of the seq space; it returns
    /// [`IdgenError::SeqSpaceExhausted`] once nothing is left.
    fn claim(&self, conversation_id: i64, step: u64) -> Result<Range<u64>, IdgenError>;

    /// Returns an unused tail so the next claim starts at `unused.start`.
    ///
    /// Only succeeds when nobody claimed after `unused.end`; `Ok(false)` means the range could
    /// not be returned and is simply skipped.
    fn give_back(&self, conversation_id: i64, unused: Range<u64>) -> Result<bool, IdgenError>;

    /// Takes the conversation over for this process: bumps its owner epoch and returns the
    /// new one. From then on claims by any earlier owner are refused, and so are commits that
    /// check their epoch with [`crate::check_owner`]. Stores without fencing return 0.
    fn take_ownership(&self, conversation_id: i64) -> Result<i64, IdgenError> {
        let _ = conversation_id;
        Ok(0)
    }

    /// [`SegmentStore::claim`] by the owner holding `epoch`; fails with
    /// [`IdgenError::NotOwner`] once another process took the conversation over. Stores
    /// without fencing ignore the epoch.
    fn claim_as_owner(
        &self,
        conversation_id: i64,
        step: u64,
        epoch: i64,
    ) -> Result<Range<u64>, IdgenError> {
        let _ = epoch;
        self.claim(conversation_id, step)
    }

    /// The allocator holds nothing for this conversation any more; drop whatever the store
    /// cached about it. Stores without a cache ignore it.
    fn forget(&self, conversation_id: i64) {
        let _ = conversation_id;
    }

    /// Statements sent to the database so far. Stores that talk to no database return 0.
    fn round_trips(&self) -> u64 {
        0
    }
}
