//! The AT modem on a TCP port (loopback by default): for hosts that reach their modem through a
//! serial-over-IP bridge, and for tests that want no device node.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

use super::at::{AtHandle, AtModem, AtOptions, SharedModem};
use super::{ensure_loopback, sleep_unless_stopped, FrontendHandle, SharedCard};

/// A listening AT modem. Every connection is served at once on its own thread, each with a fresh
/// AT parser (echo back to default) in front of the same SIM and the same modem state
/// ([`SharedModem`]): a second host can reset the SIM (`AT+CFUN=1,1`) while the first stays
/// connected. The logical channels a host left open are closed when it goes; a connection the
/// modem drops on purpose ([`AtOptions::drop_every`]) leaves them open for the next connection.
pub struct TcpModem {
    listener: TcpListener,
    modem: SharedModem,
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
        Ok(Self {
            listener,
            modem: SharedModem::new(),
        })
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The modem state its connections share (e.g. to attach an in-process [`super::at::AtModem`]
    /// to the same modem).
    pub fn shared_modem(&self) -> SharedModem {
        self.modem.clone()
    }

    /// Serves hosts on this thread (one more thread per connection) until `stop` is raised; then
    /// waits for every connection to end.
    pub fn serve(&self, card: SharedCard, options: AtOptions, stop: &AtomicBool) -> io::Result<()> {
        std::thread::scope(|scope| {
            let mut connections = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                connections.retain(|c: &std::thread::ScopedJoinHandle<'_, ()>| !c.is_finished());
                match self.listener.accept() {
                    Ok((stream, peer)) => {
                        tracing::info!(%peer, "AT host connected");
                        let (card, options) = (card.clone(), &options);
                        let modem = &self.modem;
                        let spawned = std::thread::Builder::new()
                            .name("iotsafe-at-tcp-host".to_owned())
                            .spawn_scoped(scope, move || {
                                if let Err(err) = serve_one(stream, &card, options, modem, stop) {
                                    tracing::debug!(%peer, %err, "AT host connection ended");
                                }
                            });
                        match spawned {
                            Ok(handle) => connections.push(handle),
                            Err(err) => tracing::warn!(%peer, %err, "no thread for an AT host"),
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
        })
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
    modem: &SharedModem,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(options.poll_interval))?;
    stream.set_write_timeout(Some(options.write_timeout))?;
    let mut at = AtModem::attached(card.clone(), options.clone(), modem);
    let result = at.serve(&mut stream, stop);
    if at.hung_up() {
        tracing::info!("AT connection dropped by the modem (planned)");
        let _ = stream.shutdown(Shutdown::Both);
    }
    at.finish(stop);
    result
}
