//! An embedded rumqttd broker on loopback that requires client certificates (rumqttd feature
//! `verify-client-cert`): only clients with a certificate from the test CA get in.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A running embedded broker. rumqttd has no shutdown API: its thread ends with the process.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where it listens.
    pub address: SocketAddr,
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EmbeddedBroker {
    /// Starts rumqttd on a free loopback port with TLS (`server_cert`, `server_key`) and client
    /// certificates verified against the first certificate of `client_ca`, and waits until it
    /// accepts connections.
    pub fn start(
        client_ca: &Path,
        server_cert: &Path,
        server_key: &Path,
    ) -> Result<EmbeddedBroker, String> {
        for path in [client_ca, server_cert, server_key] {
            if !path.is_file() {
                return Err(format!("{} does not exist", path.display()));
            }
        }
        let port = free_local_port().map_err(|e| format!("finding a free port: {e}"))?;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let settings = rumqttd::ServerSettings {
            name: "v4-mtls".into(),
            listen: address,
            next_connection_delay_ms: 1,
            tls: Some(rumqttd::TlsConfig::Rustls {
                capath: Some(client_ca.display().to_string()),
                certpath: server_cert.display().to_string(),
                keypath: server_key.display().to_string(),
            }),
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 10_000,
                max_payload_size: 20_480,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        // RouterConfig's derived Default is all zeros, which accepts nothing: set real limits.
        let config = rumqttd::Config {
            id: 0,
            v4: Some(HashMap::from([("1".to_string(), settings)])),
            router: rumqttd::RouterConfig {
                max_connections: 64,
                max_outgoing_packet_count: 200,
                max_segment_size: 1 << 20,
                max_segment_count: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        std::thread::Builder::new()
            .name("embedded-rumqttd".into())
            .spawn(move || {
                // `start` blocks for the life of the broker.
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    eprintln!("embedded broker stopped: {e}");
                }
            })
            .map_err(|e| format!("starting the broker thread: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(EmbeddedBroker { address });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the embedded broker did not listen on {address} within 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
