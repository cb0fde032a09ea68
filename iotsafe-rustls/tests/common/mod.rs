//! Test harness: a freshly provisioned in-process virtual card, the test PKI around it, a rustls
//! server, and a byte pump between in-memory client and server connections (no sockets).
#![allow(dead_code)]

use iotsafe_core::{Card, CardConfig, CardStats, Operation};
use iotsafe_vcard::{provision, CardOptions, InProcessTransport, VirtualCard};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::sync::Arc;

/// A provisioned virtual card, opened through the core session, and the PKI files.
pub struct Fixture {
    pub card: Arc<Card>,
    pub ca: CertificateDer<'static>,
    pub device_cert: CertificateDer<'static>,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key_pem: Vec<u8>,
    pub roots: Arc<RootCertStore>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_options(CardOptions::default())
    }

    pub fn with_options(options: CardOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("card-state.json");
        let pki = dir.path().join("pki");
        let report = provision(&state, &pki, options.clone()).expect("provision the vcard");
        let vcard = VirtualCard::open_state(&state, options).expect("open the vcard state");
        let card = Card::open(InProcessTransport::new(vcard), CardConfig::default())
            .expect("open the card session");
        let server_pem = std::fs::read(pki.join("server.pem")).unwrap();
        let server_chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&server_pem)
                .collect::<Result<_, _>>()
                .unwrap();
        let server_key_pem = std::fs::read(pki.join("server.key")).unwrap();
        let ca = CertificateDer::from(report.ca_cert_der.clone());
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        Fixture {
            card: Arc::new(card),
            ca,
            device_cert: CertificateDer::from(report.device_cert_der),
            server_chain,
            server_key_pem,
            roots: Arc::new(roots),
            _dir: dir,
        }
    }

    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(&self.server_key_pem).unwrap()
    }

    /// A verifier that requires a client certificate issued by the test CA.
    pub fn client_verifier(&self, provider: &Arc<CryptoProvider>) -> Arc<dyn ClientCertVerifier> {
        WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
            .build()
            .unwrap()
    }

    /// A software rustls server (ring/aws-lc-rs provider as given) with the test server certificate.
    pub fn server_config(
        &self,
        provider: CryptoProvider,
        client_auth: ClientAuth,
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(provider);
        let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
            ClientAuth::Required => self.client_verifier(&provider),
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::Custom(v) => v,
        };
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), self.server_key())
            .unwrap();
        Arc::new(config)
    }

    pub fn stats(&self) -> CardStats {
        self.card.stats()
    }
}

/// How the test server treats client certificates.
pub enum ClientAuth {
    Required,
    None,
    Custom(Arc<dyn ClientCertVerifier>),
}

/// Which side failed a handshake.
#[derive(Debug)]
pub enum Failure {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Pumps TLS records between the two connections until neither has anything to send. A failing
/// side's alert is still delivered to the other side.
pub fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), Failure> {
    loop {
        let mut moved = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            moved = true;
            server.read_tls(&mut &buf[..]).unwrap();
            if let Err(e) = server.process_new_packets() {
                let mut alert = Vec::new();
                let _ = server.write_tls(&mut alert);
                let _ = client.read_tls(&mut &alert[..]);
                let _ = client.process_new_packets();
                return Err(Failure::Server(e));
            }
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            if buf.is_empty() {
                break;
            }
            moved = true;
            client.read_tls(&mut &buf[..]).unwrap();
            if let Err(e) = client.process_new_packets() {
                let mut alert = Vec::new();
                let _ = client.write_tls(&mut alert);
                let _ = server.read_tls(&mut &alert[..]);
                let _ = server.process_new_packets();
                return Err(Failure::Client(e));
            }
        }
        if !moved {
            return Ok(());
        }
    }
}

/// Handshake, then one application message each way (a TLS 1.3 client-auth refusal only shows
/// after the client believes the handshake is done).
pub fn handshake_and_talk(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), Failure> {
    use std::io::{Read, Write};
    pump(client, server)?;
    client.writer().write_all(b"ping").unwrap();
    pump(client, server)?;
    let mut got = [0u8; 4];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    server.writer().write_all(b"pong").unwrap();
    pump(client, server)?;
    client.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
    Ok(())
}

/// keygen, DH, sign counts of a stats delta.
pub fn ops(stats: &CardStats) -> (u64, u64, u64) {
    (
        stats.count(Operation::GenerateKeyPair),
        stats.count(Operation::Dh),
        stats.count(Operation::Sign),
    )
}

pub fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").unwrap()
}
