//! Shared by the TLS fault and load tests: a provisioned in-process virtual card behind a core
//! session, a software rustls server requiring the card's client certificate, and an in-memory
//! record pump (no sockets).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use iotsafe_core::{Card, CardConfig};
use iotsafe_rustls::{software_provider, IotSafeTls, KxOptions};
use iotsafe_vcard::{provision, CardOptions, InProcessTransport, VirtualCard};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// A provisioned card session and both TLS configurations.
pub struct Tls {
    pub card: Arc<Card>,
    pub vcard: Arc<Mutex<VirtualCard>>,
    pub transport: InProcessTransport,
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
    _dir: tempfile::TempDir,
}

pub fn setup(options: CardOptions) -> Tls {
    setup_with_kx(options, KxOptions::default())
}

/// [`setup`] with the card key exchange configured by `kx`.
pub fn setup_with_kx(options: CardOptions, kx: KxOptions) -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    let pki = dir.path().join("pki");
    let report = provision(&state, &pki, options.clone()).unwrap();
    let vcard = VirtualCard::open_state(&state, options).unwrap();
    let transport = InProcessTransport::new(vcard);
    let card = Arc::new(Card::open(transport.clone(), CardConfig::default()).unwrap());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(report.ca_cert_der)).unwrap();
    let roots = Arc::new(roots);
    // No resumption: every connection is a full handshake, with a card signature.
    let tls = IotSafeTls::builder(Arc::clone(&card))
        .kx_options(kx)
        .resumption(false)
        .build()
        .unwrap();
    let client = Arc::new(tls.client_config(Arc::clone(&roots)).unwrap());
    let provider = Arc::new(software_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .unwrap();
    let server_pem = std::fs::read(pki.join("server.pem")).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&server_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key =
        PrivateKeyDer::from_pem_slice(&std::fs::read(pki.join("server.key")).unwrap()).unwrap();
    let server = Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    Tls {
        card,
        vcard: transport.card(),
        transport,
        client,
        server,
        _dir: dir,
    }
}

/// Moves records until neither side has anything to send; the first error of either side ends it.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    loop {
        let mut moved = false;
        while client.wants_write() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
            if buf.is_empty() {
                break;
            }
            moved = true;
            server.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        while server.wants_write() {
            let mut buf = Vec::new();
            server.write_tls(&mut buf).map_err(|e| e.to_string())?;
            if buf.is_empty() {
                break;
            }
            moved = true;
            client.read_tls(&mut &buf[..]).map_err(|e| e.to_string())?;
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !moved {
            return Ok(());
        }
    }
}

/// One full TLS 1.3 connection with client authentication by the card, and one message each way
/// (a refused client certificate only shows after the client believes the handshake is done).
pub fn connect(tls: &Tls) -> Result<(), String> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut client =
        ClientConnection::new(Arc::clone(&tls.client), name).map_err(|e| format!("new: {e}"))?;
    let mut server = ServerConnection::new(Arc::clone(&tls.server)).unwrap();
    pump(&mut client, &mut server)?;
    client.writer().write_all(b"ping").unwrap();
    pump(&mut client, &mut server)?;
    let mut got = [0u8; 4];
    server
        .reader()
        .read_exact(&mut got)
        .map_err(|e| e.to_string())?;
    if &got != b"ping" {
        return Err("server read the wrong bytes".into());
    }
    server.writer().write_all(b"pong").unwrap();
    pump(&mut client, &mut server)?;
    client
        .reader()
        .read_exact(&mut got)
        .map_err(|e| e.to_string())?;
    if &got != b"pong" {
        return Err("client read the wrong bytes".into());
    }
    if server.peer_certificates().map(|c| c.len()) != Some(1) {
        return Err("no client certificate".into());
    }
    Ok(())
}
