//! Async connects on one card, as a device's tokio program makes them: the virtual card behind
//! its AT modem on TCP with the typical-SIM latency, a TLS server requiring the card's
//! certificate on loopback, and a 5 ms ticker on the same runtime as the connects.
//!
//! - `CardConnector` (the async connector): on a `current_thread` and on a 2-worker runtime,
//!   N = 1, 4, 16 concurrent connects all succeed with the card doing every key generation, DH and
//!   signature, and the ticker never stalls longer than 50 ms (the card work runs in the blocking
//!   pool; the runtime only moves bytes).
//! - Plain tokio-rustls with the default config: the same N all succeed (the stall is reported,
//!   whatever it is: on a `current_thread` runtime rustls's callbacks run on it).
//! - A connect future dropped mid-handshake gives its slot back: the next connect takes its turn
//!   without waiting.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::AtTransport;
use iotsafe_core::{Card, Operation};
use iotsafe_rustls::{CardConnector, IotSafeTls};
use iotsafe_tests::async_load::{self, one, AsyncEchoServer, Flavor, How, Until};
use iotsafe_tests::handshake::TlsFixture;
use iotsafe_vcard::frontend::at::{AtHandle, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, Latency};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};

/// The card's latency is real time: these tests share one machine's clock fairly when they run
/// one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const STALL_BOUND: Duration = Duration::from_millis(50);

/// The card behind the virtual modem on TCP, typical-SIM latency, and a server requiring its
/// certificate.
struct Setup {
    fx: TlsFixture,
    server: AsyncEchoServer,
    modem: Option<AtHandle>,
}

impl Setup {
    fn new() -> Setup {
        let options = CardOptions {
            latency: Latency::typical_sim(),
            ..CardOptions::default()
        };
        let mut modem = None;
        let fx = TlsFixture::over(options, false, |vcard| {
            let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
            let addr = tcp.local_addr().unwrap();
            modem = Some(
                tcp.spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
                    .expect("start the modem"),
            );
            let transport = AtTransport::connect_tcp(addr).expect("connect over AT");
            Arc::new(Card::open(transport, Default::default()).expect("open over AT"))
        });
        let server = AsyncEchoServer::start(Arc::clone(&fx.server));
        Setup { fx, server, modem }
    }

    /// The configuration a user gets from the README: the builder's defaults.
    fn default_config(&self) -> Arc<ClientConfig> {
        let tls = IotSafeTls::builder(self.fx.card.clone()).build().unwrap();
        Arc::new(tls.client_config(self.fx.roots.clone()).unwrap())
    }

    /// `n` concurrent connects, one each.
    fn run(&self, flavor: Flavor, how: How, n: usize) -> async_load::Run {
        let config = self.default_config();
        async_load::run(&config, self.server.addr, flavor, how, n, Until::Each(1))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(modem) = self.modem.take() {
            let _ = modem.stop();
        }
    }
}

/// A server that accepts one connection, reads what comes (a ClientHello), says so, and never
/// answers.
async fn silent_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heard, hello) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 512];
        if matches!(tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await, Ok(n) if n > 0) {
            let _ = heard.send(());
        }
        // Hold the connection open, silent.
        std::future::pending::<()>().await;
    });
    (addr, hello)
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The async connector: every connect succeeds with all its card work on the card, and the
/// runtime never stalls.
fn connector_on(flavor: Flavor) {
    let _serial = serial();
    let setup = Setup::new();
    for n in [1, 4, 16] {
        let before = setup.fx.card.stats();
        let r = setup.run(flavor, How::Connector, n);
        let used = setup.fx.card.stats().since(&before);
        eprintln!(
            "CardConnector, {flavor:?}, N={n}: {}/{n} succeeded in {:.2?}, longest ticker stall {:.1?}",
            n - r.failures.len(),
            r.wall,
            r.stall
        );
        assert!(r.failures.is_empty(), "{flavor:?} N={n}: {:?}", r.failures);
        let n = n as u64;
        assert_eq!(
            (
                used.count(Operation::GenerateKeyPair),
                used.count(Operation::Dh),
                used.count(Operation::Sign)
            ),
            (n, n, n),
            "{flavor:?}: every handshake's work on the card: {used:?}"
        );
        assert!(
            r.stall < STALL_BOUND,
            "{flavor:?} N={n}: the ticker stalled {:?}",
            r.stall
        );
    }
}

#[test]
fn connector_on_a_current_thread_runtime_never_stalls_it_and_every_connect_succeeds() {
    connector_on(Flavor::CurrentThread);
}

#[test]
fn connector_on_a_two_worker_runtime_never_stalls_it_and_every_connect_succeeds() {
    connector_on(Flavor::TwoWorkers);
}

/// Plain tokio-rustls with the default config: every connect succeeds; the stall is reported.
fn plain_on(flavor: Flavor) {
    let _serial = serial();
    let setup = Setup::new();
    let group = IotSafeTls::builder(setup.fx.card.clone())
        .build()
        .unwrap()
        .kx_group()
        .unwrap();
    for n in [1, 4, 16] {
        let host_before = group.queue_stats().host_ecdhe;
        let before = setup.fx.card.stats();
        let r = setup.run(flavor, How::Plain, n);
        let used = setup.fx.card.stats().since(&before);
        let host = group.queue_stats().host_ecdhe - host_before;
        eprintln!(
            "plain tokio-rustls, {flavor:?}, N={n}: {}/{n} succeeded in {:.2?}, longest ticker stall {:.1?}, {host} ECDHE on the host",
            n - r.failures.len(),
            r.wall,
            r.stall
        );
        assert!(r.failures.is_empty(), "{flavor:?} N={n}: {:?}", r.failures);
        let n = n as u64;
        assert_eq!(used.count(Operation::Sign), n, "{used:?}");
        assert_eq!(used.count(Operation::Dh) + host, n, "{used:?}");
        if matches!(flavor, Flavor::TwoWorkers) {
            assert_eq!(
                host, 0,
                "a multi-thread runtime waits in place for the slot"
            );
        }
    }
}

#[test]
fn plain_tokio_rustls_on_a_current_thread_runtime_every_connect_succeeds() {
    plain_on(Flavor::CurrentThread);
}

#[test]
fn plain_tokio_rustls_on_a_two_worker_runtime_every_connect_succeeds() {
    plain_on(Flavor::TwoWorkers);
}

#[test]
fn a_connect_dropped_mid_handshake_gives_its_slot_back() {
    let _serial = serial();
    let setup = Setup::new();
    let config = setup.default_config();
    let group = iotsafe_rustls::CardKxGroup::of_config(&config).expect("card ECDHE");
    let server = setup.server.addr;
    Flavor::CurrentThread.runtime().block_on(async move {
        let (silent, hello) = silent_server().await;
        let connector = CardConnector::from(Arc::clone(&config));
        // The ClientHello goes out (the slot is held), the answer never comes: dropped then.
        let tcp = TcpStream::connect(silent).await.unwrap();
        let before = group.queue_stats();
        tokio::select! {
            done = connector.connect(async_load::name(), tcp) => panic!("a silent server answered: {:?}", done.map(drop)),
            heard = hello => heard.expect("the ClientHello reached the server"),
        }
        let turns = group.queue_stats().turns - before.turns;
        assert_eq!(turns, 1, "the dropped connect had its turn");
        // The next connect finds the slot free: no wait, nobody overtaken.
        let waited = group.queue_stats().waited;
        one(How::Connector, Arc::clone(&config), server, 0)
            .await
            .expect("the next connect");
        let after = group.queue_stats();
        assert_eq!(after.waited, waited, "the next connect waited: {after:?}");
        assert_eq!(after.overtaken, before.overtaken, "{after:?}");
    });
}
