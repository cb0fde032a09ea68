//! The AT client a microcontroller runs (`iotsafe-core` built for `embedded-io`, the UART as an
//! `EmbeddedPort`) against the virtual card's AT modem over TCP, on the host: the same session,
//! line and transport code as the firmware, next to the operating system's port. Both do the full
//! workout with the same APDUs.
#![forbid(unsafe_code)]

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::{AtMode, AtOptions, AtTransport, EmbeddedPort};
use iotsafe_core::{Card, CardConfig, CardStats, Operation};
use iotsafe_tests::provisioned;
use iotsafe_tests::workout::full_workout;
use iotsafe_vcard::frontend::at::AtHandle;
use iotsafe_vcard::frontend::at::AtOptions as ModemOptions;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;

/// A TCP stream seen through the `embedded-io` traits a HAL's UART implements: blocking reads
/// and writes, and `read_ready` to poll (a UART's "receive FIFO not empty").
struct TcpUart(TcpStream);

#[derive(Debug)]
struct UartError(io::Error);

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self.0.kind() {
            io::ErrorKind::BrokenPipe => embedded_io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset => embedded_io::ErrorKind::ConnectionReset,
            _ => embedded_io::ErrorKind::Other,
        }
    }
}

impl embedded_io::ErrorType for TcpUart {
    type Error = UartError;
}

impl embedded_io::Read for TcpUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        self.0.read(buf).map_err(UartError)
    }
}

impl embedded_io::ReadReady for TcpUart {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        self.0.set_nonblocking(true).map_err(UartError)?;
        let mut byte = [0u8; 1];
        let ready = match self.0.peek(&mut byte) {
            // A closed stream is "ready": the read then reports the end.
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(UartError(e)),
        };
        self.0.set_nonblocking(false).map_err(UartError)?;
        // A polling loop on a host: give the modem thread the core between polls.
        if matches!(ready, Ok(false)) {
            std::thread::sleep(Duration::from_micros(200));
        }
        ready
    }
}

impl embedded_io::Write for TcpUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        self.0.write(buf).map_err(UartError)
    }

    fn flush(&mut self) -> Result<(), UartError> {
        self.0.flush().map_err(UartError)
    }
}

fn options(mode: AtMode) -> AtOptions {
    AtOptions {
        mode,
        ..AtOptions::default()
    }
}

/// A provisioned card behind the AT modem on a loopback TCP port.
fn modem(dir: &std::path::Path) -> (iotsafe_vcard::ProvisionReport, SocketAddr, AtHandle) {
    let (report, vcard) = provisioned(dir, CardOptions::default());
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let addr = tcp.local_addr().unwrap();
    let handle = tcp
        .spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
        .expect("start the modem");
    (report, addr, handle)
}

fn workout_over(card: Card, report: &iotsafe_vcard::ProvisionReport) -> CardStats {
    let used = full_workout(&card, report);
    card.close().expect("close the channel");
    used
}

#[test]
fn the_embedded_io_port_runs_the_full_workout_with_the_same_apdus_as_the_os_port() {
    for mode in [AtMode::Csim, AtMode::Cgla] {
        let dir = tempfile::tempdir().unwrap();
        let (report, addr, handle) = modem(dir.path());

        let uart = TcpUart(TcpStream::connect(addr).unwrap());
        uart.0.set_nodelay(true).unwrap();
        let transport = AtTransport::new(EmbeddedPort::new(uart), "uart", options(mode))
            .expect("AT over the embedded-io port");
        assert_eq!(
            transport.uses_logical_channel_commands(),
            mode == AtMode::Cgla
        );
        let card = Card::open(transport, CardConfig::default()).expect("open over embedded-io");
        let embedded = workout_over(card, &report);

        let transport = AtTransport::connect_tcp_with(addr, options(mode)).expect("AT over TCP");
        let card = Card::open(transport, CardConfig::default()).expect("open over TCP");
        let os = workout_over(card, &report);

        assert_eq!(embedded.apdus, os.apdus, "{mode:?}: {embedded:?} vs {os:?}");
        for op in [Operation::Sign, Operation::GenerateKeyPair, Operation::Dh] {
            assert_eq!(embedded.count(op), os.count(op), "{mode:?} {op:?}");
            assert_eq!(embedded.count(op), 1, "{mode:?} {op:?}");
        }
        handle.stop().unwrap();
    }
}
