//! What the firmware asks the host through semihosting besides output and exit: the wall-clock
//! time (`SYS_TIME`, for certificate validity) and the command line (`SYS_GET_CMDLINE`, QEMU's
//! `-semihosting-config arg=…`). A real device would take time from the network (the modem's
//! `AT+CCLK`, NTP) and its settings from flash.
//!
//! `unsafe` here is the semihosting call itself: a `BKPT 0xAB` trap with a parameter block the
//! host reads and writes (the Arm semihosting specification, v2).
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::cell::Cell;

use cortex_m_semihosting::{nr, syscall};

/// Seconds since 1970-01-01 UTC on the host, if it answers.
pub fn unix_time() -> Option<u64> {
    // SAFETY: SYS_TIME takes no parameter (the block is ignored) and writes no memory.
    let seconds = unsafe { syscall(nr::TIME, &0usize) };
    // The call answers -1 on failure; 0 is no plausible time either.
    (seconds != usize::MAX && seconds != 0).then_some(seconds as u64)
}

/// The command line the host passes, in `buf`: its words after the program's name. Empty when
/// the host passes none, or one that is not UTF-8 or does not fit.
pub fn arguments(buf: &mut [u8]) -> impl Iterator<Item = &str> {
    let line = command_line(buf).unwrap_or_default();
    line.split_ascii_whitespace().skip(1)
}

fn command_line(buf: &mut [u8]) -> Option<&str> {
    // The parameter block: the buffer's address and size; the host writes the line (with a NUL)
    // and puts its length in the second word, so the block is written through the shared
    // reference the call takes: cells.
    let block = [Cell::new(buf.as_mut_ptr() as usize), Cell::new(buf.len())];
    // SAFETY: the block names `buf`, which outlives the call and which the host writes at most
    // `buf.len()` bytes into (the specification: the call fails if the line does not fit).
    let failed = unsafe { syscall(nr::GET_CMDLINE, &block) } != 0;
    let len = block[1].get();
    if failed || len > buf.len() {
        return None;
    }
    core::str::from_utf8(&buf[..len]).ok()
}
