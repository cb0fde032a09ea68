//! Cortex-M firmware that drives the IoT SAFE applet on the SIM through a cellular modem's UART
//! with iotsafe-core built without `std`, on QEMU's `mps2-an386` board (see docs/mcu.md).
//!
//! The board (the `iotsafe_mcu` library: `board`, `mmio`, `uart`, `clock`, `heap`) brings the
//! hardware up; `app` runs the card session over the UART. Everything reported goes to the host through
//! semihosting as `key: value` lines, and the exit status says whether every step succeeded.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod app;

use core::time::Duration;

use cortex_m_rt::entry;
use iotsafe_mcu::{board, clock, heap, stack};

#[entry]
fn main() -> ! {
    stack::paint();
    let board = board::init();
    // The session's deadlines and time counts run on the board's clock.
    iotsafe_core::clock::set(|| Duration::from_millis(clock::now_ms()));
    let log = &mut |args: core::fmt::Arguments<'_>| board::println(args);
    log(format_args!(
        "board: {} uart0@{:#010x} heap={}",
        board::MACHINE,
        board::MODEM_UART.base(),
        heap::SIZE
    ));

    let started = clock::now_ms();
    let outcome = app::run(board.modem, &board::MODEM_TALLY, log);
    let elapsed = clock::now_ms() - started;

    let counts = board::MODEM_TALLY.counts();
    log(format_args!("uart: tx={} rx={}", counts.tx, counts.rx));
    board::finish(elapsed, outcome)
}
