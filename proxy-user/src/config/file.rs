//! The configuration file as written: serde structs that mirror the TOML,
//! with spans kept on every value a later check may reject. Nothing outside
//! `config/` sees these types; [`super::Config`] is the validated form.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub filter: Option<FileFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFilter {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interfaces: Vec<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub pin_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    pub pps: Option<Spanned<FileLimit>>,
    pub syn: Option<Spanned<FileLimit>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub track_sources: Option<bool>,
    pub maps: Option<FileMapSizes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimit {
    pub rate: Spanned<i64>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMapSizes {
    pub sources: Option<Spanned<i64>>,
    pub bans: Option<Spanned<i64>>,
    pub allow: Option<Spanned<i64>>,
    pub block_ranges: Option<Spanned<i64>>,
    pub block_addrs: Option<Spanned<i64>>,
}
