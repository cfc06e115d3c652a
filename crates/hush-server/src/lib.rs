//! `hush-server` is the Hush delivery service: it registers accounts and
//! devices, hands out KeyPackages, stores each message durably in every
//! recipient device's queue before acknowledging the sender, and delivers
//! queues over one WebSocket per device. It stores ciphertext it cannot read
//! and no group membership.
//!
//! This crate is a library first (the `hush-server` binary is a thin wrapper),
//! so tests start a real server on `127.0.0.1:0`.
//!
//! Storage sits behind the [`store::Store`] trait; [`store::sqlite`] is the
//! embedded default; [`store::postgres`] is shared by the nodes of a
//! cluster, which reach each other through NATS ([`cluster`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod blobs;
pub mod channel_watch;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod error;
pub mod extract;
pub mod franking;
pub mod hub;
pub mod kt;
pub mod mailbox;
pub mod metrics;
pub mod proxy;
pub mod quota;
pub mod ratelimit;
pub mod sealing;
pub mod server;
pub mod store;
pub mod timeouts;
pub mod tls;

/// What a server built with the test-only `fault-injection` feature logs
/// when it starts. Only such a build uses this string, so only its binary
/// contains it: `.ci/run` builds the server as shipped and checks the
/// binary lacks it (and the feature graph lacks the feature).
pub const FAULT_INJECTION_BANNER: &str =
    "this hush-server was built with the test-only fault-injection hooks: never run it for real";

#[cfg(test)]
mod tests {
    /// `.ci/run` searches the shipped binary for (part of) the banner.
    #[test]
    fn ci_looks_for_the_fault_injection_banner() {
        let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/run"))
            .unwrap_or_default();
        let searched = ci
            .lines()
            .find_map(|l| l.strip_prefix("fi_banner=\""))
            .and_then(|l| l.strip_suffix('"'));
        assert!(
            searched.is_some_and(|s| !s.is_empty() && super::FAULT_INJECTION_BANNER.contains(s)),
            "the fi_banner of .ci/run must be part of FAULT_INJECTION_BANNER"
        );
    }
}
