//! A selection's checks, and opening each kind of card this build has (the virtual card always;
//! PC/SC and modems in `iotsafe-cli`'s and `iotsafe-pkcs11`'s tests against real pcscd and the
//! virtual modem).
#![forbid(unsafe_code)]

use iotsafe_select::{CardSelection, LatencyProfile, SelectError};

fn reader(name: &str) -> CardSelection {
    CardSelection {
        reader: Some(name.into()),
        ..CardSelection::default()
    }
}

#[test]
fn a_selection_names_exactly_one_card_with_a_valid_aid() {
    assert!(matches!(
        CardSelection::default().validate(),
        Err(SelectError::NoCard)
    ));
    let two = CardSelection {
        modem: Some("tcp://127.0.0.1:7000".into()),
        ..CardSelection::virtual_card("card.json")
    };
    assert!(matches!(two.validate(), Err(SelectError::SeveralCards)));
    let latency = CardSelection {
        latency: Some(LatencyProfile::Sim),
        ..reader("r")
    };
    assert!(matches!(
        latency.validate(),
        Err(SelectError::LatencyWithoutVirtualCard)
    ));
    // A latency profile without any card is about the profile, as the CLI has always said.
    let latency_alone = CardSelection {
        latency: Some(LatencyProfile::Sim),
        ..CardSelection::default()
    };
    assert!(matches!(
        latency_alone.validate(),
        Err(SelectError::LatencyWithoutVirtualCard)
    ));
    for bad in ["zz", "A0000005", "A0000005590010A0000005590010A0000005"] {
        let s = CardSelection {
            aid: Some(bad.into()),
            ..reader("r")
        };
        match s.validate() {
            Err(SelectError::BadAid(text)) => assert_eq!(text, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for good in ["A0000005590010", "0xA0000005590010"] {
        let s = CardSelection {
            aid: Some(good.into()),
            ..reader("r")
        };
        assert!(s.validate().is_ok(), "{good}");
    }
    assert!(reader("r").validate().is_ok());
}

#[test]
fn a_missing_virtual_card_is_provisioned_once_then_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sub").join("card.json");
    let selection = CardSelection::virtual_card(&state);

    let first = selection.open().unwrap();
    assert!(first.provisioned);
    assert_eq!(
        first.description,
        format!("virtual card {}", state.display())
    );
    let pki = first.pki.clone().expect("a test PKI next to the state");
    assert_eq!(pki.dir, dir.path().join("sub").join("card-pki"));
    assert!(first.card.applet_info().is_ok());
    let device_key = iotsafe_core::ObjectRef::id([1]);
    let point = first.card.read_public_key(&device_key).unwrap();
    drop(first);

    let again = selection.open().unwrap();
    assert!(!again.provisioned);
    assert_eq!(
        again.card.read_public_key(&device_key).unwrap(),
        point,
        "the same card, not a new one"
    );
}

#[test]
fn a_state_file_that_is_not_one_is_reported_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("corrupt.json");
    std::fs::write(&state, b"{ not json").unwrap();
    match CardSelection::virtual_card(&state).open() {
        Err(SelectError::VirtualCard { state: s, .. }) => assert_eq!(s, state),
        other => panic!("{:?}", other.map(|o| o.description)),
    }
    assert_eq!(std::fs::read(&state).unwrap(), b"{ not json");
}

#[test]
fn the_aid_asked_for_is_the_one_selected() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = CardSelection {
        aid: Some("A000000559FFFF".into()),
        ..CardSelection::virtual_card(dir.path().join("card.json"))
    };
    assert!(matches!(wrong.open(), Err(SelectError::Card { .. })));
}

#[cfg(feature = "at")]
#[test]
fn a_modem_that_is_not_there_is_a_transport_error() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("tcp://127.0.0.1:{port}");
    let s = CardSelection {
        modem: Some(target.clone()),
        ..CardSelection::default()
    };
    match s.open() {
        Err(SelectError::Transport { card, .. }) => assert_eq!(card, format!("modem {target}")),
        other => panic!("{:?}", other.map(|o| o.description)),
    }
}

#[cfg(not(feature = "pcsc"))]
#[test]
fn without_pcsc_a_reader_is_refused_with_the_feature_to_build() {
    match reader("Virtual PCD 00 00").open() {
        Err(SelectError::NotBuilt { feature, .. }) => assert_eq!(feature, "pcsc"),
        other => panic!("{:?}", other.map(|o| o.description)),
    }
}

#[cfg(not(feature = "at"))]
#[test]
fn without_at_a_modem_is_refused_with_the_feature_to_build() {
    let s = CardSelection {
        modem: Some("/dev/ttyUSB2".into()),
        ..CardSelection::default()
    };
    match s.open() {
        Err(SelectError::NotBuilt { feature, .. }) => assert_eq!(feature, "at"),
        other => panic!("{:?}", other.map(|o| o.description)),
    }
}
