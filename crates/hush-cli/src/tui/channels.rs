//! Channels in the chat (decision 0038): the channels this device follows
//! or owns are listed after the conversations; selecting one shows its
//! posts, new ones arrive live ([`Event::ChannelPost`]), and the composer
//! posts to it only on the owner's device. On any other the channel is
//! read-only: the composer says so and Enter asks the client for nothing.
//!
//! The selection is one index over the conversations, then the channels
//! ([`App::selected`]); a new list from the client keeps the same row
//! selected ([`Row`]).

use hush_client::{ChannelPostView, ChannelView, Target};

use crate::tui::app::{Action, App};

/// One channel in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEntry {
    /// Its name (as its owner's descriptor says).
    pub name: String,
    /// Whether this device owns it (and so posts to it).
    pub owner: bool,
    /// New posts arrived since it was last shown.
    pub unread: bool,
}

impl ChannelEntry {
    /// `» name`.
    pub fn label(&self) -> String {
        format!("» {}", self.name)
    }
}

/// What a row of the list is, to find it again in a new list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A conversation.
    Chat(Target),
    /// A channel, by name.
    Channel(String),
}

impl App {
    /// The selected channel, when a channel is selected.
    pub fn selected_channel(&self) -> Option<&ChannelEntry> {
        self.selected
            .checked_sub(self.entries.len())
            .and_then(|i| self.channels.get(i))
    }

    /// Whether a channel this device does not own is selected: nothing
    /// can be posted there.
    pub fn read_only(&self) -> bool {
        self.selected_channel().is_some_and(|c| !c.owner)
    }

    /// How many rows the list has: conversations, then channels.
    pub fn rows(&self) -> usize {
        self.entries.len() + self.channels.len()
    }

    /// The selected row, to find again in a new list.
    pub(crate) fn selection(&self) -> Option<Row> {
        if let Some(e) = self.selected_entry() {
            return Some(Row::Chat(e.target.clone()));
        }
        self.selected_channel()
            .map(|c| Row::Channel(c.name.clone()))
    }

    /// After a new list: selects `row` again where it is now, or else the
    /// first row (asking the client for what it shows).
    pub(crate) fn reselect(&mut self, row: Option<Row>, actions: &mut Vec<Action>) {
        let at = row.and_then(|row| match row {
            Row::Chat(t) => self.entries.iter().position(|e| e.target == t),
            Row::Channel(n) => self
                .channels
                .iter()
                .position(|c| c.name == n)
                .map(|i| self.entries.len() + i),
        });
        match at {
            Some(i) => self.selected = i,
            None => {
                self.selected = 0;
                self.picked = None;
                self.panel = None;
                self.messages.clear();
                self.posts.clear();
                actions.extend(self.select_action());
            }
        }
    }

    /// What the client is asked for when the selected row is shown; the
    /// row is no longer unread.
    pub(crate) fn select_action(&mut self) -> Option<Action> {
        let n = self.entries.len();
        if let Some(e) = self.entries.get_mut(self.selected) {
            e.unread = false;
            return Some(Action::Select(e.target.clone()));
        }
        let c = self.channels.get_mut(self.selected.checked_sub(n)?)?;
        c.unread = false;
        Some(Action::SelectChannel(c.name.clone()))
    }

    /// A new channel list from the client; unread marks stay.
    pub(crate) fn set_channels(&mut self, list: Vec<ChannelView>, actions: &mut Vec<Action>) {
        let current = self.selection();
        let unread: Vec<String> = self
            .channels
            .iter()
            .filter(|c| c.unread)
            .map(|c| c.name.clone())
            .collect();
        self.channels = list
            .into_iter()
            .map(|c| ChannelEntry {
                unread: unread.contains(&c.name),
                name: c.name,
                owner: c.owner,
            })
            .collect();
        self.reselect(current, actions);
    }

    /// The posts of a channel, oldest first: shown if it is still selected.
    pub(crate) fn set_posts(&mut self, channel: &str, posts: Vec<ChannelPostView>) {
        if self.selected_channel().is_some_and(|c| c.name == channel) {
            self.posts = posts;
        }
    }

    /// A post arrived: shown when its channel is up, else the channel is
    /// marked as having new posts.
    pub(crate) fn on_channel_post(&mut self, post: ChannelPostView) {
        if self
            .selected_channel()
            .is_some_and(|c| c.name == post.channel)
        {
            if !self.posts.iter().any(|p| p.id == post.id) {
                self.posts.push(post);
            }
        } else if let Some(c) = self.channels.iter_mut().find(|c| c.name == post.channel) {
            c.unread = true;
        }
    }

    /// Enter on a channel: the composer's text is posted on the owner's
    /// device; on any other nothing is asked of the client.
    pub(crate) fn post_into(&mut self, actions: &mut Vec<Action>) {
        let Some(channel) = self.selected_channel() else {
            return;
        };
        if !channel.owner {
            self.info = Some(format!(
                "{} is read-only: only its owner's device posts to it (nothing was sent)",
                channel.label()
            ));
            return;
        }
        let name = channel.name.clone();
        let text = self.composer.trim().to_owned();
        if text.is_empty() {
            return;
        }
        match self.typed_in_channel(&text) {
            Ok(Some(text)) => {
                actions.push(Action::Post(name, text));
                self.composer.clear();
            }
            Ok(None) => self.composer.clear(),
            Err(e) => self.problem = Some(e),
        }
    }
}
