//! The message pane's parts for the message features (decision 0042): the
//! messages with the picked one highlighted and kept in view, the pinned
//! line under the title, and the help or search panel that replaces the
//! messages until Esc. What others wrote is drawn inert, as in [`super::ui`].

use hush_client::MessageView;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::inert;
use crate::tui::app::App;
use crate::tui::commands::{HELP, PICK_KEYS, Panel};
use crate::tui::ui::message_lines;

/// How many characters of a pinned message the pinned line shows.
const PINNED_CHARS: usize = 60;

/// `you` or the sender's name, inert.
pub(super) fn who(app: &App, m: &MessageView) -> String {
    if m.outgoing || m.from == app.me {
        "you".into()
    } else {
        inert::name(&m.from).into_owned()
    }
}

/// The bottom line's help, for what is on screen.
pub(super) fn help_line(app: &App) -> String {
    if app.panel.is_some() {
        " Esc back to the messages · Tab/↑/↓ switch conversation".into()
    } else if app.picked.is_some() {
        " Alt+↑/↓ move · /reply /react /edit /delete /pin /forward /vote · /help · Esc lets go"
            .into()
    } else {
        // Short enough for 80 columns; /help says the rest (Tab, PgUp/PgDn).
        " Enter send · ↑/↓ chats · Alt+↑/↓ pick · /help · F2 devices · F3 backup · Esc quit".into()
    }
}

/// `Pinned: bob: "text"` for the newest pinned message (and how many more
/// there are), when any is.
pub(super) fn pinned_line(messages: &[MessageView]) -> Option<Line<'static>> {
    let pinned: Vec<&MessageView> = messages.iter().filter(|m| m.pinned && !m.deleted).collect();
    let m = pinned.last()?;
    let text = m
        .text
        .as_deref()
        .unwrap_or(m.file_name.as_deref().unwrap_or(""));
    let first = text.lines().next().unwrap_or_default();
    let mut short: String = first.chars().take(PINNED_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    let more = match pinned.len() {
        1 => String::new(),
        n => format!(" (+{} more)", n - 1),
    };
    Some(Line::from(vec![
        Span::styled("Pinned: ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "{}: \"{}\"{more}",
            inert::name(&m.from),
            inert::text(&short)
        )),
    ]))
}

/// The messages, the newest in view, or the picked one (highlighted) when
/// it is further up.
pub(super) fn scrolled(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let picked = app.picked.as_deref();
    let mut lines = Vec::new();
    let mut picked_at = None;
    for m in &app.messages {
        let mut these = message_lines(app, m);
        if Some(m.id.as_str()) == picked {
            let before = Paragraph::new(lines.clone())
                .wrap(Wrap { trim: false })
                .line_count(area.width);
            picked_at = Some(before);
            these = these
                .into_iter()
                .map(|l| l.patch_style(Style::new().add_modifier(Modifier::REVERSED)))
                .collect();
        }
        lines.extend(these);
    }
    newest_in_view(frame, lines, area, picked_at);
}

/// Draws `lines` scrolled past what does not fit, so the last one shows,
/// unless the line `keep` would then be above the top.
pub(super) fn newest_in_view(
    frame: &mut Frame<'_>,
    lines: Vec<Line<'_>>,
    area: Rect,
    keep: Option<usize>,
) {
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let total = paragraph.line_count(area.width);
    let mut scroll = total.saturating_sub(usize::from(area.height));
    if let Some(at) = keep {
        scroll = scroll.min(at);
    }
    let scroll = u16::try_from(scroll).unwrap_or(u16::MAX);
    frame.render_widget(paragraph.scroll((scroll, 0)), area);
}

/// The help or search panel.
pub(super) fn render(frame: &mut Frame<'_>, app: &App, panel: &Panel, area: Rect) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().add_modifier(Modifier::DIM);
    let mut lines = Vec::new();
    match panel {
        Panel::Help => {
            lines.push(Line::from(Span::styled(
                format!("Commands, typed in the composer ({PICK_KEYS} pick the message of the first eight):"),
                bold,
            )));
            for (command, what) in HELP {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {command:<18}"), bold),
                    Span::raw(*what),
                ]));
            }
            lines.push(Line::from(Span::styled("Esc: back to the messages", dim)));
        }
        Panel::Search { query, results } => {
            let found = match results.len() {
                0 => "nothing found".to_owned(),
                1 => "1 message".to_owned(),
                n => format!("{n} messages, newest first"),
            };
            lines.push(Line::from(Span::styled(
                format!("Search \"{}\": {found}", inert::name(query)),
                bold,
            )));
            lines.extend(results.iter().flat_map(|m| message_lines(app, m)));
            lines.push(Line::from(Span::styled("Esc: back to the messages", dim)));
        }
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}
