//! The board: an Arm MPS2 with the AN386 FPGA image (Cortex-M4 with FPU, 25 MHz), as QEMU's
//! `mps2-an386` machine emulates it. Brings up the heap, the millisecond clock and the modem UART,
//! and talks to the host through semihosting: output lines, the exit status, and panics.
//!
//! Memory map (see `memory.x`): code in ZBT SSRAM1 at `0x0000_0000` (4 MiB), data, heap and stack
//! in ZBT SSRAM2&3 at `0x2000_0000` (4 MiB); the peripherals this firmware drives are in
//! `mmio.rs` (UART0 at `0x4000_4000`, the dual timer at `0x4000_2000`); SysTick is in the core's
//! System Control Space.

use core::fmt;

use cortex_m_semihosting::{debug, hprintln};

use crate::mmio::{Block, Registers};
use crate::uart::{CmsdkUart, Tally};
use crate::{clock, heap};

/// The QEMU machine this build is for: AN386 (Cortex-M4F) for `thumbv7em-none-eabihf`, AN385
/// (Cortex-M3, same memory map and peripherals) for `thumbv7m-none-eabi`.
pub const MACHINE: &str = if cfg!(target_abi = "eabihf") {
    "mps2-an386"
} else {
    "mps2-an385"
};
/// The core and APB peripheral clock (`SYSCLK` in QEMU's MPS2 model).
pub const SYSCLK_HZ: u32 = 25_000_000;
/// The modem UART.
pub const MODEM_UART: Block = Block::Uart0;
/// The modem UART's baud rate (QEMU ignores it; real hardware would not).
pub const MODEM_BAUD: u32 = 115_200;
/// The bytes through the modem UART.
pub static MODEM_TALLY: Tally = Tally::new();
/// The network UART: the byte stream to the server (QEMU's second `-serial`). On a real device
/// this is the modem's data connection; here a TCP socket on the host.
pub const NETWORK_UART: Block = Block::Uart1;
/// The bytes through the network UART.
pub static NETWORK_TALLY: Tally = Tally::new();

/// What the board hands the application.
pub struct Board {
    /// The UART wired to the cellular modem.
    pub modem: CmsdkUart,
    /// The UART carrying the network byte stream (unused by the card-only firmware).
    pub network: CmsdkUart,
}

/// Brings the board up: heap first (nothing may allocate before), then the clock, then the
/// modem and network UARTs. Call once; a second call panics (the peripherals are taken).
pub fn init() -> Board {
    heap::init();
    let core = cortex_m::Peripherals::take().expect("the core peripherals, taken once");
    let timer = Registers::take(Block::DualTimer).expect("the dual timer, taken once");
    clock::start(timer, SYSCLK_HZ, core.SYST, SYSCLK_HZ);
    let uart = Registers::take(MODEM_UART).expect("the modem UART, taken once");
    let modem = CmsdkUart::new(uart, SYSCLK_HZ, MODEM_BAUD, &MODEM_TALLY)
        .expect("a divider of at least 16");
    let uart = Registers::take(NETWORK_UART).expect("the network UART, taken once");
    let network = CmsdkUart::new(uart, SYSCLK_HZ, MODEM_BAUD, &NETWORK_TALLY)
        .expect("a divider of at least 16");
    Board { modem, network }
}

/// Writes one line to the host's standard output (semihosting).
pub fn println(args: fmt::Arguments<'_>) {
    hprintln!("{}", args);
}

/// Ends the program: QEMU exits with status 0 when `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a debugger or emulator to take the exit request.
    loop {
        cortex_m::asm::wfi();
    }
}

/// A panic prints where and why, and exits with a failure status, so a test sees it at once
/// instead of waiting for a timeout.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    exit(false)
}

/// The end of a run, the same for every image: the heap's and the stack's high-water marks, the
/// run's time on the board's clock, then `result: ok` (exit 0) or `result: failed: <why>` (exit
/// 1).
pub fn finish(elapsed_ms: u64, outcome: Result<(), impl fmt::Display>) -> ! {
    let heap = crate::heap::stats();
    println(format_args!(
        "heap: peak={} peak_allocator={} in_use={} size={}",
        heap.peak, heap.peak_allocator, heap.in_use, heap.size
    ));
    if let Some((peak, past_window)) = crate::stack::high_water() {
        println(format_args!(
            "stack: peak={peak} window={} past_window={past_window}",
            crate::stack::WINDOW
        ));
    }
    println(format_args!("clock: elapsed_ms={elapsed_ms}"));
    match outcome {
        Ok(()) => {
            println(format_args!("result: ok"));
            exit(true)
        }
        Err(why) => {
            println(format_args!("result: failed: {why}"));
            exit(false)
        }
    }
}
