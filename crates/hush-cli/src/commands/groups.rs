//! `hush group create|add|remove|leave|list|members|rename`.

use anyhow::Result;
use hush_client::{Client, ConversationView};
use serde_json::json;

use crate::cli::GroupCommand;
use crate::inert;
use crate::output::Out;

/// Runs one group command.
pub async fn run(client: &mut Client, command: GroupCommand, out: &mut Out) -> Result<()> {
    match command {
        GroupCommand::Create { name, members } => {
            let group = client.create_group(&name, &members).await?;
            out.emit(
                || {
                    format!(
                        "created the group {:?} with {}",
                        group.name,
                        group.members.join(", ")
                    )
                },
                group_json(&group),
            )?;
        }
        GroupCommand::Add { name, user } => {
            client.group_add(&name, &user).await?;
            out.emit(
                || format!("added {user} to {name:?}"),
                json!({"group": name, "added": user}),
            )?;
        }
        GroupCommand::Remove { name, user } => {
            client.group_remove(&name, &user).await?;
            out.emit(
                || format!("removed {user} from {name:?}"),
                json!({"group": name, "removed": user}),
            )?;
        }
        GroupCommand::Leave { name } => {
            client.group_leave(&name).await?;
            out.emit(
                || format!("left {name:?}"),
                json!({"group": name, "left": true}),
            )?;
        }
        GroupCommand::List => {
            for group in client.groups()? {
                out.emit(
                    || {
                        format!(
                            "{}  ({})",
                            inert::name(&group.name),
                            inert::name(&group.members.join(", "))
                        )
                    },
                    group_json(&group),
                )?;
            }
        }
        GroupCommand::Members { name } => {
            for member in client.group_members(&name)? {
                out.emit(
                    || inert::name(&member).into_owned(),
                    json!({"username": member}),
                )?;
            }
        }
        GroupCommand::Rename { name, new_name } => {
            client.group_rename(&name, &new_name).await?;
            out.emit(
                || format!("renamed {name:?} to {new_name:?}"),
                json!({"group": new_name, "old_name": name}),
            )?;
        }
    }
    Ok(())
}

/// `{"id", "name", "members", "disappear_secs"}`.
fn group_json(g: &ConversationView) -> serde_json::Value {
    json!({
        "id": g.id,
        "name": g.name,
        "members": g.members,
        "disappear_secs": g.disappear_secs,
    })
}
