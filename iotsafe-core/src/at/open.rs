//! Opening an [`AtTransport`] on the operating system's streams: a serial port, a tty file, a TCP
//! connection; each can be opened again when the modem's port drops.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use super::options::AtOptions;
use super::os_port::TtyFile;
use super::AtTransport;
use crate::prelude::*;
use crate::transport::TransportError;

impl AtTransport<Box<dyn serialport::SerialPort>> {
    /// Opens a serial port (8N1, no flow control) with default options. A pty path works too.
    pub fn open_serial(path: &str, baud: u32) -> Result<Self, TransportError> {
        Self::open_serial_with(path, baud, AtOptions::default())
    }

    /// Opens a serial port with `options`.
    pub fn open_serial_with(
        path: &str,
        baud: u32,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let timeout = options.command_timeout;
        let open = {
            let path = path.to_string();
            move || {
                serialport::new(&path, baud)
                    .timeout(timeout)
                    .open()
                    .map_err(io::Error::from)
            }
        };
        let port = open()?;
        Ok(AtTransport::new(port, path, options)?.with_reopen(open))
    }
}

impl AtTransport<TtyFile> {
    /// Opens a terminal device file directly (raw mode, `poll` deadlines), e.g. a pty slave.
    pub fn open_tty(path: impl AsRef<Path>, options: AtOptions) -> Result<Self, TransportError> {
        let path = path.as_ref().to_path_buf();
        let label = path.display().to_string();
        let port = TtyFile::open(&path)?;
        Ok(AtTransport::new(port, label, options)?.with_reopen(move || TtyFile::open(&path)))
    }
}

impl AtTransport<TcpStream> {
    /// Connects to a modem (or an emulator) that speaks AT over TCP, with default options.
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> Result<Self, TransportError> {
        Self::connect_tcp_with(addr, AtOptions::default())
    }

    /// Connects over TCP with `options`.
    pub fn connect_tcp_with(
        addr: impl ToSocketAddrs,
        options: AtOptions,
    ) -> Result<Self, TransportError> {
        let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
        let open = move || {
            let stream = TcpStream::connect(&addrs[..])?;
            // One AT line per write: without this, Nagle delays each small command.
            stream.set_nodelay(true)?;
            // A peer that stops reading must not block a write forever.
            stream.set_write_timeout(Some(Duration::from_secs(5)))?;
            Ok::<_, io::Error>(stream)
        };
        let stream = open()?;
        let label = stream
            .peer_addr()
            .map(|a| format!("tcp://{a}"))
            .unwrap_or_else(|_| String::from("tcp"));
        Ok(AtTransport::new(stream, label, options)?.with_reopen(open))
    }
}
