//! The state file: the object store as JSON, written atomically with mode 0600.
//!
//! Atomic means a crash at any point leaves either the old or the new file, never a torn one: the new
//! contents go to a temporary file in the same directory, are flushed to disk, renamed over the old
//! file, and the directory entry is flushed too. A temporary file left by a crash is ignored on load,
//! and removed by the next successful write.
//! Volatile keys (type `14`) are never written.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::VcardError;
use crate::store::ObjectStore;

/// Format version written into every state file.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    store: ObjectStore,
}

/// Loads the store from `path`; volatile keys come back empty.
pub fn load(path: &Path) -> Result<ObjectStore, VcardError> {
    // The text holds private scalars in hex: wipe it once parsed.
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(|e| VcardError::io("reading", path, e))?,
    );
    let state: StateFile = serde_json::from_str(&text).map_err(|e| VcardError::InvalidState {
        path: path.to_path_buf(),
        // serde_json's message names a line and column, not the values around it.
        reason: format!(
            "not valid state JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    if state.format != FORMAT_VERSION {
        return Err(VcardError::InvalidState {
            path: path.to_path_buf(),
            reason: format!(
                "format {} is not supported (expected {FORMAT_VERSION})",
                state.format
            ),
        });
    }
    let mut store = state.store;
    store.clear_volatile();
    Ok(store)
}

/// Writes `store` (without volatile keys) to `path` atomically, mode 0600.
pub fn save(path: &Path, store: &ObjectStore) -> Result<(), VcardError> {
    let mut persistent = store.clone();
    persistent.clear_volatile();
    let state = StateFile {
        format: FORMAT_VERSION,
        store: persistent,
    };
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&state).map_err(|e| {
        VcardError::InvalidState {
            path: path.to_path_buf(),
            reason: format!("cannot serialize: {e}"),
        }
    })?);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        // A leftover temp file from another umask keeps its mode; force it.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&json)?;
        file.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temp);
        return Err(VcardError::io("writing", &temp, e));
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(VcardError::io("renaming over", path, e));
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VcardError::io("syncing directory", &dir, e))?;
    remove_stale_temps(&dir, &name);
    Ok(())
}

/// Removes temporary files that writers killed between creating and renaming them left behind:
/// they hold private keys. Only files of processes that no longer run are touched (their PID is in
/// the name), and only where `/proc` tells which processes run.
fn remove_stale_temps(dir: &Path, name: &str) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid != std::process::id().to_string() && !proc.join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}
