//! The pin directory: where the filter's maps and links live in bpffs. The
//! maps hold the bans and lists the XDP program enforces, so whoever can
//! write in that directory can replace them (pin a map of their own under a
//! name the daemon adopts). /sys/fs/bpf is often world-writable (mode 1777
//! on some distributions), so the directory must be the daemon's own:
//!
//! ```text
//! missing                         -> created, mode 0700
//! a symlink, not a directory      -> refused
//! owned by another user           -> refused
//! writable by group or others     -> refused (someone else may have pinned objects in it)
//! readable by group or others     -> tightened to 0700, with a warning (older releases made it 0755)
//! ```

use std::{
    fs::{DirBuilder, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::Path,
};

use super::FilterError;

/// Creates `dir` (0700) or checks that an existing one is ours and private.
pub fn prepare(dir: &Path) -> Result<(), FilterError> {
    prepare_as(dir, effective_uid())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn refuse(dir: &Path, reason: String) -> FilterError {
    FilterError::PinDirUnsafe {
        path: dir.to_path_buf(),
        reason,
    }
}

pub(super) fn prepare_as(dir: &Path, uid: u32) -> Result<(), FilterError> {
    let io_error = |source: io::Error| FilterError::PinDir {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error);
        }
        Err(e) => return Err(io_error(e)),
        Ok(meta) => {
            if meta.file_type().is_symlink() {
                return Err(refuse(
                    dir,
                    "is a symbolic link; use the real directory".into(),
                ));
            }
            if !meta.is_dir() {
                return Err(refuse(dir, "is not a directory".into()));
            }
            if meta.uid() != uid {
                return Err(refuse(
                    dir,
                    format!(
                        "is owned by uid {}, not by this daemon's user (uid {uid}); \
                         remove it, or chown it to uid {uid} and chmod it 0700 if its contents are trusted",
                        meta.uid()
                    ),
                ));
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(refuse(
                    dir,
                    format!(
                        "has mode {mode:04o}: others can write in it and may have pinned objects \
                         of their own; remove it (the daemon recreates it, 0700), or chmod it 0700 \
                         if its contents are trusted"
                    ),
                ));
            }
            if mode & 0o077 != 0 {
                log::warn!(
                    "pin directory {} had mode {mode:04o}: made 0700 (only this daemon's user may use its maps)",
                    dir.display()
                );
                std::fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(io_error)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rampart-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_0700_and_others_refused() {
        let base = scratch();
        let uid = effective_uid();
        let dir = base.join("a/pins");
        prepare_as(&dir, uid).unwrap();
        assert_eq!(mode(&dir), 0o700, "created private");
        prepare_as(&dir, uid).unwrap();

        // Another owner (as far as the check knows).
        let err = prepare_as(&dir, uid + 1).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains(&format!("is owned by uid {uid}")), "{err}");

        // World-writable, as /sys/fs/bpf itself may be: refused.
        std::fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let err = prepare_as(&dir, uid).unwrap_err().to_string();
        assert!(
            err.contains("has mode 0777: others can write in it"),
            "{err}"
        );
        std::fs::set_permissions(&dir, Permissions::from_mode(0o770)).unwrap();
        assert!(prepare_as(&dir, uid).is_err(), "group-writable");

        // Only readable by others (an older release's 0755): tightened.
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        prepare_as(&dir, uid).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // A symlink planted where the directory should be.
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = prepare_as(&link, uid).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(prepare_as(&file, uid).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
