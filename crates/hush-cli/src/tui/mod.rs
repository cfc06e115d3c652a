//! `hush chat`: the terminal UI.
//!
//! Two halves joined by channels: the client task ([`worker`]) owns the
//! [`Client`] and syncs in a loop; the main task owns the terminal, turns
//! keys into [`app::Action`]s for the client task and applies the
//! [`app::Update`]s it sends back. The state and its key handling
//! ([`app`]) and the drawing ([`ui`]) do no I/O, so they are tested with
//! ratatui's `TestBackend`.
//!
//! F2 opens this account's devices ([`views::DevicesView`]: list, rename,
//! remove, approve a link code) and F3 its backups ([`views::BackupView`]:
//! schedule, a new backup to a file or the server, its recovery key shown
//! once); Esc goes back to the conversations (decision 0041).
//!
//! The channels this device follows or owns are listed after the
//! conversations ([`channels`]): their posts arrive live, and only the
//! owner's device posts (decision 0038).
//!
//! The message features ([`commands`], decision 0042): Alt+↑/↓ or PgUp/PgDn
//! pick a message, and commands typed after a `/` act on it (`/reply`,
//! `/react`, `/edit`, `/delete`, `/pin`, `/forward`, `/vote`) or on the
//! conversation (`/poll`, `/search`, `/mute`, `/unmute`, `/help`).

pub mod app;
pub mod channels;
pub mod commands;
pub mod ui;
mod ui_panel;
mod ui_views;
pub mod views;
mod worker;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_channels;
#[cfg(test)]
mod tests_commands;
#[cfg(test)]
mod tests_views;
#[cfg(test)]
mod tests_worker;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use crossterm::event::{self, Event as TermEvent};
use hush_client::{Client, Target};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::tui::app::{Action, App, Update};

/// How long the UI waits for a key before looking at updates again.
const FRAME: Duration = Duration::from_millis(50);

/// Runs the chat until the user quits.
pub async fn run(client: Client, target: Option<Target>) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("`hush chat` needs a terminal; use `hush send` and `hush sync` in scripts");
    }
    let mut app = App::new(client.username(), target.clone());
    app.backup_file = std::path::absolute(crate::commands::backup::default_file())
        .unwrap_or_else(|_| crate::commands::backup::default_file())
        .display()
        .to_string();
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (update_tx, mut update_rx) = mpsc::unbounded_channel();
    let worker = tokio::spawn(worker::run(client, target, action_rx, update_tx));
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &mut app, &action_tx, &mut update_rx);
    ratatui::restore();
    let _ = action_tx.send(Action::Quit);
    // Let the client task say goodbye (presence), but do not hang on it.
    let _ = tokio::time::timeout(Duration::from_secs(3), worker).await;
    result
}

/// Draws, reads keys and applies updates until the user quits. It blocks
/// on the terminal between frames; the client task runs on the runtime's
/// worker threads meanwhile.
fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    actions: &UnboundedSender<Action>,
    updates: &mut UnboundedReceiver<Update>,
) -> Result<()> {
    loop {
        let now = Instant::now();
        terminal.draw(|frame| ui::render(frame, app, now))?;
        let mut todo = Vec::new();
        if event::poll(FRAME)?
            && let TermEvent::Key(key) = event::read()?
        {
            todo.extend(app.on_key(key, Instant::now()));
        }
        loop {
            match updates.try_recv() {
                Ok(update) => todo.extend(app.on_update(update, Instant::now())),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if !app.quit {
                        bail!("the client task stopped");
                    }
                    break;
                }
            }
        }
        todo.extend(app.tick(Instant::now()));
        for action in todo {
            let _ = actions.send(action);
        }
        if app.quit {
            return Ok(());
        }
    }
}
