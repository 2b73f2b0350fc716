//! The raw INSERT baseline: how fast the same database takes rows shaped like Tern's
//! `messages`, in batches of one multi-row INSERT per transaction, and one row per commit.
//!
//! It opens the database through `tern-db`, so the connection carries the same durability
//! settings as the server's (WAL with `synchronous=FULL` on SQLite, `synchronous_commit=on`
//! on PostgreSQL), and writes a scratch table with the columns, primary key and unique index
//! of `messages`, which it drops afterwards. The server's rate divided by these is the
//! persistence ratio the performance targets are stated in.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use tern_db::{DbConnection, PoolSettings, write_transaction};

use crate::stats::Report;

diesel::table! {
    loadgen_insert_baseline (conversation_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        prev_seq -> BigInt,
        sender_id -> BigInt,
        client_msg_id -> Text,
        kind -> Text,
        body -> Text,
        meta -> Nullable<Text>,
        created_at -> BigInt,
        recalled_at -> Nullable<BigInt>,
    }
}

/// Same columns, key and unique index as `messages` in `migrations/`.
const CREATE: &str = "CREATE TABLE loadgen_insert_baseline (
    conversation_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    prev_seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    client_msg_id VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    body TEXT NOT NULL,
    meta TEXT,
    created_at BIGINT NOT NULL,
    recalled_at BIGINT,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX loadgen_insert_baseline_by_client_id ON loadgen_insert_baseline (sender_id, client_msg_id);";

const DROP: &str = "DROP TABLE IF EXISTS loadgen_insert_baseline";

#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = loadgen_insert_baseline)]
struct Row {
    conversation_id: i64,
    seq: i64,
    prev_seq: i64,
    sender_id: i64,
    client_msg_id: String,
    kind: String,
    body: String,
    meta: Option<String>,
    created_at: i64,
    recalled_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub rows: usize,
    pub batch: usize,
    /// Rows written one commit each, bounded further by `per_row_limit`.
    pub per_row_rows: usize,
    pub per_row_limit: Duration,
    pub conversations: usize,
    pub text_bytes: usize,
}

/// Rows per second, batched and one per commit.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub batched: f64,
    pub per_row: f64,
}

pub fn run(url: &str, settings: &Settings, report: &mut Report) -> anyhow::Result<Rates> {
    let pool = tern_db::connect(
        url,
        &PoolSettings {
            max_size: 1,
            ..PoolSettings::default()
        },
    )
    .context("opening the database for the baseline")?;
    let mut conn = pool.get().context("a connection for the baseline")?;
    conn.batch_execute(DROP)?;
    conn.batch_execute(CREATE)
        .context("creating the scratch table")?;
    let outcome = measure(&mut conn, settings);
    let dropped = conn.batch_execute(DROP);
    let rates = outcome?;
    dropped.context("dropping the scratch table")?;
    report.row(
        "batched INSERT",
        format!(
            "{:.0} rows/s ({} rows, {} per transaction)",
            rates.batched, settings.rows, settings.batch
        ),
    );
    report.row("one row per commit", format!("{:.0} rows/s", rates.per_row));
    report.row(
        "batched vs one per commit",
        format!("{:.1}x", rates.batched / rates.per_row.max(1e-9)),
    );
    report.metric("raw_insert_batched_rows_per_s", rates.batched);
    report.metric("raw_insert_per_row_commit_rows_per_s", rates.per_row);
    report.ratio(
        "raw_batched_vs_per_row_commit",
        rates.batched / rates.per_row.max(1e-9),
    );
    Ok(rates)
}

fn measure(conn: &mut DbConnection, settings: &Settings) -> anyhow::Result<Rates> {
    let body: String = "x".repeat(settings.text_bytes.max(1));
    let row = |i: usize| Row {
        conversation_id: (i % settings.conversations.max(1)) as i64 + 1,
        seq: i as i64 + 1,
        prev_seq: i as i64,
        sender_id: (i % 1000) as i64 + 1,
        client_msg_id: format!("baseline-{i}"),
        kind: "text".into(),
        body: body.clone(),
        meta: None,
        created_at: 1_700_000_000_000 + i as i64,
        recalled_at: None,
    };
    let started = Instant::now();
    let mut next = 0;
    while next < settings.rows {
        let rows: Vec<Row> = (next..(next + settings.batch).min(settings.rows))
            .map(row)
            .collect();
        next += rows.len();
        write_transaction(conn, |c| insert(c, &rows))?;
    }
    let batched = settings.rows as f64 / started.elapsed().as_secs_f64().max(1e-9);

    let started = Instant::now();
    let mut written = 0;
    while written < settings.per_row_rows && started.elapsed() < settings.per_row_limit {
        let one = [row(settings.rows + written)];
        write_transaction(conn, |c| insert(c, &one))?;
        written += 1;
    }
    let per_row = written as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(Rates { batched, per_row })
}

fn insert(conn: &mut DbConnection, rows: &[Row]) -> Result<usize, diesel::result::Error> {
    let statement = diesel::insert_into(loadgen_insert_baseline::table).values(rows);
    tern_db::on_backend!(conn, c => statement.execute(c))
}
