//! Configuration: flags, `HUSH_*` environment variables and an optional TOML
//! file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The file form (`--config FILE`); every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `data-dir`
    #[serde(rename = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// `listen`
    pub listen: Option<SocketAddr>,
    /// `database`
    pub database: Option<String>,
    /// `tls-cert`
    #[serde(rename = "tls-cert")]
    pub tls_cert: Option<PathBuf>,
    /// `tls-key`
    #[serde(rename = "tls-key")]
    pub tls_key: Option<PathBuf>,
    /// `retention`, such as "30d"
    pub retention: Option<String>,
    /// `max-attachment-size`, such as "100MiB"
    #[serde(rename = "max-attachment-size")]
    pub max_attachment_size: Option<String>,
    /// `max-backup-size`, such as "100MiB": one backup per account
    #[serde(rename = "max-backup-size")]
    pub max_backup_size: Option<String>,
    /// `rate-limit-ip`, requests per second
    #[serde(rename = "rate-limit-ip")]
    pub rate_limit_ip: Option<f64>,
    /// `rate-limit-account`, requests per second
    #[serde(rename = "rate-limit-account")]
    pub rate_limit_account: Option<f64>,
    /// `nats`, such as "nats://10.0.0.5:4222": join a cluster
    pub nats: Option<String>,
    /// `nats-subject-prefix`, default "hush"
    #[serde(rename = "nats-subject-prefix")]
    pub nats_subject_prefix: Option<String>,
    /// `recheck-interval`, such as "30s": in a cluster, how often each
    /// connection re-reads its queue in case a wake-up was lost
    #[serde(rename = "recheck-interval")]
    pub recheck_interval: Option<String>,
    /// `early-across-nodes = true`: in a cluster, number each device's queue
    /// on the node it is connected to (decision 0046; experimental).
    #[serde(rename = "early-across-nodes")]
    pub early_across_nodes: Option<bool>,
    /// `attachments`: "s3://BUCKET[/PREFIX]", "file:///PATH" or a directory
    pub attachments: Option<String>,
    /// `drain-delay`, such as "10s": on shutdown, how long to keep answering
    /// (with /healthz failing) before closing the listener
    #[serde(rename = "drain-delay")]
    pub drain_delay: Option<String>,
    /// `kt-batch-window`, such as "25ms": how long a key-directory change
    /// waits for others before its epoch is published
    #[serde(rename = "kt-batch-window")]
    pub kt_batch_window: Option<String>,
    /// `trusted-proxy`, such as ["10.0.0.0/8"]: reverse proxies whose
    /// X-Forwarded-For names the client
    #[serde(rename = "trusted-proxy")]
    pub trusted_proxy: Option<Vec<String>>,
    /// `metrics-listen`, such as "10.0.0.5:9780": the operator listener
    /// serving /metrics (plain HTTP: keep it private)
    #[serde(rename = "metrics-listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// `metrics-token`: serve /metrics on the public listener too, to
    /// requests bearing this token
    #[serde(rename = "metrics-token")]
    pub metrics_token: Option<String>,
    /// `max-queue-bytes`, such as "256MiB" (0: no limit)
    #[serde(rename = "max-queue-bytes")]
    pub max_queue_bytes: Option<String>,
    /// `max-send-bytes`, such as "256MiB" (0: no limit)
    #[serde(rename = "max-send-bytes")]
    pub max_send_bytes: Option<String>,
    /// `max-account-attachment-bytes`, such as "2GiB" (0: no limit)
    #[serde(rename = "max-account-attachment-bytes")]
    pub max_account_attachment_bytes: Option<String>,
    /// `max-key-packages`, per device and suite (0: no limit)
    #[serde(rename = "max-key-packages")]
    pub max_key_packages: Option<u64>,
    /// `max-account-connections` (0: no limit)
    #[serde(rename = "max-account-connections")]
    pub max_account_connections: Option<usize>,
    /// `body-timeout`, such as "2m" (0s: none)
    #[serde(rename = "body-timeout")]
    pub body_timeout: Option<String>,
    /// `idle-timeout`, such as "30s" (0s: none)
    #[serde(rename = "idle-timeout")]
    pub idle_timeout: Option<String>,
}

/// The quota and timeout flags of `hush-server` (each also `HUSH_*` and a
/// config file key of the same name).
#[derive(Debug, Default, clap::Args)]
pub struct QuotaFlags {
    /// Most bytes waiting in one device's queue; a send that would go past
    /// it is refused with 429 queue_full (default 256MiB; 0: no limit).
    #[arg(long, env = "HUSH_MAX_QUEUE_BYTES", global = true)]
    pub max_queue_bytes: Option<String>,
    /// Most bytes one send may store: its payload once, plus 256 bytes per
    /// recipient device (default 256MiB; 0: no limit).
    #[arg(long, env = "HUSH_MAX_SEND_BYTES", global = true)]
    pub max_send_bytes: Option<String>,
    /// Most bytes of attachments one account may create within the
    /// retention period, counted per node since it started (default 2GiB;
    /// 0: no limit).
    #[arg(long, env = "HUSH_MAX_ACCOUNT_ATTACHMENT_BYTES", global = true)]
    pub max_account_attachment_bytes: Option<String>,
    /// Most one-time KeyPackages one device may hold per suite (default
    /// 500; 0: no limit).
    #[arg(long, env = "HUSH_MAX_KEY_PACKAGES", global = true)]
    pub max_key_packages: Option<u64>,
    /// Most requests in progress plus WebSockets open of one account
    /// (default 32; 0: no limit).
    #[arg(long, env = "HUSH_MAX_ACCOUNT_CONNECTIONS", global = true)]
    pub max_account_connections: Option<usize>,
    /// Longest a request body may take to arrive (default 2m; 0s: none).
    #[arg(long, env = "HUSH_BODY_TIMEOUT", global = true)]
    pub body_timeout: Option<String>,
    /// Longest a connection may stay silent while a request's headers or
    /// body are due, which also closes idle keep-alive connections
    /// (default 30s; 0s: none).
    #[arg(long, env = "HUSH_IDLE_TIMEOUT", global = true)]
    pub idle_timeout: Option<String>,
}

impl QuotaFlags {
    /// Applies the flags, else the file's keys, over `q`.
    pub fn apply(
        self,
        file: &FileConfig,
        q: &mut crate::quota::QuotaSettings,
    ) -> anyhow::Result<()> {
        let size = |flag: Option<String>, key: &Option<String>| -> anyhow::Result<Option<u64>> {
            flag.or_else(|| key.clone())
                .map(|s| parse_size(&s))
                .transpose()
        };
        let duration = |flag: Option<String>, key: &Option<String>| {
            flag.or_else(|| key.clone())
                .map(|s| parse_duration(&s))
                .transpose()
        };
        if let Some(n) = size(self.max_queue_bytes, &file.max_queue_bytes)? {
            q.max_queue_bytes = n;
        }
        if let Some(n) = size(self.max_send_bytes, &file.max_send_bytes)? {
            q.max_send_bytes = n;
        }
        if let Some(n) = size(
            self.max_account_attachment_bytes,
            &file.max_account_attachment_bytes,
        )? {
            q.max_blob_bytes = n;
        }
        if let Some(n) = self.max_key_packages.or(file.max_key_packages) {
            q.max_key_packages = n;
        }
        if let Some(n) = self
            .max_account_connections
            .or(file.max_account_connections)
        {
            q.max_connections = n;
        }
        if let Some(d) = duration(self.body_timeout, &file.body_timeout)? {
            q.body_timeout = d;
        }
        if let Some(d) = duration(self.idle_timeout, &file.idle_timeout)? {
            q.idle_timeout = d;
        }
        Ok(())
    }
}

impl FileConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Database {
    /// Parses `sqlite://PATH` (relative paths are relative to the working
    /// directory) or `postgres://...` / `postgresql://...`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                anyhow::bail!("sqlite:// needs a file path, such as sqlite://hush-data/hush.db");
            }
            Ok(Database::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Database::Postgres(s.to_owned()))
        } else {
            anyhow::bail!("--database must be sqlite://PATH or postgres://URL, not {s:?}")
        }
    }
}

/// Parses a duration such as `30d`, `12h`, `90s` or `1h 30m`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow::anyhow!("invalid duration {s:?}: {e}"))
}

/// Parses a size such as `100MiB`, `512KiB`, `1GiB`, `10MB` or plain bytes.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}: expected a number and a unit"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => anyhow::bail!("invalid size unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"),
    };
    n.checked_mul(mult)
        .ok_or_else(|| anyhow::anyhow!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("100MiB").unwrap(), 100 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2 KB").unwrap(), 2000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn databases() {
        assert_eq!(
            Database::parse("sqlite://x/y.db").unwrap(),
            Database::Sqlite("x/y.db".into())
        );
        assert!(matches!(
            Database::parse("postgres://u@h/db").unwrap(),
            Database::Postgres(_)
        ));
        assert!(Database::parse("mysql://x").is_err());
        assert!(Database::parse("sqlite://").is_err());
    }

    #[test]
    fn file_config_cluster_keys() {
        let c: FileConfig = toml::from_str(
            "nats = \"nats://10.0.0.5:4222\"\nattachments = \"s3://hush/att\"\n\
             drain-delay = \"10s\"\nrecheck-interval = \"20s\"\nnats-subject-prefix = \"prod\"",
        )
        .unwrap();
        assert_eq!(c.nats.as_deref(), Some("nats://10.0.0.5:4222"));
        assert_eq!(c.attachments.as_deref(), Some("s3://hush/att"));
        assert_eq!(c.nats_subject_prefix.as_deref(), Some("prod"));
        assert_eq!(c.drain_delay.as_deref(), Some("10s"));
        assert_eq!(c.recheck_interval.as_deref(), Some("20s"));
    }

    #[test]
    fn quota_keys_and_flags() {
        let file: FileConfig = toml::from_str(
            "max-queue-bytes = \"1MiB\"\nmax-key-packages = 7\nidle-timeout = \"0s\"",
        )
        .unwrap();
        let mut q = crate::quota::QuotaSettings::default();
        let flags = QuotaFlags {
            max_key_packages: Some(9),
            max_account_connections: Some(0),
            ..QuotaFlags::default()
        };
        flags.apply(&file, &mut q).unwrap();
        assert_eq!(q.max_queue_bytes, 1 << 20);
        assert_eq!(q.max_key_packages, 9);
        assert_eq!(q.max_connections, 0);
        assert!(q.idle_timeout.is_zero());
        let bad = QuotaFlags {
            body_timeout: Some("soon".into()),
            ..QuotaFlags::default()
        };
        assert!(bad.apply(&file, &mut q).is_err());
    }

    #[test]
    fn file_config_rejects_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn file_config_access_keys() {
        let c: FileConfig = toml::from_str(
            "trusted-proxy = [\"10.0.0.0/8\", \"fd00::/8\"]\n\
             metrics-listen = \"127.0.0.1:9780\"\nmetrics-token = \"s3cret\"",
        )
        .unwrap();
        assert_eq!(c.trusted_proxy.unwrap().len(), 2);
        assert_eq!(c.metrics_listen.unwrap().port(), 9780);
        assert_eq!(c.metrics_token.as_deref(), Some("s3cret"));
    }
}
