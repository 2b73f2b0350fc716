//! How big the next segment is, and when it is claimed.
//!
//! The rule aims every segment at `target_segment_lifetime`. When the spare is claimed, the
//! current segment has been used for a known time and a known number of seqs, which projects
//! how long the whole segment lasts at the current rate:
//!
//! - projected lifetime at most half the target: grow by the ratio, rounded down to a power of
//!   two and limited to 2x..8x per claim, so a burst reaches a fitting size within a few claims
//!   without one noisy second blowing a segment up a thousandfold;
//! - a caller had to wait for a claim: grow at least 4x, whatever the projection says;
//! - projected lifetime at least four times the target: halve, so a conversation that calms
//!   down returns to small segments gradually (a single quiet spell does not undo its size);
//! - anything in between keeps the step: the band between half and four times the target is
//!   wide on purpose, so a steady conversation does not flip between two sizes.
//!
//! The result is clamped to `[min_step, max_step]`.
//!
//! The growth is per claim, so a conversation that jumps from silence straight to a tight
//! loop outruns its first few spares: from the initial 32 to 2^20 takes five claims, and a
//! caller may wait (bounded by `max_wait`) at each. Starting bigger would cost every quiet
//! conversation that much more waste on a crash; the benchmark counts these ramp-up waits.

use std::time::Duration;

use crate::AllocatorConfig;

/// How the current segment has been used so far.
pub(crate) struct Usage {
    pub len: u64,
    /// Seqs handed out from it, the first included.
    pub used: u64,
    /// Since its first seq went out.
    pub elapsed: Duration,
    pub starved: bool,
}

const MAX_GROWTH: u64 = 8;
const STARVED_GROWTH: u64 = 4;

/// The step for the next claim, given the current one and how its segment was used.
pub(crate) fn next_step(step: u64, usage: &Usage, config: &AllocatorConfig) -> u64 {
    let mut factor_up = 1;
    let mut halve = false;

    // The clock starts when the segment is installed, which is when its first seq goes out, so
    // `elapsed` spans `used - 1` intervals. One seq alone says nothing about the rate.
    if usage.used > 1 && usage.len > 0 {
        let intervals = u128::from(usage.used - 1);
        let projected_ns = usage.elapsed.as_nanos() * u128::from(usage.len) / intervals;
        let target_ns = config.target_segment_lifetime.as_nanos().max(1);
        if projected_ns.saturating_mul(2) <= target_ns {
            let ratio = target_ns / projected_ns.max(1);
            let ratio = u64::try_from(ratio).unwrap_or(u64::MAX);
            factor_up = prev_power_of_two(ratio).clamp(2, MAX_GROWTH);
        } else if projected_ns >= target_ns.saturating_mul(4) {
            halve = true;
        }
    }
    if usage.starved {
        factor_up = factor_up.max(STARVED_GROWTH);
        halve = false;
    }

    let next = if halve {
        step / 2
    } else {
        step.saturating_mul(factor_up)
    };
    next.clamp(config.min_step, config.max_step)
}

/// How far into a segment of `len` seqs the spare is claimed: at least the first seq, at most
/// the last.
pub(crate) fn prefetch_offset(len: u64, threshold: f64) -> u64 {
    let offset = (len as f64 * threshold) as u64;
    offset.min(len.saturating_sub(1))
}

fn prev_power_of_two(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AllocatorConfig {
        AllocatorConfig {
            min_step: 16,
            max_step: 1 << 20,
            target_segment_lifetime: Duration::from_secs(10),
            ..AllocatorConfig::default()
        }
    }

    fn usage(len: u64, used: u64, elapsed_ms: u64) -> Usage {
        Usage {
            len,
            used,
            elapsed: Duration::from_millis(elapsed_ms),
            starved: false,
        }
    }

    #[test]
    fn a_segment_used_up_in_a_flash_grows_at_most_eightfold() {
        // 64 seqs, half used in 1 ms: projected 2 ms against a 10 s target.
        assert_eq!(next_step(64, &usage(64, 33, 1), &config()), 512);
    }

    #[test]
    fn a_segment_slightly_too_short_doubles() {
        // Projected 4 s: within 2x..4x of too fast.
        assert_eq!(next_step(64, &usage(64, 33, 2_000), &config()), 128);
    }

    #[test]
    fn a_segment_near_the_target_keeps_its_step() {
        assert_eq!(next_step(64, &usage(64, 33, 5_000), &config()), 64);
        assert_eq!(next_step(64, &usage(64, 33, 15_000), &config()), 64);
    }

    #[test]
    fn a_long_lived_segment_halves_down_to_the_minimum() {
        assert_eq!(next_step(64, &usage(64, 33, 60_000), &config()), 32);
        assert_eq!(next_step(16, &usage(16, 9, 60_000), &config()), 16);
    }

    #[test]
    fn a_single_seq_gives_no_rate_and_keeps_the_step() {
        assert_eq!(next_step(16, &usage(1, 1, 0), &config()), 16);
        assert_eq!(next_step(64, &usage(64, 1, 0), &config()), 64);
    }

    #[test]
    fn a_starved_caller_forces_growth() {
        let starved = Usage {
            starved: true,
            ..usage(64, 33, 60_000)
        };
        assert_eq!(next_step(64, &starved, &config()), 256);
    }

    #[test]
    fn growth_stops_at_the_maximum() {
        assert_eq!(
            next_step(1 << 20, &usage(1 << 20, 1 << 19, 1), &config()),
            1 << 20
        );
    }

    #[test]
    fn the_prefetch_offset_stays_inside_the_segment() {
        assert_eq!(prefetch_offset(100, 0.5), 50);
        assert_eq!(prefetch_offset(1, 0.5), 0);
        assert_eq!(prefetch_offset(10, 1.0), 9);
        assert_eq!(prefetch_offset(10, 0.0), 0);
    }
}
