//! Per-organisation request rates (API.md §4: 429 `rate_limited` with `Retry-After`).
//!
//! governor's GCRA, keyed by the verified token's organisation: each organisation may send
//! `rate_limit_per_second` requests a second on average, and at most `rate_limit_burst` at once
//! (the bucket that the rate refills). Counted per replica (the state is in memory), so a deployment of N
//! replicas behind a balancer admits about N times the rate. Off when the rate is 0.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

pub struct RateLimits {
    limiter: Option<Limiter>,
    clock: DefaultClock,
}

impl RateLimits {
    /// `per_second` 0 turns limits off; a `burst` of 0 is taken as `per_second`.
    pub fn new(per_second: u32, burst: u32) -> RateLimits {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        RateLimits {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of `organization`'s rate: `Err` with the whole seconds (at least 1)
    /// after which it may send again.
    pub fn check(&self, organization: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&organization.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_organisation_has_its_own_burst() {
        let limits = RateLimits::new(1, 3);
        for _ in 0..3 {
            assert_eq!(limits.check("mut-a"), Ok(()));
        }
        assert_eq!(limits.check("mut-a"), Err(1));
        assert_eq!(limits.check("mut-b"), Ok(()));
    }

    #[test]
    fn a_rate_of_zero_never_limits() {
        let limits = RateLimits::new(0, 0);
        assert!((0..10_000).all(|_| limits.check("mut-a").is_ok()));
    }
}
