//! `hush channel create|invite|list|leave|rotate|admin add`, `hush join` with a
//! channel's link, `hush send --channel`, `hush send-file --channel` and
//! `hush history --channel` (decision 0038).

use std::path::Path;

use anyhow::Result;
use hush_client::{ChannelPostView, Client};
use serde_json::{Value, json};

use crate::cli::{ChannelAdminCommand, ChannelCommand};
use crate::inert;
use crate::output::{Out, file_label, format_time};

/// `hush channel ...`
pub async fn run(client: &mut Client, command: ChannelCommand, out: &mut Out) -> Result<()> {
    match command {
        ChannelCommand::Create { name } => {
            let link = client.create_channel(&name).await?;
            out.emit(|| link.clone(), json!({"channel": name, "link": link}))?;
        }
        ChannelCommand::Invite { name } => {
            let link = client.channel_link(&name)?;
            out.emit(|| link.clone(), json!({"link": link}))?;
        }
        ChannelCommand::List => {
            for c in client.channels()? {
                out.emit(
                    || {
                        let role = match (c.owner, c.admin) {
                            (true, _) => "owner",
                            (false, true) => "admin",
                            _ => "subscriber",
                        };
                        format!(
                            "{}  {role}, {} post(s), epoch {}",
                            inert::name(&c.name),
                            c.posts,
                            c.epoch
                        )
                    },
                    json!({"channel": c.name, "owner": c.owner, "admin": c.admin, "posts": c.posts,
                        "epoch": c.epoch}),
                )?;
            }
        }
        ChannelCommand::Leave { name } => {
            let owned = client.channels()?.iter().any(|c| c.name == name && c.owner);
            client.leave_channel(&name)?;
            out.emit(
                || {
                    let note = if owned {
                        "; its owner key and post token went with it: nobody can post to it now"
                    } else {
                        ""
                    };
                    format!(
                        "left the channel {:?} (forgotten on this device){note}",
                        inert::name(&name)
                    )
                },
                json!({"channel": name, "left": true, "owned": owned}),
            )?;
        }
        ChannelCommand::Rotate { name } => {
            let epoch = client.rotate_channel(&name).await?;
            out.emit(
                || {
                    format!(
                        "{:?} moved to a new key (epoch {epoch})",
                        inert::name(&name)
                    )
                },
                json!({"channel": name, "epoch": epoch}),
            )?;
        }
        ChannelCommand::Admin {
            command: ChannelAdminCommand::Add { name, user },
        } => {
            client.add_channel_admin(&name, &user).await?;
            out.emit(
                || {
                    format!(
                        "{} is now an admin of {:?}: their devices post to it once they sync",
                        inert::name(&user),
                        inert::name(&name)
                    )
                },
                json!({"channel": name, "admin": user}),
            )?;
        }
    }
    Ok(())
}

/// `hush join LINK` with a channel's link.
pub async fn join(client: &mut Client, link: &str, out: &mut Out) -> Result<()> {
    let name = client.join_channel(link).await?;
    out.emit(
        || {
            format!(
                "following the channel {:?}; its posts arrive with `hush sync`",
                inert::name(&name)
            )
        },
        json!({"channel": name, "joined": true}),
    )?;
    Ok(())
}

/// `hush send --channel NAME TEXT`.
pub async fn send(client: &mut Client, name: &str, text: &str, out: &mut Out) -> Result<()> {
    let post = client.post_to_channel(name, text).await?;
    out.emit(|| format_post(&post), post_json(&post))?;
    Ok(())
}

/// `hush send-file --channel NAME PATH [--caption TEXT]`.
pub async fn send_file(
    client: &mut Client,
    name: &str,
    path: &Path,
    caption: Option<&str>,
    out: &mut Out,
) -> Result<()> {
    let bar = super::files::progress_bar("uploading");
    let result = client
        .post_file_to_channel(name, path, caption, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let post = result?;
    out.emit(|| format_post(&post), post_json(&post))?;
    Ok(())
}

/// `hush history --channel NAME`: the posts taken in, oldest first.
pub fn history(client: &mut Client, name: &str, out: &mut Out) -> Result<()> {
    for post in client.channel_history(name)? {
        out.emit(|| format_post(&post), post_json(&post))?;
    }
    Ok(())
}

/// One line for a channel post; the owner's text is shown inert.
pub fn format_post(p: &ChannelPostView) -> String {
    let file = p
        .file
        .as_ref()
        .map(|f| format!(" {}", file_label(f, p.size)))
        .unwrap_or_default();
    format!(
        "{}  ~{}: {}{file}  id={}",
        format_time(p.sent_at),
        inert::name(&p.channel),
        inert::text(&p.text),
        p.id
    )
}

/// A channel post as JSON: `{"event": "channel_post", "channel", "id",
/// "number", "epoch", "text", "file", "size", "media_type", "sent_at",
/// "received_at"}` (`file`, `size` and `media_type` null but for a file).
pub fn post_json(p: &ChannelPostView) -> Value {
    serde_json::to_value(hush_client::Event::ChannelPost(p.clone()))
        .unwrap_or_else(|_| json!({"event": "channel_post"}))
}
