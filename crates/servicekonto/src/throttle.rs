//! How long to make someone wait after failed logins. Pure policy: the caller keeps the
//! counters (per account and per client address) and the time of the last failure, and
//! refuses attempts until `last_failure + delay_after(failures)`.
//!
//! An exponential delay instead of a lock-out: an attacker guessing passwords online gets a
//! few dozen guesses a day, while the account owner is never locked out for good (which would
//! itself be an attack: lock out anyone by typing their e-mail address).

use std::time::Duration;

/// The delay schedule: no delay for the first `free_failures` consecutive failures, then
/// `base_delay_secs`, doubling with every further failure up to `max_delay_secs`.
///
/// With the defaults (5, 1 s, 900 s): failures 1–5 → 0 s, 6 → 1 s, 7 → 2 s, 8 → 4 s, …,
/// 15 → 512 s, 16 and more → 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub free_failures: u32,
    pub base_delay_secs: u64,
    pub max_delay_secs: u64,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            free_failures: 5,
            base_delay_secs: 1,
            max_delay_secs: 900,
        }
    }
}

impl LoginThrottle {
    /// The wait imposed after `consecutive_failures` failed attempts in a row (reset the count
    /// on success).
    pub fn delay_after(&self, consecutive_failures: u32) -> Duration {
        let Some(excess) = consecutive_failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        if excess == 0 {
            return Duration::ZERO;
        }
        // 2^(excess-1) saturates at 2^63 long before the cap matters.
        let factor = 1u64.checked_shl(excess - 1).unwrap_or(u64::MAX);
        let secs = self
            .base_delay_secs
            .saturating_mul(factor)
            .min(self.max_delay_secs);
        Duration::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule() {
        let t = LoginThrottle::default();
        let secs: Vec<u64> = (0..=18).map(|n| t.delay_after(n).as_secs()).collect();
        assert_eq!(
            secs,
            [
                0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900
            ]
        );
        assert_eq!(t.delay_after(u32::MAX), Duration::from_secs(900));
        assert_eq!(t.delay_after(70), Duration::from_secs(900));
    }

    #[test]
    fn custom_schedule() {
        let t = LoginThrottle {
            free_failures: 0,
            base_delay_secs: 3,
            max_delay_secs: 20,
        };
        let secs: Vec<u64> = (0..6).map(|n| t.delay_after(n).as_secs()).collect();
        assert_eq!(secs, [0, 3, 6, 12, 20, 20]);
    }
}
