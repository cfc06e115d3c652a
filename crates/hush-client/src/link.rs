//! The device's WebSocket, kept open between uses: sends go on it
//! (`ClientFrame::Send`, answered by `ServerFrame::Sent` or `Refused`, as
//! `POST /v1/messages` would answer), and syncs read from it. Frames the
//! server pushes while a send waits for its answer (envelopes, ephemeral
//! messages) are kept for the next sync, never dropped. When the socket is
//! down, a send goes over HTTP instead.

use std::collections::VecDeque;
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
        self.ws
            .send(Message::Binary(frame.encode().into()))
            .await
            .map_err(|_| Down)?;
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

impl Transport {
    /// Sends a message (`POST /v1/messages`'s request) on the device's
    /// WebSocket, opening it if needed; over HTTP when the socket is down.
    /// The answer (and a refusal) is the same either way.
    pub async fn send_message(&self, request: &SendRequest) -> Result<SendResponse, ClientError> {
        if let Some(answer) = self.send_on_socket(request).await {
            return answer;
        }
        self.json(Method::POST, "/v1/messages", Some(request)).await
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
