//! The devices view (F2) and the backup view (F3) of `hush chat`: their
//! state and what keys do to it (decision 0041). Like [`super::app`], no
//! I/O: requests go out as [`Action`]s and results come back as
//! [`super::app::Update`]s, which [`super::app::App`] hands to the view.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hush_client::{BackupTarget, DeviceView};
use hush_wire::api::BackupStatus;
use zeroize::Zeroizing;

use crate::tui::app::Action;

/// The longest line a prompt takes (a path, a name, a link code).
const PROMPT_MAX: usize = 4096;

/// What a key did to a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing for the client; the view stays.
    Stay,
    /// Back to the conversations.
    Close,
    /// Ask the client for this.
    Act(Action),
    /// Refused: say why.
    Refused(&'static str),
}

/// Why a key is refused while the client runs another request.
pub const BUSY: &str = "wait: the last request is still running";

/// A line being typed in a view: a device's name, a link code, a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// What is asked for.
    pub label: &'static str,
    /// What has been typed.
    pub text: String,
}

/// What a key did to a [`Prompt`].
enum Edit {
    Editing,
    Cancelled,
    Entered(String),
}

impl Prompt {
    fn new(label: &'static str, text: impl Into<String>) -> Self {
        Prompt {
            label,
            text: text.into(),
        }
    }

    fn key(&mut self, key: KeyEvent) -> Edit {
        match key.code {
            KeyCode::Esc => Edit::Cancelled,
            KeyCode::Enter => {
                let text = self.text.trim();
                if text.is_empty() {
                    Edit::Cancelled
                } else {
                    Edit::Entered(text.to_owned())
                }
            }
            KeyCode::Backspace => {
                self.text.pop();
                Edit::Editing
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                Edit::Editing
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    && self.text.len() < PROMPT_MAX =>
            {
                self.text.push(c);
                Edit::Editing
            }
            _ => Edit::Editing,
        }
    }
}

/// How the last request of a view went, shown on its status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Running: what it is doing now.
    Working(String),
    /// Finished.
    Done(String),
    /// Failed: why.
    Failed(String),
}

impl Task {
    /// Its text.
    pub fn text(&self) -> &str {
        match self {
            Task::Working(t) | Task::Done(t) | Task::Failed(t) => t,
        }
    }
}

/// What the devices view is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DevicesMode {
    /// Showing the list.
    #[default]
    List,
    /// Typing a new name for a device.
    Rename(u32, Prompt),
    /// Asking whether to remove a device.
    ConfirmRemove(u32),
    /// Typing the code a new device shows.
    Link(Prompt),
}

/// The devices view: this account's devices, and what to do with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesView {
    /// The devices (`None` until the client has listed them).
    pub devices: Option<Vec<DeviceView>>,
    /// Index of the selected device.
    pub selected: usize,
    /// What the view is doing.
    pub mode: DevicesMode,
}

impl DevicesView {
    /// The selected device.
    pub fn selected_device(&self) -> Option<&DeviceView> {
        self.devices.as_ref()?.get(self.selected)
    }

    /// A new list from the client; the same device stays selected.
    pub fn set_devices(&mut self, list: Vec<DeviceView>) {
        let keep = self.selected_device().map(|d| d.id);
        self.selected = keep
            .and_then(|id| list.iter().position(|d| d.id == id))
            .unwrap_or(0)
            .min(list.len().saturating_sub(1));
        self.devices = Some(list);
    }

    /// Handles a key; `busy` while another request runs.
    pub fn on_key(&mut self, key: KeyEvent, busy: bool) -> Step {
        match &mut self.mode {
            DevicesMode::List => self.list_key(key, busy),
            DevicesMode::Rename(id, prompt) => {
                let id = *id;
                match prompt.key(key) {
                    Edit::Editing => Step::Stay,
                    Edit::Cancelled => self.back(),
                    Edit::Entered(name) => {
                        self.mode = DevicesMode::List;
                        Step::Act(Action::RenameDevice(id, name))
                    }
                }
            }
            DevicesMode::ConfirmRemove(id) => {
                let id = *id;
                self.mode = DevicesMode::List;
                if key.code == KeyCode::Char('y') {
                    Step::Act(Action::RemoveDevice(id))
                } else {
                    Step::Stay
                }
            }
            DevicesMode::Link(prompt) => match prompt.key(key) {
                Edit::Editing => Step::Stay,
                Edit::Cancelled => self.back(),
                Edit::Entered(code) => {
                    self.mode = DevicesMode::List;
                    Step::Act(Action::LinkDevice(code))
                }
            },
        }
    }

    fn back(&mut self) -> Step {
        self.mode = DevicesMode::List;
        Step::Stay
    }

    fn list_key(&mut self, key: KeyEvent, busy: bool) -> Step {
        let n = self.devices.as_ref().map_or(0, Vec::len);
        match key.code {
            KeyCode::Esc => return Step::Close,
            KeyCode::Down | KeyCode::Tab if n > 0 => self.selected = (self.selected + 1) % n,
            KeyCode::Up | KeyCode::BackTab if n > 0 => self.selected = (self.selected + n - 1) % n,
            KeyCode::Char('r' | 'x' | 'l') | KeyCode::Delete if busy => {
                return Step::Refused(BUSY);
            }
            KeyCode::Char('g') => return Step::Act(Action::ListDevices),
            KeyCode::Char('l') => {
                self.mode = DevicesMode::Link(Prompt::new("Link code the new device shows", ""))
            }
            KeyCode::Char('r') => {
                if let Some(d) = self.selected_device() {
                    let name = d.name.clone().unwrap_or_default();
                    self.mode = DevicesMode::Rename(d.id, Prompt::new("New name", name));
                }
            }
            KeyCode::Char('x') | KeyCode::Delete => match self.selected_device() {
                Some(d) if d.this => {
                    return Step::Refused(
                        "this is the device you are using: remove it from another of your devices",
                    );
                }
                Some(d) => self.mode = DevicesMode::ConfirmRemove(d.id),
                None => {}
            },
            _ => {}
        }
        Step::Stay
    }
}

/// A recovery key on its way to the screen: its text never reaches a log
/// through `Debug`, and is wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownKey(pub Zeroizing<String>);

impl std::fmt::Debug for ShownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownKey(<redacted>)")
    }
}

/// A backup just made, and its key to show once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The file (absolute), or `None` for the server.
    pub file: Option<String>,
    /// Its size.
    pub bytes: u64,
    /// Messages in it.
    pub messages: u64,
    /// Conversations in it.
    pub conversations: u64,
    /// The new recovery key.
    pub key: ShownKey,
}

/// What the backup view shows about the backups kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Where and how often a backup is kept fresh, if it is.
    pub schedule: Option<(BackupTarget, Duration)>,
    /// The backup the server holds (`Err`: why the server could not say).
    pub server: Result<Option<BackupStatus>, String>,
}

/// What the backup view is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackupMode {
    /// Showing the schedule and what can be done.
    #[default]
    Menu,
    /// Typing the file to write.
    File(Prompt),
    /// Asking whether to replace the backup on the server.
    ConfirmServer,
    /// Showing a new backup's recovery key, once.
    Created(Created),
}

/// The backup view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupView {
    /// The schedule and the server's backup (`None` until the client said).
    pub info: Option<BackupInfo>,
    /// What the view is doing.
    pub mode: BackupMode,
}

impl BackupView {
    /// Whether a recovery key is on the screen (it stays until Enter).
    pub fn showing_key(&self) -> bool {
        matches!(self.mode, BackupMode::Created(_))
    }

    /// Handles a key; `default_file` is offered for a backup to a file.
    pub fn on_key(&mut self, key: KeyEvent, busy: bool, default_file: &str) -> Step {
        match &mut self.mode {
            BackupMode::Menu => match key.code {
                KeyCode::Esc => Step::Close,
                KeyCode::Char('f' | 's') if busy => Step::Refused(BUSY),
                KeyCode::Char('f') => {
                    self.mode = BackupMode::File(Prompt::new("Write the backup to", default_file));
                    Step::Stay
                }
                KeyCode::Char('s') => {
                    self.mode = BackupMode::ConfirmServer;
                    Step::Stay
                }
                KeyCode::Char('g') => Step::Act(Action::BackupStatus),
                _ => Step::Stay,
            },
            BackupMode::File(prompt) => match prompt.key(key) {
                Edit::Editing => Step::Stay,
                Edit::Cancelled => {
                    self.mode = BackupMode::Menu;
                    Step::Stay
                }
                Edit::Entered(path) => {
                    self.mode = BackupMode::Menu;
                    Step::Act(Action::BackupToFile(path.into()))
                }
            },
            BackupMode::ConfirmServer => {
                self.mode = BackupMode::Menu;
                if key.code == KeyCode::Char('y') {
                    Step::Act(Action::BackupToServer)
                } else {
                    Step::Stay
                }
            }
            BackupMode::Created(_) => {
                if key.code == KeyCode::Enter {
                    // Dropping it wipes the key.
                    self.mode = BackupMode::Menu;
                    Step::Act(Action::BackupStatus)
                } else {
                    Step::Stay
                }
            }
        }
    }
}
