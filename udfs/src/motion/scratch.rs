//! Float buffers the motion kernel reuses instead of allocating.
//!
//! One clip's flow goes through about 15 MB of short-lived float buffers (pyramid
//! levels, normal equations, flow fields), most of them over glibc's mmap threshold.
//! Allocated fresh, each one was mapped, zero-faulted page by page and unmapped again:
//! a fifth of the motion bench's time was in the kernel. A [`Buf`] comes from, and on
//! drop goes back to, a small free list of the thread that drops it. This is a cache of
//! memory only: a buffer handed out has stale contents, which every user overwrites
//! (or asks for zeros with [`Buf::zeroed`]), so nothing computed depends on it.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Most buffers a thread keeps, and most floats they hold together (64 MiB).
const KEEP_BUFFERS: usize = 48;
const KEEP_FLOATS: usize = 16 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A float buffer of a fixed length, recycled on drop.
#[derive(Debug)]
pub struct Buf {
    v: Vec<f32>,
    len: usize,
}

impl Buf {
    /// `len` floats with unspecified (finite, previously written) contents: the caller
    /// writes every element before reading it.
    pub fn uninit(len: usize) -> Self {
        let reused = FREE.with(|free| {
            let mut free = free.borrow_mut();
            // Smallest free buffer that fits, so large ones stay for large requests.
            let best = free.iter().enumerate().filter(|(_, v)| v.len() >= len).min_by_key(|(_, v)| v.len())?.0;
            Some(free.swap_remove(best))
        });
        let v = reused.unwrap_or_else(|| vec![0.0; len]);
        Self { v, len }
    }

    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let mut b = Self::uninit(len);
        b.fill(0.0);
        b
    }

    /// A copy of `src`.
    pub fn copy_of(src: &[f32]) -> Self {
        let mut b = Self::uninit(src.len());
        b.copy_from_slice(src);
        b
    }
}

impl Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.v[..self.len]
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.v[..self.len]
    }
}

impl Clone for Buf {
    fn clone(&self) -> Self {
        Self::copy_of(self)
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        if v.is_empty() {
            return;
        }
        // `try_with`: a buffer dropped while the thread's locals are torn down is freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            let held: usize = free.iter().map(Vec::len).sum();
            if free.len() < KEEP_BUFFERS && held + v.len() <= KEEP_FLOATS {
                free.push(v);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_with_the_asked_length() {
        let a = Buf::zeroed(1000);
        let ptr = a.as_ptr();
        drop(a);
        let mut b = Buf::uninit(600);
        assert_eq!(b.len(), 600);
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is handed out again");
        b.fill(3.0);
        drop(b);
        let z = Buf::zeroed(1000);
        assert!(z.iter().all(|&v| v == 0.0), "zeroed clears stale contents");
        let c = Buf::copy_of(&[1.0, 2.0]);
        assert_eq!(&*c, &[1.0, 2.0]);
    }
}
