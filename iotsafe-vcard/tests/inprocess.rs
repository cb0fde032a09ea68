//! The in-process transport, the fault plan and the latency model, seen from the host side.

mod common;

use iotsafe_core::Transaction;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use iotsafe_core::{Transport, TransportError};
use iotsafe_vcard::{
    CardHandler, CardOptions, FaultPlan, InProcessTransport, Latency, Reply, VirtualCard,
};

const SELECT_CH1: &str = "01A4040007A0000005590010";

#[test]
fn transmits_and_shares_the_card() {
    let card = Arc::new(Mutex::new(VirtualCard::with_default_layout(
        CardOptions::default(),
    )));
    let mut t = InProcessTransport::shared(Arc::clone(&card));
    assert_eq!(t.transmit(&h(SELECT_CH1)).unwrap(), h("9000"));
    assert_eq!(t.transmit(&h("8184000010")).unwrap().len(), 18);
    assert_eq!(card.lock().unwrap().apdu_count(), 2);
    assert_eq!(t.card().lock().unwrap().apdu_count(), 2);
    assert_eq!(t.describe(), "virtual card (in-process)");
    let mut owned =
        InProcessTransport::new(VirtualCard::with_default_layout(CardOptions::default()));
    assert_eq!(owned.transmit(&h(SELECT_CH1)).unwrap(), h("9000"));
    assert!(owned
        .transaction()
        .unwrap()
        .transmit(&h("8184000001"))
        .is_ok());
}

#[test]
fn disconnect_until_reconnect() {
    let mut t = InProcessTransport::new(VirtualCard::with_default_layout(CardOptions::default()));
    t.transmit(&h(SELECT_CH1)).unwrap();
    let count = t.card().lock().unwrap().apdu_count();
    t.card().lock().unwrap().set_faults(FaultPlan {
        disconnect_after: Some(count + 1),
        ..FaultPlan::default()
    });
    assert!(t.transmit(&h("8184000004")).is_ok());
    assert!(matches!(
        t.transmit(&h("8184000004")),
        Err(TransportError::Disconnected)
    ));
    assert!(matches!(
        t.transmit(&h("8184000004")),
        Err(TransportError::Disconnected)
    ));
    // Reconnecting clears the fault and power-cycles the card: the applet must be selected again.
    t.reconnect().unwrap();
    assert_eq!(
        t.transmit(&h("8184000004")).unwrap(),
        h("6881"),
        "channel 1 closed by the power cycle"
    );
    assert_eq!(t.transmit(&h(SELECT_CH1)).unwrap(), h("9000"));
    assert_eq!(t.transmit(&h("8184000004")).unwrap().len(), 6);
}

#[test]
fn status_word_corruption_and_stall() {
    let mut card = VirtualCard::with_default_layout(CardOptions::default());
    card.handle(&h(SELECT_CH1));
    let n = card.apdu_count();
    card.set_faults(FaultPlan {
        status_word_at: Some((n + 1, 0x6F00)),
        corrupt_at: Some(n + 2),
        stall_at: Some((n + 3, Duration::from_millis(30))),
        ..FaultPlan::default()
    });
    // The 6F00 APDU is not executed: no key was generated.
    let before = card.store().private_keys[1].scalar.is_some();
    assert_eq!(
        card.handle(&h("81B9000003840104")),
        Reply::Answer(h("6F00"))
    );
    assert_eq!(card.store().private_keys[1].scalar.is_some(), before);
    // Corrupted: the first data byte is inverted.
    match card.handle(&h("81CB000044")) {
        Reply::Answer(r) => assert_eq!(r[0], !0x10),
        other => panic!("{other:?}"),
    }
    match card.handle(&h("8184000004")) {
        Reply::Stall(d, r) => {
            assert_eq!(d, Duration::from_millis(30));
            assert_eq!(r.len(), 6);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(card.handle(&h("8184000004")), Reply::Answer(_)));
    // A bare status word is cut to SW1.
    let n = card.apdu_count();
    card.set_faults(FaultPlan {
        corrupt_at: Some(n + 1),
        ..FaultPlan::default()
    });
    assert_eq!(card.handle(&h(SELECT_CH1)), Reply::Answer(h("90")));
    // Through the transport, a stall is a slow answer.
    let mut t = InProcessTransport::new(card);
    let n = t.card().lock().unwrap().apdu_count();
    t.card().lock().unwrap().set_faults(FaultPlan {
        stall_at: Some((n + 1, Duration::from_millis(40))),
        ..FaultPlan::default()
    });
    let start = Instant::now();
    assert_eq!(t.transmit(&h(SELECT_CH1)).unwrap(), h("9000"));
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn latency_model_is_applied_inside_process() {
    let latency = Latency {
        apdu: Duration::from_millis(5),
        sign: Duration::from_millis(60),
        ..Latency::none()
    };
    let mut card = VirtualCard::with_default_layout(CardOptions {
        latency,
        ..CardOptions::default()
    });
    let start = Instant::now();
    expect(&mut card, SELECT_CH1, 0x9000);
    let select = start.elapsed();
    assert!(select >= Duration::from_millis(5) && select < Duration::from_millis(60));
    expect(&mut card, "812A00010D840101A1010391020001920104", 0x9000);
    let start = Instant::now();
    expect(
        &mut card,
        &format!("812B8001229E20{}", "01".repeat(32)),
        0x9000,
    );
    assert!(start.elapsed() >= Duration::from_millis(65));
    let sim = Latency::typical_sim();
    assert_eq!(
        (
            sim.apdu,
            sim.put_key,
            sim.dh,
            sim.sign,
            sim.verify,
            sim.keygen,
            sim.hkdf
        ),
        (
            Duration::from_millis(5),
            Duration::from_millis(20),
            Duration::from_millis(120),
            Duration::from_millis(150),
            Duration::from_millis(150),
            Duration::from_millis(250),
            Duration::from_millis(20)
        )
    );
}

#[test]
fn atr_and_power() {
    use iotsafe_vcard::profile::TransportMode;
    let mut t1 = VirtualCard::with_default_layout(CardOptions::default());
    assert_eq!(t1.atr()[0], 0x3B);
    let t0 = VirtualCard::with_default_layout(CardOptions {
        transport: TransportMode::T0,
        ..CardOptions::default()
    });
    assert_ne!(t0.atr(), t1.atr());
    expect(&mut t1, SELECT_CH1, 0x9000);
    t1.reset();
    assert_eq!(
        send(&mut t1, "81CB000044"),
        h("6881"),
        "channel 1 closed by the reset"
    );
    expect(&mut t1, SELECT_CH1, 0x9000);
    t1.power_off();
    t1.power_on();
    assert_eq!(send(&mut t1, "81CB000044"), h("6881"));
}

#[test]
fn in_process_the_serial_link_charges_the_csim_lines_of_each_apdu() {
    use iotsafe_vcard::serial::{csim_answer_len, csim_command_len};
    use iotsafe_vcard::SerialLink;
    let link = SerialLink::new(9_600).unwrap();
    let card = VirtualCard::with_default_layout(CardOptions {
        latency: Latency {
            serial: Some(link),
            ..Latency::none()
        },
        ..CardOptions::default()
    });
    let mut t = InProcessTransport::new(card);
    let select = h(SELECT_CH1);
    let start = Instant::now();
    let answer = t.transmit(&select).unwrap();
    assert_eq!(answer, h("9000"));
    // `AT+CSIM=24,"01A4…"\r` (38 bytes) in, `\r\n+CSIM: 4,"9000"\r\n\r\nOK\r\n` (25) out.
    let lines = csim_command_len(select.len()) + csim_answer_len(answer.len());
    assert_eq!(lines, 38 + 25);
    assert!(start.elapsed() >= link.time_of(lines));
    // No serial link: not charged (the default of every preset but `modem`).
    assert_eq!(CardOptions::default().latency.serial, None);
}
