//! Exponential backoff with jitter, for a broker or database that is away.

use std::time::Duration;

use rand::Rng;

/// Doubling pauses from 100 ms up to a ceiling, each scaled by a random factor in [0.5, 1.0] so
/// that relays restarted together do not retry in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    attempt: u32,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Backoff {
        Backoff { attempt: 0, max }
    }

    /// The next pause.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(100)
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// Back to the shortest pause after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_ceiling_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(later.last().unwrap() >= &Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
