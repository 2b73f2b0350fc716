//! The Diesel segment store's contract, on SQLite and (when `TERN_TEST_POSTGRES_URL` is set)
//! PostgreSQL. Separate store instances stand in for separate processes: each has its own
//! pool and its own cached row versions.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use common::{TestDb, TestResult};
use tern_idgen::layout::MAX_SEQ;
use tern_idgen::{IdgenError, SegmentStore};

#[test]
fn the_first_claim_starts_at_one_and_claims_follow_each_other() -> TestResult {
    for db in TestDb::all()? {
        let store = db.store()?;
        assert_eq!(store.claim(1, 10)?, 1..11, "{}", db.label);
        assert_eq!(store.claim(1, 5)?, 11..16, "{}", db.label);
        assert_eq!(store.claim(2, 3)?, 1..4, "{}", db.label);
    }
    Ok(())
}

#[test]
fn a_claim_after_another_process_claimed_rereads_and_continues_above_it() -> TestResult {
    for db in TestDb::all()? {
        let (a, b) = (db.store()?, db.store()?);
        assert_eq!(a.claim(1, 10)?, 1..11);
        assert_eq!(b.claim(1, 10)?, 11..21);
        // `a` still remembers version 1; its update misses, it reads, and retries.
        assert_eq!(a.claim(1, 10)?, 21..31, "{}", db.label);
        assert_eq!(a.lost_races(), 1, "{}", db.label);
    }
    Ok(())
}

#[test]
fn only_the_last_claimer_can_give_seqs_back() -> TestResult {
    for db in TestDb::all()? {
        let (a, b) = (db.store()?, db.store()?);
        assert_eq!(a.claim(1, 32)?, 1..33);
        assert_eq!(b.claim(1, 32)?, 33..65);
        // `a`'s rest is no longer the tail: `b` holds seqs above it.
        assert!(!a.give_back(1, 10..33)?, "{}", db.label);
        assert!(b.give_back(1, 40..65)?, "{}", db.label);
        // The returned seqs are claimed again, by anyone.
        assert_eq!(a.claim(1, 8)?, 40..48, "{}", db.label);
    }
    Ok(())
}

#[test]
fn processes_racing_on_a_new_conversation_get_disjoint_ranges() -> TestResult {
    for db in TestDb::all()? {
        let stores: Vec<_> = (0..4).map(|_| db.store()).collect::<Result<_, _>>()?;
        let barrier = Arc::new(Barrier::new(stores.len()));
        let threads: Vec<_> = stores
            .into_iter()
            .map(|store| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || -> Result<Vec<u64>, IdgenError> {
                    barrier.wait();
                    let mut seqs = Vec::new();
                    for _ in 0..20 {
                        seqs.extend(store.claim(77, 5)?);
                    }
                    Ok(seqs)
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for seq in thread.join().map_err(|_| "claiming thread panicked")?? {
                assert!(seen.insert(seq), "{}: seq {seq} claimed twice", db.label);
            }
        }
        // Nothing given back and nothing skipped: together they claimed exactly 1..=400.
        assert_eq!(seen.len(), 400, "{}", db.label);
        assert_eq!(seen.iter().max().copied(), Some(400), "{}", db.label);
    }
    Ok(())
}

#[test]
fn the_last_segment_is_cut_at_max_seq_and_then_claims_are_refused() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = db.store()?;
    // Use up all but 5 seqs in a few big claims.
    let mut claimed = store.claim(1, 1)?;
    while claimed.end < MAX_SEQ - 4 {
        claimed = store.claim(1, (MAX_SEQ - 4 - claimed.end).min(1 << 30))?;
    }
    assert_eq!(store.claim(1, 100)?, MAX_SEQ - 4..MAX_SEQ + 1);
    assert!(matches!(
        store.claim(1, 1),
        Err(IdgenError::SeqSpaceExhausted { conversation_id: 1 })
    ));
    Ok(())
}

#[test]
fn an_unreachable_database_is_reported_as_unavailable() -> TestResult {
    let db = TestDb::sqlite()?;
    let store = db.store()?;
    // A pool whose database lost its table behaves like a database that cannot serve claims.
    let pool = db.pool()?;
    diesel::RunQueryDsl::execute(
        diesel::sql_query("DROP TABLE id_segments"),
        &mut *pool.get()?,
    )?;
    let err = store.claim(1, 1).err().ok_or("claimed without a table")?;
    assert!(
        matches!(
            err,
            IdgenError::Unavailable {
                conversation_id: 1,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}
