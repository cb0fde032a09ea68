//! A TLS server on loopback for tests that run clients in other processes: rustls, TLS 1.3, a
//! client certificate from the test CA required; each connection reads one line and answers
//! `ok <line>`. A thread per connection; stops when dropped.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The server; stops accepting when dropped.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    /// Serves with the provisioned PKI in `pki` (`server.pem`, `server.key`, `ca.pem`).
    pub fn start(pki: &Path) -> EchoServer {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.join("server.pem"))
                .expect("server.pem")
                .collect::<Result<_, _>>()
                .expect("server certificate");
        let key = PrivateKeyDer::from_pem_file(pki.join("server.key")).expect("server.key");
        let roots = roots(&pki.join("ca.pem")).expect("ca.pem");
        let provider = Arc::new(iotsafe_rustls::software_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .expect("client verifier");
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        config.send_tls13_tickets = 0;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let config = Arc::clone(&config);
                        std::thread::spawn(move || {
                            let _ = tcp.set_nonblocking(false);
                            let _ = tcp.set_read_timeout(Some(Duration::from_secs(60)));
                            let Ok(conn) = ServerConnection::new(config) else {
                                return;
                            };
                            let mut tls = BufReader::new(StreamOwned::new(conn, tcp));
                            let mut line = String::new();
                            if tls.read_line(&mut line).is_ok() && !line.is_empty() {
                                let _ = tls.get_mut().write_all(format!("ok {line}").as_bytes());
                                tls.get_mut().conn.send_close_notify();
                                let _ = tls.get_mut().flush();
                            }
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        EchoServer { addr, stop }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One client connection to an [`EchoServer`] at `server` (name `localhost`): the handshake, then
/// `line` each way.
pub fn talk(config: &Arc<ClientConfig>, server: &str, line: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(server).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tls = BufReader::new(StreamOwned::new(conn, tcp));
    tls.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = String::new();
    tls.read_line(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if answer != format!("ok {line}\n") {
        return Err(format!("the server answered {answer:?}"));
    }
    Ok(())
}

/// The roots in a PEM file.
pub fn roots(ca_pem: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(ca_pem).map_err(|e| e.to_string())? {
        roots
            .add(ca.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(roots)
}
