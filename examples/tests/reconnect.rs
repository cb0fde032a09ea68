//! Reconnect with back-off: a flapping network (a proxy that drops the first connections) must
//! not make the client hammer the card, and the client must get through once it recovers.

use iotsafe_cli::CardSelection;
use iotsafe_core::Operation;
use iotsafe_examples::{run_mqtt_client, Backoff, BrokerTarget, ClientOptions, EmbeddedBroker};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Forwards to `upstream`, but closes the first `drop_first` connections at once.
fn flaky_proxy(upstream: SocketAddr, drop_first: u32) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                drop(client);
                continue;
            }
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (address, seen)
}

#[test]
fn reconnects_with_backoff_through_a_flapping_network() {
    let dir = tempfile::tempdir().unwrap();
    let opened = CardSelection::virtual_card(dir.path().join("card.json"))
        .open()
        .unwrap();
    let pki = opened.pki.clone().unwrap();
    let broker = EmbeddedBroker::start(&pki.ca_cert, &pki.server_cert, &pki.server_key).unwrap();
    let (proxy, seen) = flaky_proxy(broker.address, 3);
    let target = BrokerTarget {
        host: "127.0.0.1".into(),
        port: proxy.port(),
        ca: pki.ca_cert.clone(),
        server_name: None,
        description: "flaky proxy to the embedded rumqttd".into(),
    };
    let opts = ClientOptions {
        count: 2,
        // The verification handshake would take the first connection; the MQTT client must
        // meet the flapping itself.
        verification_handshake: false,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 5),
        ..ClientOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let report = runtime
        .block_on(run_mqtt_client(Arc::clone(&opened.card), target, opts))
        .expect("the client gets through after the network recovers");
    let elapsed = started.elapsed();
    assert!(report.success(), "{}", report.to_text());
    assert_eq!(report.mqtt.reconnects, 3);
    assert_eq!(report.mqtt.connections, 1);
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    // Back-off 100, 200, 400 ms with ±25 % jitter: at least 525 ms of waiting.
    assert!(
        elapsed >= Duration::from_millis(525),
        "no back-off: {elapsed:?}"
    );
    // Dropped connections never got to CertificateVerify: one signature for the one handshake.
    assert_eq!(report.mqtt.card.count(Operation::Sign), 1);
}
