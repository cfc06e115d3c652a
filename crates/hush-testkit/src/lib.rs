//! Test support: a real `hush-server` running in-process on `127.0.0.1:0`
//! over its own SQLite database in a temporary directory, restartable on the
//! same data and port; and [`TestCluster`], several nodes on one PostgreSQL
//! and one NATS (from `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL`).
//!
//! Client tests use this instead of a mock: the server they talk to is the
//! one users run.

#![forbid(unsafe_code)]

pub use hush_server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::server::serve;
use hush_server::store::sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A running server. Stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    store: Option<Arc<dyn hush_server::store::Store>>,
    state: Option<AppState>,
    stop: Option<(Arc<Notify>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Why the server could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl TestServer {
    /// Starts a server with default settings on a free loopback port.
    pub async fn start() -> Result<Self, StartError> {
        let dir = tempfile::tempdir()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut server = Self {
            addr,
            dir,
            store: None,
            state: None,
            stop: None,
        };
        server.run(listener)?;
        Ok(server)
    }

    fn run(&mut self, listener: TcpListener) -> Result<(), StartError> {
        let store = SqliteStore::open(&self.dir.path().join("hush.db"))?;
        let blobs = Blobs::local(&self.dir.path().join("blobs"))?;
        let settings = Settings {
            // Tests make many requests quickly from one address.
            per_ip: hush_server::ratelimit::Rate {
                per_second: 0.0,
                burst: 0.0,
            },
            // ... and claim KeyPackages far faster than people do; the claim
            // limits are held by hush-server's own tests.
            strict: hush_server::ratelimit::StrictRates::off(),
            ..Settings::default()
        };
        let store: Arc<dyn hush_server::store::Store> = Arc::new(store);
        self.store = Some(store.clone());
        let state = AppState::new(store, blobs, settings);
        self.state = Some(state.clone());
        let stop = Arc::new(Notify::new());
        let signal = stop.clone();
        let task = tokio::spawn(serve(
            listener,
            state,
            async move { signal.notified().await },
        ));
        self.stop = Some((stop, task));
        Ok(())
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's database, for checking what it stored.
    pub fn store(&self) -> Option<Arc<dyn hush_server::store::Store>> {
        self.store.clone()
    }

    /// The running server's shared state (its key directory, hub, ...).
    pub fn state(&self) -> Option<AppState> {
        self.state.clone()
    }

    /// Where the server keeps its data (database, `blobs/`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Stops the server (connections close) and starts it again on the same
    /// port and data, as after a restart.
    pub async fn restart(&mut self) -> Result<(), StartError> {
        self.shutdown().await;
        // The port was just released; bind it again.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.run(listener)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(&mut self) {
        if let Some((stop, task)) = self.stop.take() {
            stop.notify_one();
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.stop.take() {
            stop.notify_one();
            task.abort();
        }
    }
}

/// Several in-process nodes sharing one PostgreSQL schema (made for it and
/// dropped afterwards), one NATS server (under a subject prefix of their own)
/// and one attachment directory: a cluster, on loopback ports.
pub struct TestCluster {
    nodes: Vec<(
        SocketAddr,
        Arc<Notify>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    pg_url: String,
    schema: String,
    _blobs: tempfile::TempDir,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("nodes", &self.urls())
            .field("schema", &self.schema)
            .finish()
    }
}

impl TestCluster {
    /// Starts `n` nodes on PostgreSQL at `HUSH_TEST_POSTGRES_URL` and NATS at
    /// `HUSH_TEST_NATS_URL`. `Ok(None)` (with a notice on stderr) when either
    /// variable is unset; an error when they are set and a service does not
    /// answer.
    pub async fn start(n: usize) -> Result<Option<Self>, StartError> {
        let (Ok(pg_url), Ok(nats)) = (
            std::env::var("HUSH_TEST_POSTGRES_URL"),
            std::env::var("HUSH_TEST_NATS_URL"),
        ) else {
            eprintln!("HUSH_TEST_POSTGRES_URL and HUSH_TEST_NATS_URL are not both set: no cluster");
            return Ok(None);
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!(
            "{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos()
        );
        let schema = format!("hush_testkit_{tag}");
        {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&pg_url).await?;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await?;
        }
        let sep = if pg_url.contains('?') { '&' } else { '?' };
        let node_url = format!("{pg_url}{sep}options[search_path]={schema}");
        let blobs = tempfile::tempdir()?;
        let mut cluster = Self {
            nodes: Vec::new(),
            pg_url,
            schema,
            _blobs: blobs,
        };
        for _ in 0..n {
            let store = hush_server::store::postgres::PostgresStore::connect(&node_url).await?;
            store.join_cluster().await?;
            let mut config = hush_server::cluster::ClusterConfig::new(&nats);
            config.subject_prefix = format!("tk{tag}");
            let settings = Settings {
                per_ip: hush_server::ratelimit::Rate {
                    per_second: 0.0,
                    burst: 0.0,
                },
                strict: hush_server::ratelimit::StrictRates::off(),
                ..Settings::default()
            };
            let state = AppState::new(
                Arc::new(store),
                Blobs::local(cluster._blobs.path())?,
                settings,
            )
            .join_cluster(config)
            .await?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let stop = Arc::new(Notify::new());
            let signal = stop.clone();
            let task = tokio::spawn(serve(
                listener,
                state,
                async move { signal.notified().await },
            ));
            cluster.nodes.push((addr, stop, task));
        }
        Ok(Some(cluster))
    }

    /// Each node's base URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(addr, _, _)| format!("http://{addr}"))
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, stop, task) in &self.nodes {
            stop.notify_one();
            task.abort();
        }
        let (url, schema) = (self.pg_url.clone(), self.schema.clone());
        // Drop may run inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
