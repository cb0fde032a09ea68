//! TLS 1.3 with the card: client configs from `iotsafe-rustls`, trust anchors from PEM files, one
//! handshake over tokio with a report of what was negotiated and what the card did.

use crate::error::CliError;
use crate::format::{millis, stats_json, stats_text};
use crate::timeline::{NetKind, RecordedIo, Timeline, HANDSHAKE, TCP_CONNECT};
use iotsafe_core::{Card, CardStats, ObjectRef, Operation};
use iotsafe_rustls::IotSafeTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Trust anchors from a PEM file (every certificate in it).
pub fn load_roots(path: &Path) -> Result<RootCertStore, CliError> {
    let what = format!("loading the CA certificates from {}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| CliError::new(&what, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::new(&what, e))?;
    if certs.is_empty() {
        return Err(CliError::new(&what, "no PEM certificate in the file")
            .hint("pass a PEM CA certificate with --ca"));
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(CliError::new(&what, "no usable CA certificate in the file"));
    }
    Ok(roots)
}

/// A rustls client config whose CertificateVerify and ECDHE run on `card`, TLS 1.3 only, no
/// resumption (every handshake proves possession of the card key), trusting `roots`.
pub fn card_client_config(
    card: Arc<Card>,
    key: Option<ObjectRef>,
    certificate: Option<&std::path::Path>,
    roots: RootCertStore,
) -> Result<ClientConfig, CliError> {
    let what = "setting up TLS with the card";
    let mut builder = IotSafeTls::builder(card).resumption(false);
    if let Some(key) = key {
        builder = builder.device_key(key);
    }
    if let Some(path) = certificate {
        let chain = iotsafe_rustls::read_pem_chain(path).map_err(|e| CliError::new(what, e))?;
        builder = builder.certificate_chain(path.display().to_string(), chain);
    }
    let tls = builder.build().map_err(|e| {
        CliError::new(what, e)
            .hint("`iotsafe cert` shows whether the certificate on the card matches its key")
    })?;
    tls.client_config(roots).map_err(|e| CliError::new(what, e))
}

/// What one handshake negotiated and what it cost the card.
#[derive(Debug, Clone)]
pub struct HandshakeReport {
    /// Server address.
    pub address: String,
    /// "TLSv1.3".
    pub version: String,
    /// "TLS13_AES_128_GCM_SHA256".
    pub cipher_suite: String,
    /// "secp256r1".
    pub group: String,
    /// Whether the key-exchange group is the card's (ECDHE on the card).
    pub group_on_card: bool,
    /// Full, resumed, with HelloRetryRequest.
    pub kind: String,
    /// Subject of the server's certificate.
    pub server_subject: Option<String>,
    /// Card counters of the handshake.
    pub card: CardStats,
    /// TCP connect + TLS handshake.
    pub total: Duration,
}

impl HandshakeReport {
    /// Signatures the card made.
    pub fn card_signatures(&self) -> u64 {
        self.card.count(Operation::Sign)
    }
    /// Key pairs the card generated.
    pub fn card_keygens(&self) -> u64 {
        self.card.count(Operation::GenerateKeyPair)
    }
    /// DH computations on the card.
    pub fn card_dh(&self) -> u64 {
        self.card.count(Operation::Dh)
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "version": self.version,
            "cipher_suite": self.cipher_suite,
            "group": self.group,
            "group_on_card": self.group_on_card,
            "kind": self.kind,
            "server_subject": self.server_subject,
            "card_signatures": self.card_signatures(),
            "card_key_generations": self.card_keygens(),
            "card_dh": self.card_dh(),
            "card_apdus": self.card.apdus,
            "time_in_card_ms": self.card.time_in_card.as_secs_f64() * 1000.0,
            "total_ms": self.total.as_secs_f64() * 1000.0,
            "card": stats_json(&self.card),
        })
    }

    /// Text form, indented.
    pub fn to_text(&self, indent: &str) -> String {
        let share = if self.total.is_zero() {
            0.0
        } else {
            100.0 * self.card.time_in_card.as_secs_f64() / self.total.as_secs_f64()
        };
        let mut out = format!(
            "{indent}server:        {}{}\n{indent}protocol:      {}\n{indent}cipher suite:  {}\n{indent}group:         {}{}\n{indent}handshake:     {}\n{indent}card:          {} signature(s), {} key generation(s), {} ECDH, {} APDUs\n{indent}time:          {} in the card of {} total ({share:.0}%)\n",
            self.address,
            self.server_subject
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            self.version,
            self.cipher_suite,
            self.group,
            if self.group_on_card { " (ECDHE on the card)" } else { " (ECDHE on the host)" },
            self.kind,
            self.card_signatures(),
            self.card_keygens(),
            self.card_dh(),
            self.card.apdus,
            millis(self.card.time_in_card),
            millis(self.total),
        );
        out.push_str(&format!("{indent}card operations:\n"));
        out.push_str(&stats_text(&self.card, &format!("{indent}  ")));
        out
    }
}

/// The server name to verify: `--server-name`, else the host part of `address`.
pub fn server_name_for(
    address: &str,
    explicit: Option<&str>,
) -> Result<ServerName<'static>, CliError> {
    let host = match explicit {
        Some(name) => name.to_string(),
        None => host_of(address).to_string(),
    };
    ServerName::try_from(host.clone()).map_err(|_| {
        CliError::new(
            "reading the server name",
            format!("{host:?} is not a DNS name or IP address"),
        )
        .hint("--server-name NAME")
    })
}

/// The host part of `HOST:PORT` (IPv6 in brackets allowed).
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address)
}

/// Connects to `address` and runs the handshake; the card counters of `card` are measured around
/// it (so nothing else should use the card meanwhile).
pub async fn handshake(
    config: Arc<ClientConfig>,
    card: &Card,
    address: &str,
    server_name: ServerName<'static>,
) -> Result<(TlsStream<TcpStream>, HandshakeReport), CliError> {
    let before = card.stats();
    let started = Instant::now();
    let tcp = connect_tcp(address).await?;
    let target = Target {
        card,
        address,
        server_name,
    };
    handshake_over(config, target, tcp, before, started).await
}

/// [`handshake`], recorded into `timeline`: the TCP connect (a network event and the phase
/// [`TCP_CONNECT`]), every read and write of TLS bytes on the socket, and the phase
/// [`HANDSHAKE`]. The card's APDUs reach the timeline through the card's trace sink.
pub async fn handshake_recorded(
    config: Arc<ClientConfig>,
    card: &Card,
    address: &str,
    server_name: ServerName<'static>,
    timeline: &Arc<Timeline>,
) -> Result<(TlsStream<RecordedIo<TcpStream>>, HandshakeReport), CliError> {
    let before = card.stats();
    let started = Instant::now();
    let tcp = {
        let _phase = timeline.phase(TCP_CONNECT);
        let tcp = connect_tcp(address).await;
        timeline.network(NetKind::Connect, started, Instant::now(), 0);
        tcp?
    };
    let _phase = timeline.phase(HANDSHAKE);
    let io = RecordedIo::new(tcp, Arc::clone(timeline));
    let target = Target {
        card,
        address,
        server_name,
    };
    handshake_over(config, target, io, before, started).await
}

async fn connect_tcp(address: &str) -> Result<TcpStream, CliError> {
    let tcp = TcpStream::connect(address).await.map_err(|e| {
        CliError::new(format!("connecting to {address}"), e)
            .hint("check the address and that the server is running")
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Who a handshake is with and which card makes it.
struct Target<'a> {
    card: &'a Card,
    address: &'a str,
    server_name: ServerName<'static>,
}

/// The TLS part of a handshake over a connected `io`; `before` and `started` were taken before
/// the TCP connect, which the report's total includes.
async fn handshake_over<IO>(
    config: Arc<ClientConfig>,
    target: Target<'_>,
    io: IO,
    before: CardStats,
    started: Instant,
) -> Result<(TlsStream<IO>, HandshakeReport), CliError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Target {
        card,
        address,
        server_name,
    } = target;
    let what = format!("TLS handshake with {address}");
    // The card's work off the runtime: a current_thread runtime keeps running its other tasks.
    let connector = iotsafe_rustls::CardConnector::from(config);
    let stream = connector
        .connect(server_name, io)
        .await
        .map_err(|e| handshake_error(&what, e))?;
    let total = started.elapsed();
    let card_stats = card.stats().since(&before);
    let (_, conn) = stream.get_ref();
    let server_subject = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| {
            x509_parser::parse_x509_certificate(der)
                .ok()
                .map(|(_, c)| c.subject().to_string())
        });
    let group = conn.negotiated_key_exchange_group();
    let report = HandshakeReport {
        address: address.to_string(),
        version: conn
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|| "-".into()),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "-".into()),
        group: group
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_else(|| "-".into()),
        group_on_card: card_stats.count(Operation::Dh) > 0,
        kind: conn
            .handshake_kind()
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|| "-".into()),
        server_subject,
        card: card_stats,
        total,
    };
    Ok((stream, report))
}

/// Waits `wait` for the server to refuse the client certificate (TLS 1.3 servers do that after
/// the client thinks the handshake is over). An alert or a reset is an error; silence, data or a
/// clean close is acceptance.
pub async fn confirm_accepted<IO>(
    stream: &mut TlsStream<IO>,
    address: &str,
    wait: Duration,
) -> Result<(), CliError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_elapsed) => Ok(()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(handshake_error(&format!("TLS handshake with {address}"), e)),
    }
}

fn handshake_error(what: &str, e: std::io::Error) -> CliError {
    let text = e.to_string();
    let hint = if text.contains("CertificateRequired") || text.contains("certificate required") {
        "the server wants a client certificate it trusts; check the server's CA matches the card certificate's issuer"
    } else if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        "the server certificate is not signed by --ca, or its name does not match (--server-name)"
    } else if text.contains("BadCertificate")
        || text.contains("UnknownCA")
        || text.contains("DecryptError")
    {
        "the server rejected the card's certificate or signature"
    } else if text.contains("HandshakeFailure") {
        "the server may not offer TLS 1.3 with secp256r1 and ECDSA P-256"
    } else {
        "check the server accepts TLS 1.3 client certificates"
    };
    CliError::new(what, text).hint(hint)
}
