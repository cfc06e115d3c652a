//! `hush group create|add|remove|leave|list|members|rename|info|admin|settings`
//! (and `invite|requests|approve|deny`, in `invites`).

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
        GroupCommand::Info { name } => {
            let g = client.group_info(&name)?;
            out.emit(
                || {
                    format!(
                        "{}\nmembers: {}\nadmins: {}\nonly admins send: {}",
                        inert::name(&g.name),
                        inert::name(&g.members.join(", ")),
                        inert::name(&g.admins.join(", ")),
                        if g.only_admins_send { "on" } else { "off" }
                    )
                },
                group_json(&g),
            )?;
        }
        GroupCommand::Admin { action, name, user } => {
            let admin = action == "add";
            client.group_set_admin(&name, &user, admin).await?;
            out.emit(
                || {
                    if admin {
                        format!("{user} is now an admin of {name:?}")
                    } else {
                        format!("{user} is no longer an admin of {name:?}")
                    }
                },
                json!({"group": name, "user": user, "admin": admin}),
            )?;
        }
        GroupCommand::Settings {
            name,
            only_admins_send,
        } => {
            if let Some(v) = only_admins_send {
                client.group_set_only_admins_send(&name, v == "on").await?;
            }
            let g = client.group_info(&name)?;
            out.emit(
                || {
                    let v = if g.only_admins_send { "on" } else { "off" };
                    format!("{name:?}: only admins send: {v}")
                },
                group_json(&g),
            )?;
        }
        GroupCommand::Invite {
            name,
            expires,
            max_uses,
            approve,
            revoke,
        } => super::invites::invite(client, &name, expires, max_uses, approve, revoke, out).await?,
        GroupCommand::Requests { name } => super::invites::requests(client, &name, out).await?,
        GroupCommand::Approve { name, user } => {
            super::invites::settle(client, &name, &user, true, out).await?
        }
        GroupCommand::Deny { name, user } => {
            super::invites::settle(client, &name, &user, false, out).await?
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

/// `{"id", "name", "members", "admins", "only_admins_send", "disappear_secs"}`.
fn group_json(g: &ConversationView) -> serde_json::Value {
    json!({
        "id": g.id,
        "name": g.name,
        "members": g.members,
        "admins": g.admins,
        "only_admins_send": g.only_admins_send,
        "disappear_secs": g.disappear_secs,
    })
}
