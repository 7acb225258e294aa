//! The pinned `new_sources` map: the new-source budget's settings (written
//! here) and attack mode (written by the program), read by `rampart stats`
//! and `/metrics` (docs/kernel-tier.md, "New sources: a budget, and attack
//! mode").

use std::path::Path;

use aya::maps::{Array, MapData};
use proxy_common::{
    new_sources::{KEY, NewSources},
    pin,
};

use super::{FilterError, maps::open};
use crate::config;

/// A handle on `new_sources`.
pub struct NewSourceMap {
    map: Array<MapData, NewSources>,
}

impl NewSourceMap {
    /// Opens the map pinned in `dir`.
    pub fn open(dir: &Path) -> Result<NewSourceMap, FilterError> {
        Ok(NewSourceMap {
            map: open(dir, pin::NEW_SOURCES)?,
        })
    }

    /// The settings and the program's state.
    pub fn get(&self) -> Result<NewSources, FilterError> {
        self.map
            .get(&KEY, 0)
            .map_err(FilterError::map(pin::NEW_SOURCES))
    }

    /// Puts `settings` in force, keeping the budget's state and attack
    /// mode. A packet between the read and the write may have moved them:
    /// at worst one new source more is admitted, or attack mode ends a
    /// moment early (it starts again at the next drop).
    pub fn write(&mut self, settings: &config::NewSources) -> Result<(), FilterError> {
        let was = self.get()?;
        let hold = u64::try_from(settings.hold.as_nanos()).unwrap_or(u64::MAX);
        let value = was.with(settings.rate, settings.burst, hold);
        if value == was {
            return Ok(());
        }
        self.map
            .set(KEY, value, 0)
            .map_err(FilterError::map(pin::NEW_SOURCES))
    }
}
