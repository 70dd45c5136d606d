//! The global allocator: glibc's `malloc`, with over-aligned blocks made from it too.
//!
//! Rust's `System` allocator hands a block aligned to more than 16 bytes to
//! `posix_memalign`. glibc serves that by taking a larger chunk and splitting off what lies
//! before and after the aligned part, each time; its per-thread cache is never used. tokio
//! allocates one such block for every socket it registers (its `ScheduledIo` is aligned to
//! 128 bytes so two never share a cache line), and a request to gunicorn's sync workers
//! opens a new upstream socket each time: `posix_memalign` and its `free` were about 800 of
//! the 29,000 user-space instructions of such a request (callgrind,
//! `benches/proxy/instructions.sh`). Here an over-aligned block is a `malloc` of its size
//! plus its alignment, aligned inside, with the address `malloc` gave kept in the word just
//! before it for `free`: small ones come from the thread cache like any other block.
//!
//! Hand-written, not a crate: mimalloc, the usual replacement, keeps memory that
//! `malloc_trim` cannot return (README, "Reverse proxy"); everything but over-aligned blocks
//! goes to `System` unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// What `malloc` guarantees on x86-64 and aarch64 glibc; blocks aligned to no more than
/// this go to `System` as they are.
const MALLOC_ALIGN: usize = 16;

/// Alignments above this (pages and beyond: none in staticd's hot paths) keep going to
/// `posix_memalign`, where over-allocating by the alignment would waste more than it saves.
const MAX_INLINE_ALIGN: usize = 4096;

/// See the module documentation.
pub struct Allocator;

/// Whether `layout` is made here rather than by `System`.
fn ours(layout: Layout) -> bool {
    layout.align() > MALLOC_ALIGN && layout.align() <= MAX_INLINE_ALIGN
}

unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !ours(layout) {
            return unsafe { System.alloc(layout) };
        }
        let align = layout.align();
        let Some(total) = layout.size().checked_add(align) else {
            return std::ptr::null_mut();
        };
        let raw = unsafe { libc::malloc(total) } as *mut u8;
        if raw.is_null() {
            return raw;
        }
        // The first aligned address at least one word past `raw`: `raw` is 16-aligned and
        // `align` at least 32, so it is at most `raw + align`, and `size` bytes fit after it.
        let at = (raw as usize + std::mem::size_of::<usize>() + align - 1) & !(align - 1);
        let ptr = unsafe { raw.add(at - raw as usize) };
        unsafe { (ptr as *mut *mut u8).sub(1).write(raw) };
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !ours(layout) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        unsafe { libc::free((ptr as *mut *mut libc::c_void).sub(1).read()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !ours(layout) {
            return unsafe { System.alloc_zeroed(layout) };
        }
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ours(layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Rare (over-aligned blocks are fixed-size structures): a new block and a copy.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let to = unsafe { self.alloc(new) };
        if !to.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, to, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment up to a page, at sizes around it: the block is aligned, writable
    /// over its whole size (and zeroed when asked), survives a realloc with its bytes, and
    /// is freed through the address `malloc` gave (glibc aborts on any other).
    #[test]
    fn over_aligned_blocks_are_aligned_whole_and_freed() {
        let a = Allocator;
        let mut align = 32;
        while align <= 8192 {
            for size in [1, 8, align - 8, align, align + 1, 3 * align, 10_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xA5, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                    let q = a.realloc(p, layout, size * 2);
                    assert_eq!(q as usize % align, 0);
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|&b| b == 0xA5));
                    a.dealloc(q, Layout::from_size_align(size * 2, align).unwrap());
                }
            }
            align *= 2;
        }
    }

    /// Ordinary blocks are `System`'s: what they hold survives a realloc.
    #[test]
    fn ordinary_blocks_pass_through() {
        let a = Allocator;
        let layout = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            p.write_bytes(7, 24);
            let q = a.realloc(p, layout, 4096);
            assert!(std::slice::from_raw_parts(q, 24).iter().all(|&b| b == 7));
            a.dealloc(q, Layout::from_size_align(4096, 8).unwrap());
        }
    }
}
