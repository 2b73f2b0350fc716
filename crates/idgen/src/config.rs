use std::time::Duration;

/// How the allocator sizes segments, when it loads the next one, and how much it keeps in
/// memory. [`Default`] gives the values Tern runs with; each field says why.
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    /// The smallest segment a conversation ever claims.
    ///
    /// Default 16: a quiet one-to-one chat sends a handful of messages a day, so a crash wastes
    /// at most two small segments of its seq space (and shows clients at most that big a jump),
    /// while a claim per 16 messages is still far below the database's capacity.
    pub min_step: u64,

    /// The largest segment a conversation ever claims.
    ///
    /// Default 2^20: a conversation needs this only above ~50,000 ids per second, where it uses
    /// 2^32 seqs within a day anyway; at that rate a crash wastes about 40 seconds of its
    /// traffic. The cap keeps one runaway conversation from reserving a large share of its
    /// seq space at once.
    pub max_step: u64,

    /// The step of a conversation's first segment, before any traffic has been seen.
    ///
    /// Default 32: most conversations that wake up are chats, not firehoses; a burst grows the
    /// step by up to 8x per segment, so even a busy group reaches its size within a few claims.
    pub initial_step: u64,

    /// The fraction of the current segment handed out before the next one is claimed in the
    /// background, between 0 and 1.
    ///
    /// Default 0.5: the remaining half is the slack that hides the claim. With segments sized
    /// to last `target_segment_lifetime`, that is seconds of headroom against a slow database,
    /// while the spare segment held in memory (wasted by a crash) is still only one step.
    pub prefetch_threshold: f64,

    /// How long a caller waits for the claim in flight when a burst has emptied both buffers.
    ///
    /// Default 250 ms: several round trips of a busy database, short enough that the client's
    /// send still feels immediate. A claim that takes longer means database trouble, and a clear
    /// error the client can retry beats a request hanging on a connection pool.
    pub max_wait: Duration,

    /// After a claim fails, callers that reach an empty buffer within this time fail at once
    /// instead of queueing another claim, so an outage produces quick errors rather than a pile
    /// of waiting callers; the next caller after it tries the database again.
    ///
    /// Default 200 ms: frequent enough that recovery is noticed almost immediately, rare
    /// enough that a dead database sees a few probes per second per busy conversation.
    pub failure_backoff: Duration,

    /// The most generators (one per active conversation) kept in memory; above it the least
    /// recently used is evicted and its unused seqs given back.
    ///
    /// Default 100,000: an idle generator takes about 250 bytes with its map entry (the
    /// benchmark measures it), so this bounds the allocator near 25 MiB, and 100,000
    /// conversations active within `idle_eviction` is far beyond one node's expected load. The
    /// cap is rounded down to a multiple of the shard count (at most 64 shards).
    pub max_generators: usize,

    /// A generator untouched for this long is evicted and its unused seqs given back.
    ///
    /// Default 5 minutes: a conversation quiet that long has usually ended, and bringing one
    /// back costs a single claim; shorter would churn claims for chats with pauses.
    pub idle_eviction: Duration,

    /// How long a segment should last; the step adapts toward it.
    ///
    /// Default 10 s: one claim per busy conversation every 10 s is negligible database load,
    /// and it bounds what a crash wastes to roughly 20 s of that conversation's traffic (the
    /// current and the spare segment).
    pub target_segment_lifetime: Duration,

    /// Whether this allocator takes each conversation over (bumping its owner epoch in the
    /// store) before its first claim, and claims only as that owner afterwards.
    ///
    /// Default false: a single node owns everything anyway. Nodes sharing a database set it,
    /// get the epoch with [`crate::IdAllocator::next_seq_fenced`], and check it with
    /// [`crate::check_owner`] in the transaction that commits the message; a node that was
    /// taken over then gets [`crate::IdgenError::NotOwner`] instead of new segments.
    pub fence_ownership: bool,

    /// Threads that claim segments in the background.
    ///
    /// Default 4: claims wait on database round trips, not the CPU, so a few threads overlap
    /// them; a fixed number (with a queue in front) keeps an outage from piling up threads and
    /// leaves most of the connection pool to the rest of the server.
    pub loader_threads: usize,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            min_step: 16,
            max_step: 1 << 20,
            initial_step: 32,
            prefetch_threshold: 0.5,
            max_wait: Duration::from_millis(250),
            failure_backoff: Duration::from_millis(200),
            max_generators: 100_000,
            idle_eviction: Duration::from_secs(300),
            target_segment_lifetime: Duration::from_secs(10),
            loader_threads: 4,
            fence_ownership: false,
        }
    }
}

impl AllocatorConfig {
    /// The same settings with every value forced into a range the allocator can work with, so
    /// a bad config file degrades to sane behaviour instead of a panic or a stuck allocator.
    pub(crate) fn normalized(mut self) -> AllocatorConfig {
        self.min_step = self.min_step.max(1);
        self.max_step = self.max_step.max(self.min_step);
        self.initial_step = self.initial_step.clamp(self.min_step, self.max_step);
        if !(self.prefetch_threshold.is_finite() && self.prefetch_threshold >= 0.0) {
            self.prefetch_threshold = 0.5;
        }
        self.prefetch_threshold = self.prefetch_threshold.min(1.0);
        self.max_generators = self.max_generators.max(1);
        self.loader_threads = self.loader_threads.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_repairs_nonsense_values() {
        let config = AllocatorConfig {
            min_step: 0,
            max_step: 0,
            initial_step: 1000,
            prefetch_threshold: f64::NAN,
            max_generators: 0,
            loader_threads: 0,
            ..AllocatorConfig::default()
        }
        .normalized();
        assert_eq!(
            (config.min_step, config.max_step, config.initial_step),
            (1, 1, 1)
        );
        assert_eq!(config.prefetch_threshold, 0.5);
        assert_eq!((config.max_generators, config.loader_threads), (1, 1));
    }

    #[test]
    fn defaults_are_already_normal() {
        let config = AllocatorConfig::default();
        let normal = config.clone().normalized();
        assert_eq!(config.initial_step, normal.initial_step);
        assert!(config.min_step <= config.initial_step && config.initial_step <= config.max_step);
    }
}
