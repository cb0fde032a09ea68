//! The state file: round trip, mode 0600, atomic replacement, volatile keys left out.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use iotsafe_vcard::store::{ObjectRef, ObjectStore};
use iotsafe_vcard::{state, CardOptions, VcardError, VirtualCard};

#[test]
fn round_trip_keeps_persistent_objects_and_drops_volatile_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    let mut card = VirtualCard::create_state(&path, CardOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    // Rotate the device key, fill the ephemeral key and the peer slot: written back at once.
    let rotated = expect(&mut card, "81B9000003840101", 0x9000);
    expect(&mut card, "81B9000003840104", 0x9000);
    expect(&mut card, "8124000203850105", 0x9000);
    let peer = hex(&rotated[rotated.len() - 65..]);
    expect(&mut card, &format!("81D8800247344549438641{peer}"), 0x9000);
    let before = card.store().clone();

    let mut reloaded = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    let after = reloaded.store();
    assert_eq!(
        after.private_keys[0], before.private_keys[0],
        "device key persisted"
    );
    assert_eq!(after.public_keys[0], before.public_keys[0]);
    assert!(
        after.public_keys[2].point.is_none(),
        "the peer slot is volatile"
    );
    assert!(
        after.private_keys[1].scalar.is_none(),
        "volatile key not persisted"
    );
    assert!(after.public_keys[1].point.is_none());
    // The reloaded card signs with the same key.
    expect(&mut reloaded, "01A4040007A0000005590010", 0x9000);
    expect(
        &mut reloaded,
        "812A00010D840101A1010391020001920104",
        0x9000,
    );
    let digest = "5A".repeat(32);
    let sig = expect(&mut reloaded, &format!("812B8001229E20{digest}"), 0x9000);
    assert!(verify_raw(
        &rotated[rotated.len() - 65..],
        &h(&digest),
        &sig[3..]
    ));
    // The file never holds the volatile scalar.
    let text = std::fs::read_to_string(&path).unwrap();
    let volatile = before.private_keys[1].scalar.as_ref().unwrap().expose();
    assert!(!text.contains(&hex(volatile).to_lowercase()));
}

#[test]
fn put_into_a_persistent_slot_is_written_back() {
    use iotsafe_vcard::store::attr;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    let mut store = ObjectStore::default_layout();
    store.public_keys[2].attributes.key_type = attr::KEY_TYPE_P256_PERSISTENT;
    state::save(&path, &store).unwrap();
    let mut card = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    expect(&mut card, "8124000203850105", 0x9000);
    let put = format!("81D8800247344549438641{}", hex(&device_point(&card)));
    expect(&mut card, &put, 0x9000);
    let reloaded = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    assert_eq!(
        reloaded.store().public_keys[2].point,
        Some(device_point(&card))
    );
}

#[test]
fn save_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    let mut card = VirtualCard::create_state(&path, CardOptions::default()).unwrap();
    assert!(card
        .store_mut()
        .write_file(ObjectRef::Id(&[0x03]), b"certificate"));
    card.save().unwrap();
    let reloaded = VirtualCard::open_state(&path, CardOptions::default()).unwrap();
    assert_eq!(reloaded.store().files[1].data, b"certificate");
    // A card without a state file cannot save.
    let loose = VirtualCard::with_default_layout(CardOptions::default());
    assert!(matches!(loose.save(), Err(VcardError::NoStateFile)));
}

#[test]
fn permissions_are_forced_to_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    state::save(&path, &ObjectStore::default_layout()).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_crash_mid_write_leaves_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    let store = ObjectStore::default_layout();
    state::save(&path, &store).unwrap();
    // A crash while writing leaves a torn temporary file beside the state file, never a torn state file.
    let torn = dir.path().join(format!(".card.json.tmp-{}", 99999));
    std::fs::write(&torn, "{\"format\":1,\"store\":{\"private_k").unwrap();
    let loaded = state::load(&path).unwrap();
    assert_eq!(loaded.private_keys[0], store.private_keys[0]);
    // The next save replaces the file whole; leftovers do not disturb it.
    let other = ObjectStore::default_layout();
    state::save(&path, &other).unwrap();
    assert_eq!(
        state::load(&path).unwrap().private_keys[0],
        other.private_keys[0]
    );
    // Nothing but the state file remains: our own temp file was renamed, and the leftover of a
    // writer that no longer runs (it may hold private keys) was removed by the successful save.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["card.json".to_string()]);
}

#[test]
fn bad_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        VirtualCard::open_state(&missing, CardOptions::default()),
        Err(VcardError::Io { .. })
    ));
    let torn = dir.path().join("torn.json");
    std::fs::write(&torn, "{\"format\":1,\"store\":{").unwrap();
    assert!(matches!(
        state::load(&torn),
        Err(VcardError::InvalidState { .. })
    ));
    let future = dir.path().join("future.json");
    std::fs::write(
        &future,
        "{\"format\":9,\"store\":{\"private_keys\":[],\"public_keys\":[],\"secret_keys\":[],\"files\":[]}}",
    )
    .unwrap();
    assert!(matches!(
        state::load(&future),
        Err(VcardError::InvalidState { .. })
    ));
}

#[test]
fn a_failed_write_back_answers_6581() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("card.json");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let mut card = VirtualCard::create_state(&path, CardOptions::default()).unwrap();
    expect(&mut card, "01A4040007A0000005590010", 0x9000);
    // The directory disappears: the keygen cannot be persisted, so the card says so.
    std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
    assert_eq!(send(&mut card, "81B9000003840101"), h("6581"));
    // Volatile keys do not touch the file.
    assert_eq!(sw(&send(&mut card, "81B9000003840104")), 0x9000);
}
