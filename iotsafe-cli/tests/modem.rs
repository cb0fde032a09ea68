//! `--modem tcp://HOST:PORT`: the same subcommands through the AT transport, against the virtual
//! card's AT modem front end on loopback (AT+CSIM / AT+CCHO / AT+CGLA over TCP).

mod common;

use common::{iotsafe, Fixture};
use iotsafe_vcard::frontend::at::AtOptions;
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::VirtualCard;

#[test]
fn card_commands_through_an_at_modem_over_tcp() {
    if !cfg!(feature = "at") {
        return;
    }
    let f = Fixture::new();
    let card = VirtualCard::open_state(&f.state, Default::default()).unwrap();
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = modem.local_addr().unwrap();
    let handle = modem.spawn(share(card), AtOptions::default()).unwrap();
    let target = format!("tcp://{address}");
    let run = |args: &[&str]| {
        let mut full = vec!["--modem", target.as_str(), "--json"];
        full.extend_from_slice(args);
        let r = iotsafe(&full, f.dir.path());
        assert!(
            r.ok(),
            "iotsafe {args:?} over the modem failed: {}",
            r.stderr
        );
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let info = run(&["info"]);
    assert_eq!(info["aid"], "A0000005590010");
    assert!(
        info["transport"].as_str().unwrap().contains("tcp://"),
        "{info}"
    );
    let cert = run(&["cert"]);
    assert_eq!(cert["subject"], "CN=device-0001");
    assert_eq!(cert["key_match"], true);
    let msg = f.path("m.txt");
    std::fs::write(&msg, b"over AT").unwrap();
    let signed = run(&["sign", "--in", msg.to_str().unwrap()]);
    let sig = f.path("m.sig");
    std::fs::write(&sig, signed["signature_der"].as_str().unwrap()).unwrap();
    let verified = run(&[
        "verify",
        "--in",
        msg.to_str().unwrap(),
        "--sig",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(verified["valid"], true);
    let _ = handle.stop();
}
