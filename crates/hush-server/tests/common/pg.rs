//! PostgreSQL and NATS for the tests that need them: the URLs from the
//! environment (`.ci/run` sets both), a unique name, and a PostgreSQL schema
//! of a test's own that is dropped afterwards.

/// Where the shared services are.
pub struct Env {
    pub pg: String,
    pub nats: String,
}

pub fn env() -> Option<Env> {
    match (
        std::env::var("HUSH_TEST_POSTGRES_URL"),
        std::env::var("HUSH_TEST_NATS_URL"),
    ) {
        (Ok(pg), Ok(nats)) => Some(Env { pg, nats }),
        _ => {
            eprintln!(
                "HUSH_TEST_POSTGRES_URL and HUSH_TEST_NATS_URL are not both set: skipping the cluster test"
            );
            None
        }
    }
}

pub fn unique(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A PostgreSQL schema of its own for one test, dropped afterwards.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create(url: &str) -> Self {
        use sqlx::Connection;
        let name = unique("hush_test");
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
            panic!("HUSH_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
        });
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            url: url.to_owned(),
            name,
        }
    }

    /// Connection options that put every table in this schema.
    pub fn connect_options(&self) -> sqlx::postgres::PgConnectOptions {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse().unwrap();
        options.options([("search_path", self.name.as_str())])
    }

    /// The URL a node is started with: the schema rides in the options.
    pub fn node_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.url, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
