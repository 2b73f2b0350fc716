//! `tern-loadgen`: loads a Tern server running on this machine and says what became of it.
//!
//! Commands:
//!
//! - `accounts`: registers and logs in benchmark accounts, keeping their tokens in a file;
//! - `chat`: open-loop one-to-one traffic between pairs of connections;
//! - `group`: open-loop traffic into one large group (skipped when the server has no groups);
//! - `idle`: many authenticated connections that only ping, and their memory cost;
//! - `baseline`: the raw batched INSERT rate of a database, for the persistence ratio.
//!
//! Every command is bounded in count and time and only targets loopback addresses. Results
//! go out as a table for people and as `metric NAME VALUE` and `ratio NAME VALUE` lines for
//! scripts. The exit status is 2 when a run found a broken guarantee (a lost, duplicated or
//! reordered message, or a database that disagrees with the acks).

mod accounts;
mod args;
mod baseline;
mod chat;
mod connect;
mod group;
mod idle;
mod procstat;
mod stats;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use args::Args;
use connect::Endpoint;
use stats::{Report, bytes};
use tern_client::HttpClient;
use tern_protocol::codec::Encoding;

const USAGE: &str = "usage: tern-loadgen COMMAND [--option value]...

commands and their options (defaults in brackets):
  accounts  --server ADDR --count N [--prefix lg] [--accounts-file F] [--parallel 8]
  chat      --server ADDR [--pid PID] [--connections 400] [--rate 1000] [--duration 20]
            [--drain 10] [--text-bytes 32] [--encoding json|msgpack] [--sources auto]
            [--prefix lg] [--accounts-file F] [--device loadgen] [--verify] [--label chat]
            [--raw-insert-rate ROWS/S] [--per-row-rate ROWS/S]
  group     --server ADDR [--pid PID] [--members 1000] [--senders 10] [--rate 200]
            [--duration 10] [--drain 10] [--prefix lgg] [--accounts-file F] [--label group] ...
  idle      --server ADDR --pid PID [--connections 10000] [--devices-per-user 8]
            [--parallel 256] [--settle 5] [--hold 10] [--prefix lgi] [--accounts-file F]
  baseline  --db URL [--rows 100000] [--batch 512] [--per-row-rows 5000]
            [--per-row-seconds 5] [--label baseline]

ADDR is host:port of a server on a loopback address; PID is that server's process id.";

fn main() -> std::process::ExitCode {
    let mut raw = std::env::args().skip(1);
    let command = raw.next().unwrap_or_default();
    if command.is_empty() || command == "--help" || command == "-h" || command == "help" {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let outcome = Args::parse(raw).and_then(|args| dispatch(&command, &args));
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(err) => {
            eprintln!("tern-loadgen {command}: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a command; `Ok(false)` when it found a broken guarantee.
fn dispatch(command: &str, args: &Args) -> anyhow::Result<bool> {
    if command == "baseline" {
        return run_baseline(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            "accounts" => run_accounts(args).await,
            "chat" => run_chat(args).await,
            "group" => run_group(args).await,
            "idle" => run_idle(args).await,
            other => bail!("unknown command {other:?}\n\n{USAGE}"),
        }
    })
}

/// Options every networked command shares.
struct Common {
    endpoint: Endpoint,
    http: HttpClient,
    pid: Option<u32>,
    prefix: String,
    accounts_file: Option<PathBuf>,
    signup_parallel: usize,
}

fn common(args: &Args, connections: usize, default_prefix: &str) -> anyhow::Result<Common> {
    let server: SocketAddr = args.required("server")?;
    let encoding = match args.get("encoding", "json".to_owned())?.as_str() {
        "json" => Encoding::Json,
        "msgpack" => Encoding::MessagePack,
        other => bail!("--encoding {other:?}: json or msgpack"),
    };
    // A source address could hold about 28,000 connections, but bind() to port 0 slows down
    // badly as its address's ports fill up (and closed ones linger in TIME_WAIT), so each
    // address gets a few thousand.
    let sources = args.get("sources", connections.div_ceil(4_000).max(1))?;
    Ok(Common {
        endpoint: Endpoint::new(server, sources, encoding)?,
        http: HttpClient::new(&server.to_string()),
        pid: args.optional("pid")?,
        prefix: args.get("prefix", default_prefix.to_owned())?,
        accounts_file: args.optional("accounts-file")?,
        signup_parallel: args.get("signup-parallel", 8)?,
    })
}

impl Common {
    async fn accounts(&self, count: usize) -> anyhow::Result<Vec<accounts::Account>> {
        accounts::ensure(
            &self.http,
            &self.prefix,
            count,
            self.signup_parallel,
            self.accounts_file.as_deref(),
        )
        .await
    }
}

async fn run_accounts(args: &Args) -> anyhow::Result<bool> {
    let count: usize = args.required("count")?;
    let c = common(args, 0, "lg")?;
    let parallel: usize = args.get("parallel", c.signup_parallel)?;
    args.finish()?;
    let made = accounts::ensure(
        &c.http,
        &c.prefix,
        count,
        parallel,
        c.accounts_file.as_deref(),
    )
    .await?;
    println!("{} accounts ready ({}0 ..)", made.len(), c.prefix);
    Ok(true)
}

fn chat_settings(args: &Args, rate: f64, duration: u64) -> anyhow::Result<chat::Settings> {
    Ok(chat::Settings {
        rate: args.get("rate", rate)?,
        duration: Duration::from_secs_f64(args.get("duration", duration as f64)?),
        drain: Duration::from_secs_f64(args.get("drain", 10.0)?),
        text_bytes: args.get("text-bytes", 32)?,
        device: args.get("device", "loadgen".to_owned())?,
    })
}

async fn run_chat(args: &Args) -> anyhow::Result<bool> {
    let connections: usize = args.get("connections", 400)?;
    anyhow::ensure!(
        connections >= 2 && connections.is_multiple_of(2),
        "--connections must be even and at least 2"
    );
    let c = common(args, connections, "lg")?;
    let settings = chat_settings(args, 1000.0, 20)?;
    let verify = args.flag("verify")?;
    let label: String = args.get("label", "chat".to_owned())?;
    let raw_rate: Option<f64> = args.optional("raw-insert-rate")?;
    let per_row_rate: Option<f64> = args.optional("per-row-rate")?;
    args.finish()?;
    check_rate(settings.rate, &settings)?;

    let accounts = c.accounts(connections).await?;
    let plan = chat::Plan::pairs(&accounts);
    let outcome = chat::run(&c.endpoint, &accounts, &plan, &settings, c.pid).await?;
    let mut report = Report::new(&label);
    describe(&outcome, &mut report, "1:1 pairs");
    persistence_ratios(&outcome, raw_rate, per_row_rate, &mut report);
    let mut clean = outcome_is_clean(&outcome);
    if verify {
        clean &= check_database(&c.http, &accounts, &outcome, &mut report).await?;
    }
    report.print();
    Ok(clean)
}

async fn run_group(args: &Args) -> anyhow::Result<bool> {
    let members: usize = args.get("members", 1000)?;
    let senders: usize = args.get("senders", 10)?;
    anyhow::ensure!(
        senders >= 1 && senders < members,
        "--senders must be between 1 and --members - 1"
    );
    let c = common(args, members, "lgg")?;
    let settings = chat_settings(args, 200.0, 10)?;
    let verify = args.flag("verify")?;
    let label: String = args.get("label", "group".to_owned())?;
    args.finish()?;
    check_rate(settings.rate, &settings)?;

    // Ask with one account before signing up a thousand, which takes a while.
    let owner = c.accounts(1).await?;
    if let Some(why) = group::unavailable(&c.http, &owner[0]).await? {
        println!("== {label} ==\n  skipped: groups not available ({why})");
        println!("metric {label}_skipped 1");
        return Ok(true);
    }
    let accounts = c.accounts(members).await?;
    let id = match group::create(&c.http, &accounts).await? {
        group::Group::Created(id) => id,
        group::Group::Unavailable(why) => {
            println!("== {label} ==\n  skipped: groups not available ({why})");
            println!("metric {label}_skipped 1");
            return Ok(true);
        }
    };
    let plan = group::plan(members, senders, id);
    let outcome = chat::run(&c.endpoint, &accounts, &plan, &settings, c.pid).await?;
    let mut report = Report::new(&label);
    describe(
        &outcome,
        &mut report,
        &format!("one group of {members}, {senders} senders"),
    );
    report.ratio(
        "deliveries_per_s_vs_200k_target",
        outcome.delivered_per_s / 200_000.0,
    );
    let mut clean = outcome_is_clean(&outcome);
    if verify {
        clean &= check_database(&c.http, &accounts, &outcome, &mut report).await?;
    }
    report.print();
    Ok(clean)
}

async fn run_idle(args: &Args) -> anyhow::Result<bool> {
    let connections: usize = args.get("connections", 10_000)?;
    let c = common(args, connections, "lgi")?;
    let pid = c
        .pid
        .context("--pid is required: idle measures the server's memory")?;
    let settings = idle::Settings {
        connections,
        devices_per_user: args.get("devices-per-user", 8)?,
        parallel: args.get("parallel", 256)?,
        settle: Duration::from_secs_f64(args.get("settle", 5.0)?),
        hold: Duration::from_secs_f64(args.get("hold", 10.0)?),
    };
    let label: String = args.get("label", "idle".to_owned())?;
    args.finish()?;
    let accounts = c
        .accounts(connections.div_ceil(settings.devices_per_user.max(1)))
        .await?;
    let mut report = Report::new(&label);
    idle::run(&c.endpoint, &accounts, &settings, pid, &mut report).await?;
    report.print();
    Ok(true)
}

fn run_baseline(args: &Args) -> anyhow::Result<bool> {
    let url: String = args.required("db")?;
    let settings = baseline::Settings {
        rows: args.get("rows", 100_000)?,
        batch: args.get::<usize>("batch", 512)?.max(1),
        per_row_rows: args.get("per-row-rows", 5_000)?,
        per_row_limit: Duration::from_secs_f64(args.get("per-row-seconds", 5.0)?),
        conversations: args.get("conversations", 200)?,
        text_bytes: args.get("text-bytes", 32)?,
    };
    let label: String = args.get("label", "baseline".to_owned())?;
    args.finish()?;
    let mut report = Report::new(&label);
    baseline::run(&url, &settings, &mut report)?;
    report.print();
    Ok(true)
}

/// Bounds every run: no more than ten minutes of traffic, no more than 100,000 messages a
/// second offered.
fn check_rate(rate: f64, settings: &chat::Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        rate > 0.0 && rate <= 100_000.0,
        "--rate must be in (0, 100000]"
    );
    anyhow::ensure!(
        settings.duration <= Duration::from_secs(600),
        "--duration is at most 600 s"
    );
    anyhow::ensure!(
        settings.drain <= Duration::from_secs(120),
        "--drain is at most 120 s"
    );
    Ok(())
}

/// Duplicates, reordering and a flagged duplicate ack are broken guarantees whenever they
/// show. A missing delivery is a loss only when the drain finished: after a drain timeout the
/// server may still have been delivering, and the run says so instead.
fn outcome_is_clean(o: &chat::Outcome) -> bool {
    let lost = o.drained && o.lost_deliveries > 0;
    !lost && o.duplicates == 0 && o.out_of_order == 0 && o.ack_flagged_duplicate == 0
}

fn describe(o: &chat::Outcome, report: &mut Report, shape: &str) {
    let fanout = o.expected_deliveries as f64 / o.acked.max(1) as f64;
    report.row(
        "shape",
        format!(
            "{shape}: {} connections, {} sending",
            o.connections, o.senders
        ),
    );
    report.row(
        "offered",
        format!(
            "{:.0} msg/s for {:.0} s",
            o.offered_rate,
            o.window.as_secs_f64()
        ),
    );
    report.row(
        "scheduled / sent",
        format!(
            "{} / {} ({} behind schedule, never sent)",
            o.scheduled,
            o.sent,
            o.scheduled.saturating_sub(o.sent)
        ),
    );
    report.row("acked", format!("{} ({:.0}/s)", o.acked, o.acked_per_s));
    report.row("errors", errors_cell(o));
    report.row("unanswered", o.unanswered);
    report.row(
        "delivered",
        format!(
            "{} of {} expected ({:.0}/s)",
            o.delivered, o.expected_deliveries, o.delivered_per_s
        ),
    );
    let late = if o.drained {
        ""
    } else {
        " (drain timed out: the server was still behind, so these may be late, not lost)"
    };
    report.row(
        "lost (acked, never delivered)",
        format!(
            "{} deliveries of {} messages{late}",
            o.lost_deliveries, o.lost_messages
        ),
    );
    report.row(
        "duplicated / out of order",
        format!("{} / {}", o.duplicates, o.out_of_order),
    );
    report.row("acks flagged duplicate", o.ack_flagged_duplicate);
    report.row(
        "other runs' / unreadable frames",
        format!("{} / {}", o.foreign, o.unreadable),
    );
    report.row("send→ack p50/p99/p99.9/max", o.ack_latency.cell());
    report.row("send→deliver p50/p99/p99.9/max", o.deliver_latency.cell());
    if let Some(s) = &o.server {
        let cores = s.cpu_seconds / s.wall_seconds.max(1e-9);
        report.row(
            "server CPU",
            format!(
                "{:.1} s over {:.1} s ({cores:.2} cores)",
                s.cpu_seconds, s.wall_seconds
            ),
        );
        report.row(
            "delivered per server core-second",
            format!("{:.0}", o.delivered as f64 / s.cpu_seconds.max(1e-9)),
        );
        report.row(
            "server RSS start / end / peak",
            format!(
                "{} / {} / {}",
                bytes(s.rss_start as f64),
                bytes(s.rss_end as f64),
                bytes(s.rss_peak as f64)
            ),
        );
        report.metric("server_cpu_cores", cores);
        report.metric("server_rss_peak_bytes", s.rss_peak as f64);
        if o.senders == o.connections {
            // The per-core target is the one-to-one one; a group's is in deliveries per second.
            report.ratio(
                "delivered_per_server_core_second_vs_10k_target",
                o.delivered as f64 / s.cpu_seconds.max(1e-9) / 10_000.0,
            );
        }
    }
    report.row(
        "load generator CPU",
        format!("{:.1} s", o.loadgen_cpu_seconds),
    );
    if let Some(busy) = o.machine_busy {
        report.row("machine CPU busy", format!("{:.0} %", busy * 100.0));
    }
    if !o.disconnects.is_empty() {
        report.row(
            "connections ended early",
            format!("{} (first: {})", o.disconnects.len(), o.disconnects[0]),
        );
    }
    report.metric("offered_per_s", o.offered_rate);
    report.metric("acked_per_s", o.acked_per_s);
    report.metric("delivered_per_s", o.delivered_per_s);
    report.metric("behind_schedule", o.scheduled.saturating_sub(o.sent) as f64);
    report.metric("lost", o.lost_deliveries as f64);
    report.metric("drain_timed_out", if o.drained { 0.0 } else { 1.0 });
    report.metric("unanswered", o.unanswered as f64);
    report.metric("duplicated", o.duplicates as f64);
    report.metric("out_of_order", o.out_of_order as f64);
    report.metric("errors", o.errors.values().sum::<u64>() as f64);
    o.ack_latency.metrics(report, "ack");
    o.deliver_latency.metrics(report, "deliver");
    report.ratio(
        "delivered_vs_offered",
        o.delivered_per_s / (o.offered_rate * fanout.max(1e-9)),
    );
    report.ratio(
        "lost_vs_acked",
        o.lost_deliveries as f64 / o.expected_deliveries.max(1) as f64,
    );
    report.ratio(
        "deliver_p99_vs_10ms_target",
        o.deliver_latency.p99 as f64 / 10_000.0,
    );
}

fn errors_cell(o: &chat::Outcome) -> String {
    if o.errors.is_empty() {
        return "0".into();
    }
    let mut parts: Vec<String> = o
        .errors
        .iter()
        .map(|(code, n)| format!("{code}: {n}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

fn persistence_ratios(
    o: &chat::Outcome,
    raw: Option<f64>,
    per_row: Option<f64>,
    report: &mut Report,
) {
    if let Some(raw) = raw.filter(|r| *r > 0.0) {
        report.row(
            "persisted vs raw batched INSERT",
            format!("{:.3}x of {raw:.0} rows/s", o.acked_per_s / raw),
        );
        report.ratio("persisted_vs_raw_batched_insert", o.acked_per_s / raw);
    }
    if let Some(per_row) = per_row.filter(|r| *r > 0.0) {
        report.row(
            "persisted vs one row per commit",
            format!("{:.1}x of {per_row:.0} rows/s", o.acked_per_s / per_row),
        );
        report.ratio("persisted_vs_per_row_commit", o.acked_per_s / per_row);
    }
}

async fn check_database(
    http: &HttpClient,
    accounts: &[accounts::Account],
    o: &chat::Outcome,
    report: &mut Report,
) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let check = verify::check(http, accounts, &o.acked_messages, &format!("{}.", o.run)).await?;
    report.row(
        "database check",
        format!(
            "{} acked checked in {} conversations ({} pages, {:.1} s): {} missing, {} wrong client id, {} duplicated, {} stored but unacked",
            check.checked,
            check.conversations,
            check.pages,
            started.elapsed().as_secs_f64(),
            check.missing,
            check.wrong_client_id,
            check.duplicated,
            check.stored_unacked
        ),
    );
    report.metric("db_missing", check.missing as f64);
    report.metric("db_wrong_client_id", check.wrong_client_id as f64);
    report.metric("db_duplicated", check.duplicated as f64);
    Ok(check.clean())
}
