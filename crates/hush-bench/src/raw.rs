//! The baseline: a minimal WebSocket relay on tokio-tungstenite with the same
//! 4 KiB buffers, binary frames and loopback as Hush, but no auth, no storage
//! and no acknowledgements from recipients.
//!
//! A client connects to `/ID`. Each binary frame it sends is
//! `u32 count | count x u64 recipient id | payload`; the relay forwards the
//! payload to each connected recipient and answers the sender with the
//! payload's first 8 bytes (the message id) as its acknowledgement.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::net::ws_config;

/// Frames queued per connection before senders wait.
const QUEUE: usize = 4096;

#[derive(Default)]
struct Registry(Mutex<HashMap<u64, mpsc::Sender<Message>>>);

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, mpsc::Sender<Message>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the raw relay on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let registry = Arc::new(Registry::default());
    loop {
        let (tcp, _) = listener.accept().await?;
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = connection(tcp, registry).await;
        });
    }
}

// tungstenite's handshake callback fixes its error type (a whole HTTP response).
#[allow(clippy::result_large_err)]
async fn connection(tcp: TcpStream, registry: Arc<Registry>) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let mut id = None;
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        tcp,
        |req: &Request, resp: Response| {
            id = req.uri().path().trim_start_matches('/').parse::<u64>().ok();
            Ok(resp)
        },
        Some(ws_config()),
    )
    .await?;
    let id = id.ok_or_else(|| anyhow::anyhow!("no id in the path"))?;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    registry.lock().insert(id, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(msg) = stream.next().await {
        let bytes = match msg? {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        let Some(count) = bytes.get(..4).and_then(|c| <[u8; 4]>::try_from(c).ok()) else {
            continue;
        };
        let count = u32::from_be_bytes(count) as usize;
        let start = 4 + 8 * count;
        if bytes.len() < start {
            continue;
        }
        let payload = bytes.slice(start..);
        for i in 0..count {
            let Some(r) = bytes
                .get(4 + 8 * i..12 + 8 * i)
                .and_then(|r| <[u8; 8]>::try_from(r).ok())
            else {
                continue;
            };
            let target = registry.lock().get(&u64::from_be_bytes(r)).cloned();
            if let Some(target) = target {
                let _ = target.send(Message::Binary(payload.clone())).await;
            }
        }
        let ack = payload.slice(..payload.len().min(8));
        if tx.send(Message::Binary(ack)).await.is_err() {
            break;
        }
    }
    registry.lock().remove(&id);
    writer.abort();
    Ok(())
}
