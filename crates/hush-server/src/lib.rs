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
pub mod cluster;
pub mod config;
pub mod error;
pub mod extract;
pub mod franking;
pub mod hub;
pub mod kt;
pub mod metrics;
pub mod ratelimit;
pub mod sealing;
pub mod server;
pub mod store;
pub mod tls;
