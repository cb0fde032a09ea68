//! The configuration a user gets from `IotSafeTls::builder(card).build()`, under concurrency and
//! over time: N = 1, 4, 8, 32 threads doing handshakes on one card all succeed at the first
//! attempt (in-process and through the AT modem front end), building configs 10,000 times keeps
//! memory flat and reuses one key exchange group, and dropping the last config and card closes
//! the card's logical channel.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotsafe_core::at::{AtMode, AtOptions as HostOptions, AtTransport, Deadlines};
use iotsafe_core::{Card, CardConfig, ObjectRef, Operation};
use iotsafe_rustls::{IotSafeTls, KxOptions, Reseed};
use iotsafe_tests::handshake::{handshake, handshake_over, TlsFixture};
use iotsafe_vcard::frontend::at::{AtHandle, AtOptions as ModemOptions};
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::{CardOptions, InProcessTransport, VirtualCard};
use rustls::ClientConfig;

/// The key exchange group pool is process-wide: these tests count its groups and the card's
/// channels, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The default client config on the fixture's card: nothing about queues or slots.
fn default_client(fx: &TlsFixture) -> Arc<ClientConfig> {
    let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    Arc::new(tls.client_config(fx.roots.clone()).unwrap())
}

/// `threads` threads doing `each` handshakes with `client`; every one must succeed at the first
/// attempt: exactly one key generation, DH and signature per handshake, no card failure, nobody
/// overtaken in the slot queue.
fn all_succeed(fx: &TlsFixture, client: &Arc<ClientConfig>, threads: usize, each: usize) {
    let before = fx.card.stats();
    let queue_before = fx.queue_stats();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (client, server) = (client.clone(), fx.server.clone());
            std::thread::spawn(move || {
                for i in 0..each {
                    handshake(&client, &server)
                        .unwrap_or_else(|e| panic!("N={threads}: thread {t} handshake {i}: {e}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a handshake thread panicked");
    }
    let used = fx.card.stats().since(&before);
    let n = (threads * each) as u64;
    assert_eq!(
        used.count(Operation::GenerateKeyPair),
        n,
        "N={threads}: {used:?}"
    );
    assert_eq!(used.count(Operation::Dh), n, "N={threads}: {used:?}");
    assert_eq!(used.count(Operation::Sign), n, "N={threads}: {used:?}");
    let failures: u64 = used.operations.values().map(|o| o.failures).sum();
    assert_eq!(failures, 0, "N={threads}: {used:?}");
    let queue = fx.queue_stats();
    assert_eq!(
        queue.turns - queue_before.turns,
        n,
        "N={threads}: {queue:?}"
    );
    assert_eq!(queue.overtaken, 0, "N={threads}: {queue:?}");
    eprintln!(
        "N={threads}: {n} handshakes, all succeeded; {} waited, longest wait so far {:?}",
        queue.waited - queue_before.waited,
        queue.max_wait
    );
}

#[test]
fn default_config_one_four_eight_and_thirty_two_threads_on_one_card_all_succeed() {
    let _serial = serial();
    let fx = TlsFixture::new(CardOptions::default(), CardConfig::default(), false);
    let client = default_client(&fx);
    for threads in [1, 4, 8, 32] {
        all_succeed(&fx, &client, threads, 3);
    }
}

/// The virtual card's AT modem on a free loopback TCP port.
fn tcp_modem(vcard: VirtualCard) -> (std::net::SocketAddr, AtHandle) {
    let tcp = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let addr = tcp.local_addr().unwrap();
    let handle = tcp
        .spawn(Arc::new(Mutex::new(vcard)), ModemOptions::default())
        .expect("start the modem");
    (addr, handle)
}

#[test]
fn default_config_threads_through_the_at_modem_all_succeed() {
    let _serial = serial();
    let mut modem = None;
    let fx = TlsFixture::over(CardOptions::default(), false, |vcard| {
        let (addr, handle) = tcp_modem(vcard);
        modem = Some(handle);
        let host = HostOptions {
            mode: AtMode::Csim,
            deadlines: Deadlines {
                normal: Duration::from_secs(5),
                slow: Duration::from_secs(10),
            },
            ..HostOptions::default()
        };
        let transport = AtTransport::connect_tcp_with(addr, host).expect("connect over AT");
        Arc::new(Card::open(transport, CardConfig::default()).expect("open over AT"))
    });
    let client = default_client(&fx);
    for threads in [1, 4, 8, 32] {
        all_succeed(&fx, &client, threads, 1);
    }
    drop(client);
    drop(fx);
    modem.expect("the modem").stop().unwrap();
}

#[test]
fn default_config_spreads_threads_over_two_ephemeral_slots_through_the_at_modem() {
    let _serial = serial();
    let mut modem = None;
    let fx = TlsFixture::over(CardOptions::default(), false, |mut vcard| {
        vcard
            .store_mut()
            .add_ephemeral_slots(1)
            .expect("a second slot");
        let (addr, handle) = tcp_modem(vcard);
        modem = Some(handle);
        let transport = AtTransport::connect_tcp(addr).expect("connect over AT");
        Arc::new(Card::open(transport, CardConfig::default()).expect("open over AT"))
    });
    let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    let group = tls.kx_group().expect("card ECDHE");
    assert_eq!(group.slots(), [ObjectRef::id([4]), ObjectRef::id([6])]);
    let client = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
    // Over a 100 ms round trip, so that key exchanges overlap on the slots.
    let before = fx.card.stats();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (client, server) = (client.clone(), fx.server.clone());
            std::thread::spawn(move || {
                for i in 0..2 {
                    handshake_over(&client, &server, Duration::from_millis(50))
                        .unwrap_or_else(|e| panic!("thread {t} handshake {i}: {e}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a handshake thread panicked");
    }
    let used = fx.card.stats().since(&before);
    assert_eq!(used.count(Operation::GenerateKeyPair), 8, "{used:?}");
    assert_eq!(used.count(Operation::Dh), 8, "{used:?}");
    let failures: u64 = used.operations.values().map(|o| o.failures).sum();
    assert_eq!(failures, 0, "{used:?}");
    let queue = group.queue_stats();
    assert_eq!((queue.slots, queue.overtaken), (2, 0), "{queue:?}");
    drop((client, tls));
    drop(fx);
    modem.expect("the modem").stop().unwrap();
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn ten_thousand_builds_reuse_one_group_and_keep_memory_flat() {
    let _serial = serial();
    let fx = TlsFixture::new(CardOptions::default(), CardConfig::default(), false);
    let first = IotSafeTls::builder(fx.card.clone()).build().unwrap();
    let group = first.kx_group().expect("card ECDHE");
    // Warm up: allocator pools, lazily initialised statics.
    for _ in 0..300 {
        let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
        drop(tls.client_config(fx.roots.clone()).unwrap());
    }
    let before = rss();
    for i in 0..10_000 {
        let tls = IotSafeTls::builder(fx.card.clone()).build().unwrap();
        let again = tls.kx_group().expect("card ECDHE");
        assert!(std::ptr::eq(again, group), "build {i} made a new group");
        drop(tls.client_config(fx.roots.clone()).unwrap());
    }
    let after = rss();
    // A group leaked per build is a few hundred bytes: 10,000 of them would be megabytes.
    let growth = after.saturating_sub(before);
    eprintln!("10,000 builds: RSS {before} → {after} bytes (+{growth})");
    assert!(
        growth < 1024 * 1024,
        "RSS grew by {growth} bytes over 10,000 builds"
    );
    // The configs still work.
    handshake(&default_client(&fx), &fx.server).expect("handshake after the builds");
}

#[test]
fn ten_thousand_builds_with_card_entropy_reuse_one_rng_and_keep_memory_flat() {
    let _serial = serial();
    let fx = TlsFixture::new(CardOptions::default(), CardConfig::default(), false);
    let build = || {
        IotSafeTls::builder(fx.card.clone())
            .card_entropy(Reseed::Never)
            .build()
            .unwrap()
    };
    let rng_of = |tls: &IotSafeTls| tls.provider().secure_random as *const _ as *const () as usize;
    let first = rng_of(&build());
    for _ in 0..300 {
        drop(build().client_config(fx.roots.clone()).unwrap());
    }
    let before = rss();
    for i in 0..10_000 {
        let tls = build();
        assert_eq!(rng_of(&tls), first, "build {i} made a new RNG");
        drop(tls.client_config(fx.roots.clone()).unwrap());
    }
    let growth = rss().saturating_sub(before);
    eprintln!("10,000 builds with card entropy: RSS +{growth} bytes");
    assert!(
        growth < 1024 * 1024,
        "RSS grew by {growth} bytes over 10,000 builds"
    );
}

#[test]
fn cards_opened_one_after_another_share_one_group() {
    let _serial = serial();
    let fx = TlsFixture::new(CardOptions::default(), CardConfig::default(), false);
    let dir = tempfile::tempdir().unwrap();
    let (_, template) = iotsafe_tests::provisioned(dir.path(), CardOptions::default());
    let state = template.state_path().expect("a state file").to_path_buf();
    drop(template);
    let mut groups = HashSet::new();
    for _ in 0..200 {
        let vcard = VirtualCard::open_state(&state, CardOptions::default()).unwrap();
        let card =
            Arc::new(Card::open(InProcessTransport::new(vcard), CardConfig::default()).unwrap());
        let tls = IotSafeTls::builder(card).build().unwrap();
        groups.insert(tls.kx_group().expect("card ECDHE") as *const _ as usize);
    }
    // The fixture's card is alive with its own group; each loop card died before the next one
    // asked, and its group was re-targeted.
    assert_eq!(groups.len(), 1, "{} groups for 200 cards", groups.len());
    drop(fx);
}

/// A card behind a shared virtual card, so that its channels can be counted.
fn counted_fixture() -> (TlsFixture, Arc<Mutex<VirtualCard>>) {
    let mut shared = None;
    let fx = TlsFixture::over(CardOptions::default(), false, |vcard| {
        let vcard = Arc::new(Mutex::new(vcard));
        shared = Some(Arc::clone(&vcard));
        Arc::new(Card::open(InProcessTransport::shared(vcard), CardConfig::default()).unwrap())
    });
    (fx, shared.expect("the virtual card"))
}

fn open_channels(vcard: &Arc<Mutex<VirtualCard>>) -> usize {
    vcard.lock().unwrap().open_channel_count()
}

#[test]
fn dropping_the_last_config_and_card_closes_the_channel() {
    let _serial = serial();
    // The default configuration, and one with every option that touches the card in the
    // background or at build time (pre-generation, card entropy).
    for options in [None, Some(KxOptions::pregenerating(true))] {
        let (fx, vcard) = counted_fixture();
        let mut builder = IotSafeTls::builder(fx.card.clone());
        if let Some(kx) = options.clone() {
            builder = builder.kx_options(kx).card_entropy(Reseed::EveryCalls(3));
        }
        let tls = builder.build().unwrap();
        let group = tls.kx_group().expect("card ECDHE");
        let client = Arc::new(tls.client_config(fx.roots.clone()).unwrap());
        let server = fx.server.clone();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (client, server) = (client.clone(), server.clone());
                std::thread::spawn(move || handshake(&client, &server).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            open_channels(&vcard),
            1,
            "{options:?}: the session's channel"
        );
        drop((client, tls, fx));
        // A background generation still running owns a reference until it ends.
        assert!(group.wait_for_background(Duration::from_secs(30)));
        assert!(group.card().is_none(), "{options:?}: the card was dropped");
        assert_eq!(
            open_channels(&vcard),
            0,
            "{options:?}: channel closed on drop"
        );
    }
}
