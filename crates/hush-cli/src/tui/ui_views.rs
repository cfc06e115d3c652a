//! Draws the devices view and the backup view ([`crate::tui::views`]) in
//! the places of the chat screen: the view where the conversations are, the
//! last request's status where "typing…" goes, a prompt or question where
//! the composer is, and the view's keys at the bottom.
//!
//! Device names come from the account's other devices (and through them
//! possibly from anyone holding the account key): they are drawn inert like
//! everything else that did not come from this process ([`crate::inert`]).

use std::time::Duration;

use hush_client::BackupTarget;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Wrap};

use crate::commands::backup::when;
use crate::commands::devices::day;
use crate::inert;
use crate::output::format_size;
use crate::tui::app::App;
use crate::tui::views::{
    BackupInfo, BackupMode, BackupView, Created, DevicesMode, DevicesView, Prompt, Task,
};

/// Rows of a prompt (a bordered line).
const PROMPT_ROWS: u16 = 3;
/// Rows of a question (three lines in a border).
const QUESTION_ROWS: u16 = 5;

/// The places of the screen: main, status, prompt or question (`rows`
/// high), help.
fn areas(frame: &Frame<'_>, rows: u16) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(rows),
        Constraint::Length(1),
    ])
    .areas(frame.area())
}

/// Draws the devices view.
pub fn devices(frame: &mut Frame<'_>, app: &App, view: &DevicesView) {
    let rows = match view.mode {
        DevicesMode::List => 0,
        DevicesMode::ConfirmRemove(_) => QUESTION_ROWS,
        DevicesMode::Rename(..) | DevicesMode::Link(_) => PROMPT_ROWS,
    };
    let [main, status, prompt, help] = areas(frame, rows);
    let block = Block::bordered().title(format!(" Devices of {} ", inert::name(&app.me)));
    match &view.devices {
        None => frame.render_widget(
            Paragraph::new("Asking the key directory for this account's devices…").block(block),
            main,
        ),
        Some(list) => {
            let items: Vec<ListItem<'_>> = list.iter().map(device_row).collect();
            let list = List::new(items)
                .block(block)
                .highlight_symbol("> ")
                .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
            let mut state = ListState::default().with_selected(Some(view.selected));
            frame.render_stateful_widget(list, main, &mut state);
        }
    }
    render_task(frame, app, status);
    match &view.mode {
        DevicesMode::List => {}
        DevicesMode::Rename(_, p) | DevicesMode::Link(p) => render_prompt(frame, app, p, prompt),
        DevicesMode::ConfirmRemove(id) => {
            let name = view
                .devices
                .iter()
                .flatten()
                .find(|d| d.id == *id)
                .and_then(|d| d.name.clone())
                .unwrap_or_else(|| format!("device {id}"));
            render_question(
                frame,
                &format!(
                    "Remove device {id} ({})? It leaves every conversation and receives nothing \
                     new. y: remove it · any other key: keep it",
                    inert::name(&name)
                ),
                prompt,
            );
        }
    }
    let keys = match view.mode {
        DevicesMode::List => {
            " ↑/↓ select · r rename · x remove · l link a new device · g refresh · Esc back"
        }
        DevicesMode::ConfirmRemove(_) => " y remove · any other key keeps it",
        _ => " Enter confirm · Esc cancel",
    };
    render_keys(frame, app, keys, help);
}

/// `* 1  phone (this device)  added 2026-12-07  last seen 2026-12-07`, as
/// `hush devices list` prints it.
fn device_row(d: &hush_client::DeviceView) -> ListItem<'static> {
    let name = d.name.clone().unwrap_or_else(|| format!("device {}", d.id));
    let mut spans = vec![
        Span::raw(format!("{}{:>3}  ", if d.this { "*" } else { " " }, d.id)),
        Span::styled(
            inert::name(&name).into_owned(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ];
    if d.this {
        spans.push(Span::styled(
            " (this device)",
            Style::new().fg(Color::Green),
        ));
    }
    spans.push(Span::raw(format!(
        "  added {}  last seen {}",
        day(d.added_at_ms),
        d.last_seen_ms.map_or_else(|| "never here".into(), day)
    )));
    ListItem::new(Line::from(spans))
}

/// Draws the backup view.
pub fn backup(frame: &mut Frame<'_>, app: &App, view: &BackupView) {
    let rows = match view.mode {
        BackupMode::Menu | BackupMode::Created(_) => 0,
        BackupMode::ConfirmServer => QUESTION_ROWS,
        BackupMode::File(_) => PROMPT_ROWS,
    };
    let [main, status, prompt, help] = areas(frame, rows);
    let block = Block::bordered().title(" Backups ");
    let lines = match &view.mode {
        BackupMode::Created(c) => created_lines(c),
        _ => menu_lines(view.info.as_ref()),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        main,
    );
    render_task(frame, app, status);
    match &view.mode {
        BackupMode::File(p) => render_prompt(frame, app, p, prompt),
        BackupMode::ConfirmServer => render_question(
            frame,
            "Store a new backup on the server? It replaces the one there, whose recovery key \
             then finds nothing. y: store it · any other key: cancel",
            prompt,
        ),
        _ => {}
    }
    let keys = match view.mode {
        BackupMode::Menu => " f backup to a file · s backup on the server · g refresh · Esc back",
        BackupMode::File(_) => " Enter write · Esc cancel",
        BackupMode::ConfirmServer => " y store it · any other key cancels",
        BackupMode::Created(_) => " Enter once the recovery key is written down",
    };
    render_keys(frame, app, keys, help);
}

fn menu_lines(info: Option<&BackupInfo>) -> Vec<Line<'static>> {
    let dim = Style::new().add_modifier(Modifier::DIM);
    let (schedule, server) = match info {
        None => (
            "Scheduled: asking…".to_owned(),
            "On the server: asking…".to_owned(),
        ),
        Some(i) => (schedule_line(i.schedule.as_ref()), server_line(&i.server)),
    };
    vec![
        Line::from(schedule),
        Line::from(server),
        Line::from(""),
        Line::from("f  write a new backup to a file"),
        Line::from(
            "s  store a new backup on the server (it replaces the one there, and that one's key)",
        ),
        Line::from(""),
        Line::from(Span::styled(
            "Each new backup has a new recovery key, shown once. A backup holds your account \
             key, contacts, conversations and their history, sealed under that key.",
            dim,
        )),
    ]
}

fn schedule_line(schedule: Option<&(BackupTarget, Duration)>) -> String {
    match schedule {
        Some((target, every)) => {
            let place = match target {
                BackupTarget::File(p) => inert::name(&p.display().to_string()).into_owned(),
                BackupTarget::Server => "the server".into(),
            };
            format!(
                "Scheduled: a backup is kept at {place} no older than {} (written by `hush \
                 sync` and while `hush chat` runs)",
                humantime::format_duration(*every)
            )
        }
        None => {
            "Scheduled: none (`hush backup schedule --out FILE --every 1d` keeps one fresh)".into()
        }
    }
}

fn server_line(server: &Result<Option<hush_wire::api::BackupStatus>, String>) -> String {
    match server {
        Ok(Some(s)) => format!(
            "On the server: a backup of {} stored {}",
            format_size(s.size),
            when(s.updated_at_ms)
        ),
        Ok(None) => "On the server: no backup of this account".into(),
        Err(e) => format!("On the server: cannot tell ({})", inert::name(e)),
    }
}

fn created_lines(c: &Created) -> Vec<Line<'static>> {
    let warn = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let (place, restore) = match &c.file {
        Some(f) => (
            inert::name(f).into_owned(),
            "Restore on a new machine with `hush restore --server URL FILE`; keep the key apart \
             from the file.",
        ),
        None => (
            "the server".to_owned(),
            "Restore on a new machine with `hush restore --server URL --from-server`: the key \
             alone finds and opens it.",
        ),
    };
    let mut lines = vec![
        Line::from(format!(
            "Backup written to {place} ({}, {} messages in {} conversations).",
            format_size(c.bytes),
            c.messages,
            c.conversations
        )),
        Line::from(""),
        Line::from(Span::styled(
            "RECOVERY KEY (shown once: write it down now)",
            warn,
        )),
        Line::from(""),
    ];
    // Two rows of 8 groups: they fit an 80-column terminal.
    let groups: Vec<&str> = c.key.0.split(' ').collect();
    for row in groups.chunks(8) {
        lines.push(Line::from(Span::styled(
            format!("    {}", row.join(" ")),
            Style::new().add_modifier(Modifier::BOLD),
        )));
    }
    lines.extend([
        Line::from(""),
        Line::from(Span::styled(
            "Whoever has this key and the backup can read your history and act as you. Without \
             the key the backup cannot be opened, and hush cannot show the key again.",
            warn,
        )),
        Line::from(restore),
    ]);
    lines
}

/// The last request's status line.
fn render_task(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(task) = &app.task else {
        return;
    };
    let style = match task {
        Task::Working(_) => Style::new().add_modifier(Modifier::ITALIC),
        Task::Done(_) => Style::new().fg(Color::Green),
        Task::Failed(_) => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    };
    frame.render_widget(
        Paragraph::new(Span::styled(
            format!(" {}", inert::name(task.text())),
            style,
        )),
        area,
    );
}

fn render_prompt(frame: &mut Frame<'_>, app: &App, prompt: &Prompt, area: Rect) {
    let block = Block::bordered().title(format!(" {} ", prompt.label));
    let inner = block.inner(area);
    let room = usize::from(inner.width.saturating_sub(1));
    let text = inert::name(&prompt.text);
    let count = text.chars().count();
    let visible: String = text.chars().skip(count.saturating_sub(room)).collect();
    let cursor_x = inner.x + u16::try_from(visible.chars().count()).unwrap_or(0);
    frame.render_widget(Paragraph::new(visible).block(block), area);
    if !app.quit {
        frame.set_cursor_position(Position::new(cursor_x, inner.y));
    }
}

fn render_question(frame: &mut Frame<'_>, question: &str, area: Rect) {
    frame.render_widget(
        Paragraph::new(Span::styled(
            question.to_owned(),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
        .block(Block::bordered())
        .wrap(Wrap { trim: true }),
        area,
    );
}

/// The view's keys, or why the last key was refused, or the connection's
/// trouble while there is one.
fn render_keys(frame: &mut Frame<'_>, app: &App, keys: &str, area: Rect) {
    let line = match (&app.connection, app.refused) {
        (Some(c), _) => Line::from(Span::styled(
            format!(" offline: {}", inert::name(c)),
            Style::new().fg(Color::Red),
        )),
        (None, Some(why)) => Line::from(Span::styled(
            format!(" {why}"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        (None, None) => Line::from(Span::styled(
            keys.to_owned(),
            Style::new().add_modifier(Modifier::DIM),
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}
