//! `[admin]`: the admin listener (metrics, health, the status page).

use std::net::SocketAddr;

use super::{ConfigError, error::Locator, file::FileAdmin};

/// Where the admin listener binds by default: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:9901";

#[derive(Clone, Debug, PartialEq)]
pub struct AdminSettings {
    /// `None`: no admin listener (`bind = "off"`).
    pub bind: Option<SocketAddr>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            bind: DEFAULT_BIND.parse().ok(),
        }
    }
}

pub(super) fn admin(loc: &Locator, a: Option<FileAdmin>) -> Result<AdminSettings, ConfigError> {
    let Some(a) = a else {
        return Ok(AdminSettings::default());
    };
    let Some(b) = a.bind else {
        return Ok(AdminSettings::default());
    };
    if b.get_ref() == "off" {
        return Ok(AdminSettings { bind: None });
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
    Ok(AdminSettings { bind: Some(bind) })
}
