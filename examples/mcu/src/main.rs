//! Cortex-M firmware that reaches the IoT SAFE applet on the SIM through a cellular modem's UART,
//! for QEMU's `mps2-an386` board (see docs/mcu.md).
//!
//! The board modules (`board`, `mmio`, `uart`, `clock`, `heap`) bring the hardware up; `at` and `app`
//! speak to the modem over any `embedded-io` port with a millisecond clock. Everything reported
//! goes to the host through semihosting as `key: value` lines, and the exit status says whether
//! the applet answered 9000.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod app;
mod at;
mod board;
mod clock;
mod heap;
mod mmio;
mod uart;

use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    let board = board::init();
    let log = &mut |args: core::fmt::Arguments<'_>| board::println(args);
    log(format_args!(
        "board: {} uart0@{:#010x} heap={}",
        board::MACHINE,
        board::MODEM_UART.base(),
        heap::SIZE
    ));

    let started = clock::now_ms();
    let mut modem = at::Modem::new(board.modem, clock::now_ms, app::DEADLINE_MS);
    let outcome = app::run(&mut modem, log);
    let elapsed = clock::now_ms() - started;

    let counts = modem.port().counts();
    let heap = heap::stats();
    log(format_args!("uart: tx={} rx={}", counts.tx, counts.rx));
    log(format_args!(
        "heap: peak={} peak_allocator={} in_use={} size={}",
        heap.peak, heap.peak_allocator, heap.in_use, heap.size
    ));
    log(format_args!("clock: elapsed_ms={elapsed}"));
    match outcome {
        Ok(report) => {
            log(format_args!(
                "result: ok channel={} sw={:04X}",
                report.channel, report.select_sw
            ));
            board::exit(true)
        }
        Err(e) => {
            log(format_args!("result: failed: {e}"));
            board::exit(false)
        }
    }
}
