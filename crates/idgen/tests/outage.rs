//! The allocator against a slow or failing database: `FaultInjectingStore` wraps the real
//! Diesel store on a temporary SQLite file and can be switched to fail or to add latency.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestDb, TestResult};
use tern_idgen::testing::FaultInjectingStore;
use tern_idgen::{AllocatorConfig, IdAllocator, IdgenError};

/// Every segment holds exactly `step` seqs, so the test knows what the buffers hold.
fn fixed_step(step: u64) -> AllocatorConfig {
    AllocatorConfig {
        min_step: step,
        initial_step: step,
        max_step: step,
        prefetch_threshold: 0.5,
        ..AllocatorConfig::default()
    }
}

fn faulty_store(db: &TestDb) -> Result<Arc<FaultInjectingStore>, tern_db::DbError> {
    Ok(Arc::new(FaultInjectingStore::new(db.store()?)))
}

/// Polls `done` every 10 ms for up to 5 s; for waiting on background work, not for timing it.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn during_an_outage_seqs_come_from_the_buffers_then_fail_fast_and_recover() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = faulty_store(&db)?;
    let config = AllocatorConfig {
        max_wait: Duration::from_millis(200),
        failure_backoff: Duration::from_millis(50),
        ..fixed_step(50)
    };
    let max_wait = config.max_wait;
    let allocator = IdAllocator::new(store.clone(), config);

    // 30 of the first 50: past the threshold, so the spare [51, 101) is claimed.
    let mut last = 0;
    for _ in 0..30 {
        last = allocator.next_seq(1)?;
    }
    assert!(eventually(|| allocator.metrics().segments_claimed == 2));

    store.set_failing(true);
    // The rest of the current segment and the whole spare are still handed out.
    let mut served = 0;
    let failure = loop {
        match allocator.next_seq(1) {
            Ok(seq) => {
                assert_eq!(seq, last + 1);
                last = seq;
                served += 1;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(served, 20 + 50);
    assert!(
        matches!(
            failure,
            IdgenError::Unavailable {
                conversation_id: 1,
                ..
            }
        ),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("unreachable"),
        "the reason is passed on: {failure}"
    );

    // A slow failing database: the call still returns within its bound (not a benchmark:
    // the margin is a second).
    store.set_latency(Duration::from_millis(100));
    for _ in 0..5 {
        let started = Instant::now();
        assert!(allocator.next_seq(1).is_err());
        assert!(started.elapsed() < max_wait + Duration::from_secs(1));
    }
    assert!(allocator.metrics().store_errors >= 1);

    // The database comes back: the same allocator recovers by itself.
    store.set_latency(Duration::ZERO);
    store.set_failing(false);
    let mut recovered = None;
    assert!(eventually(|| {
        recovered = allocator.next_seq(1).ok();
        recovered.is_some()
    }));
    assert!(recovered.is_some_and(|seq| seq > last));
    Ok(())
}

#[test]
fn a_conversation_first_used_during_an_outage_fails_with_a_clear_error() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = faulty_store(&db)?;
    let allocator = IdAllocator::new(store.clone(), AllocatorConfig::default());
    store.set_failing(true);
    let err = allocator
        .next_seq(9)
        .err()
        .ok_or("a seq without a database")?;
    assert!(
        matches!(
            err,
            IdgenError::Unavailable {
                conversation_id: 9,
                ..
            }
        ),
        "{err}"
    );
    store.set_failing(false);
    assert!(eventually(|| allocator.next_seq(9).is_ok()));
    Ok(())
}

#[test]
fn with_20ms_store_latency_a_steady_caller_never_waits() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = faulty_store(&db)?;
    store.set_latency(Duration::from_millis(20));
    // 100 seqs a segment, the spare claimed after 50: at one seq per 2 ms (or slower, on a
    // busy machine) the spare has at least 100 ms to arrive, five times the latency.
    let allocator = IdAllocator::new(store, fixed_step(100));
    let generator = allocator.generator(1)?;
    let mut last = 0;
    for _ in 0..800 {
        let seq = generator.next_seq()?;
        assert!(seq > last);
        last = seq;
        std::thread::sleep(Duration::from_millis(2));
    }
    let metrics = allocator.metrics();
    assert!(metrics.segments_claimed >= 8, "{metrics:?}");
    assert_eq!(metrics.caller_waits, 0, "{metrics:?}");
    Ok(())
}

#[test]
fn a_burst_that_empties_both_buffers_waits_for_the_claim_in_flight() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = faulty_store(&db)?;
    store.set_latency(Duration::from_millis(20));
    // A step far too small for a tight loop; a generous wait bound so no call gives up.
    let config = AllocatorConfig {
        max_wait: Duration::from_secs(5),
        ..fixed_step(10)
    };
    let allocator = IdAllocator::new(store, config);
    let mut last = 0;
    for _ in 0..100 {
        let seq = allocator.next_seq(1)?;
        assert_eq!(seq, last + 1);
        last = seq;
    }
    let metrics = allocator.metrics();
    assert!(metrics.caller_waits > 0, "{metrics:?}");
    assert_eq!(metrics.caller_wait_timeouts, 0, "{metrics:?}");
    Ok(())
}

#[test]
fn round_trips_stay_at_one_per_segment_in_steady_state() -> TestResult {
    for db in TestDb::all()? {
        let allocator = IdAllocator::new(db.store()?, fixed_step(10));
        // 995 seqs: the 100th segment [991, 1001) is current and its prefetch mark (996) is not
        // reached, so exactly 100 segments have been claimed.
        for _ in 0..995 {
            allocator.next_seq(4)?;
        }
        let metrics = allocator.metrics();
        assert_eq!(metrics.segments_claimed, 100, "{}: {metrics:?}", db.label);
        // The first claim reads the (missing) row and inserts it; every later claim is one
        // UPDATE.
        assert_eq!(metrics.db_round_trips, 101, "{}: {metrics:?}", db.label);

        // Shutdown gives back [996, 1001) with one more statement.
        allocator.shutdown();
        let metrics = allocator.metrics();
        assert_eq!(metrics.db_round_trips, 102, "{}: {metrics:?}", db.label);
        assert_eq!(metrics.seqs_given_back, 5, "{}: {metrics:?}", db.label);
    }
    Ok(())
}

#[test]
fn shutdown_releases_callers_waiting_for_a_slow_claim() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = faulty_store(&db)?;
    let config = AllocatorConfig {
        max_wait: Duration::from_secs(30),
        ..fixed_step(10)
    };
    let allocator = IdAllocator::new(store.clone(), config);
    allocator.next_seq(1)?;
    store.set_latency(Duration::from_millis(200));

    // A tight loop empties both buffers and then waits on the slow claims.
    let caller = {
        let allocator = allocator.clone();
        std::thread::spawn(move || {
            loop {
                if let Err(err) = allocator.next_seq(1) {
                    return err;
                }
            }
        })
    };
    assert!(eventually(|| allocator.metrics().caller_waits > 0));
    allocator.shutdown();
    let err = caller.join().map_err(|_| "caller panicked")?;
    assert!(matches!(err, IdgenError::ShutDown), "{err}");
    Ok(())
}
