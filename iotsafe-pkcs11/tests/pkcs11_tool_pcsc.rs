//! OpenSC's `pkcs11-tool` through the module, on the virtual card behind a REAL pcscd: the card
//! plugged into vpcd slot 1 (`Virtual PCD 00 01`), the module told `IOTSAFE_READER`.
//!
//! Needs pcscd with the vpcd driver and `pkcs11-tool`; skips without them unless
//! `IOTSAFE_REQUIRE_SERVICES=1`.
#![cfg(feature = "pcsc")]

mod support;

use iotsafe_tests::{have_program, pcscd_running, provisioned, service, vpcd, READER_SLOT1};
use iotsafe_vcard::frontend::share;
use iotsafe_vcard::CardOptions;

#[test]
fn pkcs11_tool_over_pcscd_and_vpcd() {
    let _slot = iotsafe_tests::vpcd_slot_lock();
    if !service(pcscd_running(), "pcscd") || !service(have_program("pkcs11-tool"), "pkcs11-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, card) = provisioned(dir.path(), CardOptions::default());
    let _plugged = vpcd::plug(share(card));
    let env = [("IOTSAFE_READER", READER_SLOT1.to_owned())];
    support::workout(dir.path(), &env, &report.device_cert_der);
}
