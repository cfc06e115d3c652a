//! Prometheus metrics, kept in atomics and rendered as text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::store::Stats;

/// Upper bounds (ms) of the delivery latency histogram buckets.
const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30000];

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    connections: AtomicI64,
    sends: AtomicU64,
    ephemeral_sends: AtomicU64,
    envelopes_queued: AtomicU64,
    envelopes_delivered: AtomicU64,
    envelopes_unwritten: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    claims_refused_pair: AtomicU64,
    claims_refused_target: AtomicU64,
    signed_replays: AtomicU64,
    revoked: AtomicU64,
    busy: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

/// The process-wide metrics.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)] // used only to build the array
        const ZERO: AtomicU64 = AtomicU64::new(0);
        Self {
            connections: AtomicI64::new(0),
            sends: AtomicU64::new(0),
            ephemeral_sends: AtomicU64::new(0),
            envelopes_queued: AtomicU64::new(0),
            envelopes_delivered: AtomicU64::new(0),
            envelopes_unwritten: AtomicU64::new(0),
            errors_4xx: AtomicU64::new(0),
            errors_5xx: AtomicU64::new(0),
            claims_refused_pair: AtomicU64::new(0),
            claims_refused_target: AtomicU64::new(0),
            signed_replays: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            latency_buckets: [ZERO; LATENCY_BUCKETS_MS.len()],
            latency_count: AtomicU64::new(0),
            latency_sum_ms: AtomicU64::new(0),
        }
    }

    /// A WebSocket opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// A send was accepted for `recipients` queues.
    pub fn send(&self, recipients: usize, ephemeral: bool) {
        if ephemeral {
            self.ephemeral_sends.fetch_add(1, Ordering::Relaxed);
        } else {
            self.sends.fetch_add(1, Ordering::Relaxed);
            self.envelopes_queued
                .fetch_add(recipients as u64, Ordering::Relaxed);
        }
    }

    /// `n` envelopes were acknowledged before their write, which they never
    /// needed.
    pub fn unwritten(&self, n: usize) {
        self.envelopes_unwritten
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// An envelope was acknowledged `latency_ms` after the server accepted it.
    pub fn delivered(&self, latency_ms: u64) {
        self.envelopes_delivered.fetch_add(1, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            if latency_ms <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A response with an error status was sent.
    pub fn error(&self, status: u16) {
        match status {
            400..=499 => self.errors_4xx.fetch_add(1, Ordering::Relaxed),
            _ => self.errors_5xx.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A request found the database busy (no connection free in time) and
    /// was refused with 503 and `Retry-After`, or retried.
    pub fn busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// A KeyPackage claim was refused by a claim limit.
    pub fn claim_refused(&self, limit: crate::ratelimit::ClaimLimit) {
        let counter = match limit {
            crate::ratelimit::ClaimLimit::Pair => &self.claims_refused_pair,
            crate::ratelimit::ClaimLimit::Target => &self.claims_refused_target,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A signed device request was refused as a replay.
    pub fn signed_replay(&self) {
        self.signed_replays.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` device connections were closed because their access was revoked.
    pub fn revoked(&self, n: usize) {
        self.revoked.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with storage counts from `stats`.
    pub fn render(&self, stats: &Stats) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        metric(
            "hush_connections",
            "gauge",
            "Open device WebSockets.",
            self.connections.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "hush_sends_total",
            "counter",
            "Stored sends accepted.",
            get(&self.sends),
        );
        metric(
            "hush_ephemeral_sends_total",
            "counter",
            "Ephemeral sends relayed.",
            get(&self.ephemeral_sends),
        );
        metric(
            "hush_envelopes_queued_total",
            "counter",
            "Envelopes accepted for device queues (written, or acknowledged first).",
            get(&self.envelopes_queued),
        );
        metric(
            "hush_envelopes_delivered_total",
            "counter",
            "Envelopes acknowledged by devices.",
            get(&self.envelopes_delivered),
        );
        metric(
            "hush_envelopes_unwritten_total",
            "counter",
            "Envelopes an online device acknowledged before their write, which then never happened.",
            get(&self.envelopes_unwritten),
        );
        metric(
            "hush_queue_depth",
            "gauge",
            "Envelopes waiting in all device queues.",
            stats.queued_envelopes.to_string(),
        );
        metric(
            "hush_stored_payloads",
            "gauge",
            "Payloads stored for the queues (one per send not yet acknowledged by every recipient).",
            stats.payloads.to_string(),
        );
        metric(
            "hush_stored_payload_bytes",
            "gauge",
            "Bytes of the stored payloads.",
            stats.payload_bytes.to_string(),
        );
        metric(
            "hush_accounts",
            "gauge",
            "Registered accounts.",
            stats.accounts.to_string(),
        );
        metric(
            "hush_devices",
            "gauge",
            "Registered devices.",
            stats.devices.to_string(),
        );
        metric(
            "hush_key_packages",
            "gauge",
            "Unclaimed one-time KeyPackages.",
            stats.key_packages.to_string(),
        );
        metric(
            "hush_database_busy_total",
            "counter",
            "Requests that found no database connection free in time (answered 503 with Retry-After, or retried).",
            get(&self.busy),
        );
        metric(
            "hush_signed_requests_replayed_total",
            "counter",
            "Signed device requests refused because their nonce was used already.",
            get(&self.signed_replays),
        );
        metric(
            "hush_connections_revoked_total",
            "counter",
            "Device WebSockets closed because the device was removed, its account suspended or its token rotated.",
            get(&self.revoked),
        );
        let _ = writeln!(
            out,
            "# HELP hush_http_errors_total Error responses by class.\n# TYPE hush_http_errors_total counter\nhush_http_errors_total{{class=\"4xx\"}} {}\nhush_http_errors_total{{class=\"5xx\"}} {}",
            get(&self.errors_4xx),
            get(&self.errors_5xx)
        );
        let _ = writeln!(
            out,
            "# HELP hush_key_package_claims_refused_total KeyPackage claims refused by a claim limit: per claimer and target (pair) or per target.\n# TYPE hush_key_package_claims_refused_total counter\nhush_key_package_claims_refused_total{{limit=\"pair\"}} {}\nhush_key_package_claims_refused_total{{limit=\"target\"}} {}",
            get(&self.claims_refused_pair),
            get(&self.claims_refused_target)
        );
        let _ = writeln!(
            out,
            "# HELP hush_delivery_latency_ms Time from acceptance to acknowledgement by the device.\n# TYPE hush_delivery_latency_ms histogram"
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            let _ = writeln!(
                out,
                "hush_delivery_latency_ms_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let _ = writeln!(
            out,
            "hush_delivery_latency_ms_bucket{{le=\"+Inf\"}} {}\nhush_delivery_latency_ms_sum {}\nhush_delivery_latency_ms_count {}",
            get(&self.latency_count),
            get(&self.latency_sum_ms),
            get(&self.latency_count)
        );
        out
    }
}
