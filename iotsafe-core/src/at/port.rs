//! The byte stream a modem sits behind, as the AT client needs it: reads bounded by a deadline,
//! and whole writes. The operating system's streams (serial ports, ttys, TCP) are in `os_port`
//! (feature `at`); any `embedded_io` UART is [`EmbeddedPort`] (feature `embedded-io`).

use core::time::Duration;

use crate::transport::TransportError;

/// A byte stream to a modem whose reads can time out.
pub trait AtPort: Send {
    /// One read of what the modem sent, waiting at most `timeout`: `Ok(0)` when nothing came in
    /// time, [`TransportError::Disconnected`] when the stream is closed. Returning more than
    /// `buf.len()` is a bug of the port; the caller clamps it.
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, TransportError>;

    /// Writes all of `bytes` and flushes them out.
    fn write_all_out(&mut self, bytes: &[u8]) -> Result<(), TransportError>;
}

#[cfg(feature = "embedded-io")]
pub use self::embedded::EmbeddedPort;

#[cfg(feature = "embedded-io")]
mod embedded {
    use super::AtPort;
    use crate::clock;
    use crate::prelude::*;
    use crate::transport::TransportError;
    use core::time::Duration;
    use embedded_io::{Read, ReadReady, Write};

    /// A UART (any `embedded_io` byte stream that can say whether a read would block) as an
    /// [`AtPort`]. Deadlines are measured with [`crate::clock`]: set the firmware's clock with
    /// `clock::set` first; until then every read fails at once with
    /// [`TransportError::NoClock`] (it could not time out).
    #[derive(Debug)]
    pub struct EmbeddedPort<U> {
        uart: U,
    }

    impl<U: Read + ReadReady + Write + Send> EmbeddedPort<U> {
        /// Wraps `uart`.
        pub fn new(uart: U) -> Self {
            EmbeddedPort { uart }
        }

        /// The UART back.
        pub fn into_inner(self) -> U {
            self.uart
        }
    }

    fn port_error(what: &str, err: impl embedded_io::Error) -> TransportError {
        match err.kind() {
            embedded_io::ErrorKind::BrokenPipe
            | embedded_io::ErrorKind::ConnectionReset
            | embedded_io::ErrorKind::NotConnected => TransportError::Disconnected,
            kind => TransportError::Port(format!("{what}: {kind:?}")),
        }
    }

    impl<U: Read + ReadReady + Write + Send> AtPort for EmbeddedPort<U> {
        fn read_within(
            &mut self,
            buf: &mut [u8],
            timeout: Duration,
        ) -> Result<usize, TransportError> {
            let deadline = clock::Deadline::after(timeout)?;
            loop {
                if self.uart.read_ready().map_err(|e| port_error("UART", e))? {
                    return match self.uart.read(buf) {
                        Ok(0) if !buf.is_empty() => Err(TransportError::Disconnected),
                        Ok(n) => Ok(n),
                        Err(e) => Err(port_error("UART read", e)),
                    };
                }
                if deadline.has_passed() {
                    return Ok(0);
                }
                core::hint::spin_loop();
            }
        }

        fn write_all_out(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
            self.uart
                .write_all(bytes)
                .map_err(|e| port_error("UART write", e))?;
            self.uart.flush().map_err(|e| port_error("UART flush", e))
        }
    }
}

#[cfg(all(test, feature = "embedded-io"))]
mod tests;
