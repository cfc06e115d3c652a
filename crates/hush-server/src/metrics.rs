//! Prometheus metrics: `prometheus-client` counters and gauges (one atomic
//! each), rendered in the OpenMetrics text format at `/metrics`.
//!
//! The hot path touches only atomics: every counter is a `Counter` handle
//! (an `Arc<AtomicU64>`) taken once at start, labelled ones included, and
//! the latency histogram is [`LatencyHistogram`], kept here because the
//! crate's own `Histogram` takes a mutex per observation. A scrape builds a
//! [`Registry`] of handles to these metrics plus gauges read from the store
//! (see [`Exposition`]), which costs its allocations once per scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};

use crate::store::Stats;

/// Upper bounds (ms) of the delivery latency histogram buckets.
const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 30000];

/// A label set of one label, e.g. `class="4xx"`.
type Label = [(&'static str, &'static str); 1];

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    connections: Gauge,
    sends: Counter,
    ephemeral_sends: Counter,
    envelopes_queued: Counter,
    envelopes_delivered: Counter,
    envelopes_unwritten: Counter,
    errors: Family<Label, Counter>,
    errors_4xx: Counter,
    errors_5xx: Counter,
    claims_refused: Family<Label, Counter>,
    claims_refused_pair: Counter,
    claims_refused_target: Counter,
    signed_replays: Counter,
    revoked: Counter,
    busy: Counter,
    latency: LatencyHistogram,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let errors = Family::<Label, Counter>::default();
        let claims_refused = Family::<Label, Counter>::default();
        // Handles to the labelled counters, so that counting never takes
        // the family's lock.
        let errors_4xx = errors.get_or_create_owned(&[("class", "4xx")]);
        let errors_5xx = errors.get_or_create_owned(&[("class", "5xx")]);
        let claims_refused_pair = claims_refused.get_or_create_owned(&[("limit", "pair")]);
        let claims_refused_target = claims_refused.get_or_create_owned(&[("limit", "target")]);
        Self {
            connections: Gauge::default(),
            sends: Counter::default(),
            ephemeral_sends: Counter::default(),
            envelopes_queued: Counter::default(),
            envelopes_delivered: Counter::default(),
            envelopes_unwritten: Counter::default(),
            errors,
            errors_4xx,
            errors_5xx,
            claims_refused,
            claims_refused_pair,
            claims_refused_target,
            signed_replays: Counter::default(),
            revoked: Counter::default(),
            busy: Counter::default(),
            latency: LatencyHistogram::default(),
        }
    }

    /// A WebSocket opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// A send was accepted for `recipients` queues.
    pub fn send(&self, recipients: usize, ephemeral: bool) {
        if ephemeral {
            self.ephemeral_sends.inc();
        } else {
            self.sends.inc();
            self.envelopes_queued.inc_by(recipients as u64);
        }
    }

    /// `n` envelopes were acknowledged before their write, which they never
    /// needed.
    pub fn unwritten(&self, n: usize) {
        self.envelopes_unwritten.inc_by(n as u64);
    }

    /// An envelope was acknowledged `latency_ms` after the server accepted it.
    pub fn delivered(&self, latency_ms: u64) {
        self.envelopes_delivered.inc();
        self.latency.observe(latency_ms);
    }

    /// A response with an error status was sent.
    pub fn error(&self, status: u16) {
        match status {
            400..=499 => self.errors_4xx.inc(),
            _ => self.errors_5xx.inc(),
        };
    }

    /// A request found the database busy (no connection free in time) and
    /// was refused with 503 and `Retry-After`, or retried.
    pub fn busy(&self) {
        self.busy.inc();
    }

    /// A KeyPackage claim was refused by a claim limit.
    pub fn claim_refused(&self, limit: crate::ratelimit::ClaimLimit) {
        match limit {
            crate::ratelimit::ClaimLimit::Pair => self.claims_refused_pair.inc(),
            crate::ratelimit::ClaimLimit::Target => self.claims_refused_target.inc(),
        };
    }

    /// A signed device request was refused as a replay.
    pub fn signed_replay(&self) {
        self.signed_replays.inc();
    }

    /// `n` device connections were closed because their access was revoked.
    pub fn revoked(&self, n: usize) {
        self.revoked.inc_by(n as u64);
    }

    /// Adds these metrics, and the storage counts from `stats`, to `out`.
    pub fn register(&self, out: &mut Exposition, stats: &Stats) {
        let gauge = Exposition::gauge;
        out.add(
            "hush_connections",
            "Open device WebSockets.",
            self.connections.clone(),
        );
        out.add(
            "hush_sends_total",
            "Stored sends accepted.",
            self.sends.clone(),
        );
        out.add(
            "hush_ephemeral_sends_total",
            "Ephemeral sends relayed.",
            self.ephemeral_sends.clone(),
        );
        out.add(
            "hush_envelopes_queued_total",
            "Envelopes accepted for device queues (written, or acknowledged first).",
            self.envelopes_queued.clone(),
        );
        out.add(
            "hush_envelopes_delivered_total",
            "Envelopes acknowledged by devices.",
            self.envelopes_delivered.clone(),
        );
        out.add(
            "hush_envelopes_unwritten_total",
            "Envelopes an online device acknowledged before their write, which then never happened.",
            self.envelopes_unwritten.clone(),
        );
        out.add(
            "hush_queue_depth",
            "Envelopes waiting in all device queues.",
            gauge(stats.queued_envelopes),
        );
        out.add(
            "hush_stored_payloads",
            "Payloads stored for the queues (one per send not yet acknowledged by every recipient).",
            gauge(stats.payloads),
        );
        out.add(
            "hush_stored_payload_bytes",
            "Bytes of the stored payloads.",
            gauge(stats.payload_bytes),
        );
        out.add(
            "hush_accounts",
            "Registered accounts.",
            gauge(stats.accounts),
        );
        out.add("hush_devices", "Registered devices.", gauge(stats.devices));
        out.add(
            "hush_key_packages",
            "Unclaimed one-time KeyPackages.",
            gauge(stats.key_packages),
        );
        out.add(
            "hush_database_busy_total",
            "Requests that found no database connection free in time (answered 503 with Retry-After, or retried).",
            self.busy.clone(),
        );
        out.add(
            "hush_signed_requests_replayed_total",
            "Signed device requests refused because their nonce was used already.",
            self.signed_replays.clone(),
        );
        out.add(
            "hush_connections_revoked_total",
            "Device WebSockets closed because the device was removed, its account suspended or its token rotated.",
            self.revoked.clone(),
        );
        out.add(
            "hush_http_errors_total",
            "Error responses by class.",
            self.errors.clone(),
        );
        out.add(
            "hush_key_package_claims_refused_total",
            "KeyPackage claims refused by a claim limit: per claimer and target (pair) or per target.",
            self.claims_refused.clone(),
        );
        out.add(
            "hush_delivery_latency_ms",
            "Time from acceptance to acknowledgement by the device.",
            self.latency.clone(),
        );
    }
}

/// One scrape's metrics, rendered in the OpenMetrics text format.
#[derive(Debug, Default)]
pub struct Exposition(Registry);

impl Exposition {
    /// The content type of [`Exposition::render`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Adds `metric` as `name` (a counter's name with its `_total`, which
    /// the encoder writes back on its samples) with `help` (a sentence).
    pub fn add(&mut self, name: &str, help: &str, metric: impl Metric) {
        let name = match metric.metric_type() {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        // The registry ends the help text with its own full stop.
        let help = help.strip_suffix('.').unwrap_or(help);
        self.0.register(name, help, metric);
    }

    /// A counter read once, at the scrape (for counters kept elsewhere).
    pub fn counter(n: u64) -> ConstCounter {
        ConstCounter::new(n)
    }

    /// A gauge read once, at the scrape.
    pub fn gauge(n: u64) -> ConstGauge {
        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// The text, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0);
        out
    }
}

/// The delivery latency histogram, in atomics: one bucket counter, the
/// count and the sum per observation, no lock.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<LatencyInner>);

#[derive(Debug, Default)]
struct LatencyInner {
    /// Per bucket (not cumulative), the last for above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, latency_ms: u64) {
        let i = LATENCY_BUCKETS_MS.partition_point(|bound| *bound < latency_ms);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bounds = LATENCY_BUCKETS_MS.iter().map(|b| *b as f64);
        let buckets: Vec<(f64, u64)> = bounds
            .chain([f64::INFINITY])
            .zip(&self.0.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = self.0.count.load(Ordering::Relaxed);
        let sum = self.0.sum_ms.load(Ordering::Relaxed) as f64;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_in_the_text() {
        let h = LatencyHistogram::default();
        for ms in [0, 1, 3, 40_000] {
            h.observe(ms);
        }
        let mut out = Exposition::default();
        out.add("hush_delivery_latency_ms", "Latency.", h);
        let text = out.render();
        for line in [
            "# HELP hush_delivery_latency_ms Latency.\n",
            "# TYPE hush_delivery_latency_ms histogram\n",
            "hush_delivery_latency_ms_bucket{le=\"1.0\"} 2\n",
            "hush_delivery_latency_ms_bucket{le=\"2.0\"} 2\n",
            "hush_delivery_latency_ms_bucket{le=\"5.0\"} 3\n",
            "hush_delivery_latency_ms_bucket{le=\"30000.0\"} 3\n",
            "hush_delivery_latency_ms_bucket{le=\"+Inf\"} 4\n",
            "hush_delivery_latency_ms_count 4\n",
            "hush_delivery_latency_ms_sum 40004.0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn counters_keep_their_sample_names_and_help() {
        let sends = Counter::<u64>::default();
        sends.inc_by(3);
        let mut out = Exposition::default();
        out.add("hush_sends_total", "Stored sends accepted.", sends);
        out.add(
            "hush_accounts",
            "Registered accounts.",
            Exposition::gauge(2),
        );
        let text = out.render();
        for line in [
            "# HELP hush_sends Stored sends accepted.\n",
            "# TYPE hush_sends counter\n",
            "\nhush_sends_total 3\n",
            "# HELP hush_accounts Registered accounts.\n",
            "# TYPE hush_accounts gauge\n",
            "\nhush_accounts 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
