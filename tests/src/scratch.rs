//! A test's scratch directory (configuration, certificates, control socket,
//! state file, logs), removed when the guard drops: at the end of the test,
//! and also when it panics, as [`crate::netns`] and [`crate::pins`] clean up
//! theirs. Without it, every failed run (and some passing ones) left its
//! files, an upgrade test's 18 MB log among them, in the temporary
//! directory of the machine.

use std::{
    ops::Deref,
    path::{Path, PathBuf},
};

/// `$TMPDIR/rampart-NAME-PID`, empty when made, removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory for `name` (a leftover of an earlier run
    /// with the same process id is emptied first).
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rampart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_removed_on_drop_and_on_panic() {
        let kept = Scratch::new("scratch-unit");
        std::fs::write(kept.join("f"), b"x").unwrap();
        let path = kept.to_path_buf();
        drop(kept);
        assert!(!path.exists(), "{} left behind", path.display());

        let path = std::panic::catch_unwind(|| {
            let dir = Scratch::new("scratch-unit-panic");
            std::fs::write(dir.join("f"), b"x").unwrap();
            std::panic::panic_any(dir.to_path_buf())
        })
        .unwrap_err()
        .downcast::<PathBuf>()
        .unwrap();
        assert!(!path.exists(), "{} left behind by a panic", path.display());
    }
}
