//! The allocator's promises against a real database (SQLite, and PostgreSQL when
//! `TERN_TEST_POSTGRES_URL` is set) and, where a test needs to reach limits quickly, against the
//! in-memory test double `MemorySegmentStore`.

mod common;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, TestResult};
use tern_idgen::layout::{self, MAX_CONVERSATION_ID, MAX_SEQ};
use tern_idgen::testing::MemorySegmentStore;
use tern_idgen::{AllocatorConfig, IdAllocator, IdgenError, SegmentStore};

/// Tiny segments, so a few hundred seqs cross many segment boundaries. A tight loop over
/// them outruns any database, so callers often wait for claims; the long wait bound keeps
/// these tests about order and uniqueness, not about how fast a busy machine syncs a file.
fn small_steps() -> AllocatorConfig {
    AllocatorConfig {
        min_step: 1,
        initial_step: 2,
        max_step: 8,
        max_wait: Duration::from_secs(10),
        ..AllocatorConfig::default()
    }
}

#[test]
fn seqs_start_at_one_and_increase_by_one_across_segments_and_conversations() -> TestResult {
    for db in TestDb::all()? {
        let allocator = IdAllocator::new(db.store()?, small_steps());
        let mut last: HashMap<i64, u64> = HashMap::new();
        // Interleave 40 conversations so their segments are claimed side by side.
        for round in 0..150 {
            for conv in 1..=40 {
                let seq = allocator.next_seq(conv)?;
                let expected = last.get(&conv).map_or(1, |s| s + 1);
                assert_eq!(seq, expected, "{}: conv {conv} round {round}", db.label);
                last.insert(conv, seq);
            }
        }
        let metrics = allocator.metrics();
        assert!(
            metrics.segments_claimed >= 40 * 150 / 8,
            "{}: {metrics:?}",
            db.label
        );
        allocator.shutdown();
    }
    Ok(())
}

#[test]
fn threads_sharing_conversations_never_get_the_same_seq() -> TestResult {
    let store = Arc::new(MemorySegmentStore::new());
    let allocator = IdAllocator::new(store, small_steps());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let allocator = allocator.clone();
            std::thread::spawn(move || -> Result<Vec<(i64, u64)>, IdgenError> {
                let mut got = Vec::new();
                for n in 0..20_000 {
                    let conv = n % 3 + 1;
                    got.push((conv, allocator.next_seq(conv)?));
                }
                Ok(got)
            })
        })
        .collect();

    let mut all: HashMap<i64, HashSet<u64>> = HashMap::new();
    for thread in threads {
        let got = thread.join().map_err(|_| "allocating thread panicked")??;
        let mut last: HashMap<i64, u64> = HashMap::new();
        for (conv, seq) in got {
            // Each thread sees its own seqs increase...
            assert!(last.insert(conv, seq).is_none_or(|prev| prev < seq));
            // ...and no seq is handed to two callers.
            assert!(
                all.entry(conv).or_default().insert(seq),
                "conv {conv} seq {seq} twice"
            );
        }
    }
    // Nothing was evicted or restarted, so together they used exactly 1..=n.
    for seqs in all.values() {
        assert_eq!(seqs.iter().max().copied(), Some(seqs.len() as u64));
    }
    Ok(())
}

#[test]
fn a_crashed_allocator_is_followed_by_higher_seqs() -> TestResult {
    for db in TestDb::all()? {
        let first = IdAllocator::new(db.store()?, AllocatorConfig::default());
        let mut last = 0;
        for _ in 0..100 {
            last = first.next_seq(7)?;
        }
        // No shutdown: whatever it had buffered is lost, as in a crash.
        drop(first);

        let second = IdAllocator::new(db.store()?, AllocatorConfig::default());
        let next = second.next_seq(7)?;
        assert!(next > last, "{}: {next} after {last}", db.label);
    }
    Ok(())
}

#[test]
fn after_a_graceful_shutdown_the_next_seq_is_exactly_the_following_one() -> TestResult {
    for db in TestDb::all()? {
        let first = IdAllocator::new(db.store()?, AllocatorConfig::default());
        let mut last = 0;
        for _ in 0..1_000 {
            last = first.next_seq(11)?;
            first.next_seq(12)?;
        }
        first.shutdown();
        assert!(matches!(first.next_seq(11), Err(IdgenError::ShutDown)));
        assert!(first.metrics().seqs_given_back > 0, "{}", db.label);

        let second = IdAllocator::new(db.store()?, AllocatorConfig::default());
        assert_eq!(second.next_seq(11)?, last + 1, "{}", db.label);
        assert_eq!(second.next_seq(12)?, 1_001, "{}", db.label);
        second.shutdown();
    }
    Ok(())
}

#[test]
fn a_million_conversations_stay_within_the_generator_cap() -> TestResult {
    // The in-memory test double stands in for the database: the point is the allocator's
    // memory, and a million real claims would only measure the disk.
    let store = Arc::new(MemorySegmentStore::new());
    let cap = 1_024;
    let config = AllocatorConfig {
        max_generators: cap,
        ..AllocatorConfig::default()
    };
    let allocator = IdAllocator::new(store.clone(), config);

    for conv in 1..=1_000_000 {
        assert_eq!(allocator.next_seq(conv)?, 1);
        if conv % 10_000 == 0 {
            assert!(allocator.metrics().live_generators <= cap as u64);
        }
    }
    let metrics = allocator.metrics();
    assert!(metrics.peak_live_generators <= cap as u64, "{metrics:?}");
    assert!(metrics.evictions >= 1_000_000 - cap as u64, "{metrics:?}");

    // An evicted conversation comes back above what it handed out before.
    assert!(allocator.next_seq(1)? > 1);
    allocator.shutdown();
    assert_eq!(allocator.metrics().live_generators, 0);
    Ok(())
}

#[test]
fn idle_generators_are_evicted_and_give_back_their_rest() -> TestResult {
    let store = Arc::new(MemorySegmentStore::new());
    let config = AllocatorConfig {
        idle_eviction: Duration::from_millis(20),
        ..AllocatorConfig::default()
    };
    let allocator = IdAllocator::new(store.clone(), config);
    assert_eq!(allocator.next_seq(5)?, 1);

    // Bounded wait for the housekeeper; the assertion is on what eviction did, not its timing.
    for _ in 0..500 {
        if allocator.metrics().evictions == 1 && store.next_seq(5) == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(allocator.metrics().evictions, 1);
    assert_eq!(allocator.metrics().live_generators, 0);
    assert_eq!(
        store.next_seq(5),
        2,
        "the unused rest went back to the store"
    );
    assert_eq!(allocator.next_seq(5)?, 2);
    Ok(())
}

#[test]
fn a_handle_keeps_working_after_its_generator_is_evicted() -> TestResult {
    let store = Arc::new(MemorySegmentStore::new());
    // One generator at most: looking up a second conversation evicts the first.
    let config = AllocatorConfig {
        max_generators: 1,
        ..AllocatorConfig::default()
    };
    let allocator = IdAllocator::new(store, config);
    let handle = allocator.generator(1)?;
    assert_eq!(handle.next_seq()?, 1);
    assert_eq!(allocator.next_seq(2)?, 1);
    let after = handle.next_seq()?;
    assert!(
        after > 1,
        "the handle fell back to a fresh generator: {after}"
    );
    Ok(())
}

#[test]
fn a_busy_conversation_grows_its_step_and_a_quiet_one_stays_small() -> TestResult {
    let store = Arc::new(MemorySegmentStore::new());
    // A short target lifetime lets a test tell busy from quiet within a fraction of a second.
    let config = AllocatorConfig {
        min_step: 4,
        initial_step: 16,
        max_step: 1 << 20,
        target_segment_lifetime: Duration::from_millis(10),
        ..AllocatorConfig::default()
    };
    let allocator = IdAllocator::new(store, config);

    let busy = allocator.generator(1)?;
    for _ in 0..300_000 {
        busy.next_seq()?;
    }
    // A few seqs with pauses: each segment lasts far longer than the target.
    for _ in 0..40 {
        allocator.next_seq(2)?;
        std::thread::sleep(Duration::from_millis(5));
    }

    let busy_step = allocator.current_step(1).ok_or("busy generator missing")?;
    let quiet_step = allocator.current_step(2).ok_or("quiet generator missing")?;
    assert!(busy_step >= 1024, "busy step {busy_step}");
    assert_eq!(quiet_step, 4, "quiet step");
    assert!(allocator.metrics().max_step >= 1024);
    Ok(())
}

#[test]
fn the_last_seq_of_a_conversation_is_max_seq_and_then_it_refuses() -> TestResult {
    let store = Arc::new(MemorySegmentStore::new());
    store.set_next_seq(3, MAX_SEQ - 2);
    let allocator = IdAllocator::new(store, AllocatorConfig::default());
    assert_eq!(allocator.next_seq(3)?, MAX_SEQ - 2);
    assert_eq!(allocator.next_seq(3)?, MAX_SEQ - 1);
    assert_eq!(allocator.next_seq(3)?, MAX_SEQ);
    for _ in 0..3 {
        let refused = allocator.next_seq(3);
        assert!(
            matches!(
                refused,
                Err(IdgenError::SeqSpaceExhausted { conversation_id: 3 })
            ),
            "{refused:?}"
        );
    }
    // Other conversations are unaffected.
    assert_eq!(allocator.next_seq(4)?, 1);
    Ok(())
}

/// A test double that ignores the id layout's limit and hands out ranges past 2^32.
struct CarelessStore;

impl SegmentStore for CarelessStore {
    fn claim(&self, _conversation_id: i64, step: u64) -> Result<Range<u64>, IdgenError> {
        Ok(MAX_SEQ - 1..MAX_SEQ + step)
    }

    fn give_back(&self, _: i64, _: Range<u64>) -> Result<bool, IdgenError> {
        Ok(false)
    }
}

#[test]
fn seqs_past_the_layout_are_refused_even_if_a_store_offers_them() -> TestResult {
    let allocator = IdAllocator::new(Arc::new(CarelessStore), AllocatorConfig::default());
    assert_eq!(allocator.next_seq(1)?, MAX_SEQ - 1);
    assert_eq!(allocator.next_seq(1)?, MAX_SEQ);
    assert!(matches!(
        allocator.next_seq(1),
        Err(IdgenError::SeqSpaceExhausted { .. })
    ));
    Ok(())
}

#[test]
fn conversation_ids_outside_the_layout_are_refused() {
    let allocator = IdAllocator::new(
        Arc::new(MemorySegmentStore::new()),
        AllocatorConfig::default(),
    );
    for bad in [-1, MAX_CONVERSATION_ID + 1, i64::MAX] {
        assert!(
            matches!(allocator.next_seq(bad), Err(IdgenError::InvalidConversationId(c)) if c == bad)
        );
    }
}

#[test]
fn message_ids_from_the_allocator_round_trip_and_increase() -> TestResult {
    let allocator = IdAllocator::new(Arc::new(MemorySegmentStore::new()), small_steps());
    let conv = MAX_CONVERSATION_ID;
    let mut last = 0;
    for _ in 0..1_000 {
        let seq = allocator.next_seq(conv)?;
        let id = layout::message_id(conv, seq);
        assert_eq!(layout::split(id), (conv, seq));
        assert!(id > last);
        last = id;
    }
    Ok(())
}
