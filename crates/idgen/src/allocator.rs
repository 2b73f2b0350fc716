//! The allocator: a sharded map of generators, the loader threads that claim spares, and the
//! housekeeper that evicts idle generators.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::generator::{Generator, TakeError};
use crate::layout::MAX_CONVERSATION_ID;
use crate::metrics::Counters;
use crate::{AllocatorConfig, AllocatorMetrics, IdgenError, SegmentStore};

/// At most this many shards; fewer when `max_generators` is small, so the per-shard caps add
/// up to the configured cap. 64 keeps lock contention on the map negligible on any machine
/// Tern targets while the per-shard scan for the least recently used entry stays short.
const MAX_SHARDS: usize = 64;

/// Lookups that found their generator evicted underneath them before a call gives up. One
/// call losing its generator that often only happens when `max_generators` is far below the
/// number of conversations in use at once.
const MAX_LOOKUPS: usize = 4;

/// Unused ranges waiting to be given back beyond this are skipped (and counted): during an
/// outage with heavy eviction churn the queue must not grow without bound, and skipping a
/// give-back only wastes seqs.
const MAX_QUEUED_GIVE_BACKS: usize = 65_536;

/// Queued give-backs that wake a loader; fewer wait for the housekeeper's next tick.
const GIVE_BACK_BATCH: usize = 64;

/// Hands out per-conversation seqs from segments claimed in the background.
///
/// Cheap to clone; all clones share one set of generators and loader threads. See the crate
/// docs for the design.
#[derive(Clone)]
pub struct IdAllocator {
    inner: Arc<Owner>,
}

/// A handle on one conversation's generator, for callers that send many messages to the same
/// conversation: it skips the map lookup on every call.
///
/// If the generator is evicted while a handle is held, the handle keeps working through the map
/// (slightly slower); fetch a new handle to get the fast path back.
#[derive(Clone)]
pub struct SeqGenerator {
    allocator: IdAllocator,
    generator: Arc<Generator>,
}

/// Owns the threads; when the last clone of the allocator goes away they are told to stop.
struct Owner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

type GeneratorMap = HashMap<i64, Arc<Generator>, BuildHasherDefault<ConversationHasher>>;

/// One shard of the map, padded to its own pair of cache lines so that threads working on
/// conversations in neighbouring shards do not slow each other down through the hardware.
#[repr(align(128))]
struct Shard(Mutex<GeneratorMap>);

/// What the allocator's threads and callers share.
pub(crate) struct Shared {
    store: Arc<dyn SegmentStore>,
    config: AllocatorConfig,
    shards: Box<[Shard]>,
    per_shard_cap: usize,
    jobs: Mutex<Jobs>,
    jobs_ready: Condvar,
    pub(crate) counters: Counters,
    started: Instant,
    /// Milliseconds since `started`, advanced by the housekeeper: a clock cheap enough to read
    /// on every lookup.
    clock_ms: AtomicU64,
    shut_down: AtomicBool,
    store_healthy: AtomicBool,
    housekeeper_stop: Mutex<bool>,
    housekeeper_wake: Condvar,
}

/// Work for the loader threads. Loads come first: a caller may be about to need the spare,
/// while a give-back only saves seqs and can wait.
struct Jobs {
    loads: VecDeque<Arc<Generator>>,
    give_backs: VecDeque<(i64, Vec<Range<u64>>)>,
    stopping: bool,
}

enum Job {
    Load(Arc<Generator>),
    GiveBack {
        conversation_id: i64,
        unused: Vec<Range<u64>>,
    },
}

impl IdAllocator {
    /// Starts an allocator over `store` with its loader and housekeeping threads.
    pub fn new(store: Arc<dyn SegmentStore>, config: AllocatorConfig) -> IdAllocator {
        let config = config.normalized();
        let shard_count = MAX_SHARDS.min(prev_power_of_two(config.max_generators));
        let shards = (0..shard_count)
            .map(|_| Shard(Mutex::new(HashMap::default())))
            .collect();
        let shared = Arc::new(Shared {
            store,
            per_shard_cap: (config.max_generators / shard_count).max(1),
            shards,
            jobs: Mutex::new(Jobs {
                loads: VecDeque::new(),
                give_backs: VecDeque::new(),
                stopping: false,
            }),
            jobs_ready: Condvar::new(),
            counters: Counters::new(),
            started: Instant::now(),
            clock_ms: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
            store_healthy: AtomicBool::new(true),
            housekeeper_stop: Mutex::new(false),
            housekeeper_wake: Condvar::new(),
            config,
        });
        let threads = spawn_threads(&shared);
        IdAllocator {
            inner: Arc::new(Owner {
                shared,
                threads: Mutex::new(threads),
            }),
        }
    }

    /// The next seq of the conversation, starting at 1 and strictly increasing.
    ///
    /// In steady state this never waits on the database: the spare segment is claimed in the
    /// background once the current one passes the prefetch threshold. A caller that finds
    /// both buffers empty waits up to `max_wait` for the claim in flight. The exception is a
    /// conversation's first use (or first use after eviction), which claims one segment on the
    /// caller's thread and so is bounded by the store (the pool's connection timeout plus one
    /// round trip), not by `max_wait`.
    ///
    /// Each call finds the generator in the sharded map under a shard lock, which costs
    /// several times the bare hot path (about 20 ns against 4 ns in the benchmark); a caller
    /// sending many messages to one conversation should hold a [`SeqGenerator`] instead.
    pub fn next_seq(&self, conversation_id: i64) -> Result<u64, IdgenError> {
        check_conversation_id(conversation_id)?;
        let shared = &self.inner.shared;
        for _ in 0..MAX_LOOKUPS {
            // The common case takes its seq inside the shard lock, which is cheaper than
            // cloning the generator's Arc out of it; only the slow path needs the Arc.
            let generator = match shared.with_generator(conversation_id, take_or_clone)? {
                Taken::Seq(seq) => return Ok(seq),
                Taken::SeqAndPrefetch(seq, generator) => {
                    generator.request_spare(shared);
                    return Ok(seq);
                }
                Taken::Empty(generator) => generator,
            };
            match generator.take_slow(shared) {
                Ok(seq) => return Ok(seq),
                Err(TakeError::Failed(err)) => return Err(err),
                Err(TakeError::Retired) => continue,
            }
        }
        Err(self.evicted_on_every_attempt(conversation_id))
    }

    /// A handle on the conversation's generator that skips the map lookup on each call.
    pub fn generator(&self, conversation_id: i64) -> Result<SeqGenerator, IdgenError> {
        check_conversation_id(conversation_id)?;
        let generator = self.inner.shared.lookup(conversation_id)?;
        Ok(SeqGenerator {
            allocator: self.clone(),
            generator,
        })
    }

    /// The next seq with the owner epoch it was claimed under, for nodes sharing a database
    /// with [`AllocatorConfig::fence_ownership`] on: the transaction that commits the message
    /// passes the epoch to [`crate::check_owner`] and rolls back when it fails. The epoch is
    /// 0 without fencing.
    pub fn next_seq_fenced(&self, conversation_id: i64) -> Result<(u64, i64), IdgenError> {
        check_conversation_id(conversation_id)?;
        let shared = &self.inner.shared;
        for _ in 0..MAX_LOOKUPS {
            let generator = shared.lookup(conversation_id)?;
            match generator.next(shared) {
                Ok(seq) => return Ok((seq, generator.epoch())),
                Err(TakeError::Failed(err)) => return Err(err),
                Err(TakeError::Retired) => continue,
            }
        }
        Err(self.evicted_on_every_attempt(conversation_id))
    }

    fn evicted_on_every_attempt(&self, conversation_id: i64) -> IdgenError {
        if self.inner.shared.shut_down.load(Ordering::Relaxed) {
            return IdgenError::ShutDown;
        }
        IdgenError::unavailable(
            conversation_id,
            "the conversation's generator was evicted on every attempt; max_generators is too \
             small for the number of active conversations",
        )
    }

    /// Drops the conversation's generator and gives its unused seqs back, for a node that was
    /// taken over (its commit check failed) or hands the conversation to another node. The
    /// next call for it starts afresh, taking the conversation over again when fencing is on.
    /// Returns whether a generator was in memory.
    pub fn release(&self, conversation_id: i64) -> bool {
        let shared = &self.inner.shared;
        let removed = lock(&shared.shard(conversation_id).0).remove(&conversation_id);
        let Some(generator) = removed else {
            return false;
        };
        let unused = shared.retire(&generator);
        shared.enqueue_give_back(conversation_id, unused);
        true
    }

    /// The step the conversation's next claim will ask for, if its generator is in memory.
    pub fn current_step(&self, conversation_id: i64) -> Option<u64> {
        let shared = &self.inner.shared;
        let shard = shared.shard(conversation_id);
        let generator = lock(&shard.0).get(&conversation_id).cloned();
        generator.map(|g| g.step())
    }

    /// Stops background work and gives back every buffered seq not yet handed out, so a
    /// restart continues exactly after the last seq handed out.
    ///
    /// Waits for claims in flight to finish. Afterwards every call fails with
    /// [`IdgenError::ShutDown`]. Calling it again does nothing.
    pub fn shutdown(&self) {
        let shared = &self.inner.shared;
        if shared.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        shared.stop_threads();
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an id allocator thread panicked before shutdown");
            }
        }
        shared.drain_jobs();
        shared.retire_all();
        tracing::info!(
            seqs_given_back = shared.counters.seqs_given_back.load(Ordering::Relaxed),
            "id allocator shut down"
        );
    }

    /// What the allocator has done so far.
    pub fn metrics(&self) -> AllocatorMetrics {
        let shared = &self.inner.shared;
        shared.counters.snapshot(shared.store.round_trips())
    }
}

impl SeqGenerator {
    pub fn conversation_id(&self) -> i64 {
        self.generator.conversation_id
    }

    /// The owner epoch this handle's seqs were claimed under (0 without fencing).
    pub fn epoch(&self) -> i64 {
        self.generator.epoch()
    }

    /// The next seq of this handle's conversation; see [`IdAllocator::next_seq`].
    #[inline]
    pub fn next_seq(&self) -> Result<u64, IdgenError> {
        match self.generator.next(&self.allocator.inner.shared) {
            Ok(seq) => Ok(seq),
            Err(TakeError::Failed(err)) => Err(err),
            Err(TakeError::Retired) => self.allocator.next_seq(self.generator.conversation_id),
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Dropping without `shutdown` is treated like a crash: the threads stop, nothing is
        // given back, and the next process skips whatever this one had buffered.
        self.shared.stop_threads();
    }
}

/// What a lookup on the map path came back with.
enum Taken {
    Seq(u64),
    /// The seq reached the prefetch mark: the spare must be requested.
    SeqAndPrefetch(u64, Arc<Generator>),
    /// The current segment is used up: the slow path takes over.
    Empty(Arc<Generator>),
}

fn take_or_clone(generator: &Arc<Generator>) -> Taken {
    match generator.try_take() {
        Some((seq, false)) => Taken::Seq(seq),
        Some((seq, true)) => Taken::SeqAndPrefetch(seq, Arc::clone(generator)),
        None => Taken::Empty(Arc::clone(generator)),
    }
}

fn check_conversation_id(conversation_id: i64) -> Result<(), IdgenError> {
    if (0..=MAX_CONVERSATION_ID).contains(&conversation_id) {
        Ok(())
    } else {
        Err(IdgenError::InvalidConversationId(conversation_id))
    }
}

fn spawn_threads(shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::with_capacity(shared.config.loader_threads + 1);
    for n in 0..shared.config.loader_threads {
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("idgen-loader-{n}"))
            .spawn(move || worker.run_loader());
        match spawned {
            Ok(handle) => threads.push(handle),
            // With no loader at all, callers reaching an empty buffer time out after max_wait
            // with Unavailable: degraded, but not stuck.
            Err(err) => tracing::error!(error = %err, "could not start an id loader thread"),
        }
    }
    let worker = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("idgen-housekeeper".into())
        .spawn(move || worker.run_housekeeper());
    match spawned {
        Ok(handle) => threads.push(handle),
        Err(err) => tracing::error!(error = %err, "could not start the id housekeeper thread"),
    }
    threads
}

impl Shared {
    pub(crate) fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    fn shard(&self, conversation_id: i64) -> &Shard {
        let hash = ConversationHasher::mix(conversation_id);
        // The map inside a shard hashes with the low and the top bits; the shard takes the middle.
        &self.shards[((hash >> 32) as usize) & (self.shards.len() - 1)]
    }

    /// The conversation's generator, created on first use.
    fn lookup(&self, conversation_id: i64) -> Result<Arc<Generator>, IdgenError> {
        self.with_generator(conversation_id, Arc::clone)
    }

    /// Runs `f` on the conversation's generator (created on first use) inside its shard
    /// lock; `f` must be quick and must not block.
    fn with_generator<R>(
        &self,
        conversation_id: i64,
        f: impl FnOnce(&Arc<Generator>) -> R,
    ) -> Result<R, IdgenError> {
        let now = self.now_ms();
        let mut map = lock(&self.shard(conversation_id).0);
        if let Some(generator) = map.get(&conversation_id) {
            if generator.last_touch.load(Ordering::Relaxed) != now {
                generator.last_touch.store(now, Ordering::Relaxed);
            }
            return Ok(f(generator));
        }
        // Checked under the shard lock: `retire_all` takes every shard lock after setting the
        // flag, so no generator is created behind its back.
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(IdgenError::ShutDown);
        }
        // Make room first, so the live count never exceeds the cap even for an instant.
        // Retiring takes the generator's lock inside the shard lock (the one lock order used
        // everywhere) and does no I/O; the give-back is queued after the shard is released.
        let evicted = if map.len() >= self.per_shard_cap {
            take_least_recent(&mut map).map(|old| (old.conversation_id, self.retire(&old)))
        } else {
            None
        };
        let generator = Arc::new(Generator::new(
            conversation_id,
            self.config.initial_step,
            now,
        ));
        map.insert(conversation_id, Arc::clone(&generator));
        self.counters.generator_added(self.config.initial_step);
        let result = f(&generator);
        drop(map);

        if let Some((old_id, unused)) = evicted {
            self.enqueue_give_back(old_id, unused);
        }
        Ok(result)
    }

    /// Retires a generator just removed from the map, returning what it had not handed out.
    fn retire(&self, generator: &Generator) -> Vec<Range<u64>> {
        self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        let (step, unused) = generator.retire();
        self.counters.generator_removed(step);
        unused
    }

    /// Claims a segment and keeps the counters and the health log in step.
    /// Takes the conversation over when fencing is on; the epoch to claim under (0 when off).
    pub(crate) fn take_ownership(&self, conversation_id: i64) -> Result<i64, IdgenError> {
        if !self.config.fence_ownership {
            return Ok(0);
        }
        self.store
            .take_ownership(conversation_id)
            .inspect_err(|err| {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(conv.id = conversation_id, error = %err, "taking ownership failed");
            })
    }

    /// Claims a segment (as the owner at `epoch` when fencing is on) and keeps the counters
    /// and the health log in step.
    pub(crate) fn claim(
        &self,
        conversation_id: i64,
        step: u64,
        epoch: i64,
    ) -> Result<Range<u64>, IdgenError> {
        let claimed = if self.config.fence_ownership {
            self.store.claim_as_owner(conversation_id, step, epoch)
        } else {
            self.store.claim(conversation_id, step)
        };
        match claimed {
            Ok(range) => {
                self.counters
                    .segments_claimed
                    .fetch_add(1, Ordering::Relaxed);
                if !self.store_healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(conv.id = conversation_id, "segment claims succeed again");
                }
                Ok(range)
            }
            Err(err @ IdgenError::NotOwner { .. }) => {
                tracing::info!(conv.id = conversation_id, error = %err, "conversation taken over by another node");
                Err(err)
            }
            Err(err @ IdgenError::SeqSpaceExhausted { .. }) => {
                tracing::warn!(
                    conv.id = conversation_id,
                    "conversation used its whole seq space"
                );
                Err(err)
            }
            Err(err) => {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                // Logged once per outage, not once per failed claim.
                if self.store_healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(conv.id = conversation_id, error = %err, "segment claim failed; serving from buffers");
                } else {
                    tracing::debug!(conv.id = conversation_id, error = %err, "segment claim failed");
                }
                Err(err)
            }
        }
    }

    /// Queues a spare claim; false once the loaders have stopped.
    pub(crate) fn enqueue_load(&self, generator: Arc<Generator>) -> bool {
        let mut jobs = lock(&self.jobs);
        if jobs.stopping {
            return false;
        }
        jobs.loads.push_back(generator);
        drop(jobs);
        self.jobs_ready.notify_one();
        true
    }

    fn enqueue_give_back(&self, conversation_id: i64, unused: Vec<Range<u64>>) {
        if unused.is_empty() {
            self.store.forget(conversation_id);
            return;
        }
        let mut jobs = lock(&self.jobs);
        if jobs.stopping || jobs.give_backs.len() >= MAX_QUEUED_GIVE_BACKS {
            let stopping = jobs.stopping;
            drop(jobs);
            if stopping {
                // Shutdown drains the queue itself; a give-back arriving after that runs here.
                self.give_back_now(conversation_id, unused);
            } else {
                self.counters
                    .give_backs_refused
                    .fetch_add(1, Ordering::Relaxed);
                self.store.forget(conversation_id);
            }
            return;
        }
        jobs.give_backs.push_back((conversation_id, unused));
        // Give-backs are not urgent: a loader is woken per batch (and by the housekeeper's
        // tick), not per eviction, which would cost a thread wake-up for every conversation
        // evicted.
        let wake = jobs.give_backs.len().is_multiple_of(GIVE_BACK_BATCH);
        drop(jobs);
        if wake {
            self.jobs_ready.notify_one();
        }
    }

    /// Returns what a retired generator had not handed out. Only the tail can go back: the
    /// ranges are merged where contiguous, and an older range separated from the tail by
    /// another process's claim is skipped.
    pub(crate) fn give_back_now(&self, conversation_id: i64, unused: Vec<Range<u64>>) {
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(unused.len());
        for range in unused.into_iter().filter(|r| !r.is_empty()) {
            match merged.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => merged.push(range),
            }
        }
        let Some(tail) = merged.pop() else {
            self.store.forget(conversation_id);
            return;
        };
        let skipped = merged.len() as u64;
        let len = tail.end - tail.start;
        match self.store.give_back(conversation_id, tail) {
            Ok(true) => {
                self.counters
                    .seqs_given_back
                    .fetch_add(len, Ordering::Relaxed);
                self.counters
                    .give_backs_refused
                    .fetch_add(skipped, Ordering::Relaxed);
            }
            Ok(false) => {
                self.counters
                    .give_backs_refused
                    .fetch_add(skipped + 1, Ordering::Relaxed);
            }
            Err(err) => {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .give_backs_refused
                    .fetch_add(skipped + 1, Ordering::Relaxed);
                tracing::debug!(conv.id = conversation_id, error = %err, "give-back failed; the seqs are skipped");
            }
        }
        self.store.forget(conversation_id);
    }

    fn run_loader(&self) {
        while let Some(job) = self.next_job() {
            match job {
                Job::Load(generator) => generator.load_spare(self),
                Job::GiveBack {
                    conversation_id,
                    unused,
                } => self.give_back_now(conversation_id, unused),
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut jobs = lock(&self.jobs);
        loop {
            if jobs.stopping {
                return None;
            }
            if let Some(generator) = jobs.loads.pop_front() {
                return Some(Job::Load(generator));
            }
            if let Some((conversation_id, unused)) = jobs.give_backs.pop_front() {
                return Some(Job::GiveBack {
                    conversation_id,
                    unused,
                });
            }
            jobs = self
                .jobs_ready
                .wait(jobs)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn run_housekeeper(&self) {
        let period = housekeeping_period(self.config.idle_eviction);
        let mut stop = lock(&self.housekeeper_stop);
        loop {
            stop = self
                .housekeeper_wake
                .wait_timeout(stop, period)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if *stop {
                return;
            }
            let now = self.started.elapsed().as_millis() as u64;
            self.clock_ms.store(now, Ordering::Relaxed);
            self.evict_idle(now);
            if !lock(&self.jobs).give_backs.is_empty() {
                self.jobs_ready.notify_one();
            }
        }
    }

    /// Evicts every generator neither looked up nor used for `idle_eviction`.
    fn evict_idle(&self, now: u64) {
        let idle_ms = self.config.idle_eviction.as_millis() as u64;
        for shard in self.shards.iter() {
            let mut idle = Vec::new();
            let mut map = lock(&shard.0);
            map.retain(|_, generator| {
                // Seqs taken through a handle bypass the map; a moved cursor counts as use.
                let cursor = generator.cursor();
                if generator.swept_cursor.swap(cursor, Ordering::Relaxed) != cursor {
                    generator.last_touch.store(now, Ordering::Relaxed);
                }
                let last = generator.last_touch.load(Ordering::Relaxed);
                let keep = now.saturating_sub(last) < idle_ms;
                if !keep {
                    idle.push((generator.conversation_id, self.retire(generator)));
                }
                keep
            });
            drop(map);
            for (conversation_id, unused) in idle {
                self.enqueue_give_back(conversation_id, unused);
            }
        }
    }

    fn stop_threads(&self) {
        lock(&self.jobs).stopping = true;
        self.jobs_ready.notify_all();
        *lock(&self.housekeeper_stop) = true;
        self.housekeeper_wake.notify_all();
    }

    /// After the loaders stopped: runs queued give-backs and releases queued loads.
    fn drain_jobs(&self) {
        let (loads, give_backs) = {
            let mut jobs = lock(&self.jobs);
            (
                std::mem::take(&mut jobs.loads),
                std::mem::take(&mut jobs.give_backs),
            )
        };
        for generator in loads {
            generator.cancel_load();
        }
        for (conversation_id, unused) in give_backs {
            self.give_back_now(conversation_id, unused);
        }
    }

    fn retire_all(&self) {
        for shard in self.shards.iter() {
            let generators: Vec<Arc<Generator>> = lock(&shard.0).drain().map(|(_, g)| g).collect();
            for generator in generators {
                let (step, unused) = generator.retire();
                self.counters.generator_removed(step);
                self.give_back_now(generator.conversation_id, unused);
            }
        }
    }
}

/// The least recently looked-up generator of a full shard, removed from it.
fn take_least_recent(map: &mut GeneratorMap) -> Option<Arc<Generator>> {
    let oldest = map
        .iter()
        .min_by_key(|(_, generator)| generator.last_touch.load(Ordering::Relaxed))
        .map(|(&conversation_id, _)| conversation_id)?;
    map.remove(&oldest)
}

/// How often the clock advances and idle generators are looked for: a fraction of the idle
/// timeout so eviction is at most ~12% late, but no busier than every 5 ms and no lazier than
/// once a second.
fn housekeeping_period(idle_eviction: Duration) -> Duration {
    (idle_eviction / 8).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent, so a panic elsewhere does not
    // make the map or the queue unusable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Conversation ids are small sequential integers chosen by the server, not by clients, so a
/// multiplicative hash spreads them well and is much cheaper than SipHash on the lookup path.
#[derive(Default)]
struct ConversationHasher(u64);

impl ConversationHasher {
    fn mix(conversation_id: i64) -> u64 {
        let h = (conversation_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }
}

impl Hasher for ConversationHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = ConversationHasher::mix(n);
    }
}
