//! Consistent copies of a SQLite database: the operator's online backup
//! (`hush-server admin backup DEST`) and the copy taken before a schema
//! migration changes a file.
//!
//! `VACUUM INTO` reads one snapshot of the database in a read transaction
//! (in WAL mode it does not stop the running server's writer) and writes it
//! as a new, compact database file, which is then flushed to disk.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, StoreResult, backend};

/// Copies the database `conn` has open to `dest`, a file that must not
/// exist yet, as one consistent snapshot, and flushes it to disk.
pub fn copy_to(conn: &Connection, dest: &Path) -> StoreResult<()> {
    if dest.exists() {
        return Err(StoreError::Backend(format!(
            "{} already exists: a backup never overwrites a file",
            dest.display()
        )));
    }
    let dest_str = dest
        .to_str()
        .ok_or_else(|| StoreError::Backend(format!("{} is not a UTF-8 path", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_str])
        .map_err(|e| StoreError::Backend(format!("copy to {} failed: {e}", dest.display())))?;
    sync(dest)
        .map_err(|e| StoreError::Backend(format!("cannot flush {} to disk: {e}", dest.display())))
}

/// Flushes `file` and the directory entry that names it.
fn sync(file: &Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

/// Copies the database at `src` (which a running server may be writing) to
/// `dest`, without migrating or otherwise changing it. Returns the size of
/// the copy.
pub fn backup_file(src: &Path, dest: &Path) -> StoreResult<u64> {
    if !src.exists() {
        return Err(StoreError::Backend(format!(
            "no database at {}",
            src.display()
        )));
    }
    // Read-write (a reader of a WAL database may need to create its shared
    // memory file) but never created and never written.
    let conn = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", src.display())))?;
    conn.pragma_update(None, "busy_timeout", 5000)
        .map_err(backend)?;
    copy_to(&conn, dest)?;
    std::fs::metadata(dest).map(|m| m.len()).map_err(backend)
}

/// Where the copy taken before migrating `db` from schema `from` goes: next
/// to it, named after the version and the time (never an existing file).
pub fn pre_migration_path(db: &Path, from: u32) -> PathBuf {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(format!(".v{from}-backup-{ms}"));
    db.with_file_name(name)
}
