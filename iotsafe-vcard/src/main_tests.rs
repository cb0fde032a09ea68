//! Tests of the command line: flags become card and modem options.

use super::*;

#[test]
fn card_flags_make_options() {
    let cli = Cli::try_parse_from([
        "iotsafe-vcard",
        "serve",
        "--state",
        "s.json",
        "--profile",
        "t0",
        "--sig-format",
        "33-40",
        "--cla",
        "proprietary",
        "--no-implicit-channel",
        "--aid",
        "A0000002480400",
        "--fault-sw-at",
        "3:6F00",
        "--at-pty",
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("serve expected");
    };
    let options = args.card.options();
    assert_eq!(options.transport, TransportMode::T0);
    assert_eq!(
        options.quirks.signature_format,
        SignatureFormat::OneByteLength
    );
    assert_eq!(options.quirks.cla, ClaPolicy::ProprietaryOnly);
    assert!(!options.quirks.implicit_channel_on_select);
    assert_eq!(options.quirks.aids, vec![vec![0xA0, 0, 0, 2, 0x48, 4, 0]]);
    assert_eq!(options.faults.status_word_at, Some((3, 0x6F00)));
    assert!(args.vpcd.is_none() && args.at_pty);
}

#[test]
fn quirk_flags_make_options() {
    let cli = Cli::try_parse_from([
        "iotsafe-vcard",
        "serve",
        "--state",
        "s.json",
        "--signature-format",
        "bare",
        "--signature-prefix",
        "303E",
        "--close-after-final-update",
        "6985",
        "--reopen-refused",
        "6985",
        "--max-sessions",
        "1",
        "--wipe-volatile-on-reset",
        "--channels",
        "3",
        "--object-list",
        "grouped",
        "--info-order",
        "id-first",
        "--read-file-max",
        "50",
        "--dh-output",
        "sha1",
        "--get-response-strict",
        "--tlv-lengths",
        "one-byte",
        "--at-tcp",
        "127.0.0.1:0",
        "--at-drop-every",
        "5:before",
        "--at-fault",
        "truncate:4@2",
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("serve expected");
    };
    let q = args.card.options().quirks;
    assert_eq!(q.signature_format, SignatureFormat::Bare);
    assert_eq!(q.signature_prefix.unwrap().as_bytes(), [0x30, 0x3E]);
    assert_eq!(q.close_after_final_update, Some(0x6985));
    assert_eq!((q.reopen_refused, q.max_sessions), (Some(0x6985), 1));
    assert!(q.wipe_volatile_on_reset && q.get_response_strict);
    assert_eq!(q.logical_channels, 3);
    assert_eq!(q.object_list_layout, ObjectListLayout::Grouped);
    assert_eq!(q.info_field_order, InfoFieldOrder::IdFirst);
    assert_eq!(q.read_file_max, Some(50));
    assert_eq!(q.dh_output, DhOutput::Sha1);
    assert_eq!(q.tlv_lengths, TlvLengths::OneByte);
    let at = at_options(&args);
    assert_eq!(at.drop_every, Some("5:before".parse().unwrap()));
    assert_eq!(
        at.inject,
        Some(iotsafe_vcard::frontend::at::AtInjection::once(
            iotsafe_vcard::frontend::at::AtFault::Truncate(4),
            2
        ))
    );
    for bad in [
        &["--channels", "20"][..],
        &["--channels", "0"],
        &["--signature-prefix", "303E01"],
        &["--close-after-final-update", "69"],
        &["--read-file-max", "0"],
    ] {
        let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s"];
        argv.extend_from_slice(bad);
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
    }
}

#[test]
fn a_card_profile_then_overrides() {
    let options = |extra: &[&str]| {
        let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args.card.options(),
            Command::Provision { .. } => unreachable!(),
        }
    };
    let standard = options(&[]);
    assert_eq!(standard.transport, TransportMode::T1);
    assert!(standard.quirks.implicit_channel_on_select);
    let ntt = options(&["--card", "ntt"]);
    assert_eq!(ntt.transport, TransportMode::T0);
    assert_eq!(ntt.quirks.signature_format, SignatureFormat::OneByteLength);
    assert_eq!(ntt.quirks.aids.len(), 2);
    let ntt_t1 = options(&["--card", "ntt", "--profile", "t1", "--cla", "8x"]);
    assert_eq!(ntt_t1.transport, TransportMode::T1);
    assert_eq!(ntt_t1.quirks.cla, ClaPolicy::ProprietaryOnly);
    assert_eq!(
        ntt_t1.quirks.signature_format,
        SignatureFormat::OneByteLength
    );
    assert!(options(&["--card", "no-applet"]).quirks.aids.is_empty());
}

#[test]
fn vpcd_flag_takes_an_optional_address() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args.vpcd,
            Command::Provision { .. } => None,
        }
    };
    assert_eq!(parse(&[]), None);
    assert_eq!(parse(&["--vpcd"]), Some(DEFAULT_VPCD_ADDR.parse().unwrap()));
    assert_eq!(
        parse(&["--vpcd", "127.0.0.1:35964"]),
        Some("127.0.0.1:35964".parse().unwrap())
    );
    let local = parse(&["--vpcd", "localhost:35964"]).unwrap();
    assert!(local.ip().is_loopback() && local.port() == 35964);
}

#[test]
fn modem_default_flags_make_at_options() {
    let at = |extra: &[&str]| {
        let mut argv = vec![
            "iotsafe-vcard",
            "serve",
            "--state",
            "s",
            "--at-tcp",
            "127.0.0.1:0",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Serve(args)) => Ok(at_options(&args)),
            Ok(Command::Provision { .. }) => unreachable!(),
            Err(err) => Err(err),
        }
    };
    let default = at(&[]).unwrap();
    assert_eq!(
        (
            default.cmee,
            default.cmee_settable,
            default.busy_after_reset
        ),
        (1, true, 0)
    );
    let factory = at(&[
        "--cmee",
        "0",
        "--at-no-cmee",
        "--at-busy-after-reset",
        "2",
        "--at-fault",
        "late@3",
    ])
    .unwrap();
    assert_eq!(
        (
            factory.cmee,
            factory.cmee_settable,
            factory.busy_after_reset
        ),
        (0, false, 2)
    );
    assert_eq!(
        factory.inject,
        Some(iotsafe_vcard::frontend::at::AtInjection::once(
            iotsafe_vcard::frontend::at::AtFault::Late,
            3
        ))
    );
    assert_eq!(at(&["--at-cmee", "2"]).unwrap().cmee, 2);
    for bad in [
        &["--at-cmee", "3"][..],
        &["--cmee", "x"],
        &["--at-busy-after-reset", "-1"],
    ] {
        assert!(at(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn latency_modem_and_baud_make_the_serial_link() {
    let latency = |extra: &[&str]| -> Result<Latency, clap::Error> {
        let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s.json"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        Ok(args.card.options().latency)
    };
    // No serial link unless asked for.
    assert_eq!(latency(&[]).unwrap(), Latency::none());
    assert_eq!(latency(&["--latency", "sim"]).unwrap().serial, None);
    // `modem`: a typical SIM behind 115,200 baud.
    let modem = latency(&["--latency", "modem"]).unwrap();
    assert_eq!(modem, Latency::modem());
    assert_eq!(modem.serial, SerialLink::new(115_200));
    // --baud adds a link to any preset, or replaces the preset's own.
    let sim_9600 = latency(&["--latency", "sim", "--baud", "9600"]).unwrap();
    assert_eq!(
        sim_9600,
        Latency {
            serial: SerialLink::new(9_600),
            ..Latency::typical_sim()
        }
    );
    let modem_9600 = latency(&["--latency", "modem", "--baud", "9600"]).unwrap();
    assert_eq!(modem_9600, sim_9600);
    let bare = latency(&["--baud", "115200"]).unwrap();
    assert_eq!(
        bare,
        Latency {
            serial: Some(SerialLink::modem()),
            ..Latency::none()
        }
    );
    // Also on provision (the flags are shared).
    let cli = Cli::try_parse_from([
        "iotsafe-vcard",
        "provision",
        "--state",
        "s.json",
        "--pki-out",
        "pki",
        "--baud",
        "57600",
    ])
    .unwrap();
    let Command::Provision { card, .. } = cli.command else {
        panic!("provision expected");
    };
    assert_eq!(card.options().latency.serial, SerialLink::new(57_600));
    // Baud 0 and non-numbers are refused with a clear message.
    let zero = latency(&["--baud", "0"]).unwrap_err().to_string();
    assert!(zero.contains("at least 1"), "{zero}");
    for bad in [
        &["--baud", "fast"][..],
        &["--baud", "-1"],
        &["--latency", "uart"],
    ] {
        assert!(latency(bad).is_err(), "{bad:?}");
    }
}
