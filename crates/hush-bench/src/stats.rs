//! Latency recording and the JSON every scenario prints.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the generator started: the clock every payload carries.
pub fn now_us() -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Bytes of a payload that identify it: message id, then the send time.
pub const HEADER_LEN: usize = 16;

/// A payload of `size` bytes (at least [`HEADER_LEN`]) for message `id`,
/// meant to be sent at `sent_us`.
pub fn payload(id: u64, sent_us: u64, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size.max(HEADER_LEN)];
    if let Some(head) = p.get_mut(..8) {
        head.copy_from_slice(&id.to_be_bytes());
    }
    if let Some(head) = p.get_mut(8..16) {
        head.copy_from_slice(&sent_us.to_be_bytes());
    }
    p
}

/// The id and send time of a payload made by [`payload`].
pub fn parse_payload(p: &[u8]) -> Option<(u64, u64)> {
    let id = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let at = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
    Some((id, at))
}

/// A histogram of microseconds, 1 us to 10 minutes at 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Deliveries seen by every recipient of a run.
#[derive(Debug)]
pub struct Deliveries {
    /// Recipients of each message (1 for 1:1, N for a group).
    per_message: u32,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Message id -> (recipients so far, slowest so far in us).
    open: HashMap<u64, (u32, u64)>,
    all: Histogram<u64>,
    last: Histogram<u64>,
    delivered: u64,
    complete: u64,
    duplicated: u64,
    first_us: Option<u64>,
    last_us: u64,
    done: std::collections::HashSet<u64>,
}

impl Deliveries {
    /// Tracks messages that each go to `per_message` recipients.
    pub fn new(per_message: u32) -> anyhow::Result<Self> {
        Ok(Self {
            per_message,
            inner: Mutex::new(Inner {
                open: HashMap::new(),
                all: histogram()?,
                last: histogram()?,
                delivered: 0,
                complete: 0,
                duplicated: 0,
                first_us: None,
                last_us: 0,
                done: std::collections::HashSet::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A recipient got message `id` sent at `sent_us`, for the first time.
    pub fn record(&self, id: u64, sent_us: u64) {
        let now = now_us();
        let lat = now.saturating_sub(sent_us).max(1);
        let mut g = self.lock();
        g.delivered += 1;
        g.first_us.get_or_insert(now);
        g.last_us = now;
        let _ = g.all.record(lat);
        let entry = g.open.entry(id).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(lat);
        let (count, slowest) = *entry;
        if count >= self.per_message {
            g.open.remove(&id);
            g.done.insert(id);
            g.complete += 1;
            let _ = g.last.record(slowest.max(1));
        }
    }

    /// A recipient got a message it had already got under another sequence
    /// number: the server stored it twice.
    pub fn duplicate(&self) {
        self.lock().duplicated += 1;
    }

    /// Messages delivered to every recipient.
    pub fn complete(&self) -> u64 {
        self.lock().complete
    }

    /// Deliveries so far (one per recipient).
    pub fn delivered(&self) -> u64 {
        self.lock().delivered
    }

    /// How many of `ids` have not reached every recipient yet.
    pub fn missing(&self, ids: &std::collections::HashSet<u64>) -> u64 {
        let g = self.lock();
        ids.iter().filter(|id| !g.done.contains(id)).count() as u64
    }

    /// A snapshot for the report.
    pub fn summary(&self) -> Summary {
        let g = self.lock();
        Summary {
            delivered: g.delivered,
            complete: g.complete,
            duplicated: g.duplicated,
            incomplete: g.open.len() as u64,
            all: g.all.clone(),
            last: g.last.clone(),
            last_us: g.last_us,
        }
    }
}

/// What [`Deliveries`] saw.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Deliveries (one per recipient).
    pub delivered: u64,
    /// Messages every recipient got.
    pub complete: u64,
    /// Messages stored twice.
    pub duplicated: u64,
    /// Messages some but not all recipients got.
    pub incomplete: u64,
    /// Latency of every delivery.
    pub all: Histogram<u64>,
    /// Latency of the last recipient of each message.
    pub last: Histogram<u64>,
    /// When the last delivery happened ([`now_us`]).
    pub last_us: u64,
}

/// Percentiles of a histogram in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            round3(h.value_at_quantile(q) as f64 / 1000.0)
        }
    };
    (ms(0.5), ms(0.99), ms(0.999))
}

/// Rounds to three decimals for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The JSON object of a run, built field by field.
#[derive(Debug, Default)]
pub struct Report(Map<String, Value>);

impl Report {
    /// A report for `scenario` with the fields every scenario has.
    pub fn new(scenario: &str, messages: u64, seconds: f64, lat: &Histogram<u64>) -> Self {
        let (p50, p99, p999) = percentiles(lat);
        let mut r = Self(Map::new());
        r.set("scenario", json!(scenario));
        r.set("messages", json!(messages));
        r.set("seconds", json!(round3(seconds)));
        let rate = if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        };
        r.set("msgs_per_sec", json!(rate.round()));
        r.set("p50_ms", json!(p50));
        r.set("p99_ms", json!(p99));
        r.set("p999_ms", json!(p999));
        r
    }

    /// Sets a field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_owned(), value);
    }

    /// The rate this run reported.
    pub fn rate(&self) -> f64 {
        self.0
            .get("msgs_per_sec")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    }

    /// Adds the baseline fields: its name, its rate and ours over it.
    pub fn baseline(&mut self, name: &str, rate: Option<f64>) {
        self.set("baseline", json!(name));
        self.set("baseline_msgs_per_sec", json!(rate.map(f64::round)));
        let ratio = match rate {
            Some(b) if b > 0.0 => Some(round3(self.rate() / b)),
            _ => None,
        };
        self.set("ratio", json!(ratio));
    }

    /// The finished object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}
