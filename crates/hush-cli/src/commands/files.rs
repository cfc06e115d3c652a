//! `hush send-file` and `hush download`, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};
use hush_client::{Client, Target};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::{Out, format_size};

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub(crate) fn progress_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Encrypts, uploads and sends the file at `path`.
pub async fn send(client: &mut Client, target: &Target, path: &Path, out: &mut Out) -> Result<()> {
    let bar = progress_bar("uploading");
    let result = client
        .send_file(target, path, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let m = result?;
    out.message(&m)?;
    super::messages::refused_is_an_error(&m)
}

/// Downloads the file of message `id` to `dest`; nothing is written there
/// unless the file arrives intact.
pub async fn download(
    client: &mut Client,
    id: &str,
    dest: &Path,
    force: bool,
    out: &mut Out,
) -> Result<()> {
    if dest.exists() && !force {
        bail!(
            "{} exists: choose another --out, or pass --force to replace it",
            dest.display()
        );
    }
    let bar = progress_bar("downloading");
    let result = client
        .download(id, dest, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let size = result?;
    out.emit(
        || format!("saved {} ({})", dest.display(), format_size(size)),
        json!({"id": id, "path": dest.display().to_string(), "size": size}),
    )?;
    Ok(())
}
