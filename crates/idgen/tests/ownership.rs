//! One owner per conversation: a node that takes a conversation over fences the previous
//! owner out of claims and out of commits. Separate stores and allocators on one database stand
//! in for separate nodes.

mod common;

use std::sync::Arc;

use common::{TestDb, TestResult};
use tern_idgen::{AllocatorConfig, IdAllocator, IdgenError, SegmentStore, check_owner};

fn fenced() -> AllocatorConfig {
    AllocatorConfig {
        fence_ownership: true,
        min_step: 10,
        initial_step: 10,
        max_step: 10,
        ..AllocatorConfig::default()
    }
}

/// Runs the owner check the way a message commit would: inside a write transaction.
fn commit_allowed(
    db: &TestDb,
    conversation_id: i64,
    epoch: i64,
) -> Result<bool, Box<dyn std::error::Error>> {
    let pool = db.pool()?;
    let mut conn = pool.get()?;
    let allowed =
        tern_db::write_transaction(&mut conn, |conn| check_owner(conn, conversation_id, epoch))?;
    Ok(allowed)
}

#[test]
fn a_takeover_fences_the_old_owner_out_of_claims_and_commits() -> TestResult {
    for db in TestDb::all()? {
        let (a, b) = (db.store()?, db.store()?);
        let epoch_a = a.take_ownership(5)?;
        assert_eq!(a.claim_as_owner(5, 10, epoch_a)?, 1..11, "{}", db.label);
        assert!(commit_allowed(&db, 5, epoch_a)?, "{}", db.label);

        let epoch_b = b.take_ownership(5)?;
        assert!(epoch_b > epoch_a, "{}", db.label);
        assert_eq!(b.claim_as_owner(5, 10, epoch_b)?, 11..21, "{}", db.label);

        let refused = a.claim_as_owner(5, 10, epoch_a);
        assert!(
            matches!(refused, Err(IdgenError::NotOwner { conversation_id: 5, epoch }) if epoch == epoch_b),
            "{}: {refused:?}",
            db.label
        );
        assert!(!commit_allowed(&db, 5, epoch_a)?, "{}", db.label);
        assert!(commit_allowed(&db, 5, epoch_b)?, "{}", db.label);
    }
    Ok(())
}

#[test]
fn a_node_taken_over_stops_getting_segments_and_its_seqs_stay_below_the_new_owners() -> TestResult {
    for db in TestDb::all()? {
        let node_a = IdAllocator::new(db.store()?, fenced());
        let node_b = IdAllocator::new(db.store()?, fenced());

        let (first, epoch_a) = node_a.next_seq_fenced(8)?;
        assert_eq!(first, 1, "{}", db.label);

        // Node B takes the conversation over while A still holds buffered seqs.
        let (b_first, epoch_b) = node_b.next_seq_fenced(8)?;
        assert!(epoch_b > epoch_a, "{}", db.label);

        // A can drain what it had buffered, but none of it may be committed any more, and
        // every seq A ever got is below B's.
        let mut a_last = first;
        let fenced_out = loop {
            match node_a.next_seq_fenced(8) {
                Ok((seq, epoch)) => {
                    assert_eq!(epoch, epoch_a);
                    assert!(
                        seq < b_first,
                        "{}: A's {seq} not below B's {b_first}",
                        db.label
                    );
                    a_last = seq;
                }
                Err(err) => break err,
            }
        };
        assert!(
            matches!(
                fenced_out,
                IdgenError::NotOwner {
                    conversation_id: 8,
                    ..
                }
            ),
            "{}: {fenced_out}",
            db.label
        );
        assert!(a_last < b_first);
        assert!(!commit_allowed(&db, 8, epoch_a)?, "{}", db.label);
        assert!(commit_allowed(&db, 8, epoch_b)?, "{}", db.label);

        // Handing the conversation back: A releases and takes over again, above B's seqs.
        let (b_last, _) = node_b.next_seq_fenced(8)?;
        assert!(node_a.release(8));
        let (again, epoch_again) = node_a.next_seq_fenced(8)?;
        assert!(epoch_again > epoch_b && again > b_last, "{}", db.label);
        assert!(matches!(
            node_b.next_seq_fenced(8),
            Ok(_) | Err(IdgenError::NotOwner { .. })
        ));
    }
    Ok(())
}

#[test]
fn without_fencing_the_epoch_is_zero_and_no_ownership_is_taken() -> TestResult {
    let db = TestDb::sqlite()?;
    let allocator = IdAllocator::new(db.store()?, AllocatorConfig::default());
    assert_eq!(allocator.next_seq_fenced(3)?, (1, 0));
    assert!(commit_allowed(&db, 3, 0)?);
    let store: Arc<dyn SegmentStore> = db.store()?;
    assert_eq!(store.take_ownership(3)?, 1);
    assert!(!commit_allowed(&db, 3, 0)?);
    Ok(())
}
