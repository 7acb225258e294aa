//! `[admin]`: the admin listener (metrics, health, the status page).

use std::net::SocketAddr;

use super::{ConfigError, error::Locator, file::FileAdmin};

/// Where the admin listener binds by default: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:9901";

#[derive(Clone, Debug, PartialEq)]
pub struct AdminSettings {
    /// `None`: no admin listener (`bind = "off"`).
    pub bind: Option<SocketAddr>,
    /// Host names answered besides `localhost`, loopback addresses and the
    /// listener's own address (a DNS rebinding page names another host).
    pub allowed_hosts: Vec<String>,
}

/// Most names `allowed_hosts` may list.
const MAX_ALLOWED_HOSTS: usize = 64;

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            bind: DEFAULT_BIND.parse().ok(),
            allowed_hosts: Vec::new(),
        }
    }
}

pub(super) fn admin(loc: &Locator, a: Option<FileAdmin>) -> Result<AdminSettings, ConfigError> {
    let Some(a) = a else {
        return Ok(AdminSettings::default());
    };
    let mut allowed_hosts = Vec::new();
    if let Some(list) = a.allowed_hosts {
        if list.get_ref().len() > MAX_ALLOWED_HOSTS {
            return Err(loc.error(
                list.span(),
                format!("allowed_hosts: at most {MAX_ALLOWED_HOSTS} names"),
            ));
        }
        for h in list.into_inner() {
            let name = h.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(loc.error(
                    h.span(),
                    format!("allowed_hosts: `{name}` is not a host name (letters, digits, '-', '.'; no port)"),
                ));
            }
            allowed_hosts.push(name.to_ascii_lowercase());
        }
    }
    let Some(b) = a.bind else {
        return Ok(AdminSettings {
            allowed_hosts,
            ..AdminSettings::default()
        });
    };
    if b.get_ref() == "off" {
        return Ok(AdminSettings {
            bind: None,
            allowed_hosts,
        });
    }
    let bind = b.get_ref().parse().map_err(|_| {
        loc.error(
            b.span(),
            format!(
                "`{}` is not an address: expected IP:PORT (e.g. {DEFAULT_BIND}) or \"off\"",
                b.get_ref()
            ),
        )
    })?;
    Ok(AdminSettings {
        bind: Some(bind),
        allowed_hosts,
    })
}
