//! `hush send`, `sync`, `history`, `edit`, `delete`.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use hush_client::{Client, Event, Target};
use serde_json::json;

use crate::output::{Out, event_json, format_event, key_changed_warning};

/// Sends `text` (as a reply to `reply_to`) and prints the message.
pub async fn send(
    client: &mut Client,
    target: &Target,
    text: &str,
    reply_to: Option<&str>,
    out: &mut Out,
) -> Result<()> {
    let m = client.send_reply(target, text, reply_to).await?;
    out.message(&m)?;
    refused_is_an_error(&m)
}

/// The client keeps a message the server refused for good, marked
/// `failed`; for the command that sent it, that is a failure.
pub fn refused_is_an_error(m: &hush_client::MessageView) -> Result<()> {
    if m.status == "failed" {
        anyhow::bail!("the server refused message {}: it was not delivered", m.id);
    }
    Ok(())
}

/// Receives what is waiting (and what arrives within `wait`), printing each
/// event as it happens. Identity-key changes are also shouted on stderr.
/// With a wait, the channels are watched meanwhile: a post is printed as
/// the server stores it (a sync the watch ends early is followed by one
/// listening for the rest of the wait).
pub async fn sync(client: &mut Client, wait: Duration, out: &mut Out) -> Result<()> {
    let mut names: HashMap<i64, String> = client
        .conversations()?
        .into_iter()
        .map(|c| (c.id, conversation_label(&c.kind, &c.name)))
        .collect();
    let mut failed: Option<std::io::Error> = None;
    let mut alarmed = false;
    let mut on_event = |ev: &Event| {
        if let Event::KeyChanged { username } = ev {
            let _ = writeln!(std::io::stderr(), "{}", key_changed_warning(username));
        }
        if let Event::KeyTransparencyAlarm { message } | Event::SecurityAlarm { message } = ev {
            alarmed = true;
            let bar = "!".repeat(72);
            let message = crate::inert::name(message);
            let _ = writeln!(std::io::stderr(), "{bar}\nhush: {message}\n{bar}");
        }
        if failed.is_none() {
            let label = |id: i64| {
                names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("conversation {id}"))
            };
            let result = if out.is_json() {
                match ev {
                    // A commit that changed no membership says nothing.
                    Event::Members { added, removed, .. }
                        if added.is_empty() && removed.is_empty() =>
                    {
                        Ok(())
                    }
                    _ => out.emit(String::new, event_json(ev)),
                }
            } else {
                match format_event(ev, &label) {
                    Some(line) => out.human(&line),
                    None => Ok(()),
                }
            };
            if let Err(e) = result {
                failed = Some(e);
            }
        }
        // Printed with the old name; later events use the new one.
        match ev {
            Event::Joined { conversation } => {
                names.insert(
                    conversation.id,
                    conversation_label(&conversation.kind, &conversation.name),
                );
            }
            Event::Renamed { conversation, name } => {
                names.insert(*conversation, conversation_label("group", name));
            }
            _ => {}
        }
    };
    let until = std::time::Instant::now() + wait;
    if !wait.is_zero() {
        client.watch_channels()?;
    }
    loop {
        client
            .sync(
                until.saturating_duration_since(std::time::Instant::now()),
                &mut on_event,
            )
            .await?;
        if std::time::Instant::now() >= until {
            break;
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    if alarmed {
        anyhow::bail!("a security alarm was raised (above); everything else received was stored");
    }
    Ok(())
}

/// `#group` for a group, the username for a 1:1 chat.
fn conversation_label(kind: &str, name: &str) -> String {
    if kind == "group" {
        format!("#{name}")
    } else {
        name.to_owned()
    }
}

/// Prints a conversation, oldest first, then marks it read.
pub async fn history(client: &mut Client, target: &Target, out: &mut Out) -> Result<()> {
    let messages = client.history(target)?;
    for m in &messages {
        out.message(m)?;
    }
    match client.mark_read(target).await {
        // History of a conversation this device is not (yet) in, from a
        // backup or a link (`history` found it): nothing to mark.
        Err(hush_client::ClientError::NotFound(_)) => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Edits one of this account's messages.
pub async fn edit(client: &mut Client, id: &str, text: &str, out: &mut Out) -> Result<()> {
    client.edit(id, text).await?;
    out.emit(
        || format!("edited {id}"),
        json!({"id": id, "edited": true, "text": text}),
    )?;
    Ok(())
}

/// Deletes one of this account's messages for everyone.
pub async fn delete(client: &mut Client, id: &str, out: &mut Out) -> Result<()> {
    client.delete(id).await?;
    out.emit(
        || format!("deleted {id}"),
        json!({"id": id, "deleted": true}),
    )?;
    Ok(())
}

/// `hush report MESSAGE_ID [--reason TEXT]`
pub async fn report(client: &mut Client, id: &str, reason: &str, out: &mut Out) -> Result<()> {
    let report = client.report(id, reason).await?;
    out.emit(
        || format!("reported {id} (report #{report}); `hush block USERNAME` stops their messages"),
        json!({"id": id, "report": report}),
    )?;
    Ok(())
}
