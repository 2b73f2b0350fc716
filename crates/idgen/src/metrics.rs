use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what the allocator has done since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatorMetrics {
    /// Segments claimed from the store (first segments and spares).
    pub segments_claimed: u64,
    /// Statements the store sent to the database (0 for stores without one). In steady state
    /// this grows by one per segment.
    pub db_round_trips: u64,
    /// Callers of a conversation already in memory that found both buffers empty and had to
    /// wait for a claim. Should stay 0: each one means the spare came too late.
    pub caller_waits: u64,
    /// Of those waits, the ones that gave up after `max_wait`.
    pub caller_wait_timeouts: u64,
    /// First segments of a conversation claimed on a caller's thread (nothing to prefetch from).
    pub cold_starts: u64,
    /// Generators dropped for being idle, over `max_generators`, or released.
    pub evictions: u64,
    /// Generators in memory now.
    pub live_generators: u64,
    /// The most generators ever in memory at once.
    pub peak_live_generators: u64,
    /// The largest step among live generators, rounded down to a power of two.
    pub max_step: u64,
    /// Live generators by step: `(2^k, n)` means `n` generators ask for a step in
    /// `[2^k, 2^(k+1))`. Only non-empty buckets are listed.
    pub step_histogram: Vec<(u64, u64)>,
    /// Claims and give-backs the store failed.
    pub store_errors: u64,
    /// Unused seqs returned to the store on eviction or shutdown.
    pub seqs_given_back: u64,
    /// Unused ranges that could not be returned (someone claimed after them, the store failed,
    /// or the give-back queue was full) and are skipped.
    pub give_backs_refused: u64,
}

const BUCKETS: usize = 64;

/// The allocator's live counters. Only slow paths touch them, never the per-seq hot path.
pub(crate) struct Counters {
    pub segments_claimed: AtomicU64,
    pub caller_waits: AtomicU64,
    pub caller_wait_timeouts: AtomicU64,
    pub cold_starts: AtomicU64,
    pub evictions: AtomicU64,
    pub live_generators: AtomicU64,
    pub peak_live_generators: AtomicU64,
    pub store_errors: AtomicU64,
    pub seqs_given_back: AtomicU64,
    pub give_backs_refused: AtomicU64,
    step_buckets: [AtomicU64; BUCKETS],
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            segments_claimed: AtomicU64::new(0),
            caller_waits: AtomicU64::new(0),
            caller_wait_timeouts: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            live_generators: AtomicU64::new(0),
            peak_live_generators: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            seqs_given_back: AtomicU64::new(0),
            give_backs_refused: AtomicU64::new(0),
            step_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    pub fn generator_added(&self, step: u64) {
        let live = self.live_generators.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_live_generators.fetch_max(live, Ordering::Relaxed);
        self.step_buckets[bucket(step)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn generator_removed(&self, step: u64) {
        self.live_generators.fetch_sub(1, Ordering::Relaxed);
        self.step_buckets[bucket(step)].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn step_changed(&self, from: u64, to: u64) {
        if bucket(from) != bucket(to) {
            self.step_buckets[bucket(from)].fetch_sub(1, Ordering::Relaxed);
            self.step_buckets[bucket(to)].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self, db_round_trips: u64) -> AllocatorMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let step_histogram: Vec<(u64, u64)> = self
            .step_buckets
            .iter()
            .enumerate()
            .map(|(k, n)| (1u64 << k, load(n)))
            .filter(|&(_, n)| n > 0)
            .collect();
        AllocatorMetrics {
            segments_claimed: load(&self.segments_claimed),
            db_round_trips,
            caller_waits: load(&self.caller_waits),
            caller_wait_timeouts: load(&self.caller_wait_timeouts),
            cold_starts: load(&self.cold_starts),
            evictions: load(&self.evictions),
            live_generators: load(&self.live_generators),
            peak_live_generators: load(&self.peak_live_generators),
            max_step: step_histogram.last().map_or(0, |&(step, _)| step),
            step_histogram,
            store_errors: load(&self.store_errors),
            seqs_given_back: load(&self.seqs_given_back),
            give_backs_refused: load(&self.give_backs_refused),
        }
    }
}

fn bucket(step: u64) -> usize {
    (63 - step.max(1).leading_zeros()) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_follows_step_changes() {
        let counters = Counters::new();
        counters.generator_added(16);
        counters.generator_added(16);
        counters.step_changed(16, 128);
        let snap = counters.snapshot(0);
        assert_eq!(snap.step_histogram, vec![(16, 1), (128, 1)]);
        assert_eq!(snap.max_step, 128);
        counters.generator_removed(128);
        assert_eq!(counters.snapshot(0).max_step, 16);
        assert_eq!(counters.snapshot(0).live_generators, 1);
    }
}
