//! The client task of `hush chat`: it owns the [`Client`] (whose methods
//! take `&mut self`), runs the UI's [`Action`]s one at a time, and between
//! them syncs with a short wait so messages arrive live. Everything it
//! learns goes back to the UI as [`Update`]s.

use std::path::Path;
use std::time::{Duration, Instant};

use hush_client::{BackupReport, Client, ClientError, Event, HistoryScope, Target};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use zeroize::Zeroizing;

use crate::output::format_size;
use crate::tui::app::{Action, Update};
use crate::tui::views::{BackupInfo, Created, ShownKey, Task};

/// How long each sync listens after the queue is drained. Messages that
/// arrive meanwhile are passed on at once; an action waits at most this.
const SYNC_WAIT: Duration = Duration::from_millis(800);
/// How long to wait before trying again when the server is unreachable.
const RETRY: Duration = Duration::from_secs(2);
/// How long a device being linked has to answer (as `hush devices link`).
const LINK_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How often the scheduled backup is looked at (as each `hush sync` does).
const BACKUP_CHECK: Duration = Duration::from_secs(60);

/// Runs until the UI sends [`Action::Quit`] or goes away.
pub async fn run(
    mut client: Client,
    initial: Option<Target>,
    mut actions: UnboundedReceiver<Action>,
    updates: UnboundedSender<Update>,
) {
    let mut worker = Worker {
        selected: initial,
        channel: None,
        updates,
        backup_checked: None,
    };
    // Posts reach the channels' view as the server stores them, and the
    // syncs below fetch channels only when the watch has news.
    // (It fails only outside a Tokio runtime, which this task is not.)
    let _ = client.watch_channels();
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
                worker.scheduled_backup(&mut client).await;
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

/// A path as the user should see it: absolute.
fn show_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// How many messages `/search` shows.
const SEARCH_LIMIT: usize = 50;

/// `#group` or the username.
fn label(target: &Target) -> String {
    match target {
        Target::User(u) => u.clone(),
        Target::Group(g) => format!("#{g}"),
    }
}

/// Runs a command on a message (or a new poll): what it did, or why not.
async fn on_message(client: &mut Client, action: Action) -> Result<String, String> {
    let shown = |m: hush_client::MessageView, what: String| {
        if m.status == "failed" {
            Err(format!(
                "the server refused message {}: it was not delivered",
                m.id
            ))
        } else {
            Ok(what)
        }
    };
    match action {
        Action::Reply(target, text, id) => match client.send_reply(&target, &text, Some(&id)).await
        {
            Ok(m) => shown(m, "replied".into()),
            Err(e) => Err(format!("not sent: {e}")),
        },
        Action::React(id, emoji) => {
            let done = client.react(&id, emoji.as_deref()).await;
            done.map(|()| match emoji {
                Some(e) => format!("reacted {e}"),
                None => "took your reaction back".into(),
            })
            .map_err(|e| format!("no reaction: {e}"))
        }
        Action::Edit(id, text) => (client.edit(&id, &text).await)
            .map(|()| "edited for everyone".into())
            .map_err(|e| format!("not edited: {e}")),
        Action::Delete(id) => (client.delete(&id).await)
            .map(|()| "deleted for everyone".into())
            .map_err(|e| format!("not deleted: {e}")),
        Action::Pin(id, pinned) => (client.pin(&id, pinned).await)
            .map(|()| if pinned { "pinned" } else { "unpinned" }.into())
            .map_err(|e| format!("not changed: {e}")),
        Action::Forward(id, to) => match client.forward(&id, &to).await {
            Ok(m) => shown(m, format!("forwarded to {}", label(&to))),
            Err(e) => Err(format!("not forwarded: {e}")),
        },
        Action::Vote(id, choices) => {
            let list: Vec<String> = choices.iter().map(|c| (c + 1).to_string()).collect();
            (client.vote(&id, &choices).await)
                .map(|()| format!("voted {}", list.join(", ")))
                .map_err(|e| format!("no vote: {e}"))
        }
        Action::Poll(target, question, options) => {
            match client
                .create_poll(&target, &question, &options, false)
                .await
            {
                Ok(m) => shown(m, "poll sent".into()),
                Err(e) => Err(format!("no poll: {e}")),
            }
        }
        _ => Ok(String::new()),
    }
}

/// Whether an event changes what the conversation list or pane shows
/// beyond what the UI applies itself.
fn changes_view(ev: &Event) -> bool {
    !matches!(ev, Event::Typing { .. } | Event::Presence { .. })
}

struct Worker {
    selected: Option<Target>,
    /// The channel shown, when a channel is (then no conversation is).
    channel: Option<String>,
    updates: UnboundedSender<Update>,
    /// When the scheduled backup was last looked at.
    backup_checked: Option<Instant>,
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
                self.channel = None;
                self.refresh(client).await;
            }
            Action::SelectChannel(name) => {
                self.selected = None;
                self.channel = Some(name);
                self.refresh(client).await;
            }
            Action::Post(channel, text) => {
                match client.post_to_channel(&channel, &text).await {
                    Ok(post) => self.send(Update::Event(Event::ChannelPost(post))),
                    Err(e) => self.send(Update::Error(format!("not posted: {e}"))),
                }
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
            Action::Search(target, query) => {
                match client.search(Some(&target), &query, SEARCH_LIMIT) {
                    Ok(results) => self.send(Update::Found {
                        target,
                        query,
                        results,
                    }),
                    Err(e) => self.send(Update::Failed(format!("no search: {e}"))),
                }
            }
            Action::Mute(target, d) => {
                let until = match d {
                    Some(d) => hush_client::client::now_ms()
                        .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    None => hush_client::mute::FOREVER,
                };
                let done = client.mute(&target, Some(until)).map(|()| match d {
                    Some(d) => format!(
                        "{} is muted on this device for {} (mentions still notify)",
                        label(&target),
                        humantime::format_duration(d)
                    ),
                    None => format!("{} is muted on this device until /unmute", label(&target)),
                });
                self.said(done.map_err(|e| format!("not muted: {e}")));
                self.refresh(client).await;
            }
            Action::Unmute(target) => {
                let done = client.mute(&target, None);
                self.said(
                    done.map(|()| format!("{} is unmuted", label(&target)))
                        .map_err(|e| format!("not unmuted: {e}")),
                );
                self.refresh(client).await;
            }
            Action::Reply(..)
            | Action::React(..)
            | Action::Edit(..)
            | Action::Delete(_)
            | Action::Pin(..)
            | Action::Forward(..)
            | Action::Vote(..)
            | Action::Poll(..) => {
                let done = on_message(client, action).await;
                self.said(done);
                self.refresh(client).await;
            }
            view => self.act_in_view(client, view).await,
        }
    }

    /// Says how a command of the composer went.
    fn said(&self, done: Result<String, String>) {
        self.send(match done {
            Ok(text) => Update::Done(text),
            Err(e) => Update::Failed(e),
        });
    }

    /// Runs a request of the devices or backup view.
    async fn act_in_view(&mut self, client: &mut Client, action: Action) {
        match action {
            Action::ListDevices => self.list_devices(client).await,
            Action::RenameDevice(id, name) => {
                let done = client.rename_device(id, &name);
                // The other devices learn the name now, or with the next
                // sync that reaches the server.
                let _ = client.flush_outbox().await;
                self.finish(done.map(|()| format!("device {id} is now called {name}")));
                self.list_devices(client).await;
            }
            Action::RemoveDevice(id) => {
                let done = client.remove_device(id).await.map(|()| {
                    format!("removed device {id} from your account and every conversation")
                });
                self.finish(done.map_err(|e| format!("device {id} was not removed: {e}")));
                self.list_devices(client).await;
            }
            Action::LinkDevice(code) => {
                self.link(client, &code).await;
                self.list_devices(client).await;
                self.refresh(client).await;
            }
            Action::BackupStatus => self.backup_status(client).await,
            Action::BackupToFile(path) => {
                let made = client
                    .create_backup(&path)
                    .map_err(|e| format!("no backup was written to {}: {e}", path.display()));
                self.created(made);
                self.backup_status(client).await;
            }
            Action::BackupToServer => {
                let made = client
                    .create_server_backup()
                    .await
                    .map_err(|e| format!("no backup was stored on the server: {e}"));
                self.created(made);
                self.backup_status(client).await;
            }
            Action::Select(_)
            | Action::Send(..)
            | Action::Typing(..)
            | Action::SelectChannel(_)
            | Action::Post(..)
            | Action::Reply(..)
            | Action::React(..)
            | Action::Edit(..)
            | Action::Delete(_)
            | Action::Pin(..)
            | Action::Forward(..)
            | Action::Vote(..)
            | Action::Poll(..)
            | Action::Search(..)
            | Action::Mute(..)
            | Action::Unmute(_)
            | Action::Quit => {}
        }
    }

    /// Sends how a request ended.
    fn finish(&self, done: Result<String, impl std::fmt::Display>) {
        self.send(Update::Task(match done {
            Ok(text) => Task::Done(text),
            Err(e) => Task::Failed(e.to_string()),
        }));
    }

    async fn list_devices(&self, client: &mut Client) {
        match client.devices().await {
            Ok(list) => self.send(Update::Devices(list)),
            Err(e) => self.send(Update::Task(Task::Failed(format!(
                "cannot list the devices: {e}"
            )))),
        }
    }

    /// Approves the device that shows `code`, with its whole history,
    /// reporting each step of the transfer on the status line.
    async fn link(&self, client: &mut Client, code: &str) {
        let updates = self.updates.clone();
        let mut step = crate::commands::backup::progress_steps("history");
        let progress = move |p| {
            if let Some((line, _)) = step(p) {
                let _ = updates.send(Update::Task(Task::Working(line)));
            }
        };
        let linked = client
            .link_device_with(code, LINK_TIMEOUT, HistoryScope::All, progress)
            .await;
        self.finish(match linked {
            Ok(id) => Ok(format!(
                "linked device {id}; it was added to your conversations"
            )),
            Err(e) => Err(format!("the device was not linked: {e}")),
        });
    }

    async fn backup_status(&self, client: &mut Client) {
        let schedule = match client.backup_schedule() {
            Ok(s) => s,
            Err(e) => {
                self.send(Update::Task(Task::Failed(e.to_string())));
                None
            }
        };
        let server = client.server_backup().await.map_err(|e| e.to_string());
        self.send(Update::BackupInfo(BackupInfo { schedule, server }));
    }

    /// Hands a new backup's recovery key to the screen, once.
    fn created(&self, made: Result<BackupReport, String>) {
        match made {
            Ok(report) => {
                let key = report
                    .recovery_key
                    .as_ref()
                    .map_or_else(|| Zeroizing::new(String::new()), |k| k.display());
                self.send(Update::Task(Task::Done(format!(
                    "backup made ({})",
                    format_size(report.bytes)
                ))));
                self.send(Update::BackupCreated(Created {
                    file: report.path.as_deref().map(show_path),
                    bytes: report.bytes,
                    messages: report.messages,
                    conversations: report.conversations,
                    key: ShownKey(key),
                }));
            }
            Err(e) => self.send(Update::Task(Task::Failed(e))),
        }
    }

    /// Writes the scheduled backup when it is due, as each `hush sync`
    /// does; looked at once a minute.
    async fn scheduled_backup(&mut self, client: &mut Client) {
        if self
            .backup_checked
            .is_some_and(|t| t.elapsed() < BACKUP_CHECK)
        {
            return;
        }
        self.backup_checked = Some(Instant::now());
        match client.backup_if_due().await {
            Ok(None) => {}
            Ok(Some(report)) => {
                let place = report
                    .path
                    .as_deref()
                    .map_or_else(|| "the server".into(), show_path);
                self.send(Update::Task(Task::Done(format!(
                    "scheduled backup: wrote {place} ({})",
                    format_size(report.bytes)
                ))));
            }
            Err(e) => self.send(Update::Task(Task::Failed(format!(
                "the scheduled backup failed: {e}"
            )))),
        }
    }

    /// Sends the conversation and channel lists and the selected
    /// conversation's messages or channel's posts, and marks what is shown
    /// as read.
    async fn refresh(&mut self, client: &mut Client) {
        match client.conversations() {
            Ok(list) => self.send(Update::Conversations(list)),
            Err(e) => self.send(Update::Error(e.to_string())),
        }
        match client.channels() {
            Ok(list) => self.send(Update::Channels(list)),
            Err(e) => self.send(Update::Error(e.to_string())),
        }
        if let Some(channel) = self.channel.clone() {
            match client.channel_history(&channel) {
                Ok(posts) => self.send(Update::ChannelHistory { channel, posts }),
                // Left meanwhile: the new list no longer shows it.
                Err(ClientError::NotFound(_)) => {}
                Err(e) => self.send(Update::Error(e.to_string())),
            }
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
