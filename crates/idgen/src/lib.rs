//! Tern's message id allocator: per-conversation seqs from database-backed segments.
//!
//! This crate owns the `id_segments` table, the [`SegmentStore`] that claims ranges from it,
//! and the in-memory [`IdAllocator`] that hands seqs out. It does not store messages, decide
//! which node owns a conversation, or put ids on the wire; those belong to `tern-storage`,
//! the gateway and `tern-protocol`.
//!
//! ```
//! use std::sync::Arc;
//! use tern_idgen::{layout, testing::MemorySegmentStore, AllocatorConfig, IdAllocator};
//!
//! // Production passes a `DieselSegmentStore` over the server's pool.
//! let store = Arc::new(MemorySegmentStore::new());
//! let allocator = IdAllocator::new(store, AllocatorConfig::default());
//! let seq = allocator.next_seq(42)?;
//! assert_eq!(seq, 1);
//! assert_eq!(layout::split(layout::message_id(42, seq)), (42, 1));
//! allocator.shutdown();
//! # Ok::<(), tern_idgen::IdgenError>(())
//! ```
//!
//! # Seqs and the id clients see
//!
//! Every conversation counts its own messages: seqs start at 1 and strictly increase. The
//! client-visible id is `conversation_id << 32 | seq` ([`layout`]): unique across the system
//! because conversations are, increasing within a conversation because seqs are, and revealing
//! only that conversation's own count, never the server's overall traffic (a global counter
//! would tell every user how busy the service is). Conversation ids get 31 bits so the id is a
//! positive `i64` on every database; seqs get 32 bits, and [`IdAllocator::next_seq`] refuses
//! with [`IdgenError::SeqSpaceExhausted`] rather than wrap. JSON carries the id as a string
//! because JavaScript numbers lose precision above 2^53.
//!
//! # Segments
//!
//! A generator hands out seqs from a *segment*, a range `[start, start + step)` claimed from the
//! store in one round trip. A segment starts where the previous claim for that conversation
//! ended, whichever process made it, so seqs from one process increase and ranges of different
//! processes never overlap. How a claim is made safe across processes is in
//! [`DieselSegmentStore`]: a version-checked optimistic `UPDATE`, one statement per claim,
//! chosen over row locks because it is identical on SQLite, PostgreSQL and MySQL, never holds
//! a lock across round trips and cannot deadlock.
//!
//! # The double buffer
//!
//! Each generator holds the current segment and a spare. The hot path is lock-free: an atomic
//! cursor advanced by compare-and-swap against an atomic end, no lock and no shared counter.
//! When the cursor passes `prefetch_threshold` of the segment, a background loader thread
//! claims the spare, so by the time the current segment runs out the next one is already in
//! memory and the swap is a few stores under the generator's mutex. No caller waits on the
//! database in steady state; [`AllocatorMetrics::caller_waits`] counts the ones that did.
//!
//! A conversation's very first segment (and the first after its generator was evicted) has
//! nothing to prefetch from, so the first caller claims it on its own thread: one round trip,
//! counted in [`AllocatorMetrics::cold_starts`], bounded by the pool's connection timeout
//! rather than by `max_wait`.
//!
//! [`IdAllocator::next_seq`] finds the generator in the map on every call, which costs a shard
//! lock; a caller sending many messages to one conversation can hold a [`SeqGenerator`]
//! handle instead, whose `next_seq` is the bare atomic hot path.
//!
//! If a burst empties both buffers anyway, callers wait on a condvar for the claim already in
//! flight, up to `max_wait`, instead of failing at once (Leaf's behaviour, which turns a
//! burst on a small step into errors); past `max_wait` they get [`IdgenError::Unavailable`].
//!
//! Loading runs on a fixed set of `loader_threads` behind one queue, and a generator has at
//! most one claim queued or in flight, so the queue is bounded by the number of generators and
//! an outage never piles up threads.
//!
//! # Adaptive step
//!
//! Busy groups and quiet one-to-one chats differ by orders of magnitude, so the step adapts
//! per conversation toward `target_segment_lifetime` (10 s by default): grow up to 8x when a
//! segment is projected to last less than half of it (and at least 4x if a caller had to wait),
//! halve when it lasts more than four times as long, clamped to `[min_step, max_step]`
//! (16 ..= 2^20 by default, starting at 32). A quiet chat settles at 16, so a crash wastes at
//! most a few dozen of its seqs; a busy group grows until it claims about once every 10 s. The
//! rule and its reasons are in `step.rs`, the numbers' reasons on [`AllocatorConfig`].
//!
//! # Bounded memory
//!
//! Generators live in a sharded map (up to 64 shards of `Mutex<HashMap>`), created on first
//! use, at roughly 250 bytes each with their map entry. A generator untouched for
//! `idle_eviction` is evicted, and when a shard is full the least recently looked-up one
//! makes room, so memory stays below `max_generators` whatever the number of conversations.
//!
//! # What a restart or an eviction wastes
//!
//! - Graceful [`IdAllocator::shutdown`] gives back the unused rest of every buffered segment:
//!   the next process continues at exactly the seq after the last one handed out.
//! - Eviction gives back the same way, in the background.
//! - A crash (or dropping the allocator without `shutdown`) gives back nothing: the next
//!   process skips at most the current rest plus the spare, about two steps, which the step
//!   rule keeps near 20 s of the conversation's traffic (at least 16 seqs). The skipped seqs
//!   are simply never used; clients must not read a gap in seqs as a lost message, which the
//!   protocol handles by linking each message to its predecessor.
//!
//! A give-back only succeeds while nobody has claimed after the returned range, so returning
//! seqs can never hand the same seq to two processes.
//!
//! # While the database is down
//!
//! Seqs keep coming from the buffers. A failed claim is remembered: callers that reach an
//! empty buffer within `failure_backoff` of the failure get [`IdgenError::Unavailable`] at
//! once, with the store's reason, and the first caller after that asks the database again, so
//! allocation recovers by itself when the database is back. The connection pool's own timeout
//! (2 s in `tern-db`) bounds each attempt.
//!
//! # Several nodes
//!
//! Segments keep seqs unique across nodes; the multi-process test proves that ranges never
//! overlap. What they cannot give on their own is order across nodes: if two nodes serve the
//! same conversation at once, their ranges interleave, and a message committed by one node can
//! carry a lower seq than one the other committed earlier. Tern therefore needs one owner per
//! conversation at a time, and this crate makes a second owner harmless rather than unlikely:
//!
//! - With [`AllocatorConfig::fence_ownership`], a generator first takes its conversation over by
//!   bumping `owner_epoch` on the conversation's row (a version-checked `UPDATE` like a claim),
//!   and every later claim is conditioned on that epoch. A node that was taken over gets
//!   [`IdgenError::NotOwner`] instead of new segments.
//! - Seqs it still has buffered are stopped at commit: [`IdAllocator::next_seq_fenced`] returns
//!   the epoch with the seq, and [`check_owner`], run inside the transaction that commits the
//!   message, locks the row and fails for a stale epoch. A takeover waits for a commit in
//!   progress; every commit after it sees the new epoch. So all of the old owner's commits come
//!   before the takeover and carry seqs below every seq the new owner claims.
//!
//! Which node should own a conversation (routing, leases, handing back with
//! [`IdAllocator::release`]) is the cluster layer's decision; the epoch only guarantees that a
//! wrong decision cannot reorder or duplicate seqs.
//!
//! TODO: the fence protects order only where the message commit calls [`check_owner`] with the
//! epoch; a deployment of several nodes must turn `fence_ownership` on and make its commit path
//! do so. A single node needs neither.

mod allocator;
mod config;
mod diesel_store;
mod error;
mod generator;
pub mod layout;
mod metrics;
mod step;
mod store;
pub mod testing;

pub use allocator::{IdAllocator, SeqGenerator};
pub use config::AllocatorConfig;
pub use diesel_store::{DieselSegmentStore, check_owner};
pub use error::IdgenError;
pub use metrics::AllocatorMetrics;
pub use store::SegmentStore;
