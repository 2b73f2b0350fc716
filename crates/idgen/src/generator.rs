//! One conversation's double buffer: the segment being handed out and the spare behind it.

use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::IdgenError;
use crate::allocator::Shared;
use crate::layout::MAX_SEQ;
use crate::step;

/// Why the slow path gave up without a seq.
pub(crate) enum TakeError {
    /// The generator was evicted or shut down; look the conversation up again.
    Retired,
    Failed(IdgenError),
}

/// The per-conversation state.
///
/// The hot path touches only `cursor`, `end` and `mark`: it reads `end`, advances `cursor` by a
/// compare-and-swap, and compares with `mark` to see whether the spare should be loaded. Nothing
/// else, no lock and no shared counter, so threads on different conversations never contend.
///
/// Everything the slow path needs lives behind `state`; a segment is swapped in under that lock
/// by closing `end` first, then moving `cursor`, then opening `end` (see [`Generator::install`]).
pub(crate) struct Generator {
    /// The next seq to hand out from the current segment.
    cursor: AtomicU64,
    /// The end (exclusive) of the current segment; 0 while closed.
    end: AtomicU64,
    /// The seq whose handing out triggers the background claim of the spare; `u64::MAX` once
    /// that claim has been asked for.
    mark: AtomicU64,
    /// Coarse time (allocator clock, ms) of the last lookup through the map; drives idle and
    /// least-recently-used eviction.
    pub(crate) last_touch: AtomicU64,
    /// The cursor as the idle sweep last saw it; a change means the conversation was used,
    /// including through a [`crate::SeqGenerator`] handle that bypasses the map.
    pub(crate) swept_cursor: AtomicU64,
    pub(crate) conversation_id: i64,
    /// The owner epoch this generator claims under (0 without fencing); set once, before its
    /// first segment is installed.
    epoch: AtomicI64,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// The spare segment, claimed in the background.
    spare: Option<Range<u64>>,
    /// A claim is in flight (on a loader thread or, for the first segment, on a caller).
    loading: bool,
    /// The step the next claim asks for.
    step: u64,
    /// Where the current segment started, how long it is, and when it was installed: what the
    /// adaptive step measures.
    current_start: u64,
    current_len: u64,
    installed_at: Option<Instant>,
    /// A caller had to wait since the last claim was sized: the spare came too late.
    starved: bool,
    /// The last claim failed at this time, with this error.
    /// Boxed: failures are rare, and an idle generator should stay small.
    failure: Option<Box<(Instant, IdgenError)>>,
    exhausted: bool,
    /// Another node took the conversation over (at this epoch); nothing more is claimed.
    fenced_out: Option<i64>,
    retired: bool,
}

impl Generator {
    pub(crate) fn new(conversation_id: i64, initial_step: u64, now_ms: u64) -> Generator {
        Generator {
            cursor: AtomicU64::new(0),
            end: AtomicU64::new(0),
            mark: AtomicU64::new(u64::MAX),
            last_touch: AtomicU64::new(now_ms),
            swept_cursor: AtomicU64::new(0),
            conversation_id,
            epoch: AtomicI64::new(0),
            state: Mutex::new(State {
                spare: None,
                loading: false,
                step: initial_step,
                current_start: 0,
                current_len: 0,
                installed_at: None,
                starved: false,
                failure: None,
                exhausted: false,
                fenced_out: None,
                retired: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// The lock-free fast path: a seq from the current segment, or `None` when it is used up.
    /// The flag says the prefetch mark was reached and the spare should be claimed now.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<(u64, bool)> {
        let mut cur = self.cursor.load(Ordering::Acquire);
        loop {
            // `end` is read after `cursor`: seeing a new segment's end guarantees the CAS below
            // sees that segment's cursor, so a stale `cur` from an older segment cannot win.
            let end = self.end.load(Ordering::Acquire);
            if cur >= end {
                return None;
            }
            match self.cursor.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some((cur, cur >= self.mark.load(Ordering::Relaxed))),
                Err(actual) => cur = actual,
            }
        }
    }

    /// The next seq: the fast path, else the slow path that swaps in the spare or waits.
    #[inline]
    pub(crate) fn next(self: &Arc<Self>, shared: &Shared) -> Result<u64, TakeError> {
        match self.try_take() {
            Some((seq, prefetch)) => {
                if prefetch {
                    self.request_spare(shared);
                }
                Ok(seq)
            }
            None => self.take_slow(shared),
        }
    }

    /// The step the next claim will ask for.
    pub(crate) fn step(&self) -> u64 {
        self.lock().step
    }

    /// The owner epoch of the seqs this generator hands out (0 without fencing).
    pub(crate) fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current cursor; changes whenever a seq is handed out.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the state consistent (every update is a plain
        // field write), so a poisoned lock is taken over rather than spreading the panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slow path: the current segment is used up (or there is none yet).
    #[cold]
    pub(crate) fn take_slow(self: &Arc<Self>, shared: &Shared) -> Result<u64, TakeError> {
        let config = shared.config();
        let mut deadline: Option<Instant> = None;
        let mut state = self.lock();
        loop {
            if state.retired {
                return Err(TakeError::Retired);
            }
            // Another caller may have swapped in a segment while this one waited for the lock.
            if let Some((seq, prefetch)) = self.try_take() {
                if prefetch {
                    self.request_spare_locked(&mut state, shared);
                }
                return Ok(seq);
            }
            if let Some(spare) = state.spare.take() {
                self.install(&mut state, spare, shared);
                continue;
            }
            if state.exhausted {
                return Err(TakeError::Failed(IdgenError::SeqSpaceExhausted {
                    conversation_id: self.conversation_id,
                }));
            }
            if let Some(epoch) = state.fenced_out {
                return Err(TakeError::Failed(IdgenError::NotOwner {
                    conversation_id: self.conversation_id,
                    epoch,
                }));
            }
            if state.loading {
                let now = Instant::now();
                let until = *deadline.get_or_insert_with(|| {
                    // Waiting on a conversation that already had a segment means the spare
                    // came too late: counted, and the next step grows.
                    if state.installed_at.is_some() {
                        shared.counters.caller_waits.fetch_add(1, Ordering::Relaxed);
                        state.starved = true;
                    }
                    now + config.max_wait
                });
                if now >= until {
                    shared
                        .counters
                        .caller_wait_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(TakeError::Failed(IdgenError::unavailable(
                        self.conversation_id,
                        format!(
                            "no segment arrived within {} ms; the database is slow or down",
                            config.max_wait.as_millis()
                        ),
                    )));
                }
                state = self
                    .changed
                    .wait_timeout(state, until - now)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                continue;
            }
            let recent_failure = state
                .failure
                .as_deref()
                .filter(|(failed_at, _)| failed_at.elapsed() < config.failure_backoff);
            if let Some((_, err)) = recent_failure {
                return Err(TakeError::Failed(err.clone()));
            }
            if state.installed_at.is_none() {
                // The first segment: nothing could have been prefetched, so this caller claims
                // it itself rather than waking a loader and waiting for it.
                state = self.claim_first(state, shared)?;
            } else {
                state.starved = true;
                if !self.request_spare_locked(&mut state, shared) {
                    return Err(TakeError::Failed(IdgenError::ShutDown));
                }
            }
        }
    }

    /// Claims the very first segment on the caller's thread; other callers for the same
    /// conversation wait for it on the condvar.
    fn claim_first<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        shared: &Shared,
    ) -> Result<MutexGuard<'a, State>, TakeError> {
        state.loading = true;
        let step = state.step;
        drop(state);

        shared.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        let claimed = match shared.take_ownership(self.conversation_id) {
            Ok(epoch) => {
                // Published before any seq: a caller that got a seq sees its epoch.
                self.epoch.store(epoch, Ordering::Release);
                shared.claim(self.conversation_id, step, epoch)
            }
            Err(err) => Err(err),
        };

        let mut state = self.lock();
        state.loading = false;
        self.changed.notify_all();
        match claimed {
            Ok(range) if state.retired => {
                drop(state);
                shared.give_back_now(self.conversation_id, vec![range]);
                Err(TakeError::Retired)
            }
            Ok(range) => {
                state.failure = None;
                self.install(&mut state, range, shared);
                Ok(state)
            }
            Err(err) => Err(TakeError::Failed(self.record_failure(&mut state, err))),
        }
    }

    fn record_failure(&self, state: &mut State, err: IdgenError) -> IdgenError {
        match err {
            IdgenError::SeqSpaceExhausted { .. } => state.exhausted = true,
            IdgenError::NotOwner { epoch, .. } => state.fenced_out = Some(epoch),
            _ => state.failure = Some(Box::new((Instant::now(), err.clone()))),
        }
        err
    }

    /// Makes `segment` the current one.
    fn install(&self, state: &mut State, segment: Range<u64>, shared: &Shared) {
        // The id layout has 32 bits of seq; whatever a store returns beyond that is refused.
        // Nor may a segment reach back below the previous one: a store that returned such a
        // range would break the order, so the overlap is cut off.
        let start = segment
            .start
            .max(1)
            .max(state.current_start + state.current_len);
        let end = segment.end.min(MAX_SEQ + 1);
        if start > MAX_SEQ {
            state.exhausted = true;
            return;
        }
        if start >= end {
            tracing::error!(
                conv.id = self.conversation_id,
                start = segment.start,
                end = segment.end,
                "the segment store returned a range below one already used; ignoring it"
            );
            let err = IdgenError::CorruptRow {
                conversation_id: self.conversation_id,
                detail: format!("claim returned {segment:?}, below seqs already handed out"),
            };
            state.failure = Some(Box::new((Instant::now(), err)));
            return;
        }
        let len = end - start;
        let mark = start + step::prefetch_offset(len, shared.config().prefetch_threshold);

        // Close first: a caller that read the old `end` and a stale cursor must fail its CAS,
        // and one that reads the new `end` must see the new cursor (release/acquire on `end`).
        self.end.store(0, Ordering::Release);
        self.mark.store(mark, Ordering::Relaxed);
        self.cursor.store(start, Ordering::Release);
        self.end.store(end, Ordering::Release);

        state.current_start = start;
        state.current_len = len;
        state.installed_at = Some(Instant::now());
    }

    /// Asks a loader thread for the spare, unless it is already there or on its way.
    pub(crate) fn request_spare(self: &Arc<Self>, shared: &Shared) {
        let mut state = self.lock();
        self.request_spare_locked(&mut state, shared);
    }

    /// Returns false when the loaders have stopped and no claim will come.
    fn request_spare_locked(self: &Arc<Self>, state: &mut State, shared: &Shared) -> bool {
        self.mark.store(u64::MAX, Ordering::Relaxed);
        let done = state.exhausted || state.fenced_out.is_some();
        if state.loading || state.spare.is_some() || state.retired || done {
            return true;
        }
        // The caller holds this generator's lock, so a refused job is undone here, not by
        // the queue.
        state.loading = shared.enqueue_load(Arc::clone(self));
        state.loading
    }

    /// Runs on a loader thread: picks the step, claims the spare, and wakes waiting callers.
    pub(crate) fn load_spare(&self, shared: &Shared) {
        let step = {
            let mut state = self.lock();
            if state.retired {
                state.loading = false;
                self.changed.notify_all();
                return;
            }
            let next = self.next_step(&state, shared);
            shared.counters.step_changed(state.step, next);
            state.step = next;
            // A wait seen from here on belongs to the segment being claimed now.
            state.starved = false;
            next
        };

        let claimed = shared.claim(self.conversation_id, step, self.epoch());

        let mut state = self.lock();
        state.loading = false;
        self.changed.notify_all();
        match claimed {
            Ok(range) if state.retired => {
                drop(state);
                shared.give_back_now(self.conversation_id, vec![range]);
            }
            Ok(range) => {
                state.failure = None;
                state.spare = Some(range);
            }
            Err(err) => {
                self.record_failure(&mut state, err);
            }
        }
    }

    /// The loader skipped this generator (the allocator is stopping): clear the flag so no
    /// caller waits for a claim that will not come.
    pub(crate) fn cancel_load(&self) {
        let mut state = self.lock();
        state.loading = false;
        self.changed.notify_all();
    }

    fn next_step(&self, state: &State, shared: &Shared) -> u64 {
        let config = shared.config();
        let elapsed = state.installed_at.map_or(Duration::ZERO, |at| at.elapsed());
        let used = self
            .cursor()
            .saturating_sub(state.current_start)
            .min(state.current_len);
        let usage = step::Usage {
            len: state.current_len,
            used,
            elapsed,
            starved: state.starved,
        };
        step::next_step(state.step, &usage, config)
    }

    /// Stops this generator for good and returns its last step and the seqs it had not handed
    /// out, lowest first.
    ///
    /// A caller racing with this either got its seq before the cursor was taken (and it is not
    /// in the returned ranges) or fails its CAS and is told to look the conversation up again.
    pub(crate) fn retire(&self) -> (u64, Vec<Range<u64>>) {
        let mut state = self.lock();
        if state.retired {
            return (state.step, Vec::new());
        }
        state.retired = true;
        let end = self.end.swap(0, Ordering::AcqRel);
        let cursor = self.cursor.swap(u64::MAX, Ordering::AcqRel);
        self.changed.notify_all();

        let mut unused = Vec::with_capacity(2);
        if cursor < end {
            unused.push(cursor..end);
        }
        if let Some(spare) = state.spare.take() {
            unused.push(spare);
        }
        (state.step, unused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_generator_stays_small() {
        // With its map entry (key, pointer, control byte) and the Arc's two counters this is
        // what one idle conversation costs; the config's memory estimate rests on it.
        let size = std::mem::size_of::<Generator>();
        assert!(size <= 192, "Generator grew to {size} bytes");
    }
}
