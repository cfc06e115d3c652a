//! The client task of `hush chat`: it owns the [`Client`] (whose methods
//! take `&mut self`), runs the UI's [`Action`]s one at a time, and between
//! them syncs with a short wait so messages arrive live. Everything it
//! learns goes back to the UI as [`Update`]s.

use std::time::Duration;

use hush_client::{Client, ClientError, Event, Target};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::tui::app::{Action, Update};

/// How long each sync listens after the queue is drained. Messages that
/// arrive meanwhile are passed on at once; an action waits at most this.
const SYNC_WAIT: Duration = Duration::from_millis(800);
/// How long to wait before trying again when the server is unreachable.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until the UI sends [`Action::Quit`] or goes away.
pub async fn run(
    mut client: Client,
    initial: Option<Target>,
    mut actions: UnboundedReceiver<Action>,
    updates: UnboundedSender<Update>,
) {
    let mut worker = Worker {
        selected: initial,
        updates,
    };
    // Presence is best effort.
    let _ = client.announce_presence(true).await;
    worker.refresh(&mut client).await;
    let mut offline = false;
    loop {
        loop {
            match actions.try_recv() {
                Ok(Action::Quit) | Err(TryRecvError::Disconnected) => {
                    let _ = client.announce_presence(false).await;
                    return;
                }
                Ok(action) => worker.act(&mut client, action).await,
                Err(TryRecvError::Empty) => break,
            }
        }
        let updates = worker.updates.clone();
        let synced = client
            .sync(SYNC_WAIT, |ev| {
                let _ = updates.send(Update::Event(ev.clone()));
            })
            .await;
        match synced {
            Ok(events) => {
                if offline {
                    offline = false;
                    worker.send(Update::Connection(None));
                }
                if events.iter().any(changes_view) {
                    worker.refresh(&mut client).await;
                }
            }
            Err(e) => {
                offline = true;
                worker.send(Update::Connection(Some(e.to_string())));
                // Wait before retrying, but not when the user wants something.
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    action = actions.recv() => match action {
                        None | Some(Action::Quit) => return,
                        Some(action) => worker.act(&mut client, action).await,
                    },
                }
            }
        }
    }
}

/// Whether an event changes what the conversation list or pane shows
/// beyond what the UI applies itself.
fn changes_view(ev: &Event) -> bool {
    !matches!(ev, Event::Typing { .. } | Event::Presence { .. })
}

struct Worker {
    selected: Option<Target>,
    updates: UnboundedSender<Update>,
}

impl Worker {
    fn send(&self, update: Update) {
        // The UI has gone: the loop ends at the next action check.
        let _ = self.updates.send(update);
    }

    async fn act(&mut self, client: &mut Client, action: Action) {
        match action {
            Action::Select(target) => {
                self.selected = Some(target);
                self.refresh(client).await;
            }
            Action::Send(target, text) => {
                match client.send_text(&target, &text).await {
                    Ok(_) => {}
                    Err(e) => self.send(Update::Error(format!("not sent: {e}"))),
                }
                self.refresh(client).await;
            }
            Action::Typing(target, started) => {
                // Typing is best effort, and a chat without messages yet
                // has no one to tell.
                let _ = client.send_typing(&target, started).await;
            }
            Action::Quit => {}
        }
    }

    /// Sends the conversation list and the selected conversation's messages,
    /// and marks what is shown as read.
    async fn refresh(&mut self, client: &mut Client) {
        match client.conversations() {
            Ok(list) => self.send(Update::Conversations(list)),
            Err(e) => self.send(Update::Error(e.to_string())),
        }
        let Some(target) = self.selected.clone() else {
            return;
        };
        let messages = match client.history(&target) {
            Ok(m) => m,
            Err(ClientError::NotFound(_)) => Vec::new(),
            Err(e) => {
                self.send(Update::Error(e.to_string()));
                return;
            }
        };
        let unread = messages.iter().any(|m| m.status == "received");
        self.send(Update::History {
            target: target.clone(),
            messages,
        });
        if unread && let Err(e) = client.mark_read(&target).await {
            self.send(Update::Error(format!("read receipts not sent: {e}")));
        }
    }
}
