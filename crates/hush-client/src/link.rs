//! The device's WebSocket, kept open between uses: sends go on it
//! (`ClientFrame::Send`, answered by `ServerFrame::Sent` or `Refused`, as
//! `POST /v1/messages` would answer), and syncs read from it. Frames the
//! server pushes while a send waits for its answer (envelopes, ephemeral
//! messages) are kept for the next sync, never dropped. When the socket is
//! down, a send goes over HTTP instead.

use std::collections::VecDeque;
use std::task::{Poll, ready};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hush_wire::api::{SendRequest, SendResponse};
use hush_wire::ws::{ClientFrame, ServerFrame};
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

use crate::error::ClientError;
use crate::transport::{Transport, WebSocket};

/// How long a send on the socket waits for its answer before the socket is
/// taken as down (the send is then retried over HTTP; a duplicate is
/// harmless, MLS opens a message once).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write on the socket may wait for the server to take it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An open device WebSocket and what arrived on it for a later sync.
pub struct Link {
    pub(crate) ws: WebSocket,
    /// Frames received while a send waited, oldest first.
    pub(crate) buffered: VecDeque<ServerFrame>,
    /// The server said it sent the stored queue (`Drained`); since then it
    /// pushes each envelope as it is stored.
    pub(crate) drained: bool,
    /// Nothing says the connection is gone: the last check read no close,
    /// and the last listen heard from the server.
    pub(crate) up: bool,
    next_id: u64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

/// The socket failed: the caller forgets it.
struct Down;

impl Link {
    fn new(ws: WebSocket) -> Self {
        Self {
            ws,
            buffered: VecDeque::new(),
            drained: false,
            up: true,
            next_id: 1,
        }
    }

    /// Reads whatever is already waiting; `Down` if the server closed the
    /// connection meanwhile (replaced by another connection of the device,
    /// say).
    fn poll_waiting(&mut self) -> Result<(), Down> {
        while let Some(next) = self.ws.next().now_or_never() {
            match next {
                Some(Ok(Message::Binary(b))) => {
                    self.buffered
                        .push_back(ServerFrame::decode(&b).map_err(|_| Down)?);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(Down),
                Some(Ok(_)) => {}
            }
        }
        Ok(())
    }

    async fn send(
        &mut self,
        request: &SendRequest,
    ) -> Result<Result<SendResponse, ClientError>, Down> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = ClientFrame::Send {
            id,
            request: request.clone(),
        };
        write_reading(
            &mut self.ws,
            &mut self.buffered,
            Message::Binary(frame.encode().into()),
        )
        .await
        .map_err(|_| Down)?;
        if let Some(answer) = self.take_answer(id) {
            return Ok(answer);
        }
        loop {
            let next = tokio::time::timeout(ANSWER_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| Down)?;
            let bytes = match next {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(Down),
                Some(Ok(_)) => continue,
            };
            match ServerFrame::decode(&bytes).map_err(|_| Down)? {
                ServerFrame::Sent { id: i, response } if i == id => return Ok(Ok(response)),
                ServerFrame::Refused { id: i, error } if i == id => {
                    return Ok(Err(ClientError::Server(error)));
                }
                // An answer to a send given up on earlier.
                ServerFrame::Sent { .. } | ServerFrame::Refused { .. } => {}
                other => self.buffered.push_back(other),
            }
        }
    }
}

impl Link {
    /// The answer to send `id` if it came during the write; answers to
    /// sends given up on are dropped with it.
    fn take_answer(&mut self, id: u64) -> Option<Result<SendResponse, ClientError>> {
        let mut answer = None;
        self.buffered.retain_mut(|frame| match frame {
            ServerFrame::Sent { id: i, response } => {
                if *i == id {
                    answer = Some(Ok(response.clone()));
                }
                false
            }
            ServerFrame::Refused { id: i, error } => {
                if *i == id {
                    answer = Some(Err(ClientError::Server(error.clone())));
                }
                false
            }
            _ => true,
        });
        answer
    }
}

/// Writes `message` on `ws`, reading what the server sends meanwhile into
/// `buffered`. The server pushes to a kept connection whenever something
/// arrives for the device; a client that only wrote while the server only
/// wrote would wait for each other with both sockets' buffers full. A write
/// the server takes nothing of for [`WRITE_TIMEOUT`] fails, and so do a
/// close and a malformed frame read meanwhile.
pub(crate) async fn write_reading(
    ws: &mut WebSocket,
    buffered: &mut VecDeque<ServerFrame>,
    message: Message,
) -> Result<(), ClientError> {
    let mut message = Some(message);
    let write = std::future::poll_fn(|cx| {
        loop {
            match ws.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(Message::Binary(b)))) => match ServerFrame::decode(&b) {
                    Ok(frame) => buffered.push_back(frame),
                    Err(e) => {
                        return Poll::Ready(Err(format!("malformed frame from the server: {e}")));
                    }
                },
                Poll::Ready(Some(Ok(Message::Close(_))) | None) => {
                    return Poll::Ready(Err("the server closed the connection".to_owned()));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.to_string())),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Pending => break,
            }
        }
        if message.is_some() {
            ready!(ws.poll_ready_unpin(cx)).map_err(|e| e.to_string())?;
            if let Some(m) = message.take() {
                ws.start_send_unpin(m).map_err(|e| e.to_string())?;
            }
        }
        ws.poll_flush_unpin(cx).map_err(|e| e.to_string())
    });
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => result.map_err(ClientError::Network),
        Err(_) => Err(ClientError::Network(
            "the server took nothing written for too long".into(),
        )),
    }
}

impl Transport {
    /// Sends a message (`POST /v1/messages`'s request) on the device's
    /// WebSocket, opening it if needed; over HTTP when the socket is down.
    /// The answer (and a refusal) is the same either way.
    pub async fn send_message(&self, request: &SendRequest) -> Result<SendResponse, ClientError> {
        if let Some(answer) = self.send_on_socket(request).await {
            return answer;
        }
        match self.json(Method::POST, "/v1/messages", Some(request)).await {
            // Once more on a network failure: a kept HTTP connection the
            // server closed (it restarted, say) fails before the request
            // leaves, and a duplicate is harmless as on the socket.
            Err(ClientError::Network(_)) => {
                self.json(Method::POST, "/v1/messages", Some(request)).await
            }
            answer => answer,
        }
    }

    async fn send_on_socket(
        &self,
        request: &SendRequest,
    ) -> Option<Result<SendResponse, ClientError>> {
        let mut slot = self.link_slot().lock().await;
        if slot.is_none() {
            *slot = Some(Link::new(self.websocket().await.ok()?));
        }
        let link = slot.as_mut()?;
        match link.send(request).await {
            Ok(answer) => Some(answer),
            Err(Down) => {
                *slot = None;
                None
            }
        }
    }

    /// The socket kept open, if any, with every frame that already
    /// arrived on it (a sync handles them, then either listens on it or
    /// opens a fresh connection so that the server sends the whole stored
    /// queue and says when it did).
    pub async fn take_kept_link(&self) -> Option<Link> {
        let mut link = self.link_slot().lock().await.take()?;
        // A closed socket still holds the frames read before the close.
        if link.poll_waiting().is_err() {
            link.up = false;
        }
        Some(link)
    }

    /// Opens a new device WebSocket (replacing any other connection of the
    /// device on the server).
    pub async fn open_link(&self) -> Result<Link, ClientError> {
        Ok(Link::new(self.websocket().await?))
    }

    /// Keeps `link` open for the next send or sync.
    pub async fn keep_link(&self, link: Link) {
        *self.link_slot().lock().await = Some(link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 MB: more than both sockets' buffers hold on loopback.
    const EACH_WAY: usize = 160;
    const FRAME: usize = 400 * 1024;

    /// A peer that writes `EACH_WAY` frames before it reads anything, as a
    /// server that reads only between its writes did, then reads as many.
    async fn writing_peer(listener: tokio::net::TcpListener) -> usize {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let frame = ServerFrame::Ephemeral(vec![1; FRAME]).encode();
        for _ in 0..EACH_WAY {
            ws.feed(Message::Binary(frame.clone().into()))
                .await
                .expect("write");
        }
        ws.flush().await.expect("flush");
        let mut read = 0;
        while read < EACH_WAY {
            match ws.next().await {
                Some(Ok(Message::Binary(_))) => read += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        read
    }

    #[tokio::test]
    async fn a_write_reads_what_the_peer_writes_meanwhile() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let peer = tokio::spawn(writing_peer(listener));
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("connect");
        let mut buffered = VecDeque::new();
        let writing = async {
            for _ in 0..EACH_WAY {
                let frame = Message::Binary(vec![2; FRAME].into());
                write_reading(&mut ws, &mut buffered, frame)
                    .await
                    .expect("write");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), writing)
            .await
            .expect("both sides wrote and neither read: stalled");
        assert_eq!(peer.await.expect("peer"), EACH_WAY);
        // What arrived during the writes is kept, whole and in order.
        while buffered.len() < EACH_WAY {
            let Some(Ok(Message::Binary(b))) = ws.next().await else {
                break;
            };
            buffered.push_back(ServerFrame::decode(&b).expect("frame"));
        }
        assert_eq!(buffered.len(), EACH_WAY);
        assert!(
            buffered
                .iter()
                .all(|f| matches!(f, ServerFrame::Ephemeral(p) if p.len() == FRAME))
        );
    }
}
