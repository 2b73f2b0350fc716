//! The segment store on the `id_segments` table, for SQLite, PostgreSQL and MySQL alike.
//!
//! Every claim is one version-checked `UPDATE` in autocommit:
//!
//! ```sql
//! UPDATE id_segments SET next_seq = next_seq + :step, version = version + 1, updated_at = :now
//!  WHERE conversation_id = :c AND version = :v
//! ```
//!
//! The store remembers the `(version, next_seq)` pair its last statement left behind. Every
//! write bumps `version`, so when the update matches one row nobody else wrote in between and
//! the claimed range is exactly `[next_seq, next_seq + step)` as remembered: one round trip per
//! segment. When it matches no row, another process claimed first; the store reads the row
//! again and retries, a bounded number of times.
//!
//! Why this is safe across processes: two claims that succeed both moved the row from some
//! version `v` to `v + 1`, and a single row can only make that move once, so the claims start
//! from different `next_seq` values and each moved `next_seq` past its own range. Ranges are
//! therefore disjoint. No statement holds a lock beyond itself, so there is no lock order to
//! get wrong and no transaction can deadlock; it is plain SQL every backend runs the same way.
//!
//! A conversation without a row gets one by `INSERT` starting at 1; when two processes race
//! to insert, the loser sees a unique violation and takes the read-and-update path.
//!
//! The same row carries `owner_epoch` for fencing (see the crate docs): taking a conversation
//! over is one more version-checked `UPDATE`, so an owner's cached version also proves its
//! epoch is still current, and a claim by the owner costs no extra statement.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tern_db::{DbConnection, DbPool};

use crate::layout::MAX_SEQ;
use crate::{IdgenError, SegmentStore};

diesel::table! {
    id_segments (conversation_id) {
        conversation_id -> BigInt,
        next_seq -> BigInt,
        version -> BigInt,
        updated_at -> BigInt,
        owner_epoch -> BigInt,
    }
}

use id_segments::dsl;

/// Lost races before a claim gives up with [`IdgenError::Contended`]. Each lost race means
/// another process claimed a segment for the same conversation in the same instant. A racer
/// that just won keeps its row version cached and needs one statement for its next claim
/// while a loser needs two, so a loser can lose several times in a row against a busy peer;
/// with the growing back-off below, 32 attempts span tens of milliseconds, far longer than
/// any peer keeps claiming the same conversation back to back.
const MAX_ATTEMPTS: u32 = 32;

/// Cached rows kept per cache shard; past it the shard is cleared (a miss costs one read).
/// The allocator forgets conversations it evicts, so this only bounds a leak, it is not the
/// working limit.
const CACHE_SHARD_CAP: usize = 1 << 14;
const CACHE_SHARDS: usize = 16;

/// A [`SegmentStore`] on the `id_segments` table through a [`DbPool`].
pub struct DieselSegmentStore {
    pool: DbPool,
    known: Box<[Mutex<HashMap<i64, Row>>]>,
    round_trips: AtomicU64,
    lost_races: AtomicU64,
}

/// The row as our last statement left it.
#[derive(Clone, Copy, Debug)]
struct Row {
    next_seq: u64,
    version: i64,
    epoch: i64,
}

impl DieselSegmentStore {
    pub fn new(pool: DbPool) -> Self {
        DieselSegmentStore {
            pool,
            known: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            round_trips: AtomicU64::new(0),
            lost_races: AtomicU64::new(0),
        }
    }

    /// Version-checked updates that matched no row because another process (or thread)
    /// wrote the row first; each was followed by a fresh read and a retry.
    pub fn lost_races(&self) -> u64 {
        self.lost_races.load(Ordering::Relaxed)
    }

    fn cache(&self, conversation_id: i64) -> MutexGuard<'_, HashMap<i64, Row>> {
        let shard = &self.known[(conversation_id as u64 % CACHE_SHARDS as u64) as usize];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, conversation_id: i64, row: Row) {
        let mut cache = self.cache(conversation_id);
        if cache.len() >= CACHE_SHARD_CAP && !cache.contains_key(&conversation_id) {
            cache.clear();
        }
        cache.insert(conversation_id, row);
    }

    fn connection(&self, conversation_id: i64) -> Result<tern_db::PooledConn, IdgenError> {
        self.pool.get().map_err(|err| {
            IdgenError::unavailable(conversation_id, format!("no database connection: {err}"))
        })
    }

    fn count_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    fn read(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
    ) -> Result<Option<Row>, IdgenError> {
        self.count_round_trip();
        let found = dsl::id_segments
            .find(conversation_id)
            .select((dsl::next_seq, dsl::version, dsl::owner_epoch))
            .first::<(i64, i64, i64)>(conn)
            .optional()
            .map_err(|err| query_failed(conversation_id, err))?;
        let Some((next_seq, version, epoch)) = found else {
            return Ok(None);
        };
        let row = row_from_db(conversation_id, next_seq, version, epoch)?;
        self.remember(conversation_id, row);
        Ok(Some(row))
    }

    /// Creates the row with the first segment; `None` when another process created it first.
    fn insert_first(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
        step: u64,
    ) -> Result<Option<Range<u64>>, IdgenError> {
        let step = step.min(MAX_SEQ);
        self.count_round_trip();
        let inserted = diesel::insert_into(dsl::id_segments)
            .values((
                dsl::conversation_id.eq(conversation_id),
                dsl::next_seq.eq(to_db(1 + step)),
                dsl::version.eq(1),
                dsl::updated_at.eq(now_ms()),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {
                self.remember(
                    conversation_id,
                    Row {
                        next_seq: 1 + step,
                        version: 1,
                        epoch: 0,
                    },
                );
                Ok(Some(1..1 + step))
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
            Err(err) => Err(query_failed(conversation_id, err)),
        }
    }

    /// The version-checked claim; `false` when someone else wrote the row since `row`.
    fn advance(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
        row: Row,
        step: u64,
    ) -> Result<bool, IdgenError> {
        self.count_round_trip();
        let updated = diesel::update(
            dsl::id_segments
                .filter(dsl::conversation_id.eq(conversation_id))
                .filter(dsl::version.eq(row.version)),
        )
        .set((
            dsl::next_seq.eq(dsl::next_seq + to_db(step)),
            dsl::version.eq(dsl::version + 1),
            dsl::updated_at.eq(now_ms()),
        ))
        .execute(conn)
        .map_err(|err| query_failed(conversation_id, err))?;
        if updated == 1 {
            let next = Row {
                next_seq: row.next_seq + step,
                version: row.version + 1,
                epoch: row.epoch,
            };
            self.remember(conversation_id, next);
        }
        Ok(updated == 1)
    }

    /// Creates the row of a conversation nobody has used yet, owned at epoch 1; `false` when
    /// another process created it first.
    fn insert_owned(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
    ) -> Result<bool, IdgenError> {
        self.count_round_trip();
        let inserted = diesel::insert_into(dsl::id_segments)
            .values((
                dsl::conversation_id.eq(conversation_id),
                dsl::next_seq.eq(1),
                dsl::version.eq(1),
                dsl::updated_at.eq(now_ms()),
                dsl::owner_epoch.eq(1),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {
                let row = Row {
                    next_seq: 1,
                    version: 1,
                    epoch: 1,
                };
                self.remember(conversation_id, row);
                Ok(true)
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
            Err(err) => Err(query_failed(conversation_id, err)),
        }
    }

    /// Takes the conversation over from whoever owned it at `row`; `false` on a lost race.
    fn bump_epoch(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
        row: Row,
    ) -> Result<bool, IdgenError> {
        self.count_round_trip();
        let updated = diesel::update(
            dsl::id_segments
                .filter(dsl::conversation_id.eq(conversation_id))
                .filter(dsl::version.eq(row.version)),
        )
        .set((
            dsl::owner_epoch.eq(row.epoch + 1),
            dsl::version.eq(dsl::version + 1),
            dsl::updated_at.eq(now_ms()),
        ))
        .execute(conn)
        .map_err(|err| query_failed(conversation_id, err))?;
        if updated == 1 {
            let next = Row {
                version: row.version + 1,
                epoch: row.epoch + 1,
                ..row
            };
            self.remember(conversation_id, next);
        }
        Ok(updated == 1)
    }

    /// Moves `next_seq` back to `unused.start` if it still stands at `unused.end`.
    fn rewind(
        &self,
        conn: &mut DbConnection,
        conversation_id: i64,
        row: Row,
        unused: &Range<u64>,
    ) -> Result<bool, IdgenError> {
        self.count_round_trip();
        let updated = diesel::update(
            dsl::id_segments
                .filter(dsl::conversation_id.eq(conversation_id))
                .filter(dsl::version.eq(row.version))
                .filter(dsl::next_seq.eq(to_db(unused.end))),
        )
        .set((
            dsl::next_seq.eq(to_db(unused.start)),
            dsl::version.eq(dsl::version + 1),
            dsl::updated_at.eq(now_ms()),
        ))
        .execute(conn)
        .map_err(|err| query_failed(conversation_id, err))?;
        if updated == 1 {
            let next = Row {
                next_seq: unused.start,
                version: row.version + 1,
                epoch: row.epoch,
            };
            self.remember(conversation_id, next);
        }
        Ok(updated == 1)
    }
}

impl DieselSegmentStore {
    /// A claim, by the holder of `owner` if given: a row whose epoch differs means another
    /// node took the conversation over, and the claim is refused.
    fn claim_inner(
        &self,
        conversation_id: i64,
        step: u64,
        owner: Option<i64>,
    ) -> Result<Range<u64>, IdgenError> {
        let step = step.max(1);
        let mut conn = self.connection(conversation_id)?;
        let mut known = self.cache(conversation_id).get(&conversation_id).copied();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                back_off(attempt);
            }
            let (row, cached) = match known.take() {
                Some(row) => (row, true),
                None => match self.read(&mut conn, conversation_id)? {
                    Some(row) => (row, false),
                    // An owner's row exists since it took ownership; gone means fenced out.
                    None if owner.is_some() => {
                        return Err(IdgenError::NotOwner {
                            conversation_id,
                            epoch: 0,
                        });
                    }
                    None => match self.insert_first(&mut conn, conversation_id, step)? {
                        Some(range) => return Ok(range),
                        None => continue,
                    },
                },
            };
            if owner.is_some_and(|epoch| epoch != row.epoch) {
                if cached {
                    // What we remember may predate our own takeover: read again.
                    continue;
                }
                return Err(IdgenError::NotOwner {
                    conversation_id,
                    epoch: row.epoch,
                });
            }
            if row.next_seq > MAX_SEQ {
                return Err(IdgenError::SeqSpaceExhausted { conversation_id });
            }
            // Near the end of the seq space the last segment is shorter.
            let step = step.min(MAX_SEQ + 1 - row.next_seq);
            // The version check also covers the epoch: a takeover bumps the version.
            if self.advance(&mut conn, conversation_id, row, step)? {
                return Ok(row.next_seq..row.next_seq + step);
            }
            self.lost_races.fetch_add(1, Ordering::Relaxed);
        }
        Err(IdgenError::Contended {
            conversation_id,
            attempts: MAX_ATTEMPTS,
        })
    }
}

impl SegmentStore for DieselSegmentStore {
    fn claim(&self, conversation_id: i64, step: u64) -> Result<Range<u64>, IdgenError> {
        self.claim_inner(conversation_id, step, None)
    }

    fn claim_as_owner(
        &self,
        conversation_id: i64,
        step: u64,
        epoch: i64,
    ) -> Result<Range<u64>, IdgenError> {
        self.claim_inner(conversation_id, step, Some(epoch))
    }

    fn take_ownership(&self, conversation_id: i64) -> Result<i64, IdgenError> {
        let mut conn = self.connection(conversation_id)?;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                back_off(attempt);
            }
            let Some(row) = self.read(&mut conn, conversation_id)? else {
                if self.insert_owned(&mut conn, conversation_id)? {
                    return Ok(1);
                }
                continue;
            };
            if self.bump_epoch(&mut conn, conversation_id, row)? {
                return Ok(row.epoch + 1);
            }
            self.lost_races.fetch_add(1, Ordering::Relaxed);
        }
        Err(IdgenError::Contended {
            conversation_id,
            attempts: MAX_ATTEMPTS,
        })
    }

    fn give_back(&self, conversation_id: i64, unused: Range<u64>) -> Result<bool, IdgenError> {
        if unused.is_empty() {
            return Ok(true);
        }
        let mut conn = self.connection(conversation_id)?;
        let mut known = self.cache(conversation_id).get(&conversation_id).copied();
        for _ in 0..MAX_ATTEMPTS {
            let row = match known.take() {
                Some(row) => row,
                None => match self.read(&mut conn, conversation_id)? {
                    Some(row) => row,
                    None => return Ok(false),
                },
            };
            // Someone claimed after this range (or returned theirs below it): it stays used.
            if row.next_seq != unused.end {
                return Ok(false);
            }
            if self.rewind(&mut conn, conversation_id, row, &unused)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn forget(&self, conversation_id: i64) {
        self.cache(conversation_id).remove(&conversation_id);
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// Sleeps a little before retrying a lost race, longer after each loss and by a different
/// amount in each process, so racers spread out instead of colliding again in lockstep (on
/// PostgreSQL, four threads hammering one row otherwise starve one of them). Claims run off
/// the hot path, so a fraction of a millisecond here costs no caller anything.
fn back_off(attempt: u32) {
    let spread_us = 200 * u64::from(attempt.min(10));
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let noise = u64::from(noise ^ std::process::id().rotate_left(16));
    std::thread::sleep(std::time::Duration::from_micros(noise % spread_us + 1));
}

#[derive(QueryableByName)]
struct Epoch {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    owner_epoch: i64,
}

/// Whether `epoch` still owns the conversation, checked inside the caller's transaction.
///
/// Call it in the transaction that commits the conversation's messages, before the commit:
/// on PostgreSQL and MySQL it locks the segment row until the transaction ends (`FOR UPDATE`),
/// on SQLite the write transaction already excludes every other writer. A takeover therefore
/// waits for a commit in progress, and every commit after the takeover sees the new epoch and
/// must roll back. Seqs committed by the old owner all come from claims made before the
/// takeover, and the new owner's claims start above them, so seqs stay in commit order even
/// when two nodes briefly both believe they own the conversation.
pub fn check_owner(
    conn: &mut DbConnection,
    conversation_id: i64,
    epoch: i64,
) -> diesel::QueryResult<bool> {
    use diesel::sql_types::BigInt;
    let query = match conn {
        DbConnection::Sqlite(_) => "SELECT owner_epoch FROM id_segments WHERE conversation_id = ?",
        DbConnection::Postgres(_) => {
            "SELECT owner_epoch FROM id_segments WHERE conversation_id = $1 FOR UPDATE"
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(_) => {
            "SELECT owner_epoch FROM id_segments WHERE conversation_id = ? FOR UPDATE"
        }
    };
    let found = diesel::sql_query(query)
        .bind::<BigInt, _>(conversation_id)
        .get_result::<Epoch>(conn)
        .optional()?;
    Ok(found.is_some_and(|row| row.owner_epoch == epoch))
}

fn row_from_db(
    conversation_id: i64,
    next_seq: i64,
    version: i64,
    epoch: i64,
) -> Result<Row, IdgenError> {
    match u64::try_from(next_seq) {
        Ok(next_seq) if next_seq >= 1 => Ok(Row {
            next_seq,
            version,
            epoch,
        }),
        _ => Err(IdgenError::CorruptRow {
            conversation_id,
            detail: format!("next_seq is {next_seq}; it starts at 1 and only grows"),
        }),
    }
}

/// Seqs stay at or below 2^32, far inside `BIGINT`.
fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn query_failed(conversation_id: i64, err: DieselError) -> IdgenError {
    IdgenError::unavailable(conversation_id, format!("segment query failed: {err}"))
}
