//! `hush group invite|requests|approve|deny` and `hush join` (decision 0033).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use hush_client::Client;
use hush_client::invites::InviteOptions;
use serde_json::json;

use crate::inert;
use crate::output::Out;

/// Longest an invite link may last: a year.
const MAX_EXPIRY: Duration = Duration::from_secs(366 * 86_400);

fn parse_expiry(s: &str) -> Result<Duration> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| (Duration::from_secs(60)..=MAX_EXPIRY).contains(d))
        .ok_or_else(|| anyhow!("--expires {s:?} is not a duration like 7d or 12h (1m to 1 year)"))
}

/// `hush group invite NAME [--expires D] [--max-uses N] [--approve] | --revoke`.
pub async fn invite(
    client: &mut Client,
    name: &str,
    expires: Option<String>,
    max_uses: Option<u32>,
    approve: bool,
    revoke: bool,
    out: &mut Out,
) -> Result<()> {
    if revoke {
        let n = client.group_revoke_invites(name).await?;
        out.emit(
            || format!("revoked {n} invite link(s) of {name:?}"),
            json!({"group": name, "revoked": n}),
        )?;
        return Ok(());
    }
    if max_uses == Some(0) {
        return Err(anyhow!("--max-uses is at least 1"));
    }
    let options = InviteOptions {
        expires: expires.as_deref().map(parse_expiry).transpose()?,
        max_uses: max_uses.unwrap_or(0),
        approve,
    };
    let link = client.group_invite(name, &options).await?;
    out.emit(|| link.clone(), json!({"invite": link}))?;
    Ok(())
}

/// `hush join LINK [--wait SECONDS]`.
pub async fn join(client: &mut Client, link: &str, wait: Duration, out: &mut Out) -> Result<()> {
    let outcome = client.join_link(link).await?;
    let deadline = Instant::now() + wait;
    let mut joined = false;
    while !outcome.needs_approval && !wait.is_zero() {
        client.sync(Duration::from_secs(1), |_| {}).await?;
        joined = client.groups()?.iter().any(|g| g.name == outcome.group);
        if joined || Instant::now() >= deadline {
            break;
        }
    }
    let group = inert::name(&outcome.group).into_owned();
    out.emit(
        || {
            if joined {
                format!("joined {group:?}")
            } else if outcome.needs_approval {
                format!(
                    "asked to join {group:?} ({} members); an admin approves the request",
                    outcome.size
                )
            } else {
                format!(
                    "asked to join {group:?} ({} members); it arrives with `hush sync` once an \
                     admin's device is online",
                    outcome.size
                )
            }
        },
        json!({
            "group": outcome.group,
            "size": outcome.size,
            "needs_approval": outcome.needs_approval,
            "joined": joined,
        }),
    )?;
    Ok(())
}

/// `hush group requests NAME`.
pub async fn requests(client: &mut Client, name: &str, out: &mut Out) -> Result<()> {
    for r in client.group_requests(name).await? {
        out.emit(
            || inert::name(&r.user).into_owned(),
            json!({"group": name, "user": r.user}),
        )?;
    }
    Ok(())
}

/// `hush group approve|deny NAME USER`.
pub async fn settle(
    client: &mut Client,
    name: &str,
    user: &str,
    approve: bool,
    out: &mut Out,
) -> Result<()> {
    client.group_settle(name, user, approve).await?;
    out.emit(
        || {
            if approve {
                format!("approved: added {user} to {name:?}")
            } else {
                format!("denied {user}'s request to join {name:?}")
            }
        },
        json!({"group": name, "user": user, "approved": approve}),
    )?;
    Ok(())
}
