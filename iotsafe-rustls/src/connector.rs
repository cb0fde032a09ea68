//! An async TLS client connect that never runs card work on the runtime (feature `tokio`).
//!
//! rustls calls the card synchronously: key generation inside `ClientConnection::new`, the DH and
//! the signature inside `process_new_packets`. [`CardConnector::connect`] waits for its turn on an
//! ephemeral slot without blocking any thread (the card's queue wakes it), makes the connection
//! and drives each step of the handshake that may reach the card in tokio's blocking pool, and
//! does the network I/O itself, asynchronously. The runtime's threads only ever move bytes, so a
//! `current_thread` runtime keeps polling every other task, and any number of connects on one
//! card all succeed, each in its turn.
//!
//! The result is a plain [`tokio_rustls::client::TlsStream`]: after the handshake no card is
//! involved, and reading and writing cost what tokio-rustls costs. Dropping the connect future
//! at any point gives the slot back (at once while it waits or does I/O; when its blocking step
//! ends, while one runs), and leaves the card session usable.
//!
//! The runtime needs its timer (`enable_time`, part of `enable_all` and of `#[tokio::main]`): a
//! turn held by another program is looked at again every few milliseconds.

use crate::kx::{self, CardKxGroup};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::io;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

/// Connects TLS clients whose key and ECDHE are on the card, for async code. Made from the
/// `ClientConfig` [`crate::IotSafeTls::client_config`] builds (or any config: without a card key
/// exchange group it still keeps the signature off the runtime).
///
/// ```no_run
/// # async fn demo(tls: iotsafe_rustls::IotSafeTls, roots: rustls::RootCertStore)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// let config = Arc::new(tls.client_config(roots)?);
/// let connector = iotsafe_rustls::CardConnector::from(config);
/// let tcp = tokio::net::TcpStream::connect("broker.example:8883").await?;
/// let tls = connector.connect("broker.example".try_into()?, tcp).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CardConnector {
    config: Arc<ClientConfig>,
    group: Option<&'static CardKxGroup>,
}

impl std::fmt::Debug for CardConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardConnector")
            .field("card_ecdhe", &self.group.is_some())
            .finish_non_exhaustive()
    }
}

impl From<Arc<ClientConfig>> for CardConnector {
    fn from(config: Arc<ClientConfig>) -> Self {
        let group = CardKxGroup::of_config(&config);
        CardConnector { config, group }
    }
}

impl CardConnector {
    /// The configuration it connects with.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// A TLS handshake with `domain` over `stream`, the card's work off the runtime (see the
    /// module docs). Wrap it in a timeout to bound it, as with tokio-rustls.
    pub async fn connect<IO>(
        &self,
        domain: ServerName<'static>,
        mut stream: IO,
    ) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let config = Arc::clone(&self.config);
        let name = domain.clone();
        let conn = match self.group {
            Some(group) => {
                let (_card, turn) = group.turn_async().await.map_err(tls_error)?;
                blocking(move || {
                    kx::with_prepared(group, turn, || ClientConnection::new(config, name))
                })
                .await?
            }
            None => blocking(move || ClientConnection::new(config, name)).await?,
        };
        let conn = handshake(conn.map_err(tls_error)?, &mut stream).await?;
        // tokio-rustls makes its streams only from connections it started itself; it lets the
        // caller change that connection before its first step, so it gets ours, handshake done
        // (it then only writes what is pending: nothing). The one it started and dropped is a
        // software-only client hello that never reached the network.
        let connector = tokio_rustls::TlsConnector::from(idle_config()?);
        connector
            .connect_with(domain, stream, move |c| *c = conn)
            .await
    }
}

/// Drives the handshake to its end: bytes move here, every step that may reach the card runs in
/// the blocking pool.
async fn handshake<IO>(mut conn: ClientConnection, stream: &mut IO) -> io::Result<ClientConnection>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut incoming = vec![0u8; 16 * 1024];
    loop {
        flush(&mut conn, stream).await?;
        if !conn.is_handshaking() {
            return Ok(conn);
        }
        let n = stream.read(&mut incoming).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the TLS handshake",
            ));
        }
        let mut received = &incoming[..n];
        while !received.is_empty() {
            conn.read_tls(&mut received)?;
            let (back, processed) = blocking(move || {
                let processed = conn.process_new_packets().map(drop);
                (conn, processed)
            })
            .await?;
            conn = back;
            if let Err(e) = processed {
                // The alert rustls queued, best effort: the error is what the caller needs.
                let _ = flush(&mut conn, stream).await;
                return Err(tls_error(e));
            }
        }
    }
}

/// Writes out everything rustls has queued.
async fn flush<IO>(conn: &mut ClientConnection, stream: &mut IO) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    if !out.is_empty() {
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Runs `f` in tokio's blocking pool, as code that may block on the card.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(move || crate::runtime::blocking_allowed(f))
        .await
        .map_err(io::Error::other)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A software-only client configuration, for the connection tokio-rustls starts and we replace.
fn idle_config() -> io::Result<Arc<ClientConfig>> {
    static IDLE: OnceLock<Result<Arc<ClientConfig>, rustls::Error>> = OnceLock::new();
    let made = IDLE.get_or_init(|| {
        let provider = Arc::new(crate::provider::software_provider());
        let builder =
            ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
        let config = builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    made.clone().map_err(tls_error)
}
