//! Cortex-M firmware that reaches the IoT SAFE applet on the SIM through a cellular modem's UART,
//! for QEMU's `mps2-an386` board (see docs/mcu.md).
//!
//! This first step brings the board up (`board`, `mmio`, `uart`, `clock`, `heap`) and reports
//! it over semihosting as `key: value` lines.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod board;
mod clock;
mod heap;
mod mmio;
mod uart;

use cortex_m_rt::entry;
use embedded_io::{ReadReady, Write};

#[entry]
fn main() -> ! {
    let mut board = board::init();
    let log = &mut |args: core::fmt::Arguments<'_>| board::println(args);
    log(format_args!(
        "board: {} uart0@{:#010x} heap={}",
        board::MACHINE,
        board::MODEM_UART.base(),
        heap::SIZE
    ));
    let text = alloc::string::String::from("AT\r");
    let wrote = board.modem.write_all(text.as_bytes()).is_ok();
    let start = clock::now_ms();
    while clock::now_ms() - start < 100 {}
    let ready = board.modem.read_ready();
    let counts = board.modem.counts();
    let heap = heap::stats();
    log(format_args!(
        "uart: tx={} rx={} wrote={wrote} ready={ready:?}",
        counts.tx, counts.rx
    ));
    log(format_args!(
        "heap: peak={} peak_allocator={} in_use={} size={}",
        heap.peak, heap.peak_allocator, heap.in_use, heap.size
    ));
    log(format_args!("clock: now_ms={}", clock::now_ms()));
    board::exit(wrote)
}
