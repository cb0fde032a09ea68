//! The heap (`alloc`'s `Vec`, `String`, `Box`), and its high-water mark.
//!
//! An `embedded-alloc` linked-list first-fit heap over a static array in RAM, wrapped so every
//! allocation and free also updates two counts: the bytes callers hold now, and the most they
//! ever held at once ([`Stats::peak`]). The allocator's own view of its high-water mark
//! (including what it rounds up for alignment and its block headers) is kept too
//! ([`Stats::peak_allocator`]), read after each allocation.
//!
//! `unsafe` here is what Rust requires of any global allocator (`GlobalAlloc` is an unsafe
//! trait) and of handing the heap its memory once; see the SAFETY notes.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// Bytes of RAM given to the heap.
pub const SIZE: usize = 64 * 1024;

/// The heap's memory. Only the allocator touches it, after [`init`].
static mut MEMORY: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];

#[global_allocator]
static HEAP: PeakHeap = PeakHeap {
    heap: LlffHeap::empty(),
    in_use: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    peak_allocator: AtomicUsize::new(0),
};

/// Set by the first [`init`].
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// A heap that remembers its high-water mark.
struct PeakHeap {
    heap: LlffHeap,
    in_use: AtomicUsize,
    peak: AtomicUsize,
    peak_allocator: AtomicUsize,
}

/// The heap's counts.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Bytes of RAM the heap manages ([`SIZE`]).
    pub size: usize,
    /// Bytes callers hold now (the sum of the sizes they asked for).
    pub in_use: usize,
    /// The most bytes callers held at once.
    pub peak: usize,
    /// The most bytes the allocator had handed out at once, by its own count (sizes rounded up
    /// to its block granularity).
    pub peak_allocator: usize,
}

/// Gives the heap its memory; must run before anything allocates. Later calls do nothing.
pub fn init() {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return;
    }
    let start = (&raw mut MEMORY) as usize;
    // SAFETY: `MEMORY` is `SIZE` bytes of RAM that nothing else refers to (it is private to
    // this module and only its address is taken here), and the `INITIALIZED` flag makes this
    // the only call, so the heap gets it once, for the rest of the program.
    unsafe { HEAP.heap.init(start, SIZE) }
}

/// The heap's counts now.
pub fn stats() -> Stats {
    Stats {
        size: SIZE,
        in_use: HEAP.in_use.load(Ordering::Relaxed),
        peak: HEAP.peak.load(Ordering::Relaxed),
        peak_allocator: HEAP.peak_allocator.load(Ordering::Relaxed),
    }
}

// SAFETY: every method forwards to `LlffHeap`, a correct `GlobalAlloc`, with the caller's own
// arguments; the counting around it does not touch the memory.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let ptr = unsafe { self.heap.alloc(layout) };
        if !ptr.is_null() {
            let now = self.in_use.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
            self.peak_allocator
                .fetch_max(self.heap.used(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract: `ptr` came from this
        // allocator with this `layout`.
        unsafe { self.heap.dealloc(ptr, layout) };
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}
