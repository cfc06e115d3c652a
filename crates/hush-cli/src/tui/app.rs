//! The chat's state and what keys and updates do to it. No terminal, no
//! network, no clock: time comes in as an argument and requests for the
//! client go out as [`Action`]s, so all of it runs in unit tests.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hush_client::{
    ChannelPostView, ChannelView, ConversationView, DeviceView, Event, MessageView, Target,
};

use crate::tui::channels::ChannelEntry;
use crate::tui::commands::Panel;
use crate::tui::views::{BackupInfo, BackupMode, BackupView, Created, DevicesView, Step, Task};

/// Resend "typing" while the user keeps typing, this often.
pub const TYPING_REFRESH: Duration = Duration::from_secs(3);
/// Send "stopped typing" after this long without a key.
pub const TYPING_IDLE: Duration = Duration::from_secs(5);
/// Show someone as typing this long after their last "typing".
pub const TYPING_SHOWN: Duration = Duration::from_secs(6);

/// What the UI asks the client task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show this conversation (and mark it read).
    Select(Target),
    /// Send a text message.
    Send(Target, String),
    /// Tell the conversation we started (true) or stopped typing.
    Typing(Target, bool),
    /// Show this channel's posts.
    SelectChannel(String),
    /// Post a text to this channel (of which this device is the owner).
    Post(String, String),
    /// List this account's devices.
    ListDevices,
    /// Name a device.
    RenameDevice(u32, String),
    /// Remove a device from the account and every conversation.
    RemoveDevice(u32),
    /// Approve the device that shows this link code.
    LinkDevice(String),
    /// Tell the backup schedule and what the server holds.
    BackupStatus,
    /// Write a backup to this file under a new recovery key.
    BackupToFile(PathBuf),
    /// Store a backup on the server under a new recovery key.
    BackupToServer,
    /// Send a text quoting message `.2`.
    Reply(Target, String, String),
    /// React to a message (`None` takes the reaction back).
    React(String, Option<String>),
    /// Replace the text of one of this account's messages.
    Edit(String, String),
    /// Delete a message for everyone.
    Delete(String),
    /// Pin (true) or unpin a message.
    Pin(String, bool),
    /// Forward a message to a conversation.
    Forward(String, Target),
    /// Vote in a poll for these options (from 0).
    Vote(String, Vec<usize>),
    /// Ask a group a question with these options.
    Poll(Target, String, Vec<String>),
    /// Find the messages of a conversation with this text.
    Search(Target, String),
    /// Mute a conversation on this device for a while, or (`None`) until
    /// unmuted.
    Mute(Target, Option<Duration>),
    /// Unmute a conversation.
    Unmute(Target),
    /// Stop.
    Quit,
}

impl Action {
    /// What the status line says while a long request runs; `None` for a
    /// quick one.
    fn working(&self) -> Option<String> {
        Some(match self {
            Action::RenameDevice(id, _) => format!("renaming device {id}…"),
            Action::RemoveDevice(id) => format!("removing device {id}…"),
            Action::LinkDevice(_) => "linking: waiting for the new device…".into(),
            Action::BackupToFile(_) => "writing the backup…".into(),
            Action::BackupToServer => "storing the backup on the server…".into(),
            _ => return None,
        })
    }
}

/// What the client task tells the UI.
// One update at a time through a channel: boxing the event would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Update {
    /// The conversation list.
    Conversations(Vec<ConversationView>),
    /// The messages of a conversation, oldest first.
    History {
        /// Which conversation.
        target: Target,
        /// Its messages.
        messages: Vec<MessageView>,
    },
    /// The channels this device follows or owns.
    Channels(Vec<ChannelView>),
    /// The posts of a channel, oldest first.
    ChannelHistory {
        /// Which channel.
        channel: String,
        /// Its posts.
        posts: Vec<ChannelPostView>,
    },
    /// Something happened (as it happens, during a sync).
    Event(Event),
    /// A command failed.
    Error(String),
    /// The connection to the server: `None` when it works.
    Connection(Option<String>),
    /// This account's devices.
    Devices(Vec<DeviceView>),
    /// How a request of the devices or backup view goes.
    Task(Task),
    /// The backup schedule and what the server holds.
    BackupInfo(BackupInfo),
    /// A backup was made: its recovery key, to show once.
    BackupCreated(Created),
    /// A command of the composer worked: what it did.
    Done(String),
    /// A command of the composer failed: why.
    Failed(String),
    /// What `/search` found.
    Found {
        /// In which conversation.
        target: Target,
        /// What was searched for.
        query: String,
        /// The messages found, newest first.
        results: Vec<MessageView>,
    },
}

/// Which screen is up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Screen {
    /// The conversations and the composer.
    #[default]
    Chat,
    /// This account's devices (F2).
    Devices(DevicesView),
    /// Backups (F3).
    Backup(BackupView),
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who or which group.
    pub target: Target,
    /// The local conversation number (`None` before the first message).
    pub conversation: Option<i64>,
    /// Members (for a group).
    pub members: Vec<String>,
    /// New messages arrived since it was last shown.
    pub unread: bool,
    /// Muted on this device.
    pub muted: bool,
}

impl Entry {
    /// `#name` for a group, the username for a 1:1 chat.
    pub fn label(&self) -> String {
        match &self.target {
            Target::User(u) => u.clone(),
            Target::Group(g) => format!("#{g}"),
        }
    }
}

/// The whole state of the chat screen.
#[derive(Debug)]
pub struct App {
    /// This account's username.
    pub me: String,
    /// The conversation list.
    pub entries: Vec<Entry>,
    /// The channels, listed after the conversations.
    pub channels: Vec<ChannelEntry>,
    /// Index of the selected row: an entry, or past them a channel.
    pub selected: usize,
    /// The selected conversation's messages.
    pub messages: Vec<MessageView>,
    /// The selected channel's posts.
    pub posts: Vec<ChannelPostView>,
    /// What is being typed.
    pub composer: String,
    /// The last error or security notice.
    pub notice: Option<String>,
    /// A request of the devices or backup view that succeeded after the
    /// view was left (shown until the next key).
    pub info: Option<String>,
    /// Why the server cannot be reached, while it cannot.
    pub connection: Option<String>,
    /// Contacts seen online.
    pub online: HashSet<String>,
    /// Set once the user quits.
    pub quit: bool,
    /// The screen up.
    pub screen: Screen,
    /// How the last request of the devices or backup view went.
    pub task: Option<Task>,
    /// Why the last key in a view was refused (until the next key).
    pub refused: Option<&'static str>,
    /// The file a backup to a file is offered to go to.
    pub backup_file: String,
    /// The id of the message the cursor is on (Alt+↑/↓, PgUp/PgDn).
    pub picked: Option<String>,
    /// Help or search results, shown instead of the messages until Esc.
    pub panel: Option<Panel>,
    /// Why the last command was refused or failed (until the next key).
    pub problem: Option<String>,
    /// Who is typing where, until when.
    typing: HashMap<i64, HashMap<String, Instant>>,
    /// When we last told the conversation we are typing, and where.
    typing_sent: Option<(Target, Instant)>,
    /// The last key typed into the composer.
    last_input: Option<Instant>,
}

fn target_of(c: &ConversationView) -> Target {
    if c.kind == "group" {
        Target::Group(c.name.clone())
    } else {
        Target::User(c.name.clone())
    }
}

impl App {
    /// A new screen for `me`, opened on `initial` when given (a contact
    /// without a conversation yet shows until the first message creates it).
    pub fn new(me: impl Into<String>, initial: Option<Target>) -> Self {
        let entries = initial
            .map(|target| Entry {
                target,
                conversation: None,
                members: Vec::new(),
                unread: false,
                muted: false,
            })
            .into_iter()
            .collect();
        App {
            me: me.into(),
            entries,
            channels: Vec::new(),
            selected: 0,
            messages: Vec::new(),
            posts: Vec::new(),
            composer: String::new(),
            notice: None,
            info: None,
            connection: None,
            online: HashSet::new(),
            quit: false,
            screen: Screen::Chat,
            task: None,
            refused: None,
            backup_file: "hush-backup.hushbackup".into(),
            picked: None,
            panel: None,
            problem: None,
            typing: HashMap::new(),
            typing_sent: None,
            last_input: None,
        }
    }

    /// The selected row.
    pub fn selected_entry(&self) -> Option<&Entry> {
        self.entries.get(self.selected)
    }

    /// The selected conversation.
    pub fn selected_target(&self) -> Option<&Target> {
        self.selected_entry().map(|e| &e.target)
    }

    /// "bob is typing…" for the selected conversation, if anyone is.
    pub fn typing_line(&self, now: Instant) -> Option<String> {
        let conv = self.selected_entry()?.conversation?;
        let mut who: Vec<&str> = self
            .typing
            .get(&conv)?
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(name, _)| name.as_str())
            .collect();
        who.sort_unstable();
        match who.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing…")),
            [init @ .., last] => Some(format!("{} and {last} are typing…", init.join(", "))),
        }
    }

    /// Handles a key press.
    pub fn on_key(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let mut actions = Vec::new();
        self.info = None;
        self.problem = None;
        match key.code {
            KeyCode::Char('c' | 'd') if ctrl => self.quit_into(&mut actions),
            _ if self.showing_key() => self.view_key(key, &mut actions),
            KeyCode::F(2) => self.open_devices(&mut actions),
            KeyCode::F(3) => self.open_backup(&mut actions),
            _ if self.screen != Screen::Chat => self.view_key(key, &mut actions),
            KeyCode::Esc if self.panel.is_some() => self.panel = None,
            KeyCode::Esc if self.picked.is_some() => self.picked = None,
            KeyCode::Esc => self.quit_into(&mut actions),
            KeyCode::Enter if self.selected_channel().is_some() => self.post_into(&mut actions),
            KeyCode::Enter => self.enter_into(&mut actions),
            KeyCode::Up if alt => self.pick(-1),
            KeyCode::Down if alt => self.pick(1),
            KeyCode::PageUp => self.pick(-1),
            KeyCode::PageDown => self.pick(1),
            KeyCode::Tab | KeyCode::Down => self.move_selection(1, &mut actions),
            KeyCode::BackTab | KeyCode::Up => self.move_selection(-1, &mut actions),
            // Nothing is typed where nothing can be posted.
            KeyCode::Backspace | KeyCode::Char(_) if self.read_only() => {}
            KeyCode::Backspace => {
                self.composer.pop();
                if self.composer.is_empty() {
                    self.stop_typing_into(&mut actions);
                }
            }
            KeyCode::Char(c) if !ctrl && !alt => {
                self.composer.push(c);
                self.last_input = Some(now);
                // A command is not a message being typed.
                if !self.composer.starts_with('/') {
                    self.start_typing_into(now, &mut actions);
                }
            }
            _ => {}
        }
        actions
    }

    /// Whether a new recovery key is on the screen: nothing but Enter
    /// (or quitting) takes it away.
    pub fn showing_key(&self) -> bool {
        matches!(&self.screen, Screen::Backup(b) if b.showing_key())
    }

    /// Whether a request of the devices or backup view runs.
    pub fn busy(&self) -> bool {
        matches!(self.task, Some(Task::Working(_)))
    }

    fn open_devices(&mut self, actions: &mut Vec<Action>) {
        self.stop_typing_into(actions);
        self.screen = Screen::Devices(DevicesView::default());
        self.refused = None;
        if !self.busy() {
            self.task = None;
        }
        actions.push(Action::ListDevices);
    }

    fn open_backup(&mut self, actions: &mut Vec<Action>) {
        self.stop_typing_into(actions);
        self.screen = Screen::Backup(BackupView::default());
        self.refused = None;
        if !self.busy() {
            self.task = None;
        }
        actions.push(Action::BackupStatus);
    }

    /// A key for the devices or backup view.
    fn view_key(&mut self, key: KeyEvent, actions: &mut Vec<Action>) {
        let busy = self.busy();
        self.refused = None;
        let step = match &mut self.screen {
            Screen::Chat => return,
            Screen::Devices(v) => v.on_key(key, busy),
            Screen::Backup(v) => v.on_key(key, busy, &self.backup_file),
        };
        match step {
            Step::Stay => {}
            Step::Close => {
                self.screen = Screen::Chat;
                // What finished while the view was up is said there.
                if !self.busy() {
                    self.task = None;
                }
            }
            Step::Refused(why) => self.refused = Some(why),
            Step::Act(action) => {
                if let Some(working) = action.working() {
                    self.task = Some(Task::Working(working));
                }
                actions.push(action);
            }
        }
    }

    /// Time passing: stops the typing indicator after [`TYPING_IDLE`].
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.typing_sent.is_some()
            && self
                .last_input
                .is_none_or(|t| now.saturating_duration_since(t) >= TYPING_IDLE)
        {
            self.stop_typing_into(&mut actions);
        }
        for who in self.typing.values_mut() {
            who.retain(|_, until| *until > now);
        }
        actions
    }

    /// Applies an update from the client task.
    pub fn on_update(&mut self, update: Update, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match update {
            Update::Conversations(list) => self.set_conversations(list, &mut actions),
            Update::History { target, messages } => {
                if self.selected_target() == Some(&target) {
                    self.messages = messages;
                    self.keep_pick();
                }
            }
            Update::Channels(list) => self.set_channels(list, &mut actions),
            Update::ChannelHistory { channel, posts } => self.set_posts(&channel, posts),
            Update::Event(ev) => self.on_event(ev, now),
            Update::Error(e) => self.notice = Some(e),
            Update::Done(text) => self.info = Some(text),
            Update::Failed(text) => self.problem = Some(text),
            Update::Found {
                target,
                query,
                results,
            } => {
                if self.selected_target() == Some(&target) {
                    self.panel = Some(Panel::Search { query, results });
                }
            }
            Update::Connection(c) => self.connection = c,
            Update::Devices(list) => {
                if let Screen::Devices(v) = &mut self.screen {
                    v.set_devices(list);
                }
            }
            Update::Task(task) => {
                // Finished after the view was left: say it here (a failure
                // stays, like any error).
                match &task {
                    _ if self.screen != Screen::Chat => {}
                    Task::Working(_) => {}
                    Task::Done(t) => self.info = Some(t.clone()),
                    Task::Failed(t) => self.notice = Some(t.clone()),
                }
                self.task = Some(task);
            }
            Update::BackupInfo(info) => {
                if let Screen::Backup(v) = &mut self.screen {
                    v.info = Some(info);
                }
            }
            Update::BackupCreated(created) => {
                // The key is shown wherever the user went meanwhile.
                self.stop_typing_into(&mut actions);
                let info = match &mut self.screen {
                    Screen::Backup(v) => v.info.take(),
                    _ => None,
                };
                self.screen = Screen::Backup(BackupView {
                    info,
                    mode: BackupMode::Created(created),
                });
            }
        }
        actions
    }

    fn set_conversations(&mut self, list: Vec<ConversationView>, actions: &mut Vec<Action>) {
        let row = self.selection();
        let current = self.selected_target().cloned();
        let unread: Vec<Target> = self
            .entries
            .iter()
            .filter(|e| e.unread)
            .map(|e| e.target.clone())
            .collect();
        let mut entries: Vec<Entry> = list
            .iter()
            .map(|c| {
                let target = target_of(c);
                Entry {
                    unread: unread.contains(&target),
                    target,
                    conversation: Some(c.id),
                    members: c.members.clone(),
                    muted: c.muted_until.is_some(),
                }
            })
            .collect();
        // A chat opened with someone new stays until its first message.
        if let Some(t) = &current
            && !entries.iter().any(|e| &e.target == t)
            && matches!(t, Target::User(_))
        {
            entries.push(Entry {
                target: t.clone(),
                conversation: None,
                members: Vec::new(),
                unread: false,
                muted: false,
            });
        }
        self.entries = entries;
        self.reselect(row, actions);
    }

    fn on_event(&mut self, ev: Event, now: Instant) {
        let selected_conv = self.selected_entry().and_then(|e| e.conversation);
        match ev {
            Event::Message(m) => {
                if let Some(who) = self.typing.get_mut(&m.conversation) {
                    who.remove(&m.from);
                }
                if Some(m.conversation) == selected_conv {
                    if !self.messages.iter().any(|x| x.id == m.id) {
                        self.messages.push(m);
                    }
                } else if !m.outgoing
                    // (One sent from another of this account's devices is
                    // not unread.)
                    && let Some(e) = self
                        .entries
                        .iter_mut()
                        .find(|e| e.conversation == Some(m.conversation))
                {
                    e.unread = true;
                }
            }
            Event::ReadElsewhere { conversation, ids } => {
                if let Some(e) = self
                    .entries
                    .iter_mut()
                    .find(|e| e.conversation == Some(conversation))
                {
                    e.unread = false;
                }
                for m in self.messages.iter_mut().filter(|m| ids.contains(&m.id)) {
                    m.status = "read".into();
                }
            }
            Event::Receipt { ids, status, from } => {
                for m in self.messages.iter_mut().filter(|m| ids.contains(&m.id)) {
                    if m.status != "read" {
                        m.status = status.clone();
                    }
                    note_receipt(m, &from, &status);
                }
            }
            Event::Typing {
                conversation,
                from,
                started,
            } => {
                let who = self.typing.entry(conversation).or_default();
                if started {
                    who.insert(from, now + TYPING_SHOWN);
                } else {
                    who.remove(&from);
                }
            }
            Event::Presence { from, online } => {
                if online {
                    self.online.insert(from);
                } else {
                    self.online.remove(&from);
                }
            }
            Event::Edited { id, text } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.text = Some(text);
                    m.edited = true;
                }
            }
            Event::Deleted { id } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.text = None;
                    m.deleted = true;
                }
            }
            Event::Voted { id, from, options } => {
                if let Some(poll) = self
                    .messages
                    .iter_mut()
                    .find(|m| m.id == id)
                    .and_then(|m| m.poll.as_mut())
                {
                    for (i, o) in poll.options.iter_mut().enumerate() {
                        o.voters.retain(|v| *v != from);
                        if options.contains(&i) {
                            o.voters.push(from.clone());
                            o.voters.sort();
                        }
                    }
                }
            }
            Event::Pinned { id, pinned, .. } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.pinned = pinned;
                }
            }
            Event::Reaction { id, from, emoji } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.reactions.retain(|r| r.from != from);
                    if let Some(emoji) = emoji {
                        m.reactions.push(hush_client::ReactionView { from, emoji });
                        m.reactions.sort_by(|a, b| a.from.cmp(&b.from));
                    }
                }
            }
            Event::ChannelPost(post) => self.on_channel_post(post),
            Event::KeyChanged { username } => {
                self.notice = Some(format!(
                    "SECURITY: the identity key of {username} CHANGED. Compare safety numbers: hush verify {username}"
                ));
            }
            Event::Removed { .. } => {
                self.notice = Some("you were removed from a group".into());
            }
            Event::KeyTransparencyAlarm { message } | Event::SecurityAlarm { message } => {
                self.notice = Some(message);
            }
            _ => {}
        }
    }

    fn quit_into(&mut self, actions: &mut Vec<Action>) {
        self.stop_typing_into(actions);
        actions.push(Action::Quit);
        self.quit = true;
    }

    fn move_selection(&mut self, step: isize, actions: &mut Vec<Action>) {
        let n = self.rows();
        if n < 2 {
            return;
        }
        self.stop_typing_into(actions);
        self.selected = (self.selected as isize + step).rem_euclid(n as isize) as usize;
        self.picked = None;
        self.panel = None;
        self.messages.clear();
        self.posts.clear();
        actions.extend(self.select_action());
    }

    fn start_typing_into(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(target) = self.selected_target().cloned() else {
            return;
        };
        let fresh = match &self.typing_sent {
            Some((t, at)) => *t == target && now.saturating_duration_since(*at) < TYPING_REFRESH,
            None => false,
        };
        if !fresh {
            self.typing_sent = Some((target.clone(), now));
            actions.push(Action::Typing(target, true));
        }
    }

    pub(crate) fn stop_typing_into(&mut self, actions: &mut Vec<Action>) {
        if let Some((target, _)) = self.typing_sent.take() {
            actions.push(Action::Typing(target, false));
        }
    }
}

/// Counts a member's receipt in a shown message's lists (a read is also a
/// delivery), as the store does.
fn note_receipt(m: &mut MessageView, from: &str, status: &str) {
    let add = |list: &mut Vec<String>| {
        if let Err(at) = list.binary_search_by(|u| u.as_str().cmp(from)) {
            list.insert(at, from.to_owned());
        }
    };
    add(&mut m.receipts.delivered_to);
    if status == "read" {
        add(&mut m.receipts.read_by);
    }
}
