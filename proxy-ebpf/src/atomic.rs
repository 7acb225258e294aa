//! BPF atomic instructions through inline assembly (compare-and-exchange;
//! the per-source counters are plain stores, `limit.rs` says why).
//!
//! `core::sync::atomic` cannot be used: the bpfel target spec says
//! `atomic-cas: false`, so `compare_exchange`/`fetch_add` do not exist, and
//! `core::intrinsics::atomic_xadd` with a used result is miscompiled by LLVM 22
//! (llvm-project#210280). These emit the instructions directly (kernel >= 5.12;
//! the verifier accepts them on HASH, LRU_HASH and ARRAY values, 8-byte aligned).

/// Compare-and-exchange: if `*ptr == expected`, store `new`. Returns the value
/// that was in `*ptr` before (equal to `expected` on success).
///
/// # Safety
/// `ptr` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
pub unsafe fn cmpxchg(ptr: *mut u64, expected: u64, new: u64) -> u64 {
    let previous: u64;
    // SAFETY: the instruction reads and writes only `*ptr`, which the
    // caller vouches for, and r0, which is declared as its in/out operand.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64({p} + 0, r0, {n})",
            p = in(reg) ptr,
            n = in(reg) new,
            inout("r0") expected => previous,
            options(nostack),
        );
    }
    previous
}

/// Atomic `*ptr |= bits` (no fetch).
///
/// # Safety
/// `ptr` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
pub unsafe fn or(ptr: *mut u64, bits: u64) {
    // SAFETY: the instruction reads and writes only `*ptr`, which the
    // caller vouches for.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) |= {b}",
            p = in(reg) ptr,
            b = in(reg) bits,
            options(nostack),
        );
    }
}
