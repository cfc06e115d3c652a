//! Token-bucket rate limits (`governor`'s keyed GCRA limiters): per client network, per account, per signed
//! account request, and per KeyPackage claim.
//!
//! Client networks are keyed by IPv4 address or IPv6 /64: one IPv6 host
//! usually holds a whole /64, so a key per /128 would let it take as many
//! buckets as it likes. Every bucket lives in this node's memory; in a
//! cluster each node counts on its own, so a client spread over `n` nodes by
//! the load balancer gets up to `n` times each rate.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use hush_wire::ErrorCode;

use crate::error::{Failure, Refusal};

/// A rate: `per_second` sustained, `burst` at once. Zero disables the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

impl Rate {
    /// `burst` at once, then `count` per `period`.
    pub fn per(count: f64, period: Duration, burst: f64) -> Self {
        Self {
            per_second: count / period.as_secs_f64(),
            burst,
        }
    }
}

/// Buckets for one kind of key: a `governor` keyed limiter (GCRA, the
/// token bucket's equivalent: one `AtomicU64` per key in a sharded map), or
/// none when the rate is off. Keys whose bucket is full again (the same as
/// no bucket) are evicted every [`PRUNE_EVERY`], and when a look every
/// [`SIZE_CHECK_EVERY`] checks finds more than [`PRUNE_AT`] keys, so a key
/// (who claimed whose KeyPackages, say) stays in memory only until its
/// bucket has refilled.
#[derive(Debug)]
struct Buckets<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    /// The bucket's size: what a costly request costs at most.
    burst: NonZeroU32,
    /// Checks so far, for the size look.
    checks: AtomicU64,
    /// The next time-based eviction, in ms since `start`.
    next_prune_ms: AtomicU64,
    start: Instant,
}

const PRUNE_AT: usize = 100_000;
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const SIZE_CHECK_EVERY: u64 = 1024;
/// The longest a bucket takes to refill: longer periods are shortened to
/// it (the limiter counts in nanoseconds in a `u64`).
const LONGEST_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `rate` as a `governor` quota and its burst, or `None` when it is off
/// (no rate, or no burst). A fractional burst is rounded up.
fn quota(rate: Rate) -> Option<(Quota, NonZeroU32)> {
    if rate.per_second <= 0.0 || rate.burst <= 0.0 || rate.burst.is_nan() {
        return None;
    }
    let burst = NonZeroU32::new(rate.burst.ceil().min(f64::from(u32::MAX)) as u32)?;
    let longest = LONGEST_REFILL / burst.get();
    let period = Duration::try_from_secs_f64(1.0 / rate.per_second)
        .unwrap_or(longest)
        .min(longest);
    Some((Quota::with_period(period)?.allow_burst(burst), burst))
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(rate: Rate) -> Self {
        let quota = quota(rate);
        Self {
            limiter: quota.map(|(q, _)| RateLimiter::dashmap(q)),
            burst: quota.map_or(NonZeroU32::MIN, |(_, b)| b),
            checks: AtomicU64::new(0),
            next_prune_ms: AtomicU64::new(PRUNE_EVERY.as_millis() as u64),
            start: Instant::now(),
        }
    }

    fn allow(&self, key: &K) -> bool {
        self.take(key).is_ok()
    }

    /// Takes a token for `key`, or says how long until one is there.
    fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_n(key, 1.0)
    }

    /// Takes `n` tokens for `key` (at most a full bucket), or says how long
    /// until they are there.
    fn take_n(&self, key: &K, n: f64) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if n.is_nan() || n <= 0.0 {
            return Ok(());
        }
        self.prune(limiter);
        let n = NonZeroU32::new(n.ceil().min(f64::from(self.burst.get())) as u32)
            .unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(limiter.clock().now())),
            // Not reached: `n` is at most the burst.
            Err(_) => Err(LONGEST_REFILL),
        }
    }

    /// Evicts the full buckets when it is time, or when there are many.
    fn prune(&self, limiter: &DefaultKeyedRateLimiter<K>) {
        let now_ms = self.start.elapsed().as_millis() as u64;
        let due = self.next_prune_ms.load(Ordering::Relaxed);
        let timed = now_ms >= due
            && self
                .next_prune_ms
                .compare_exchange(
                    due,
                    now_ms + PRUNE_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        let crowded = self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SIZE_CHECK_EVERY)
            && limiter.len() > PRUNE_AT;
        if timed || crowded {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// The key of a client's network: the IPv4 address, or the IPv6 /64 (an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn network_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Which claim limit refused a KeyPackage claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimLimit {
    /// This claimer took its share of this target's KeyPackages.
    Pair,
    /// All claimers together took their share of this target's KeyPackages.
    Target,
}

/// Rates of the limits other than the general ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrictRates {
    /// Costly unauthenticated requests (registration, signed device
    /// requests, `/v1/kt/audit` without a token) per client network.
    pub costly_per_ip: Rate,
    /// `/v1/kt/audit` requests per account, when a device asks with its
    /// token (its client checking that the directory only grew); they do not
    /// count against the network, which many devices may share.
    pub audits_per_account: Rate,
    /// Validly signed device requests per account.
    pub signed_per_account: Rate,
    /// KeyPackage claims of one account on one target account.
    pub claims_per_pair: Rate,
    /// KeyPackage claims on one target account, by everyone.
    pub claims_per_target: Rate,
}

impl Default for StrictRates {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            costly_per_ip: Rate {
                per_second: 2.0,
                burst: 20.0,
            },
            signed_per_account: Rate::per(10.0, minute, 10.0),
            audits_per_account: Rate {
                per_second: 2.0,
                burst: 20.0,
            },
            // A client keeps 20 one-time KeyPackages per device and suite
            // and tops up below 5: one claimer can take 5 at once, everyone
            // together 10 at once, so an attack leaves 10 for legitimate
            // claimers until the device tops up.
            claims_per_pair: Rate::per(1.0, 2 * minute, 5.0),
            claims_per_target: Rate::per(1.0, minute, 10.0),
        }
    }
}

const OFF: Rate = Rate {
    per_second: 0.0,
    burst: 0.0,
};

impl StrictRates {
    /// No strict limit at all.
    pub fn off() -> Self {
        Self {
            costly_per_ip: OFF,
            audits_per_account: OFF,
            signed_per_account: OFF,
            claims_per_pair: OFF,
            claims_per_target: OFF,
        }
    }

    /// These rates, with the per-address ones off when `per_ip` is off and
    /// the per-account ones off when `per_account` is (`--rate-limit-ip 0`
    /// and `--rate-limit-account 0` turn off every limit of their kind).
    pub fn within(self, per_ip: Rate, per_account: Rate) -> Self {
        let ip_off = per_ip.per_second <= 0.0;
        let account_off = per_account.per_second <= 0.0;
        Self {
            costly_per_ip: if ip_off { OFF } else { self.costly_per_ip },
            audits_per_account: if account_off {
                OFF
            } else {
                self.audits_per_account
            },
            signed_per_account: if account_off {
                OFF
            } else {
                self.signed_per_account
            },
            claims_per_pair: if account_off {
                OFF
            } else {
                self.claims_per_pair
            },
            claims_per_target: if account_off {
                OFF
            } else {
                self.claims_per_target
            },
        }
    }
}

/// The server's rate limits.
#[derive(Debug)]
pub struct Limits {
    per_ip: Buckets<IpAddr>,
    per_account: Buckets<String>,
    costly_per_ip: Buckets<IpAddr>,
    audits_per_account: Buckets<String>,
    signed_per_account: Buckets<String>,
    claims_per_pair: Buckets<(String, String)>,
    claims_per_target: Buckets<String>,
    links_per_account: Buckets<String>,
}

fn limited(message: &str, wait: Duration) -> Refusal {
    Refusal {
        failure: Failure::new(ErrorCode::RateLimited, message),
        retry_after_s: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
    }
}

impl Limits {
    /// Limits with the given rates and the default strict ones.
    pub fn new(per_ip: Rate, per_account: Rate) -> Self {
        Self::with_strict(per_ip, per_account, StrictRates::default())
    }

    /// Limits with the given rates.
    pub fn with_strict(per_ip: Rate, per_account: Rate, strict: StrictRates) -> Self {
        Self {
            per_ip: Buckets::new(per_ip),
            per_account: Buckets::new(per_account),
            costly_per_ip: Buckets::new(strict.costly_per_ip),
            audits_per_account: Buckets::new(strict.audits_per_account),
            signed_per_account: Buckets::new(strict.signed_per_account),
            claims_per_pair: Buckets::new(strict.claims_per_pair),
            claims_per_target: Buckets::new(strict.claims_per_target),
            // Link lookups and requests: as strict as a device's audits.
            links_per_account: Buckets::new(strict.audits_per_account),
        }
    }

    /// One request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.per_ip
            .take(&network_key(ip))
            .map_err(|w| limited("too many requests from this address; slow down", w))
    }

    /// One costly unauthenticated request from `ip`.
    pub fn check_costly(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.costly_per_ip.take(&network_key(ip)).map_err(|w| {
            limited(
                "too many registrations, device or audit requests from this address; retry later",
                w,
            )
        })
    }

    /// One `/v1/kt/audit` request by a device of `account`.
    pub fn check_audit(&self, account: &str) -> Result<(), Refusal> {
        self.audits_per_account
            .take(&account.to_owned())
            .map_err(|w| limited("too many audit requests from this account; retry later", w))
    }

    /// One invite-link lookup, request or change by a device of `account`
    /// (decision 0033): link ids cannot be guessed, but a stolen list of
    /// them should not be tried at speed.
    pub fn check_link(&self, account: &str) -> Result<(), Refusal> {
        self.links_per_account
            .take(&account.to_owned())
            .map_err(|w| {
                limited(
                    "too many invite-link requests from this account; retry later",
                    w,
                )
            })
    }

    /// One signed device request naming `account`.
    pub fn check_signed(&self, account: &str) -> Result<(), Refusal> {
        self.signed_per_account
            .take(&account.to_owned())
            .map_err(|w| limited("too many device requests for this account; retry later", w))
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

    /// `cost` more requests' worth of work by `account` (a batched request;
    /// never more than the account's burst).
    pub fn check_account_cost(&self, account: &str, cost: usize) -> Result<(), Failure> {
        if cost == 0 {
            return Ok(());
        }
        self.per_account
            .take_n(&account.to_owned(), cost as f64)
            .map_err(|_| {
                Failure::new(
                    ErrorCode::RateLimited,
                    "too many requests from this account; slow down",
                )
            })
    }

    /// One KeyPackage claim by `claimer` on `target`'s KeyPackages. A claim
    /// refused by the per-target limit does not use the claimer's share.
    pub fn check_claim(&self, claimer: &str, target: &str) -> Result<(), (ClaimLimit, Refusal)> {
        let pair = (claimer.to_owned(), target.to_owned());
        if let Err(wait) = self.claims_per_pair.take(&pair) {
            return Err((
                ClaimLimit::Pair,
                limited(
                    "you claimed this account's KeyPackages too often; retry later",
                    wait,
                ),
            ));
        }
        self.claims_per_target
            .take(&target.to_owned())
            .map_err(|wait| {
                (
                    ClaimLimit::Target,
                    limited(
                        "this account's KeyPackages were claimed too often; retry later",
                        wait,
                    ),
                )
            })
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
        let wait = b.take(&1).unwrap_err();
        assert!(wait > Duration::from_secs(900), "{wait:?}");
    }

    #[test]
    fn a_costly_request_takes_several_tokens_but_never_more_than_a_burst() {
        let b = Buckets::new(Rate {
            per_second: 0.001,
            burst: 10.0,
        });
        assert!(b.take_n(&1, 6.0).is_ok());
        assert!(b.take_n(&1, 6.0).is_err(), "4 left");
        assert!(b.take_n(&1, 4.0).is_ok());
        // Bigger than a whole bucket: costs the whole bucket, once full.
        assert!(b.take_n(&2, 50.0).is_ok());
        assert!(b.take_n(&2, 1.0).is_err());
    }

    #[test]
    fn full_buckets_are_evicted_so_many_keys_do_not_pile_up() {
        let n = PRUNE_AT as u64 + 2 * SIZE_CHECK_EVERY;
        // Refilled a microsecond after each use: evicted at the size look.
        let fast = Buckets::new(Rate {
            per_second: 1e6,
            burst: 1.0,
        });
        for k in 0..n {
            assert!(fast.allow(&k));
        }
        assert!(fast.keys() < PRUNE_AT, "{} keys", fast.keys());
        // Still refilling: kept, or the limit would forget them.
        let slow = Buckets::new(Rate {
            per_second: 0.001,
            burst: 1.0,
        });
        for k in 0..n {
            assert!(slow.allow(&k));
        }
        assert_eq!(slow.keys(), n as usize);
        assert!(!slow.allow(&0));
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

    #[test]
    fn two_ipv6_addresses_in_one_64_share_a_bucket() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_key(a), network_key(b));
        assert_ne!(network_key(a), network_key(other));
        let limits = Limits::new(
            Rate {
                per_second: 0.001,
                burst: 2.0,
            },
            Rate {
                per_second: 0.0,
                burst: 0.0,
            },
        );
        assert!(limits.check_ip(a).is_ok());
        assert!(limits.check_ip(b).is_ok());
        // The third address of the same /64 finds the bucket empty.
        let c: IpAddr = "2001:db8:1:2:1234::9".parse().unwrap();
        assert!(limits.check_ip(c).is_err());
        assert!(limits.check_ip(other).is_ok());
    }

    #[test]
    fn ipv4_keys_are_whole_addresses_and_mapped_ones_count_as_ipv4() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_ne!(network_key(a), network_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(network_key(mapped), a);
    }
}
