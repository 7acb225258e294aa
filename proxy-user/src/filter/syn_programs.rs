//! The SYN-cookie programs of the object: `rampart_syn` and `rampart_synack`
//! (XDP, tail-called by `rampart`) and `rampart_ack` (tc ingress), loaded
//! beside the filter, and handles on them for BPF_PROG_TEST_RUN.

use aya::{
    Ebpf,
    programs::{SchedClassifier, Xdp},
};
use proxy_common::pin;

use super::{Filter, FilterError};

/// Loads the three programs and fills `syn_tail`; the reason SYN cookies
/// cannot run if not.
pub(super) fn load(ebpf: &mut Ebpf) -> Result<(), String> {
    load_syn(ebpf)?;
    load_ack(ebpf)
}

impl Filter {
    /// Another loaded XDP program of the object by name (`rampart_syn`,
    /// `rampart_synack`), for BPF_PROG_TEST_RUN.
    pub fn xdp_program(&self, name: &str) -> Result<&Xdp, FilterError> {
        let p = self
            .ebpf
            .program(name)
            .ok_or(FilterError::Program(aya::programs::ProgramError::NotLoaded))?;
        p.try_into().map_err(FilterError::Program)
    }

    /// The loaded SYN-cookie tc program, for BPF_PROG_TEST_RUN.
    pub fn ack_program(&self) -> Result<&SchedClassifier, FilterError> {
        let p = self
            .ebpf
            .program(pin::ACK_PROGRAM)
            .ok_or(FilterError::Program(aya::programs::ProgramError::NotLoaded))?;
        p.try_into().map_err(FilterError::Program)
    }
}

/// Loads `rampart_syn` and `rampart_synack` and puts them where `rampart`
/// and `rampart_syn` tail-call them; the reason they cannot run if not.
fn load_syn(ebpf: &mut Ebpf) -> Result<(), String> {
    let mut fds = Vec::new();
    for name in [pin::SYN_PROGRAM, pin::SYNACK_PROGRAM] {
        let program: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("the object has no `{name}` program"))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| e.to_string())?;
        program
            .load()
            .map_err(|e| format!("the kernel refused the SYN-cookie program {name}: {e}"))?;
        fds.push(
            program
                .fd()
                .map_err(|e| e.to_string())?
                .try_clone()
                .map_err(|e| e.to_string())?,
        );
    }
    let map = ebpf
        .map_mut(pin::SYN_TAIL)
        .ok_or_else(|| format!("the object has no `{}` map", pin::SYN_TAIL))?;
    let mut tail = aya::maps::ProgramArray::try_from(map).map_err(|e| e.to_string())?;
    for (slot, fd) in fds.iter().enumerate() {
        tail.set(slot as u32, fd, 0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Loads the SYN-cookie tc program; the reason it cannot run if not.
fn load_ack(ebpf: &mut Ebpf) -> Result<(), String> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(pin::ACK_PROGRAM)
        .ok_or_else(|| format!("the object has no `{}` program", pin::ACK_PROGRAM))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    program
        .load()
        .map_err(|e| format!("the kernel refused the SYN-cookie tc program: {e}"))
}
