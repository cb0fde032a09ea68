//! A polled driver for the Arm CMSDK APB UART, the UART of the MPS2 FPGA images (AN385/AN386
//! have five, UART0 at `0x4000_4000`), implementing the `embedded-io` 0.6 byte traits so any
//! code written against them (the AT layer, later iotsafe-core's transport) runs over it.
//!
//! Registers (CMSDK APB UART TRM; QEMU: hw/char/cmsdk-apb-uart.c), all 32 bits wide:
//! `DATA` +0x00 (one byte in or out), `STATE` +0x04 (bit 0 TX buffer full, bit 1 RX buffer full,
//! bit 2 TX overrun, bit 3 RX overrun; overrun bits clear by writing 1), `CTRL` +0x08 (bit 0 TX
//! enable, bit 1 RX enable), `BAUDDIV` +0x10 (PCLK / baud rate, at least 16).
//!
//! Safe code: the registers are reached through [`crate::mmio::Registers`].

use core::sync::atomic::{AtomicU32, Ordering};

use crate::mmio::Registers;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_RX_OVERRUN: u32 = 1 << 3;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
/// The smallest divider the UART accepts.
const MIN_BAUDDIV: u32 = 16;

/// What can go wrong on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartError {
    /// A byte arrived while the previous one was still unread, so one was lost (the flag is
    /// cleared when this is reported; the next read goes on with the bytes that follow).
    Overrun,
}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// Bytes moved through one UART since it was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes written to the line.
    pub tx: u32,
    /// Bytes read from the line.
    pub rx: u32,
}

/// Where a UART counts its bytes: a static, so that the counts can be read while the UART is
/// owned by the card session's transport (or after it was dropped).
#[derive(Debug)]
pub struct Tally {
    tx: AtomicU32,
    rx: AtomicU32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// Nothing counted yet.
    pub const fn new() -> Tally {
        Tally {
            tx: AtomicU32::new(0),
            rx: AtomicU32::new(0),
        }
    }

    /// Bytes moved so far.
    pub fn counts(&self) -> Counts {
        Counts {
            tx: self.tx.load(Ordering::Relaxed),
            rx: self.rx.load(Ordering::Relaxed),
        }
    }
}

/// One CMSDK APB UART, owned: polled, 8N1, no interrupts.
pub struct CmsdkUart {
    regs: Registers,
    tally: &'static Tally,
}

impl CmsdkUart {
    /// Sets the UART's divider for `baud` from the peripheral clock `pclk_hz` and enables
    /// transmit and receive. `None` when the divider would be below 16 (the baud rate is too
    /// high for the clock).
    /// Its bytes are counted in `tally`.
    pub fn new(regs: Registers, pclk_hz: u32, baud: u32, tally: &'static Tally) -> Option<Self> {
        let divider = pclk_hz.checked_div(baud)?;
        if divider < MIN_BAUDDIV {
            return None;
        }
        regs.write(CTRL, 0);
        regs.write(BAUDDIV, divider);
        regs.write(STATE, STATE_RX_OVERRUN);
        regs.write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        Some(CmsdkUart { regs, tally })
    }

    fn state(&self) -> u32 {
        self.regs.read(STATE)
    }

    /// Reports (and clears) a lost byte.
    fn check_overrun(&self) -> Result<(), UartError> {
        if self.state() & STATE_RX_OVERRUN != 0 {
            self.regs.write(STATE, STATE_RX_OVERRUN);
            return Err(UartError::Overrun);
        }
        Ok(())
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = UartError;
}

impl embedded_io::ReadReady for CmsdkUart {
    /// Whether a byte is waiting, i.e. whether [`embedded_io::Read::read`] would return at once.
    fn read_ready(&mut self) -> Result<bool, UartError> {
        self.check_overrun()?;
        Ok(self.state() & STATE_RX_FULL != 0)
    }
}

impl embedded_io::WriteReady for CmsdkUart {
    /// Whether the transmit buffer takes a byte now, i.e. whether [`embedded_io::Write::write`]
    /// would return at once.
    fn write_ready(&mut self) -> Result<bool, UartError> {
        Ok(self.state() & STATE_TX_FULL == 0)
    }
}

impl embedded_io::Read for CmsdkUart {
    /// Blocks until a byte is there (callers with a deadline ask [`embedded_io::ReadReady`]
    /// first), then returns every byte that is there, up to `buf.len()`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.state() & STATE_RX_FULL == 0 {
            self.check_overrun()?;
            core::hint::spin_loop();
        }
        let mut n = 0;
        while n < buf.len() && self.state() & STATE_RX_FULL != 0 {
            buf[n] = self.regs.read(DATA) as u8;
            n += 1;
        }
        self.tally.rx.fetch_add(n as u32, Ordering::Relaxed);
        Ok(n)
    }
}

impl embedded_io::Write for CmsdkUart {
    /// Blocks until the transmit buffer takes a byte, then hands it every byte it takes
    /// without waiting, up to `buf.len()`.
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.state() & STATE_TX_FULL != 0 {
            core::hint::spin_loop();
        }
        let mut n = 0;
        while n < buf.len() && self.state() & STATE_TX_FULL == 0 {
            self.regs.write(DATA, u32::from(buf[n]));
            n += 1;
        }
        self.tally.tx.fetch_add(n as u32, Ordering::Relaxed);
        Ok(n)
    }

    /// Waits until the transmit buffer has handed its byte to the line.
    fn flush(&mut self) -> Result<(), UartError> {
        while self.state() & STATE_TX_FULL != 0 {
            core::hint::spin_loop();
        }
        Ok(())
    }
}
