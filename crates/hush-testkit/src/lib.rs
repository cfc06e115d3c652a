//! Test support: a real `hush-server` running in-process on `127.0.0.1:0`
//! over its own SQLite database in a temporary directory, restartable on the
//! same data and port.
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
