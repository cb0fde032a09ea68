//! rumqttc over the card's TLS, with the card's work off the runtime.
//!
//! rumqttc makes its connections itself (TCP, TLS through tokio-rustls, or a Unix socket path)
//! and has no way to take a stream the caller connected; through its own TLS the card's work would
//! run inside rustls's callbacks on the runtime's thread, which on a `current_thread` runtime
//! stops every other task for the card's whole time. So the demo connects the TLS with
//! [`CardConnector`] (the card's work in the blocking pool) and gives rumqttc the plain end of a
//! Unix socket in a private folder (mode 0700): each connection rumqttc opens there becomes one
//! TLS connection to the broker, bytes copied both ways. rumqttc keeps all it does (keep-alive,
//! reconnects with back-off, QoS 1), and any other MQTT client that dials a Unix socket or a TCP
//! port could sit on the same bridge. MQTT crosses the socket in clear, inside this process's own
//! folder; TLS starts at the bridge.

use iotsafe_rustls::CardConnector;
use rustls::pki_types::ServerName;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpStream, UnixListener};

/// The bridge; stops accepting when dropped.
#[derive(Debug)]
pub struct CardTlsBridge {
    socket: PathBuf,
    _folder: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl CardTlsBridge {
    /// Listens on a Unix socket in a new private folder; each connection to it is carried over
    /// a TLS connection to `address` (verified as `server_name`) made with `connector`.
    pub fn start(
        connector: CardConnector,
        address: String,
        server_name: ServerName<'static>,
    ) -> std::io::Result<CardTlsBridge> {
        let folder = tempfile::Builder::new().prefix("iotsafe-mqtt").tempdir()?;
        let socket = folder.path().join("broker.sock");
        let listener = UnixListener::bind(&socket)?;
        let last_error = Arc::new(Mutex::new(None));
        let errors = Arc::clone(&last_error);
        let accept = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let (connector, address, name) =
                    (connector.clone(), address.clone(), server_name.clone());
                let errors = Arc::clone(&errors);
                tokio::spawn(async move {
                    let carried = async {
                        let tcp = TcpStream::connect(&address).await?;
                        let _ = tcp.set_nodelay(true);
                        let mut tls = connector.connect(name, tcp).await?;
                        tokio::io::copy_bidirectional(&mut local, &mut tls).await
                    };
                    if let Err(e) = carried.await {
                        let mut last = iotsafe_core::lock::lock(&errors);
                        *last = Some(format!("TLS to {address}: {e}"));
                    }
                });
            }
        });
        Ok(CardTlsBridge {
            socket,
            _folder: folder,
            accept,
            last_error,
        })
    }

    /// The socket rumqttc dials.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The last TLS failure of a carried connection, if any.
    pub fn last_error(&self) -> Option<String> {
        iotsafe_core::lock::lock(&self.last_error).clone()
    }
}

impl Drop for CardTlsBridge {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
