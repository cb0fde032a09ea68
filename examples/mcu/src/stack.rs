//! The stack's high-water mark: at boot the free stack below the stack pointer is painted with a
//! pattern, and at the end the deepest word no longer holding it tells how deep the stack went.
//! Only a window below the boot stack pointer is painted (painting all 4 MiB of RAM would cost
//! QEMU a noticeable time); a stack that went past it reports the window as a lower bound.
//!
//! `unsafe` here is writing and reading RAM below the stack pointer, which no Rust object owns.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicUsize, Ordering};

/// What unused stack words hold.
const PAINT: u32 = 0x5AA5_C33C;
/// Bytes painted below the boot stack pointer.
pub const WINDOW: usize = 256 * 1024;
/// Left alone below the stack pointer while painting: the painting code's own frames.
const MARGIN: usize = 512;

/// The stack's top (the initial stack pointer) and the lowest painted address, once painted.
static TOP: AtomicUsize = AtomicUsize::new(0);
static BOTTOM: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    /// The initial stack pointer (cortex-m-rt's `link.x`).
    static _stack_start: u32;
    /// The lowest address the stack may use: the end of `.bss` and `.uninit`.
    static _stack_end: u32;
}

/// Paints the window below the current stack pointer. Call first thing in `main`.
pub fn paint() {
    let top = (&raw const _stack_start) as usize;
    let limit = (&raw const _stack_end) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let end = (sp - MARGIN) & !3;
    let bottom = end.saturating_sub(WINDOW).max(limit);
    let mut at = bottom;
    while at < end {
        // SAFETY: `at` is a word-aligned RAM address between the end of the statics and below
        // the stack pointer (with a margin for this function's frame): stack nobody uses now.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
    BOTTOM.store(bottom, Ordering::Relaxed);
    TOP.store(top, Ordering::Relaxed);
}

/// Bytes of stack used at most since [`paint`] (measured from the stack's top), and whether the
/// stack went past the painted window (then the number is a lower bound). `None` before `paint`.
pub fn high_water() -> Option<(usize, bool)> {
    let (top, bottom) = (TOP.load(Ordering::Relaxed), BOTTOM.load(Ordering::Relaxed));
    if top == 0 {
        return None;
    }
    let mut at = bottom;
    // SAFETY: as in `paint`: aligned RAM inside the painted window, read only.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    Some((top - at, at == bottom))
}
