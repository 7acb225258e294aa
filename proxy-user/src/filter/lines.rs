//! An mmapable array map of 64-byte lines mapped into this process, read
//! and written as atomic u64 words: the bit filters in front of the LRU
//! (`known.rs`) and of the drop lists (`listed.rs`) are built through it.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::AtomicU64,
};

use aya::maps::MapData;

use super::FilterError;

pub use proxy_common::bit_filter::LINE_WORDS;

/// The values of one mmapable array of lines, mapped read-write.
pub struct MappedLines {
    /// Keeps the map (and so the mapping's object) alive.
    _map: MapData,
    words: NonNull<AtomicU64>,
    /// u64 words mapped (the array's values; the mapping is page-rounded).
    len: usize,
    mapped: usize,
    /// Lines in the array.
    lines: usize,
}

// SAFETY: the mapping is shared memory accessed only through `AtomicU64`s;
// `MappedLines` owns it and unmaps it once, on drop.
unsafe impl Send for MappedLines {}
// SAFETY: as above: `&self` methods only hand out the atomics.
unsafe impl Sync for MappedLines {}

impl MappedLines {
    /// Maps `data`, the map `name`: an mmapable array of 64-byte values.
    pub fn of(data: MapData, name: &str) -> Result<MappedLines, FilterError> {
        let info = data.info().map_err(FilterError::map(name))?;
        let lines = info.max_entries() as usize;
        if info.value_size() as usize != LINE_WORDS * 8 || lines == 0 {
            return Err(FilterError::Map {
                name: name.into(),
                source: aya::maps::MapError::InvalidValueSize {
                    size: LINE_WORDS * 8,
                    expected: info.value_size() as usize,
                },
            });
        }
        let len = lines * LINE_WORDS;
        let page = 4096;
        let mapped = (len * 8).div_ceil(page) * page;
        // SAFETY: a shared read-write mapping of an mmapable array map's
        // values (the kernel refuses a length past them, and a map without
        // BPF_F_MMAPABLE); it is unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(FilterError::Map {
                name: name.into(),
                source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "mmap",
                    io_error: std::io::Error::last_os_error(),
                }),
            });
        }
        let words = NonNull::new(ptr.cast::<AtomicU64>()).expect("mmap returned a mapping");
        Ok(MappedLines {
            _map: data,
            words,
            len,
            mapped,
            lines,
        })
    }

    /// Lines in the array.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Every word of every line.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `len` u64s of a live mapping, page-aligned; shared with
        // the kernel, so only accessed atomically.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), self.len) }
    }
}

impl Drop for MappedLines {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `of`, unmapped once.
        unsafe {
            libc::munmap(self.words.as_ptr().cast(), self.mapped);
        }
    }
}
