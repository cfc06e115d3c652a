//! The message features of decision 0039: `hush react`, and the others as
//! they come.

use anyhow::Result;
use hush_client::Client;
use serde_json::json;

use crate::inert;
use crate::output::Out;

/// `hush react MESSAGE_ID EMOJI` or `hush react MESSAGE_ID --remove`.
pub async fn react(client: &mut Client, id: &str, emoji: Option<&str>, out: &mut Out) -> Result<()> {
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
