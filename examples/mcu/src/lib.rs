//! The board support both firmware images share, for QEMU's MPS2 boards (see docs/mcu.md): the
//! heap, the millisecond clock, the UARTs, the register blocks, semihosting (output, exit,
//! time, command line), and the panic handler.
//!
//! - `iotsafe-mcu` (`src/main.rs`): the card session alone over the modem UART.
//! - `iotsafe-mcu-tls` (`src/bin/tls/`): a TLS 1.3 client whose key and ECDHE are on the card,
//!   its bytes on a second UART.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod board;
pub mod clock;
pub mod heap;
pub mod mmio;
pub mod semihost;
pub mod stack;
pub mod uart;
