//! The raw INSERT rates of the `messages` table on every backend the environment offers.
//!
//! Each backend gets a fresh database with the real migrations, opened through the same pool
//! the server uses, so every commit is as durable as the server's own (SQLite: WAL with
//! `synchronous=FULL`; PostgreSQL: `synchronous_commit=on`; MySQL: whatever the server's
//! `innodb_flush_log_at_trx_commit` says). Two rates are measured:
//!
//! - batched: multi-row `INSERT`s of [`BATCH`] rows, one write transaction each;
//! - per row: one single-row `INSERT` per commit (autocommit).
//!
//! These are the baselines the persistence target is stated against. SQLite always runs;
//! PostgreSQL and MySQL run when `TERN_TEST_POSTGRES_URL` / `TERN_TEST_MYSQL_URL` name a
//! server (MySQL also needs `--features mysql`). `TERN_BENCH_SECONDS` sets the time spent on
//! each of the two measurements (default 1.5 s).
//!
//! Besides a readable summary, the output carries lines for scripts:
//! `ratio BACKEND_batched_over_per_row_commit VALUE`,
//! `baseline BACKEND batched_rows_per_s VALUE` and
//! `baseline BACKEND per_row_commit_rows_per_s VALUE`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use tern_db::{Backend, DbConnection, PoolSettings};
use tern_testkit::TestDatabase;

/// Rows per multi-row `INSERT`, one transaction each.
const BATCH: usize = 500;

/// Conversations the rows are spread over, as a busy node's recent writes would be.
const CONVERSATIONS: usize = 100;

/// A message body of a typical chat line's length.
const BODY: &str = "on my way, be there in ten minutes; grab us a table by the window please";

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Which message comes next: spreads rows over the conversations with rising seqs, and
/// keeps each `(sender, client_msg_id)` unique.
struct Rows {
    next: usize,
}

impl Rows {
    /// The SQL tuple of the next row.
    fn push_next(&mut self, sql: &mut String) {
        let n = self.next;
        self.next += 1;
        let conversation = n % CONVERSATIONS + 1;
        let seq = n / CONVERSATIONS + 1;
        let sender = conversation;
        let _ = write!(
            sql,
            "({conversation}, {seq}, {}, {sender}, 'm{n}', 'text', '{BODY}', {n})",
            seq - 1
        );
    }
}

const COLUMNS: &str = concat!(
    "INSERT INTO messages ",
    "(conversation_id, seq, prev_seq, sender_id, client_msg_id, kind, body, created_at) VALUES "
);

/// Rows per second of multi-row `INSERT`s, one write transaction per batch.
fn batched(conn: &mut DbConnection, rows: &mut Rows, budget: Duration) -> BenchResult<f64> {
    let started = Instant::now();
    let mut written = 0usize;
    while started.elapsed() < budget {
        let mut sql = String::with_capacity(BATCH * 120);
        sql.push_str(COLUMNS);
        for i in 0..BATCH {
            if i > 0 {
                sql.push_str(", ");
            }
            rows.push_next(&mut sql);
        }
        let inserted = tern_db::write_transaction(conn, |c| diesel::sql_query(&sql).execute(c))?;
        written += inserted;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// Rows per second of single-row `INSERT`s, each its own commit.
fn per_row(conn: &mut DbConnection, rows: &mut Rows, budget: Duration) -> BenchResult<f64> {
    let started = Instant::now();
    let mut written = 0usize;
    while started.elapsed() < budget {
        let mut sql = String::from(COLUMNS);
        rows.push_next(&mut sql);
        written += diesel::sql_query(&sql).execute(conn)?;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// Both rates on a fresh database of `backend`.
fn measure(backend: Backend, budget: Duration) -> BenchResult<(f64, f64)> {
    let db = TestDatabase::create(backend);
    let settings = PoolSettings {
        max_size: 1,
        connection_timeout: Duration::from_secs(10),
    };
    let pool = tern_db::connect(&db.url, &settings)?;
    tern_storage::run_migrations(&pool)?;
    let mut conn = pool.get()?;
    let mut rows = Rows { next: 0 };
    // A short warm-up, so the first measurement does not pay for cold caches alone.
    batched(&mut conn, &mut rows, budget / 10)?;
    let batched_rate = batched(&mut conn, &mut rows, budget)?;
    let per_row_rate = per_row(&mut conn, &mut rows, budget)?;
    Ok((batched_rate, per_row_rate))
}

fn budget() -> Duration {
    let seconds = std::env::var("TERN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    Duration::from_secs_f64(seconds.unwrap_or(1.5).clamp(0.1, 600.0))
}

fn main() -> BenchResult<()> {
    let budget = budget();
    println!(
        "INSERT into messages: {BATCH} rows per transaction vs one row per commit, {budget:?} each"
    );
    for backend in tern_testkit::backends() {
        let name = backend.name();
        let (batched_rate, per_row_rate) = measure(backend, budget)?;
        let ratio = batched_rate / per_row_rate.max(f64::MIN_POSITIVE);
        println!(
            "{name:<9} batched {batched_rate:>10.0} rows/s   per-row commit {per_row_rate:>8.0} rows/s   {ratio:>6.1}x"
        );
        println!("ratio {name}_batched_over_per_row_commit {ratio:.1}");
        println!("baseline {name} batched_rows_per_s {batched_rate:.0}");
        println!("baseline {name} per_row_commit_rows_per_s {per_row_rate:.0}");
    }
    Ok(())
}
