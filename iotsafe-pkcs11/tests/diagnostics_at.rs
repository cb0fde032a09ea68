//! The module's diagnostics in a program that loads it, OpenSC's `pkcs11-tool`, on the virtual card
//! behind its AT modem front end on a loopback TCP port: with `IOTSAFE_PKCS11_DEBUG=1` the
//! module's own events and the card session's (`iotsafe-core`: the AT transport's commands) come
//! out on standard error, each inside the span of the PKCS#11 call that caused it; without it the
//! module prints nothing, and the program's output is the same either way. A configuration the
//! module cannot use is said in both cases (`C_Initialize` fails: nothing else would say why).
#![cfg(feature = "at")]

mod support;

use iotsafe_tests::{have_program, service};
use iotsafe_vcard::CardOptions;
use std::path::Path;
use std::process::{Command, Output};

/// `pkcs11-tool --module <the module> <args>` with `env` as its only card variables, and
/// `IOTSAFE_PKCS11_DEBUG=1` when `debug`.
fn tool(args: &[&str], dir: &Path, env: &[(&str, String)], debug: bool) -> Output {
    let mut command = Command::new("pkcs11-tool");
    command
        .arg("--module")
        .arg(support::module_path())
        .args(args)
        .current_dir(dir);
    for var in support::CARD_VARIABLES {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    if debug {
        command.env("IOTSAFE_PKCS11_DEBUG", "1");
    }
    command.output().expect("start pkcs11-tool")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn debug_shows_the_module_and_the_card_session_and_nothing_without_it() {
    if !service(have_program("pkcs11-tool"), "pkcs11-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, address, handle) = support::at_modem(dir.path(), CardOptions::default());
    let env = [("IOTSAFE_MODEM", format!("tcp://{address}"))];

    let quiet = tool(&["--list-slots"], dir.path(), &env, false);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(text(&quiet.stdout).contains("token label        : IoT SAFE device-0001"));
    assert_eq!(text(&quiet.stderr), "", "the module prints nothing");

    let loud = tool(&["--list-slots"], dir.path(), &env, true);
    let (out, err) = (text(&loud.stdout), text(&loud.stderr));
    assert!(loud.status.success(), "{err}");
    assert_eq!(out, text(&quiet.stdout), "the program's own output");
    let lines: Vec<&str> = err.lines().collect();
    let has = |what: &[&str]| lines.iter().any(|l| what.iter().all(|w| l.contains(w)));
    assert!(
        has(&[
            "DEBUG",
            "iotsafe_pkcs11::module",
            "token loaded",
            "objects="
        ]),
        "the module's event:\n{err}"
    );
    assert!(
        has(&["DEBUG", "iotsafe_core::at", ">> AT+CCHO"]),
        "the AT transport's events (iotsafe-core):\n{err}"
    );
    assert!(
        has(&["pkcs11{function=\"C_", "iotsafe_core::at", ">> AT+CGLA"]),
        "the card session's events inside the span of the call:\n{err}"
    );
    let _ = handle.stop();
}

#[test]
fn a_configuration_the_module_cannot_use_is_said_with_or_without_debug() {
    if !service(have_program("pkcs11-tool"), "pkcs11-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.conf");
    let env = [("IOTSAFE_PKCS11_CONF", missing.display().to_string())];
    for debug in [false, true] {
        let run = tool(&["--list-slots"], dir.path(), &env, debug);
        let err = text(&run.stderr);
        assert!(!run.status.success(), "C_Initialize fails (debug: {debug})");
        assert!(
            err.lines().any(|l| l.contains("ERROR")
                && l.contains("configuration: reading IOTSAFE_PKCS11_CONF=")
                && l.contains("missing.conf")),
            "debug: {debug}\n{err}"
        );
        // With debug, the call's failure too, with its return value (CKR_FUNCTION_FAILED).
        let failure = err
            .lines()
            .any(|l| l.contains("pkcs11{function=\"C_Initialize\"}") && l.contains("rv=0x6"));
        assert_eq!(failure, debug, "{err}");
    }
}
