//! The card under tokio: `TlsConnector::connect` on a multi-thread runtime, as the MQTT demo
//! does. Card I/O blocks inside rustls callbacks (keygen inside `connect`, DH and signature in the
//! poll); a multi-thread runtime keeps the server task running meanwhile.

mod common;

use common::*;
use iotsafe_rustls::{IotSafeTls, KxOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn run(pregenerate: bool) {
    let fx = Fixture::new();
    let tls = IotSafeTls::builder(fx.card.clone())
        .kx_options(KxOptions::pregenerating(pregenerate))
        .build()
        .unwrap();
    if let Some(kx) = tls.kx_group() {
        assert!(kx.wait_for_background(Duration::from_secs(10)));
    }
    let client_config = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    let server_config = fx.server_config(iotsafe_rustls::software_provider(), ClientAuth::Required);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.unwrap();
    });

    let before = fx.stats();
    let connector = tokio_rustls::TlsConnector::from(client_config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = connector.connect(server_name(), tcp).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    server.await.unwrap();

    let used = fx.stats().since(&before);
    let (keygens, dhs, signs) = ops(&used);
    assert_eq!((dhs, signs), (1, 1), "{used:?}");
    if !pregenerate {
        assert_eq!(keygens, 1);
        assert_eq!(used.apdus, 6);
    }
    // With pre-generation, the key used was made before `connect`; the next one may or may not
    // have been generated in the background yet when the counters are read.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_rustls_connect_with_the_card() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_rustls_connect_with_a_pregenerated_key() {
    run(true).await;
}
