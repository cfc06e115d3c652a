//! Token-bucket rate limits per client IP and per account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use hush_wire::ErrorCode;

use crate::error::Failure;

/// A rate: `per_second` sustained, `burst` at once. Zero disables the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

/// Buckets for one kind of key. Old buckets are pruned when the map grows.
#[derive(Debug)]
struct Buckets<K> {
    rate: Rate,
    map: Mutex<HashMap<K, (f64, Instant)>>,
}

const PRUNE_AT: usize = 100_000;

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, key: &K) -> bool {
        if self.rate.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > PRUNE_AT {
            // A full bucket is the same as no bucket.
            let rate = self.rate;
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate.per_second < rate.burst
            });
        }
        let (tokens, at) = map.entry(key.clone()).or_insert((self.rate.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate.per_second)
            .min(self.rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The server's rate limits.
#[derive(Debug)]
pub struct Limits {
    per_ip: Buckets<IpAddr>,
    per_account: Buckets<String>,
}

impl Limits {
    /// Limits with the given rates.
    pub fn new(per_ip: Rate, per_account: Rate) -> Self {
        Self {
            per_ip: Buckets::new(per_ip),
            per_account: Buckets::new(per_account),
        }
    }

    /// One request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Failure> {
        if self.per_ip.allow(&ip) {
            Ok(())
        } else {
            Err(Failure::new(
                ErrorCode::RateLimited,
                "too many requests from this address; slow down",
            ))
        }
    }

    /// One authenticated request of `account`.
    pub fn check_account(&self, account: &str) -> Result<(), Failure> {
        if self.per_account.allow(&account.to_owned()) {
            Ok(())
        } else {
            Err(Failure::new(
                ErrorCode::RateLimited,
                "too many requests from this account; slow down",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal() {
        let b = Buckets::new(Rate {
            per_second: 0.001,
            burst: 3.0,
        });
        assert!(b.allow(&1));
        assert!(b.allow(&1));
        assert!(b.allow(&1));
        assert!(!b.allow(&1));
        assert!(b.allow(&2));
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let b = Buckets::new(Rate {
            per_second: 0.0,
            burst: 0.0,
        });
        for _ in 0..1000 {
            assert!(b.allow(&1));
        }
    }
}
