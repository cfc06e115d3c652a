//! An authenticated client of `hush web`'s API and a reader of its event
//! stream, for the API tests (`web.rs`, `web_features.rs`; included with
//! `#[path]`, as it needs reqwest and tokio).

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::common::web::Web;

/// Reads an SSE stream in the background; [`Events::expect`] waits for text.
pub struct Events {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: String,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    pub async fn open(web: &Web, cookie: &str) -> Events {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut resp = client
            .get(format!("{}/api/events", web.base()))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(Some(chunk)) = resp.chunk().await {
                if tx
                    .send(String::from_utf8_lossy(&chunk).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        Events {
            rx,
            seen: String::new(),
            task,
        }
    }

    /// Waits (30 s at most) for an SSE event named `name` whose data
    /// contains `needle`; returns its data.
    pub async fn expect(&mut self, name: &str, needle: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(end) = self.seen.find("\n\n") {
                let block: String = self.seen.drain(..end + 2).collect();
                let event = block.lines().find_map(|l| l.strip_prefix("event: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(e), Some(d)) = (event, data)
                    && e == name
                    && d.contains(needle)
                {
                    return serde_json::from_str(d).unwrap();
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(chunk)) => self.seen.push_str(&chunk),
                Ok(None) => panic!("the event stream ended waiting for {name} {needle:?}"),
                Err(_) => panic!("no {name} event with {needle:?} within 30 s"),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An authenticated API client for one `hush web`.
pub struct Api {
    pub base: String,
    pub cookie: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(web: &Web) -> Api {
        Api {
            base: web.base(),
            cookie: web.login(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }
}
