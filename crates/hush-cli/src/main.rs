//! `hush`: the command-line and terminal client of Hush.
//!
//! How a run flows (ripgrep's shape): [`cli::LowArgs`] is what clap parses,
//! [`config::Config::resolve`] checks and resolves it (targets, durations,
//! data directory, passphrase source), and [`commands::run`] opens the
//! account with `hush-client` and does the one thing asked. `main` turns the
//! outcome into an exit code: 0 on success (a closed stdout pipe counts as
//! success), otherwise one line `hush: <reason>` on stderr.
//!
//! ```text
//! $ hush --data-dir ~/.hush-alice register --server http://127.0.0.1:7780 alice
//! $ hush --data-dir ~/.hush-alice send bob "hi bob"
//! $ hush --data-dir ~/.hush-bob sync --json
//! {"id":"…","conversation":1,"group":null,"from":"alice","kind":"text","text":"hi bob","sent_at":1767225600000}
//! ```

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod inert;
mod output;
mod tui;
mod web;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::LowArgs;
use crate::config::{Config, PASSPHRASE_ENV};

/// Exit status for a command line that makes no sense (clap's convention).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = match LowArgs::try_parse() {
        Ok(args) => args,
        Err(e) => return clap_exit(&e),
    };
    // Wiped when dropped, like every other copy of the passphrase.
    let passphrase = std::env::var(PASSPHRASE_ENV)
        .ok()
        .map(zeroize::Zeroizing::new);
    let config = match Config::resolve(args, passphrase) {
        Ok(config) => config,
        Err(e) => {
            report(&format!("{e} (see `hush --help`)"));
            return ExitCode::from(USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(config));
    // Background tasks (the chat's client task) must not keep the process up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout with status 0; a usage error is one line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // A closed pipe while printing help is not an error either.
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message, without its usage block and tips.
            let text = e.to_string();
            let reason: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| {
                    !l.starts_with("Usage:")
                        && !l.starts_with("tip:")
                        && !l.starts_with("For more information")
                })
                .filter(|l| !l.is_empty())
                .collect();
            let reason = reason.join(" ");
            let reason = reason.strip_prefix("error: ").unwrap_or(&reason);
            report(&format!("{reason} (see `hush --help`)"));
            ExitCode::from(USAGE)
        }
    }
}

/// Writes `hush: <reason>` as one line on stderr.
fn report(reason: &str) {
    let line: String = reason
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // Errors may quote the server or other people: shown inert.
    let _ = writeln!(std::io::stderr(), "hush: {}", inert::name(&line));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
