//! Stores for tests and benchmarks: an in-memory store, and a wrapper that injects latency and
//! failures into any store. Not for production: the in-memory store forgets everything when
//! the process ends.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::layout::MAX_SEQ;
use crate::{IdgenError, SegmentStore};

/// A [`SegmentStore`] in a `HashMap`: same contract as the database store, for one process.
#[derive(Default)]
pub struct MemorySegmentStore {
    next: Mutex<HashMap<i64, u64>>,
    claims: AtomicU64,
}

impl MemorySegmentStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the conversation's next claim start at `next_seq`, as if that much had been used.
    pub fn set_next_seq(&self, conversation_id: i64, next_seq: u64) {
        self.rows().insert(conversation_id, next_seq);
    }

    /// Where the conversation's next claim would start.
    pub fn next_seq(&self, conversation_id: i64) -> u64 {
        self.rows().get(&conversation_id).copied().unwrap_or(1)
    }

    /// Claims answered so far.
    pub fn claims(&self) -> u64 {
        self.claims.load(Ordering::Relaxed)
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<i64, u64>> {
        self.next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SegmentStore for MemorySegmentStore {
    fn claim(&self, conversation_id: i64, step: u64) -> Result<Range<u64>, IdgenError> {
        let mut rows = self.rows();
        let next = rows.entry(conversation_id).or_insert(1);
        if *next > MAX_SEQ {
            return Err(IdgenError::SeqSpaceExhausted { conversation_id });
        }
        let start = *next;
        let end = start + step.max(1).min(MAX_SEQ + 1 - start);
        *next = end;
        self.claims.fetch_add(1, Ordering::Relaxed);
        Ok(start..end)
    }

    fn give_back(&self, conversation_id: i64, unused: Range<u64>) -> Result<bool, IdgenError> {
        let mut rows = self.rows();
        match rows.get_mut(&conversation_id) {
            Some(next) if *next == unused.end => {
                *next = unused.start;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Wraps a store and, on demand, delays every call or makes it fail like an unreachable
/// database.
pub struct FaultInjectingStore {
    inner: Arc<dyn SegmentStore>,
    failing: AtomicBool,
    latency_us: AtomicU64,
    calls: AtomicU64,
}

impl FaultInjectingStore {
    pub fn new(inner: Arc<dyn SegmentStore>) -> Self {
        FaultInjectingStore {
            inner,
            failing: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// While set, every call fails with [`IdgenError::Unavailable`] after the latency.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every call first sleeps this long, like a slow or distant database.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.store(micros, Ordering::SeqCst);
    }

    /// Claims and give-backs attempted so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn enter(&self, conversation_id: i64) -> Result<(), IdgenError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let micros = self.latency_us.load(Ordering::SeqCst);
        if micros > 0 {
            std::thread::sleep(Duration::from_micros(micros));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(IdgenError::unavailable(
                conversation_id,
                "injected fault: database unreachable",
            ));
        }
        Ok(())
    }
}

impl SegmentStore for FaultInjectingStore {
    fn claim(&self, conversation_id: i64, step: u64) -> Result<Range<u64>, IdgenError> {
        self.enter(conversation_id)?;
        self.inner.claim(conversation_id, step)
    }

    fn give_back(&self, conversation_id: i64, unused: Range<u64>) -> Result<bool, IdgenError> {
        self.enter(conversation_id)?;
        self.inner.give_back(conversation_id, unused)
    }

    fn take_ownership(&self, conversation_id: i64) -> Result<i64, IdgenError> {
        self.enter(conversation_id)?;
        self.inner.take_ownership(conversation_id)
    }

    fn claim_as_owner(
        &self,
        conversation_id: i64,
        step: u64,
        epoch: i64,
    ) -> Result<Range<u64>, IdgenError> {
        self.enter(conversation_id)?;
        self.inner.claim_as_owner(conversation_id, step, epoch)
    }

    fn forget(&self, conversation_id: i64) {
        self.inner.forget(conversation_id);
    }

    fn round_trips(&self) -> u64 {
        self.inner.round_trips()
    }
}
