//! Several allocator processes on one database never hand out the same seq.
//!
//! The parent test starts copies of this test binary running the ignored `child_…` test, each
//! an independent OS process with its own allocator and pool on the same database file (or
//! PostgreSQL database). Each child writes the seqs it got to a file; the parent reads them all
//! back and looks for duplicates.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, TestResult};
use tern_idgen::{AllocatorConfig, DieselSegmentStore, IdAllocator};

const CHILDREN: usize = 3;
const THREADS_PER_CHILD: usize = 2;
const SEQS_PER_THREAD: usize = 600;
const CONVERSATIONS: [i64; 3] = [101, 102, 103];

const ENV_URL: &str = "TERN_IDGEN_CHILD_URL";
const ENV_OUT: &str = "TERN_IDGEN_CHILD_OUT";
const ENV_GRACEFUL: &str = "TERN_IDGEN_CHILD_GRACEFUL";

#[test]
fn allocators_in_separate_processes_never_issue_the_same_seq() -> TestResult {
    for db in TestDb::all()? {
        let out_dir = tempfile::tempdir()?;
        let outputs: Vec<PathBuf> = (0..CHILDREN)
            .map(|n| out_dir.path().join(format!("child-{n}.txt")))
            .collect();

        let mut children = Vec::new();
        for (n, out) in outputs.iter().enumerate() {
            let child = Command::new(std::env::current_exe()?)
                .args(["child_allocates_seqs_into_a_file", "--exact", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env(ENV_URL, &db.url)
                .env(ENV_OUT, out)
                // Half shut down gracefully (giving seqs back), half exit as if crashed.
                .env(ENV_GRACEFUL, if n % 2 == 0 { "1" } else { "0" })
                // The child's own test report would read like this binary's; keep it apart.
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            children.push(child);
        }
        let mut lost_races = 0;
        for child in children {
            let output = child.wait_with_output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            lost_races += stderr
                .lines()
                .filter_map(|line| line.strip_prefix("lost races: "))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .sum::<u64>();
            assert!(
                output.status.success(),
                "{}: a child failed: {}\n{}{}",
                db.label,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                stderr
            );
        }
        // How often the processes really collided on a row (retried, not double-issued).
        eprintln!("{}: {lost_races} claims lost a race and retried", db.label);

        let mut seen: HashMap<i64, HashSet<u64>> = HashMap::new();
        let mut total = 0;
        for out in &outputs {
            for line in BufReader::new(std::fs::File::open(out)?).lines() {
                let line = line?;
                let mut fields = line.split_whitespace();
                let conv: i64 = fields.next().ok_or("missing conv")?.parse()?;
                let seq: u64 = fields.next().ok_or("missing seq")?.parse()?;
                assert!(
                    seen.entry(conv).or_default().insert(seq),
                    "{}: conv {conv} seq {seq} issued twice",
                    db.label
                );
                total += 1;
            }
        }
        assert_eq!(
            total,
            CHILDREN * THREADS_PER_CHILD * SEQS_PER_THREAD,
            "{}",
            db.label
        );
    }
    Ok(())
}

/// Runs only as a child of the test above (it finds its database in the environment).
#[test]
#[ignore = "started by allocators_in_separate_processes_never_issue_the_same_seq"]
fn child_allocates_seqs_into_a_file() -> TestResult {
    let (Ok(url), Ok(out)) = (std::env::var(ENV_URL), std::env::var(ENV_OUT)) else {
        return Ok(());
    };
    let graceful = std::env::var(ENV_GRACEFUL).is_ok_and(|v| v == "1");
    let pool = tern_db::connect(&url, &tern_db::PoolSettings::default())?;
    // Small segments make the processes race for the same rows hundreds of times; the long
    // wait bound is for a busy machine syncing the database file.
    let config = AllocatorConfig {
        min_step: 1,
        initial_step: 4,
        max_step: 32,
        max_wait: Duration::from_secs(10),
        ..AllocatorConfig::default()
    };
    let store = Arc::new(DieselSegmentStore::new(pool));
    let allocator = IdAllocator::new(store.clone(), config);

    let threads: Vec<_> = (0..THREADS_PER_CHILD)
        .map(|t| {
            let allocator = allocator.clone();
            std::thread::spawn(move || -> Result<Vec<(i64, u64)>, String> {
                let mut got = Vec::with_capacity(SEQS_PER_THREAD);
                let mut last: HashMap<i64, u64> = HashMap::new();
                for n in 0..SEQS_PER_THREAD {
                    let conv = CONVERSATIONS[(n + t) % CONVERSATIONS.len()];
                    let seq = allocator.next_seq(conv).map_err(|e| e.to_string())?;
                    // Within one process, one conversation's seqs only go up.
                    if last.insert(conv, seq).is_some_and(|prev| prev >= seq) {
                        return Err(format!("conv {conv}: seq {seq} not above the previous"));
                    }
                    got.push((conv, seq));
                }
                Ok(got)
            })
        })
        .collect();

    let mut file = BufWriter::new(std::fs::File::create(out)?);
    for thread in threads {
        for (conv, seq) in thread.join().map_err(|_| "allocating thread panicked")?? {
            writeln!(file, "{conv} {seq}")?;
        }
    }
    file.flush()?;
    if graceful {
        allocator.shutdown();
    }
    eprintln!("lost races: {}", store.lost_races());
    Ok(())
}
