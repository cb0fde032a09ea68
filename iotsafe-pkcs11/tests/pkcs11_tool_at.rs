//! OpenSC's `pkcs11-tool` through the module, on the virtual card behind its AT modem front end
//! on a loopback TCP port (AT+CSIM / AT+CCHO / AT+CGLA), the module told
//! `IOTSAFE_MODEM=tcp://…`.
#![cfg(feature = "at")]

mod support;

use iotsafe_tests::{have_program, service};
use iotsafe_vcard::CardOptions;

#[test]
fn pkcs11_tool_over_an_at_modem() {
    if !service(have_program("pkcs11-tool"), "pkcs11-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, address, handle) = support::at_modem(dir.path(), CardOptions::default());
    let env = [("IOTSAFE_MODEM", format!("tcp://{address}"))];
    support::workout(dir.path(), &env, &report.device_cert_der);
    let _ = handle.stop();
}
