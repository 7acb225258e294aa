//! Errors of the kernel tier, each naming the object or interface involved.

use std::{io, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "no BPF filesystem at /sys/fs/bpf and mounting one failed (try `mount -t bpf bpf /sys/fs/bpf` as root)"
    )]
    NoBpffs,
    #[error("creating the pin directory {}: {source}", path.display())]
    PinDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pin directory {}: {reason}", path.display())]
    PinDirUnsafe { path: PathBuf, reason: String },
    #[error("loading the XDP object (needs root or CAP_BPF + CAP_NET_ADMIN): {0}")]
    Load(#[from] aya::EbpfError),
    #[error("loading the XDP program into the kernel: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("attaching to {iface} in {mode} mode: {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("pinned link {}: {reason}", path.display())]
    PinLink { path: PathBuf, reason: String },
    #[error(
        "{what} can only be changed by the process that loaded the program (the daemon: `rampart log level`)"
    )]
    NotOwner { what: String },
    #[error("the XDP program's log records: {0}")]
    Records(#[from] aya_log::Error),
    #[error("map {name} is not pinned under {} (is the filter loaded? `rampart run` loads it)", dir.display())]
    NotPinned { name: String, dir: PathBuf },
}

impl FilterError {
    pub fn map(name: &str) -> impl FnOnce(aya::maps::MapError) -> FilterError + '_ {
        move |source| FilterError::Map {
            name: name.to_string(),
            source,
        }
    }
}
