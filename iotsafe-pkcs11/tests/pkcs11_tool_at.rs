//! OpenSC's `pkcs11-tool` through the module, on the virtual card behind its AT modem front end
//! on a loopback TCP port (AT+CSIM / AT+CCHO / AT+CGLA), the module told
//! `IOTSAFE_MODEM=tcp://…`.
#![cfg(feature = "at")]

mod support;

use iotsafe_tests::{have_program, provisioned, service};
use iotsafe_vcard::frontend::at::AtOptions;
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::CardOptions;

#[test]
fn pkcs11_tool_over_an_at_modem() {
    if !service(have_program("pkcs11-tool"), "pkcs11-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card) = provisioned(dir.path(), CardOptions::default());
    let modem = TcpModem::bind("127.0.0.1:0".parse().unwrap()).expect("bind the modem");
    let address = modem.local_addr().unwrap();
    let handle = modem
        .spawn(share(card), AtOptions::default())
        .expect("start the modem");
    let env = [("IOTSAFE_MODEM", format!("tcp://{address}"))];
    support::workout(dir.path(), &env, &report.device_cert_der);
    let _ = handle.stop();
}
