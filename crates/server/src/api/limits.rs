//! Budgets per key (requests per minute, stream frames per second) and the throttle of addresses
//! whose keys keep failing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use facerec_core::{Actor, ErrorCode};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// A budget per key (requests per minute, or stream frames per second). Memory: one entry per key
/// seen, and keys are the configured ones (or `local`), so the map is bounded.
pub struct RateLimit(DefaultKeyedRateLimiter<String>);

impl RateLimit {
    pub fn per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self(RateLimiter::keyed(Quota::per_minute(n))))
    }

    pub fn per_second(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self(RateLimiter::keyed(Quota::per_second(n))))
    }

    /// `Err(wait)` when the key has spent its budget: how long until the next unit is available.
    pub fn check(&self, actor: &Actor) -> Result<(), Duration> {
        self.0
            .check_key(&actor.0)
            .map_err(|not_until| not_until.wait_time_from(self.0.clock().now()))
    }
}

/// Requests per minute per API key, by default.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// The 429 for a spent budget, with the limiter's own wait in `Retry-After` (whole seconds, at
/// least one).
pub fn rate_limited(wait: Duration, message: &str) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, message)
        .retry_after(wait.as_secs_f64().ceil().max(1.0) as u32)
}

/// Addresses whose API keys keep failing: after [`MAX_KEY_FAILURES`] invalid keys within
/// [`KEY_FAILURE_WINDOW`], every request with a key from that address answers 429 until the window
/// ends (a guesser got ~5,500 tries a second per connection before). At most
/// [`MAX_TRACKED_ADDRESSES`] addresses are followed; past that the oldest window is forgotten.
#[derive(Debug, Default)]
pub struct FailedKeys {
    addresses: std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Invalid keys an address may send within [`KEY_FAILURE_WINDOW`].
pub const MAX_KEY_FAILURES: u32 = 10;
pub const KEY_FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

impl FailedKeys {
    /// How long `ip` is still refused, if it is.
    pub(crate) fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let addresses = self.addresses.lock().expect("failed keys lock");
        let (failures, since) = addresses.get(&ip)?;
        let left = KEY_FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*failures >= MAX_KEY_FAILURES).then_some(left)
    }

    pub(crate) fn failed(&self, ip: IpAddr) {
        let mut addresses = self.addresses.lock().expect("failed keys lock");
        if addresses.len() >= MAX_TRACKED_ADDRESSES && !addresses.contains_key(&ip) {
            addresses.retain(|_, (_, since)| since.elapsed() < KEY_FAILURE_WINDOW);
            if addresses.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = addresses
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    addresses.remove(&oldest);
                }
            }
        }
        let entry = addresses.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= KEY_FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
