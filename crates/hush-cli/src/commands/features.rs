//! The message features of decision 0039: `hush react`, `hush search`,
//! `hush pin` and `hush pins`, `hush forward`, `hush poll`.

use anyhow::Result;
use hush_client::{Client, Target};
use serde_json::json;

use crate::cli::PollCommand;
use crate::inert;
use crate::output::Out;

/// `hush react MESSAGE_ID EMOJI` or `hush react MESSAGE_ID --remove`.
pub async fn react(
    client: &mut Client,
    id: &str,
    emoji: Option<&str>,
    out: &mut Out,
) -> Result<()> {
    client.react(id, emoji).await?;
    out.emit(
        || match emoji {
            Some(e) => format!("reacted {} to {}", inert::name(e), inert::name(id)),
            None => format!("took back your reaction to {}", inert::name(id)),
        },
        json!({"id": id, "emoji": emoji}),
    )?;
    Ok(())
}

/// `hush search TEXT [--conv C] [--limit N]`: the messages found, newest
/// first, one line (or JSON object) each.
pub async fn search(
    client: &mut Client,
    text: &str,
    target: Option<&Target>,
    limit: usize,
    out: &mut Out,
) -> Result<()> {
    for m in client.search(target, text, limit)? {
        out.message(&m)?;
    }
    Ok(())
}

/// `hush pin MESSAGE_ID [--remove]`.
pub async fn pin(client: &mut Client, id: &str, pinned: bool, out: &mut Out) -> Result<()> {
    client.pin(id, pinned).await?;
    out.emit(
        || {
            let what = if pinned { "pinned" } else { "unpinned" };
            format!("{what} {}", inert::name(id))
        },
        json!({"id": id, "pinned": pinned}),
    )?;
    Ok(())
}

/// `hush pins USERNAME` or `hush pins --group NAME`.
pub fn pins(client: &mut Client, target: &Target, out: &mut Out) -> Result<()> {
    for m in client.pinned(target)? {
        out.message(&m)?;
    }
    Ok(())
}

/// `hush forward MESSAGE_ID --to CONVERSATION`: prints the new message.
pub async fn forward(client: &mut Client, id: &str, to: &Target, out: &mut Out) -> Result<()> {
    let m = client.forward(id, to).await?;
    out.message(&m)?;
    super::messages::refused_is_an_error(&m)
}

/// `hush poll create|vote|show`.
pub async fn poll(client: &mut Client, command: PollCommand, out: &mut Out) -> Result<()> {
    match command {
        PollCommand::Create {
            group,
            question,
            options,
            multiple,
        } => {
            let target = Target::Group(group);
            let m = client
                .create_poll(&target, &question, &options, multiple)
                .await?;
            out.message(&m)?;
            super::messages::refused_is_an_error(&m)
        }
        PollCommand::Vote {
            message_id,
            choices,
            ..
        } => {
            if choices.contains(&0) {
                anyhow::bail!("options are numbered from 1");
            }
            let zero_based: Vec<usize> = choices.iter().map(|c| c - 1).collect();
            client.vote(&message_id, &zero_based).await?;
            out.emit(
                || {
                    if choices.is_empty() {
                        format!("took back your vote in {}", inert::name(&message_id))
                    } else {
                        let list: Vec<String> = choices.iter().map(usize::to_string).collect();
                        format!("voted {} in {}", list.join(", "), inert::name(&message_id))
                    }
                },
                json!({"id": message_id, "options": choices}),
            )?;
            Ok(())
        }
        PollCommand::Show { message_id } => {
            let m = client.poll(&message_id)?;
            out.message(&m)?;
            Ok(())
        }
    }
}
