//! Memory for brotli's encoder, kept per worker thread.
//!
//! The brotli crate allocates its tables for each encoder (hundreds of KiB: the hash table,
//! the ring buffer, the command buffer) and frees them at its end; glibc gives blocks that
//! large back to the kernel, so the next response page-faulted them in again, zeroed by the
//! kernel and then by brotli. Measured through the proxy bench at quality 4, that made a
//! 20 KiB page cost 1.26 ms of CPU to compress against 0.21 ms in a loop that reused the
//! heap. Blocks of [`MIN_POOLED`] bytes or more are kept here instead, at most
//! [`PER_SIZE`] of each size and [`MAX_BYTES`] in all per thread, and refilled with their
//! default value when reused (brotli expects fresh memory to be default-filled).

use brotli::enc::combined_alloc::BrotliAlloc;
use brotli::{Allocator, SliceWrapper, SliceWrapperMut};
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;

/// Smaller blocks come from the heap as usual (malloc keeps those).
pub const MIN_POOLED: usize = 64 * 1024;
/// Free blocks kept per element type and length.
pub const PER_SIZE: usize = 4;
/// Bytes kept per thread at most.
pub const MAX_BYTES: usize = 32 << 20;

/// The allocator handed to brotli's encoder.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pooled;

/// A block of memory brotli works in.
pub struct Mem<T>(Box<[T]>);

impl<T> Default for Mem<T> {
    fn default() -> Self {
        Mem(Vec::new().into_boxed_slice())
    }
}

impl<T> SliceWrapper<T> for Mem<T> {
    fn slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> SliceWrapperMut<T> for Mem<T> {
    fn slice_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

#[derive(Default)]
struct Free {
    blocks: HashMap<(TypeId, usize), Vec<Box<dyn Any>>>,
    bytes: usize,
}

thread_local! {
    static FREE: RefCell<Free> = RefCell::new(Free::default());
}

fn bytes_of<T>(len: usize) -> usize {
    len.saturating_mul(std::mem::size_of::<T>())
}

impl<T: Clone + Default + 'static> Allocator<T> for Pooled {
    type AllocatedMemory = Mem<T>;

    fn alloc_cell(&mut self, len: usize) -> Mem<T> {
        let size = bytes_of::<T>(len);
        if size >= MIN_POOLED {
            let kept = FREE.with_borrow_mut(|f| {
                let b = f.blocks.get_mut(&(TypeId::of::<T>(), len))?.pop()?;
                f.bytes -= size;
                Some(b)
            });
            if let Some(b) = kept.and_then(|b| b.downcast::<Box<[T]>>().ok()) {
                let mut b = *b;
                b.fill(T::default());
                return Mem(b);
            }
        }
        Mem(vec![T::default(); len].into_boxed_slice())
    }

    fn free_cell(&mut self, m: Mem<T>) {
        let size = bytes_of::<T>(m.0.len());
        if size < MIN_POOLED {
            return;
        }
        FREE.with_borrow_mut(|f| {
            if f.bytes + size > MAX_BYTES {
                return;
            }
            let list = f.blocks.entry((TypeId::of::<T>(), m.0.len())).or_default();
            if list.len() < PER_SIZE {
                list.push(Box::new(m.0));
                f.bytes += size;
            }
        });
    }
}

impl BrotliAlloc for Pooled {}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        FREE.with_borrow(|f| f.bytes)
    }

    #[test]
    fn large_blocks_come_back_default_filled() {
        let mut a = Pooled;
        let before = kept();
        let mut m: Mem<u32> = a.alloc_cell(MIN_POOLED / 4);
        m.slice_mut().fill(7);
        let ptr = m.slice().as_ptr();
        a.free_cell(m);
        assert_eq!(kept(), before + MIN_POOLED);
        let again: Mem<u32> = a.alloc_cell(MIN_POOLED / 4);
        assert_eq!(again.slice().as_ptr(), ptr, "the same block");
        assert!(again.slice().iter().all(|&x| x == 0));
        assert_eq!(kept(), before);
        // Another type of the same byte size is another block.
        let other: Mem<u16> = a.alloc_cell(MIN_POOLED / 2);
        assert_ne!(other.slice().as_ptr() as *const u32, ptr);
    }

    #[test]
    fn small_blocks_are_not_kept() {
        let mut a = Pooled;
        let before = kept();
        let m: Mem<u8> = a.alloc_cell(100);
        assert_eq!(m.slice().len(), 100);
        a.free_cell(m);
        assert_eq!(kept(), before);
    }
}
