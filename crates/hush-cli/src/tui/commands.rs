//! The message features in the chat (decision 0042): a message cursor
//! (Alt+↑/Alt+↓ or PgUp/PgDn pick a message, Esc lets it go) and commands
//! typed in the composer after a `/` (`//` sends a text that starts with
//! one). Parsing is pure: a command becomes an [`Action`] for the client
//! task, or a line saying what is wrong, and nothing is sent.

use std::time::Duration;

use hush_client::{MessageView, Target};

use crate::tui::app::{Action, App};

/// The commands, as `/help` lists them.
pub const HELP: &[(&str, &str)] = &[
    ("/reply TEXT", "reply to the picked message, quoting it"),
    ("/react EMOJI", "react to the picked message"),
    ("/unreact", "take your reaction back"),
    (
        "/edit [TEXT]",
        "change your picked message (alone: fills in its text)",
    ),
    ("/delete", "delete the picked message for everyone"),
    (
        "/pin, /unpin",
        "pin or unpin the picked message for everyone",
    ),
    (
        "/forward TARGET",
        "forward the picked message to a username or #group",
    ),
    ("/vote N [N…]", "vote in the picked poll (options from 1)"),
    ("/poll Q | A | B…", "ask the group a question"),
    ("/search TEXT", "find messages of this conversation"),
    (
        "/mute [DURATION]",
        "no notifications here (like 8h, 1w; none: until /unmute)",
    ),
    ("/unmute", "notifications again"),
    ("//TEXT", "send a text that starts with /"),
];

/// The keys of the message cursor, for the help line.
pub const PICK_KEYS: &str = "Alt+↑/↓ or PgUp/PgDn";

/// A command typed in the composer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/reply TEXT`.
    Reply(String),
    /// `/react EMOJI`.
    React(String),
    /// `/unreact`.
    Unreact,
    /// `/edit TEXT`, or `/edit` alone to fill in the picked message's text.
    Edit(Option<String>),
    /// `/delete`.
    Delete,
    /// `/pin` (true) or `/unpin`.
    Pin(bool),
    /// `/forward USERNAME` or `/forward #GROUP`.
    Forward(Target),
    /// `/vote N…`: options numbered from 1.
    Vote(Vec<usize>),
    /// `/poll QUESTION | OPTION | OPTION…`.
    Poll(String, Vec<String>),
    /// `/search TEXT`.
    Search(String),
    /// `/mute [DURATION]`: `None` until unmuted.
    Mute(Option<Duration>),
    /// `/unmute`.
    Unmute,
    /// `/help`.
    Help,
}

/// What Enter in the composer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A text to send (a leading `//` is sent as one `/`).
    Text(String),
    /// A command.
    Command(Command),
}

/// What the message pane shows instead of the messages, until Esc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Panel {
    /// The list of commands.
    Help,
    /// What `/search` found in a conversation, newest first.
    Search {
        /// What was searched for.
        query: String,
        /// The messages found.
        results: Vec<MessageView>,
    },
}

/// Parses the composer's trimmed text.
pub fn parse(input: &str) -> Result<Typed, String> {
    let Some(rest) = input.strip_prefix('/') else {
        return Ok(Typed::Text(input.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Typed::Text(rest.to_owned()));
    }
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((name, arg)) => (name, arg.trim()),
        None => (rest, ""),
    };
    let bare = |c: Command| {
        if arg.is_empty() {
            Ok(c)
        } else {
            Err(format!("/{name} takes nothing after it"))
        }
    };
    let needs = |what: &str| -> Result<String, String> {
        if arg.is_empty() {
            Err(format!("say what: /{name} {what}"))
        } else {
            Ok(arg.to_owned())
        }
    };
    let command = match name {
        "reply" => Command::Reply(needs("TEXT")?),
        "react" if arg.contains(char::is_whitespace) => {
            return Err("/react takes one emoji".into());
        }
        "react" => Command::React(needs("EMOJI")?),
        "unreact" => bare(Command::Unreact)?,
        "edit" => Command::Edit((!arg.is_empty()).then(|| arg.to_owned())),
        "delete" => bare(Command::Delete)?,
        "pin" => bare(Command::Pin(true))?,
        "unpin" => bare(Command::Pin(false))?,
        "forward" => Command::Forward(parse_target(&needs("USERNAME or #GROUP")?)?),
        "vote" => Command::Vote(parse_choices(&needs("N")?)?),
        "poll" => parse_poll(&needs("QUESTION | OPTION | OPTION")?)?,
        "search" => Command::Search(needs("TEXT")?),
        "mute" if arg.is_empty() => Command::Mute(None),
        "mute" => Command::Mute(Some(parse_duration(arg)?)),
        "unmute" => bare(Command::Unmute)?,
        "help" | "?" => Command::Help,
        "" => return Err("a command follows the /: /help lists them".into()),
        _ => {
            return Err(format!(
                "unknown command /{name}: /help lists them (// sends a text starting with /)"
            ));
        }
    };
    Ok(Typed::Command(command))
}

fn parse_target(arg: &str) -> Result<Target, String> {
    if arg.contains(char::is_whitespace) {
        return Err("forward to one username or #group".into());
    }
    match arg.strip_prefix('#') {
        Some("") => Err("which group? /forward #GROUP".into()),
        Some(group) => Ok(Target::Group(group.to_owned())),
        None => Ok(Target::User(arg.to_owned())),
    }
}

fn parse_choices(arg: &str) -> Result<Vec<usize>, String> {
    let mut choices = Vec::new();
    for word in arg.split(|c: char| c == ',' || c.is_whitespace()) {
        if word.is_empty() {
            continue;
        }
        match word.parse::<usize>() {
            Ok(n) if n >= 1 => choices.push(n),
            _ => return Err(format!("{word:?} is not an option number (from 1)")),
        }
    }
    if choices.is_empty() {
        return Err("say which option: /vote N".into());
    }
    Ok(choices)
}

fn parse_poll(arg: &str) -> Result<Command, String> {
    let mut parts = arg.split('|').map(str::trim);
    let question = parts.next().unwrap_or_default().to_owned();
    let options: Vec<String> = parts.map(str::to_owned).collect();
    if question.is_empty() || options.len() < 2 || options.iter().any(String::is_empty) {
        return Err("a poll is /poll QUESTION | OPTION | OPTION…, at least two options".into());
    }
    Ok(Command::Poll(question, options))
}

fn parse_duration(arg: &str) -> Result<Duration, String> {
    match humantime::parse_duration(arg) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{arg:?} is not a duration like 30m, 8h or 1w (/mute alone: until /unmute)"
        )),
    }
}

impl App {
    /// The picked message, when one is.
    pub fn picked_message(&self) -> Option<&MessageView> {
        let id = self.picked.as_deref()?;
        self.messages.iter().find(|m| m.id == id)
    }

    /// Moves the message cursor: up (-1) from nothing picks the newest
    /// message; it stops at either end.
    pub(crate) fn pick(&mut self, step: isize) {
        if self.messages.is_empty() || self.panel.is_some() {
            return;
        }
        let last = self.messages.len() - 1;
        let at = self
            .picked
            .as_deref()
            .and_then(|id| self.messages.iter().position(|m| m.id == id));
        let next = match at {
            None if step < 0 => last,
            None => return,
            Some(i) => i.saturating_add_signed(step).min(last),
        };
        self.picked = Some(self.messages[next].id.clone());
    }

    /// Forgets the picked message when a new history no longer has it.
    pub(crate) fn keep_pick(&mut self) {
        if self.picked_message().is_none() {
            self.picked = None;
        }
    }

    /// Enter in a conversation: sends the text, or runs the command (the
    /// composer keeps a command that was refused, to be fixed).
    pub(crate) fn enter_into(&mut self, actions: &mut Vec<Action>) {
        let text = self.composer.trim().to_owned();
        let Some(target) = self.selected_target().cloned() else {
            return;
        };
        if text.is_empty() {
            return;
        }
        self.stop_typing_into(actions);
        let before = self.composer.clone();
        let done = match parse(&text) {
            Ok(Typed::Text(t)) => {
                actions.push(Action::Send(target, t));
                Ok(())
            }
            Ok(Typed::Command(c)) => self.command_into(c, target, actions),
            Err(e) => Err(e),
        };
        match done {
            // (Unless the command filled it in.)
            Ok(()) if self.composer == before => self.composer.clear(),
            Ok(()) => {}
            Err(e) => self.problem = Some(e),
        }
    }

    /// Enter in a channel: a text (or `//` text) is posted, `/help`
    /// helps; other commands are for conversations.
    pub(crate) fn typed_in_channel(&mut self, text: &str) -> Result<Option<String>, String> {
        match parse(text)? {
            Typed::Text(t) => Ok(Some(t)),
            Typed::Command(Command::Help) => {
                self.panel = Some(Panel::Help);
                Ok(None)
            }
            Typed::Command(_) => Err("channels take only posts (and /help); \
                 the commands work in conversations"
                .into()),
        }
    }

    fn command_into(
        &mut self,
        command: Command,
        target: Target,
        actions: &mut Vec<Action>,
    ) -> Result<(), String> {
        let action = match command {
            Command::Help => {
                self.panel = Some(Panel::Help);
                return Ok(());
            }
            Command::Search(q) => Action::Search(target, q),
            Command::Mute(d) => Action::Mute(target, d),
            Command::Unmute => Action::Unmute(target),
            Command::Poll(q, options) => match target {
                Target::Group(_) => Action::Poll(target, q, options),
                Target::User(_) => return Err("polls are for groups".into()),
            },
            Command::Edit(None) => return self.fill_in_edit(),
            on_message => return self.on_picked(on_message, target, actions),
        };
        actions.push(action);
        Ok(())
    }

    /// A command on the picked message; the pick ends with it.
    fn on_picked(
        &mut self,
        command: Command,
        target: Target,
        actions: &mut Vec<Action>,
    ) -> Result<(), String> {
        let m = self
            .picked_message()
            .ok_or_else(|| format!("pick a message first with {PICK_KEYS}"))?;
        let id = m.id.clone();
        actions.push(match command {
            Command::Reply(text) => Action::Reply(target, text, id),
            Command::React(emoji) => Action::React(id, Some(emoji)),
            Command::Unreact => Action::React(id, None),
            Command::Edit(text) => Action::Edit(id, text.unwrap_or_default()),
            Command::Delete => Action::Delete(id),
            Command::Pin(pinned) => Action::Pin(id, pinned),
            Command::Forward(to) => Action::Forward(id, to),
            Command::Vote(choices) => {
                let Some(poll) = &m.poll else {
                    return Err("the picked message is not a poll".into());
                };
                let n = poll.options.len();
                if let Some(bad) = choices.iter().find(|&&c| c > n) {
                    return Err(format!("the poll has options 1 to {n}, not {bad}"));
                }
                Action::Vote(id, choices.iter().map(|c| c - 1).collect())
            }
            other => return Err(format!("{other:?} is not about a message")),
        });
        self.picked = None;
        Ok(())
    }

    /// `/edit` alone: the picked message's text, ready to change.
    fn fill_in_edit(&mut self) -> Result<(), String> {
        let m = self
            .picked_message()
            .ok_or_else(|| format!("pick your message first with {PICK_KEYS}"))?;
        if !m.outgoing || m.deleted {
            return Err("only your own messages can be edited".into());
        }
        self.composer = format!("/edit {}", m.text.as_deref().unwrap_or_default());
        Ok(())
    }
}
