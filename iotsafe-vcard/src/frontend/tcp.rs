//! The AT modem on a TCP port (loopback by default): for hosts that reach their modem through a
//! serial-over-IP bridge, and for tests that want no device node.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

use super::at::{AtHandle, AtModem, AtOptions};
use super::{ensure_loopback, sleep_unless_stopped, FrontendHandle, SharedCard};

/// A listening AT modem. One host at a time, as on a serial line; each connection gets a fresh
/// modem (echo back to default), and the logical channels it left open are closed when it goes.
pub struct TcpModem {
    listener: TcpListener,
}

impl TcpModem {
    /// Listens on a loopback address; any other address is refused.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, false)
    }

    /// Listens on `addr`; a non-loopback address only with `allow_remote`.
    pub fn bind_with(addr: SocketAddr, allow_remote: bool) -> io::Result<Self> {
        ensure_loopback(addr, allow_remote)?;
        let listener = TcpListener::bind(addr)?;
        // Non-blocking accept, so the loop sees its stop flag.
        listener.set_nonblocking(true)?;
        Ok(Self { listener })
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves hosts one after the other on this thread until `stop` is raised.
    pub fn serve(&self, card: SharedCard, options: AtOptions, stop: &AtomicBool) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    tracing::info!(%peer, "AT host connected");
                    if let Err(err) = serve_one(stream, &card, &options, stop) {
                        tracing::debug!(%peer, %err, "AT host connection ended");
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    sleep_unless_stopped(options.poll_interval.min(POLL_ACCEPT), stop);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Serves on a background thread.
    pub fn spawn(self, card: SharedCard, options: AtOptions) -> io::Result<AtHandle> {
        FrontendHandle::spawn("iotsafe-at-tcp", move |stop| {
            self.serve(card, options, &stop)
        })
    }
}

/// How often an idle listener looks for a new host.
const POLL_ACCEPT: std::time::Duration = std::time::Duration::from_millis(20);

fn serve_one(
    mut stream: TcpStream,
    card: &SharedCard,
    options: &AtOptions,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(options.poll_interval))?;
    stream.set_write_timeout(Some(options.write_timeout))?;
    let mut modem = AtModem::new(card.clone(), options.clone());
    let result = modem.serve(&mut stream, stop);
    modem.close_all_sessions(stop);
    result
}
