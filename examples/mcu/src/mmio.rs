//! The board's memory-mapped peripheral register blocks: the one place the firmware reads and
//! writes device registers, and so its one place with `unsafe` for hardware (the other is the
//! allocator glue in `heap.rs`).
//!
//! The unsafety is contained by construction: a [`Registers`] exists only for a [`Block`] that
//! the board really has (its address comes from this module, never from a caller), at most one
//! per block ([`Registers::take`]), and it only touches word-aligned offsets inside its 4 KiB
//! window. The drivers (`uart.rs`, `clock.rs`) are safe code on top.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU8, Ordering};

/// The peripheral blocks the firmware drives, on the MPS2 AN385/AN386 images (AN386 TRM;
/// QEMU: hw/arm/mps2.c). QEMU wires its first `-serial` backend to UART0, the second to UART1
/// (`0x4000_5000`), then UART2..4 (`0x4000_6000`, `0x4000_7000`, `0x4000_9000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// CMSDK APB UART0 at `0x4000_4000`: the modem UART.
    Uart0,
    /// CMSDK APB dual timer at `0x4000_2000`: the free-running clock.
    DualTimer,
    /// CMSDK APB UART1 at `0x4000_5000`: the network link (the TLS byte stream).
    Uart1,
}

impl Block {
    /// The base address of the register block.
    pub const fn base(self) -> usize {
        match self {
            Block::Uart0 => 0x4000_4000,
            Block::DualTimer => 0x4000_2000,
            Block::Uart1 => 0x4000_5000,
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Each block's window: CMSDK APB peripherals decode 4 KiB.
const WINDOW: usize = 0x1000;

/// Which blocks have been taken (one bit per [`Block`]).
static TAKEN: AtomicU8 = AtomicU8::new(0);

/// One peripheral's registers, owned.
pub struct Registers {
    base: usize,
}

impl Registers {
    /// The registers of `block`; `None` when they were taken already.
    pub fn take(block: Block) -> Option<Self> {
        if TAKEN.fetch_or(block.bit(), Ordering::AcqRel) & block.bit() != 0 {
            return None;
        }
        Some(Registers { base: block.base() })
    }

    /// The address of the register at `offset`; panics on an offset outside the block or not
    /// word-aligned (a bug in a driver's constants, never a run-time condition).
    fn address(&self, offset: usize) -> usize {
        assert!(
            offset < WINDOW && offset.is_multiple_of(4),
            "register offset {offset:#x}"
        );
        self.base + offset
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read(&self, offset: usize) -> u32 {
        let address = self.address(offset);
        // SAFETY: `address` is a word-aligned register inside a peripheral block the board
        // always maps (`Block::base`), and this value is the block's only owner (`take`), so the
        // read races with no other code. Device side effects of a read (e.g. a UART's DATA
        // register popping its byte) are the owner's to want.
        unsafe { core::ptr::read_volatile(address as *const u32) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write(&self, offset: usize, value: u32) {
        let address = self.address(offset);
        // SAFETY: as in `read`: a mapped, aligned device register of a block owned only by us.
        unsafe { core::ptr::write_volatile(address as *mut u32, value) }
    }
}
