//! Latency histograms and the two output forms: a table for people and `metric`/`ratio` lines
//! for scripts.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies in microseconds from 1 µs to 10 minutes at 3 significant digits: a saturated
/// open-loop run can fall minutes behind, and that must show rather than be clipped.
const MAX_MICROS: u64 = 600_000_000;

/// A histogram several tasks record into.
pub struct Recorder(Mutex<Histogram<u64>>);

impl Recorder {
    pub fn new() -> anyhow::Result<Recorder> {
        Ok(Recorder(Mutex::new(Histogram::new_with_bounds(
            1, MAX_MICROS, 3,
        )?)))
    }

    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(micros);
        }
    }

    pub fn summary(&self) -> Latency {
        match self.0.lock() {
            Ok(h) => Latency::of(&h),
            Err(_) => Latency::default(),
        }
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// `p50 / p99 / p99.9 / max` in milliseconds.
    pub fn cell(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "{} / {} / {} / {} ms",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }

    pub fn metrics(&self, report: &mut Report, name: &str) {
        report.metric(&format!("{name}_p50_ms"), self.p50 as f64 / 1000.0);
        report.metric(&format!("{name}_p99_ms"), self.p99 as f64 / 1000.0);
        report.metric(&format!("{name}_p999_ms"), self.p999 as f64 / 1000.0);
        report.metric(&format!("{name}_max_ms"), self.max as f64 / 1000.0);
    }
}

fn ms(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A run's findings, printed as a table and as machine lines.
pub struct Report {
    label: String,
    rows: Vec<(String, String)>,
    lines: Vec<String>,
}

impl Report {
    pub fn new(label: &str) -> Report {
        Report {
            label: label.to_owned(),
            rows: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub fn row(&mut self, name: &str, value: impl std::fmt::Display) {
        self.rows.push((name.to_owned(), value.to_string()));
    }

    /// `metric LABEL_NAME VALUE`
    pub fn metric(&mut self, name: &str, value: f64) {
        self.lines
            .push(format!("metric {}_{name} {}", self.label, number(value)));
    }

    /// `ratio LABEL_NAME VALUE`, where the name says what is divided by what.
    pub fn ratio(&mut self, name: &str, value: f64) {
        self.lines
            .push(format!("ratio {}_{name} {}", self.label, number(value)));
    }

    pub fn print(&self) {
        let width = self.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        println!("== {} ==", self.label);
        for (name, value) in &self.rows {
            println!("  {name:<width$}  {value}");
        }
        for line in &self.lines {
            println!("{line}");
        }
    }
}

fn number(value: f64) -> String {
    if !value.is_finite() {
        return "nan".into();
    }
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}

/// Bytes as KiB or MiB for the table.
pub fn bytes(value: f64) -> String {
    if value.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else {
        format!("{:.2} KiB", value / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_values() -> anyhow::Result<()> {
        let r = Recorder::new()?;
        for micros in 1..=1000u64 {
            r.record(Duration::from_micros(micros));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((499..=501).contains(&s.p50));
        assert_eq!(s.max, 1000);
        Ok(())
    }
}
