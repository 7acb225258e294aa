//! `instance = "NAME"`: which daemon of the host a configuration is, so
//! that several run side by side with only `-c` differing. The control
//! socket, the state file, the pin directory and the admin port default
//! to places derived from the name (explicit settings win); the CLI,
//! given the same `-c`, derives the same socket and finds that daemon.
//!
//! Without the key, the name is the configuration file's stem
//! (`/etc/rampart/site-a.toml` is `site-a`), except that `rampart.toml`
//! (the default file) and the built-in configuration are `default`, whose
//! places are the ones rampart always had.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{ConfigError, error::Locator};

/// The instance whose places are the historical defaults.
pub const DEFAULT: &str = "default";
/// The longest name (it goes into paths and a pin directory's name).
const MAX_NAME: usize = 32;
/// The default instance's admin port; a named instance's is derived from
/// its name in the range after it (see [`admin_port`]).
const ADMIN_PORT: u16 = 9901;
const ADMIN_PORTS: u16 = 98;

/// The instance's name: the `instance` key, else the file's stem, else `default`.
pub(super) fn name(
    loc: &Locator,
    key: Option<&Spanned<String>>,
    path: &Path,
) -> Result<String, ConfigError> {
    if let Some(k) = key {
        let n = k.get_ref();
        if !valid(n) {
            return Err(loc.error(
                k.span(),
                format!(
                    "instance: `{n}` is not an instance name (1-{MAX_NAME} of a-z, 0-9, '-' and '_', \
                     starting with a letter or digit)"
                ),
            ));
        }
        return Ok(n.clone());
    }
    Ok(from_file(path))
}

/// The name a file gives when it has no `instance` key.
pub fn from_file(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NAME)
        .collect();
    if cleaned == "rampart" || !valid(&cleaned) {
        DEFAULT.to_string()
    } else {
        cleaned
    }
}

fn valid(n: &str) -> bool {
    (1..=MAX_NAME).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `/run/rampart/control.sock`, or `/run/rampart/NAME/control.sock`.
pub fn socket(name: &str) -> PathBuf {
    per_instance(super::control::DEFAULT_SOCKET, name)
}

/// `/var/lib/rampart/state.json`, or `/var/lib/rampart/NAME/state.json`.
pub fn state_file(name: &str) -> PathBuf {
    per_instance(super::control::DEFAULT_STATE_FILE, name)
}

/// `/sys/fs/bpf/rampart`, or `/sys/fs/bpf/rampart-NAME`.
pub fn pin_dir(name: &str) -> PathBuf {
    let base = proxy_common::pin::PIN_DIR;
    if name == DEFAULT {
        PathBuf::from(base)
    } else {
        PathBuf::from(format!("{base}-{name}"))
    }
}

/// 9901, or a port from 9902 to 9999 fixed by the name (FNV-1a): the same
/// on every start and host. Two names may share one; the second daemon
/// then says so at start (set `[admin] bind` for one of them).
pub fn admin_port(name: &str) -> u16 {
    if name == DEFAULT {
        return ADMIN_PORT;
    }
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    ADMIN_PORT + 1 + (hash % ADMIN_PORTS as u32) as u16
}

/// The places a file leaves to its instance (keys it does not set).
pub(super) struct Unset {
    socket: bool,
    state_file: bool,
    admin_bind: bool,
    pin_dir: bool,
}

impl Unset {
    pub(super) fn of(raw: &super::file::FileConfig) -> Unset {
        let control = raw.control.as_ref();
        Unset {
            socket: control.is_none_or(|c| c.socket.is_none()),
            state_file: control.is_none_or(|c| c.state_file.is_none()),
            admin_bind: raw.admin.as_ref().is_none_or(|a| a.bind.is_none()),
            pin_dir: raw.filter.as_ref().is_none_or(|f| f.pin_dir.is_none()),
        }
    }

    /// Puts the instance's places where the file set none.
    pub(super) fn fill_control(&self, name: &str, control: &mut super::ControlSettings) {
        if self.socket {
            control.socket = socket(name);
        }
        if self.state_file {
            control.state_file = state_file(name);
        }
    }

    pub(super) fn fill(
        &self,
        name: &str,
        control: &mut super::ControlSettings,
        admin: &mut super::AdminSettings,
        filter: Option<&mut super::FilterSettings>,
    ) {
        self.fill_control(name, control);
        if self.admin_bind {
            admin.bind = Some(std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                admin_port(name),
            )));
        }
        if let Some(f) = filter
            && self.pin_dir
        {
            f.pin_dir = pin_dir(name);
        }
    }
}

/// `dir/file` of a default path, with the instance's directory between.
fn per_instance(default: &str, name: &str) -> PathBuf {
    let default = Path::new(default);
    if name == DEFAULT {
        return default.to_path_buf();
    }
    let dir = default.parent().unwrap_or(Path::new("/"));
    dir.join(name).join(default.file_name().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn names_come_from_the_key_or_the_file() {
        assert_eq!(from_file(Path::new("/etc/rampart/rampart.toml")), "default");
        assert_eq!(from_file(Path::new("/etc/rampart/site-a.toml")), "site-a");
        assert_eq!(from_file(Path::new("/etc/rampart/Site.B.toml")), "site-b");
        assert_eq!(from_file(Path::new("<built-in>")), "default");
        let c = |text: &str, file: &str| Config::parse(text, Path::new(file)).unwrap();
        let a = c("", "/etc/rampart/a.toml");
        assert_eq!(a.instance, "a");
        assert_eq!(a.control.socket, Path::new("/run/rampart/a/control.sock"));
        assert_eq!(
            a.control.state_file,
            Path::new("/var/lib/rampart/a/state.json")
        );
        assert_eq!(a.admin.bind.unwrap().port(), admin_port("a"));
        let d = c("instance = \"default\"\n[filter]\n", "/etc/rampart/a.toml");
        assert_eq!(d.control.socket, Path::new("/run/rampart/control.sock"));
        assert_eq!(d.admin.bind.unwrap().port(), 9901);
        assert_eq!(d.filter.unwrap().pin_dir, Path::new("/sys/fs/bpf/rampart"));
        let b = c(
            "instance = \"blue\"\n[filter]\n",
            "/etc/rampart/rampart.toml",
        );
        assert_eq!(
            b.filter.unwrap().pin_dir,
            Path::new("/sys/fs/bpf/rampart-blue")
        );
        // Explicit settings win.
        let e = c(
            "instance = \"blue\"\n[control]\nsocket = \"/tmp/x.sock\"\n[admin]\nbind = \"127.0.0.1:7000\"\n",
            "/etc/rampart/rampart.toml",
        );
        assert_eq!(e.control.socket, Path::new("/tmp/x.sock"));
        assert_eq!(
            e.control.state_file,
            Path::new("/var/lib/rampart/blue/state.json")
        );
        assert_eq!(e.admin.bind.unwrap().port(), 7000);
        // The CLI's view of the file derives the same socket.
        assert_eq!(
            Config::control_of_text("", Path::new("/etc/rampart/a.toml"))
                .unwrap()
                .socket,
            a.control.socket
        );
    }

    #[test]
    fn admin_ports_stay_in_their_range() {
        for n in ["a", "b", "site-a", "blue", "green", "x_1"] {
            assert!((9902..=9999).contains(&admin_port(n)), "{n}");
        }
        assert_ne!(admin_port("blue"), admin_port("green"));
    }

    #[test]
    fn a_bad_name_is_refused_at_its_place() {
        let e = Config::parse("instance = \"Blue Site\"\n", Path::new("rampart.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rampart.toml:1:12: instance: `Blue Site` is not an instance name"),
            "{e}"
        );
    }
}
