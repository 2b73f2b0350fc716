use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` frames a second on average, up to `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            updated: Instant::now(),
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed: Duration = now.saturating_duration_since(self.updated);
        self.updated = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_at_its_rate() {
        let mut limiter = RateLimiter::new(10, 3);
        assert!((0..3).all(|_| limiter.allow()));
        assert!(!limiter.allow());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(limiter.allow());
        assert!(!limiter.allow());
    }
}
