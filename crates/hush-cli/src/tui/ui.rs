//! Draws an [`App`] into a [`Frame`]: the conversation list on the left
//! (the channels, `» name`, after the conversations), the selected
//! conversation's messages or channel's posts on the right with receipt
//! marks, a typing line, the composer (or, on a channel this device does
//! not own, that it is read-only) and a help line at the bottom; or the
//! devices or backup view ([`ui_views`]) in the same places.
//!
//! Everything from other people (names, group names, channel names, texts,
//! posts, notices that quote them) is drawn inert ([`crate::inert`]): no control character or
//! bidi override reaches a cell of the screen.

use std::time::Instant;

use hush_client::{ChannelPostView, MessageView};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};

use crate::inert;
use crate::output::{UNFRANKED_MARK, format_time, message_body, receipt_counts, status_mark};
use crate::tui::app::{App, Screen};
use crate::tui::{ui_panel, ui_views};

/// Width of the conversation list.
const LIST_WIDTH: u16 = 24;

/// Draws the whole screen.
pub fn render(frame: &mut Frame<'_>, app: &App, now: Instant) {
    match &app.screen {
        Screen::Chat => {}
        Screen::Devices(v) => return ui_views::devices(frame, app, v),
        Screen::Backup(v) => return ui_views::backup(frame, app, v),
    }
    let [main, typing, composer, help] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [list, messages] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(10)]).areas(main);
    render_list(frame, app, list);
    render_messages(frame, app, messages);
    if let Some(line) = app.typing_line(now) {
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(" {}", inert::name(&line)),
                Style::new().add_modifier(Modifier::ITALIC),
            )),
            typing,
        );
    }
    render_composer(frame, app, composer);
    render_help(frame, app, help);
}

fn render_list(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let items: Vec<ListItem<'_>> = app
        .entries
        .iter()
        .map(|e| {
            let mut spans = vec![Span::raw(inert::name(&e.label()).into_owned())];
            if let hush_client::Target::User(u) = &e.target
                && app.online.contains(u)
            {
                spans.push(Span::styled(" ●", Style::new().fg(Color::Green)));
            }
            if e.muted {
                spans.push(Span::styled(
                    " (muted)",
                    Style::new().add_modifier(Modifier::DIM),
                ));
            }
            if e.unread {
                spans.push(Span::styled(
                    " (new)",
                    Style::new().add_modifier(Modifier::BOLD),
                ));
            }
            ListItem::new(Line::from(spans))
        })
        .chain(app.channels.iter().map(|c| {
            let mut spans = vec![Span::styled(
                inert::name(&c.label()).into_owned(),
                Style::new().fg(Color::Magenta),
            )];
            if c.unread {
                spans.push(Span::styled(
                    " (new)",
                    Style::new().add_modifier(Modifier::BOLD),
                ));
            }
            ListItem::new(Line::from(spans))
        }))
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title(" Conversations "))
        .highlight_symbol("> ")
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let selected = (app.selected < app.rows()).then_some(app.selected);
    let mut state = ListState::default().with_selected(selected);
    frame.render_stateful_widget(list, area, &mut state);
}

fn render_messages(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let title = match app.selected_entry() {
        Some(e) if !e.members.is_empty() && matches!(e.target, hush_client::Target::Group(_)) => {
            format!(
                " {} ({}) ",
                inert::name(&e.label()),
                inert::name(&e.members.join(", "))
            )
        }
        Some(e) => format!(" {} ", inert::name(&e.label())),
        None => match app.selected_channel() {
            Some(c) if c.owner => format!(" {} (channel: you post) ", inert::name(&c.label())),
            Some(c) => format!(" {} (channel: read-only) ", inert::name(&c.label())),
            None => " Hush ".to_owned(),
        },
    };
    let block = Block::bordered().title(title);
    if let Some(panel) = &app.panel {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        return ui_panel::render(frame, app, panel, inner);
    }
    let mut inner = block.inner(area);
    if app.selected_channel().is_none()
        && let Some(line) = ui_panel::pinned_line(&app.messages)
    {
        let [pin, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
        frame.render_widget(Paragraph::new(line), pin);
        inner = rest;
    }
    frame.render_widget(block, area);
    let lines: Vec<Line<'_>> = if app.rows() == 0 {
        vec![Line::from(
            "No conversations yet. Start one with `hush chat USERNAME`.",
        )]
    } else if app.selected_channel().is_some() {
        post_lines(app)
    } else if app.messages.is_empty() {
        vec![Line::from(Span::styled(
            "No messages yet: type below and press Enter.",
            Style::new().add_modifier(Modifier::DIM),
        ))]
    } else {
        return ui_panel::scrolled(frame, app, inner);
    };
    ui_panel::newest_in_view(frame, lines, inner, None);
}

/// `12:34 bob: hello` for received messages, `12:34 you: hi ✓✓` for sent
/// ones: ✓ sent, ✓✓ delivered, ✔✔ read (highlighted), … pending, ✗ failed.
/// A text of several lines takes several, each further one indented.
pub(super) fn message_lines<'a>(app: &App, m: &'a MessageView) -> Vec<Line<'a>> {
    let time = format_time(m.sent_at);
    let hhmm = time.get(11..16).unwrap_or("").to_owned();
    let (who, who_style) = if m.outgoing || m.from == app.me {
        ("you".to_owned(), Style::new().fg(Color::Green))
    } else {
        (
            inert::name(&m.from).into_owned(),
            Style::new().fg(Color::Cyan),
        )
    };
    let body = message_body(m);
    let mut body_lines = body.split('\n').map(str::to_owned);
    let mut spans = vec![
        Span::styled(format!("{hhmm} "), Style::new().add_modifier(Modifier::DIM)),
        Span::styled(who, who_style.add_modifier(Modifier::BOLD)),
        Span::raw(": "),
        Span::styled(
            body_lines.next().unwrap_or_default(),
            if m.mentions_me {
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            },
        ),
    ];
    let more: Vec<Line<'a>> = body_lines.map(Line::from).collect();
    if m.outgoing {
        let mark = status_mark(&m.status);
        let style = match m.status.as_str() {
            "read" => Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
            "failed" => Style::new().fg(Color::Red),
            _ => Style::new().add_modifier(Modifier::DIM),
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(mark, style));
        if let Some(counts) = receipt_counts(m) {
            spans.push(Span::styled(
                format!(" ({counts})"),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
    }
    if m.unfranked {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(UNFRANKED_MARK, Style::new().fg(Color::Yellow)));
    }
    let mut lines = Vec::new();
    if let Some(q) = &m.quoted {
        lines.push(Line::from(Span::styled(
            format!("      ┆ {}", crate::output::quote_line(q)),
            Style::new().add_modifier(Modifier::DIM),
        )));
    }
    lines.push(Line::from(spans));
    lines.extend(more);
    lines
}

/// The selected channel's posts: `12:34 text`, a file as `[file NAME, SIZE]`
/// before its caption; the owner's text is drawn inert.
fn post_lines(app: &App) -> Vec<Line<'_>> {
    if app.posts.is_empty() {
        let hint = if app.read_only() {
            "No posts yet: they arrive here as its owner posts."
        } else {
            "No posts yet: type below and press Enter to post."
        };
        return vec![Line::from(Span::styled(
            hint,
            Style::new().add_modifier(Modifier::DIM),
        ))];
    }
    app.posts.iter().flat_map(post_line).collect()
}

fn post_line(p: &ChannelPostView) -> Vec<Line<'_>> {
    let time = format_time(p.sent_at);
    let hhmm = time.get(11..16).unwrap_or("").to_owned();
    let mut body = inert::text(&p.text).into_owned();
    if let Some(file) = &p.file {
        let file = crate::output::file_label(file, p.size);
        body = if body.is_empty() {
            file
        } else {
            format!("{file} {body}")
        };
    }
    let mut body_lines = body.split('\n').map(str::to_owned);
    let first = Line::from(vec![
        Span::styled(format!("{hhmm} "), Style::new().add_modifier(Modifier::DIM)),
        Span::raw(body_lines.next().unwrap_or_default()),
    ]);
    std::iter::once(first)
        .chain(body_lines.map(Line::from))
        .collect()
}

fn render_composer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if let Some(c) = app.selected_channel().filter(|_| app.read_only()) {
        let block = Block::bordered().title(format!(" {} is read-only ", inert::name(&c.label())));
        let note = Span::styled(
            "only its owner's device posts to this channel",
            Style::new().add_modifier(Modifier::DIM),
        );
        frame.render_widget(Paragraph::new(note).block(block), area);
        return;
    }
    let title = match (app.selected_entry(), app.selected_channel()) {
        (Some(e), _) => match app.picked_message() {
            Some(m) => format!(
                " Message to {} · picked: {} {} (Esc lets go) ",
                inert::name(&e.label()),
                ui_panel::who(app, m),
                format_time(m.sent_at).get(11..16).unwrap_or("")
            ),
            None => format!(" Message to {} ", inert::name(&e.label())),
        },
        (None, Some(c)) => format!(" Post to {} ", inert::name(&c.label())),
        (None, None) => " Message ".to_owned(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    // Show the end of a long message, where the cursor is.
    let room = usize::from(inner.width.saturating_sub(1));
    let composer = inert::name(&app.composer);
    let count = composer.chars().count();
    let visible: String = composer.chars().skip(count.saturating_sub(room)).collect();
    let cursor_x = inner.x + u16::try_from(visible.chars().count()).unwrap_or(0);
    frame.render_widget(Paragraph::new(visible).block(block), area);
    if !app.quit {
        frame.set_cursor_position(Position::new(cursor_x, inner.y));
    }
}

fn render_help(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let line = if let Some(c) = &app.connection {
        Line::from(Span::styled(
            format!(" offline: {}", inert::name(c)),
            Style::new().fg(Color::Red),
        ))
    } else if let Some(p) = &app.problem {
        Line::from(Span::styled(
            format!(" {}", inert::name(p)),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(n) = &app.notice {
        Line::from(Span::styled(
            format!(" {}", inert::name(n)),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(i) = &app.info {
        Line::from(Span::styled(
            format!(" {}", inert::name(i)),
            Style::new().fg(Color::Green),
        ))
    } else {
        Line::from(Span::styled(
            ui_panel::help_line(app),
            Style::new().add_modifier(Modifier::DIM),
        ))
    };
    frame.render_widget(Paragraph::new(line), area);
}
