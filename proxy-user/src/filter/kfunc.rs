//! Linking the kfunc the tc program calls, which aya 0.14 cannot do.
//!
//! The program calls `bpf_sk_assign_tcp_reqsk` as if it were a helper with
//! the number [`KFUNC_SK_ASSIGN_TCP_REQSK`] (`proxy-ebpf/src/kfunc.rs`).
//! Before the object is handed to aya, every such call instruction in its
//! code sections is rewritten into a kfunc call: `src_reg` becomes
//! `BPF_PSEUDO_KFUNC_CALL` and the immediate the function's BTF id in the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`), which is what libbpf
//! does for an `extern ... __ksym` declaration. aya leaves such calls alone
//! (it relocates only `BPF_PSEUDO_CALL`s). Upstream aya has since learnt
//! to resolve kfuncs (aya-rs/aya#1372); this goes away with it.
//!
//! If the kernel has no such kfunc (before 6.9, or without
//! `CONFIG_SYN_COOKIES`), nothing is rewritten and the tc program is not
//! loaded: SYN cookies stay off and say why.

use aya_obj::btf::{Btf, BtfKind};
use proxy_common::syncookie::KFUNC_SK_ASSIGN_TCP_REQSK;

/// The kfunc the tc program calls.
pub const KFUNC: &str = "bpf_sk_assign_tcp_reqsk";

const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL | BPF_K
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const SHT_PROGBITS: u32 = 1;
const SHF_EXECINSTR: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum KfuncError {
    #[error("the kernel's BTF (/sys/kernel/btf/vmlinux) cannot be read: {0}")]
    Btf(String),
    #[error("the kernel has no `{KFUNC}` (Linux 6.9 or later with CONFIG_SYN_COOKIES)")]
    Missing,
    #[error("the BPF object is not a little-endian ELF64 file")]
    NotElf,
    #[error("the BPF object calls no `{KFUNC}` (built without SYN cookies?)")]
    NoCall,
}

/// An object with its kfunc calls linked, 8-byte aligned as aya wants it.
pub struct Linked {
    words: Vec<u64>,
    len: usize,
    /// Call sites rewritten.
    pub calls: usize,
}

impl Linked {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes, and u8 has
        // no alignment or validity requirements.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
}

/// The BTF id of [`KFUNC`] in the running kernel.
pub fn kernel_id() -> Result<u32, KfuncError> {
    let btf = Btf::from_sys_fs().map_err(|e| KfuncError::Btf(e.to_string()))?;
    btf.id_by_type_name_kind(KFUNC, BtfKind::Func)
        .map_err(|_| KfuncError::Missing)
}

/// `object` with every placeholder call rewritten into a call of the kfunc
/// whose BTF id is `id`.
pub fn link(object: &[u8], id: u32) -> Result<Linked, KfuncError> {
    let mut words = vec![0u64; object.len().div_ceil(8)];
    // SAFETY: the vector has room for `object.len()` bytes; any bytes are valid u64s.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), object.len()) };
    bytes.copy_from_slice(object);
    let mut calls = 0;
    for (start, size) in code_sections(bytes)? {
        let end = start.checked_add(size).filter(|&e| e <= bytes.len());
        let Some(end) = end else {
            return Err(KfuncError::NotElf);
        };
        for insn in bytes[start..end].chunks_exact_mut(8) {
            let imm = u32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            // A helper call (src_reg 0, dst_reg 0, no offset) to the placeholder.
            if insn[0] == BPF_CALL
                && insn[1] == 0
                && insn[2..4] == [0, 0]
                && imm == KFUNC_SK_ASSIGN_TCP_REQSK
            {
                insn[1] = BPF_PSEUDO_KFUNC_CALL << 4;
                insn[4..8].copy_from_slice(&id.to_le_bytes());
                calls += 1;
            }
        }
    }
    if calls == 0 {
        return Err(KfuncError::NoCall);
    }
    Ok(Linked {
        words,
        len: object.len(),
        calls,
    })
}

/// Offsets and sizes of the executable sections of a little-endian ELF64 file.
fn code_sections(elf: &[u8]) -> Result<Vec<(usize, usize)>, KfuncError> {
    let bytes = |o: usize, n: usize| elf.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| bytes(o, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| bytes(o, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| {
        bytes(o, 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(KfuncError::NotElf);
    }
    let shoff = u64_at(0x28).ok_or(KfuncError::NotElf)? as usize;
    let entsize = u16_at(0x3a).ok_or(KfuncError::NotElf)?;
    let count = u16_at(0x3c).ok_or(KfuncError::NotElf)?;
    if entsize < 0x40 {
        return Err(KfuncError::NotElf);
    }
    let mut out = Vec::new();
    for i in 0..count {
        let sh = i
            .checked_mul(entsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or(KfuncError::NotElf)?;
        let (Some(kind), Some(flags)) =
            (u32_at(sh.saturating_add(4)), u64_at(sh.saturating_add(8)))
        else {
            return Err(KfuncError::NotElf);
        };
        if kind == SHT_PROGBITS && flags & SHF_EXECINSTR != 0 {
            let offset = u64_at(sh.saturating_add(0x18)).ok_or(KfuncError::NotElf)? as usize;
            let size = u64_at(sh.saturating_add(0x20)).ok_or(KfuncError::NotElf)? as usize;
            out.push((offset, size));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_object_has_exactly_the_placeholder_calls_rewritten() {
        let object = crate::filter::object::FILTER;
        let linked = link(object, 0x1234).expect("the filter calls the kfunc");
        assert!(linked.calls >= 1, "{} calls", linked.calls);
        let (a, b) = (object, linked.bytes());
        assert_eq!(a.len(), b.len());
        assert_eq!(b.as_ptr() as usize % 8, 0, "aligned for aya");
        let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        // Per call: the register byte and at most the 4 immediate bytes.
        assert!(
            changed.len() <= linked.calls * 5,
            "{} bytes changed",
            changed.len()
        );
        for &i in &changed {
            let insn = i - i % 8;
            assert_eq!(b[insn], BPF_CALL);
            assert_eq!(b[insn + 1], 0x20);
            assert_eq!(&b[insn + 4..insn + 8], &0x1234u32.to_le_bytes());
        }
        // Linking twice finds nothing left to link.
        assert!(matches!(link(b, 0x1234), Err(KfuncError::NoCall)));
    }

    #[test]
    fn bad_objects_are_refused() {
        assert!(matches!(
            link(b"not an elf file", 1),
            Err(KfuncError::NotElf)
        ));
        let mut truncated = crate::filter::object::FILTER[..0x40].to_vec();
        truncated[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(link(&truncated, 1), Err(KfuncError::NotElf)));
    }
}
