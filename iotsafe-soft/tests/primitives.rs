//! Known answers for the hash, HMAC, HKDF, the record ciphers and the DRBG, through the rustls
//! traits the provider hands to rustls.
//!
//! SHA-256, HMAC and HKDF answers are the RFCs' (FIPS 180-2 examples, RFC 4231, RFC 5869). The
//! record and DRBG answers are computed independently by `tests/vectors.py` (Python's
//! `cryptography`, i.e. OpenSSL): a TLS 1.3 record under keys derived with HKDF-Expand-Label
//! from a fixed traffic secret, and the ChaCha20 keystream under a fixed seed.

use iotsafe_soft::aead::{AES_128_GCM, CHACHA20_POLY1305};
use iotsafe_soft::hash::SHA256;
use iotsafe_soft::hmac::{HKDF_SHA256, HMAC_SHA256};
use iotsafe_soft::rng::ChaChaDrbg;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, OutboundChunks, OutboundPlainMessage, Tls13AeadAlgorithm,
};
use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::tls13::OkmBlock;
use rustls::crypto::SecureRandom;
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion, SupportedCipherSuite};

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------- SHA-256

#[test]
fn sha256_fips_180_examples() {
    assert_eq!(SHA256.algorithm(), HashAlgorithm::SHA256);
    assert_eq!(SHA256.output_len(), 32);
    assert_eq!(
        SHA256.hash(b"abc").as_ref(),
        hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    let expected = hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_eq!(SHA256.hash(two_blocks).as_ref(), expected);

    // The incremental context, as the transcript uses it: a fork's result is the hash so far,
    // and it leaves the running hash alone.
    let mut ctx = SHA256.start();
    ctx.update(&two_blocks[..10]);
    let forked = ctx.fork();
    assert_eq!(
        ctx.fork_finish().as_ref(),
        SHA256.hash(&two_blocks[..10]).as_ref()
    );
    ctx.update(&two_blocks[10..]);
    assert_eq!(ctx.finish().as_ref(), expected);
    assert_eq!(
        forked.finish().as_ref(),
        SHA256.hash(&two_blocks[..10]).as_ref()
    );
}

// ---------------------------------------------------------------- HMAC and HKDF

#[test]
fn hmac_sha256_rfc4231() {
    let cases: [(&[u8], &[u8], &str); 3] = [
        // Test case 1.
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        // Test case 2: a key shorter than the output.
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        // Test case 6: a key longer than the block, hashed first.
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    assert_eq!(HMAC_SHA256.hash_output_len(), 32);
    for (key, data, expected) in cases {
        let key = HMAC_SHA256.with_key(key);
        assert_eq!(key.tag_len(), 32);
        assert_eq!(key.sign(&[data]).as_ref(), hex(expected));
        // The same message in pieces, as rustls hands it over.
        let (a, rest) = data.split_at(3);
        let (b, c) = rest.split_at(rest.len() / 2);
        assert_eq!(key.sign_concat(a, &[b, &[]], c).as_ref(), hex(expected));
    }
}

#[test]
fn hkdf_sha256_rfc5869_case_1() {
    let ikm = [0x0b; 22];
    let salt = hex("000102030405060708090a0b0c");
    let info = hex("f0f1f2f3f4f5f6f7f8f9");
    let prk = hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    let okm =
        hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");

    let mut out = [0u8; 42];
    let expander = HKDF_SHA256.extract_from_secret(Some(&salt), &ikm);
    assert_eq!(expander.hash_len(), 32);
    // Info in two pieces: rustls passes HkdfLabel's fields separately.
    expander
        .expand_slice(&[&info[..4], &info[4..]], &mut out)
        .unwrap();
    assert_eq!(out.to_vec(), okm);

    // Expanding from the PRK itself gives the same output: the extract step gave that PRK.
    let mut again = [0u8; 42];
    HKDF_SHA256
        .expander_for_okm(&OkmBlock::new(&prk))
        .expand_slice(&[&info], &mut again)
        .unwrap();
    assert_eq!(again, out);
    // One block is the first 32 bytes.
    assert_eq!(expander.expand_block(&[&info]).as_ref(), &okm[..32]);
    // HMAC under the PRK, as TLS 1.3's Finished uses it.
    let tag = HKDF_SHA256.hmac_sign(&OkmBlock::new(&prk), b"finished");
    assert_eq!(
        tag.as_ref(),
        HMAC_SHA256.with_key(&prk).sign(&[b"finished"]).as_ref()
    );
    // More than 255 blocks is refused.
    assert!(expander
        .expand_slice(&[], &mut [0u8; 255 * 32 + 1])
        .is_err());
}

#[test]
fn hkdf_sha256_rfc5869_case_3_no_salt_no_info() {
    let okm =
        hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    // An absent salt is a block of zeros, like an empty one.
    for salt in [None, Some(&[][..])] {
        let mut out = [0u8; 42];
        HKDF_SHA256
            .extract_from_secret(salt, &[0x0b; 22])
            .expand_slice(&[], &mut out)
            .unwrap();
        assert_eq!(out.to_vec(), okm, "salt {salt:?}");
    }
}

// ---------------------------------------------------------------- record protection

/// The traffic secret `tests/vectors.py` derives the record keys from.
const SECRET: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = 0x20 + i as u8;
        i += 1;
    }
    s
};
const MESSAGE: &[u8] = b"hello from the SIM's side";

/// Key and IV from a traffic secret, the way rustls's key schedule makes them
/// (HKDF-Expand-Label "key" and "iv"), on this crate's HKDF.
fn traffic_keys(aead: &dyn Tls13AeadAlgorithm) -> (AeadKey, Iv) {
    let expander = HKDF_SHA256.expander_for_okm(&OkmBlock::new(&SECRET));
    (
        rustls::internal::derive_traffic_key(expander.as_ref(), aead),
        rustls::internal::derive_traffic_iv(expander.as_ref()),
    )
}

fn application_data(payload: &[u8]) -> OutboundPlainMessage<'_> {
    OutboundPlainMessage {
        typ: ContentType::ApplicationData,
        version: ProtocolVersion::TLSv1_3,
        payload: OutboundChunks::Single(payload),
    }
}

fn seal(aead: &dyn Tls13AeadAlgorithm, payload: &[u8], seq: u64) -> Vec<u8> {
    let (key, iv) = traffic_keys(aead);
    let record = aead
        .encrypter(key, iv)
        .encrypt(application_data(payload), seq)
        .unwrap();
    assert_eq!(record.typ, ContentType::ApplicationData);
    assert_eq!(record.version, ProtocolVersion::TLSv1_2);
    record.payload.as_ref().to_vec()
}

fn open(aead: &dyn Tls13AeadAlgorithm, record: &[u8], seq: u64) -> Result<Vec<u8>, Error> {
    let (key, iv) = traffic_keys(aead);
    let mut buf = record.to_vec();
    let message = InboundOpaqueMessage::new(
        ContentType::ApplicationData,
        ProtocolVersion::TLSv1_2,
        &mut buf,
    );
    let plain = aead.decrypter(key, iv).decrypt(message, seq)?;
    assert_eq!(plain.typ, ContentType::ApplicationData);
    assert_eq!(plain.version, ProtocolVersion::TLSv1_3);
    Ok(plain.payload.to_vec())
}

fn ring_aead(suite: SupportedCipherSuite) -> &'static dyn Tls13AeadAlgorithm {
    match suite {
        SupportedCipherSuite::Tls13(suite) => suite.aead_alg,
        #[allow(unreachable_patterns)] // with rustls's `tls12` feature (unified in the workspace)
        _ => unreachable!("a TLS 1.3 suite"),
    }
}

/// Each cipher with its OpenSSL answers, key and IV, and ring's implementation of it.
struct Case {
    name: &'static str,
    ours: &'static dyn Tls13AeadAlgorithm,
    ring: &'static dyn Tls13AeadAlgorithm,
    key: &'static str,
    iv: &'static str,
    seq0: &'static str,
    seq7: &'static str,
}

fn cases() -> [Case; 2] {
    use rustls::crypto::ring::cipher_suite as ring;
    [
        Case {
            name: "AES-128-GCM",
            ours: AES_128_GCM,
            ring: ring_aead(ring::TLS13_AES_128_GCM_SHA256),
            key: "b5731bad127592f8b4d6367208350a8f",
            iv: "e0a19f74444f6ad9ab160d17",
            seq0: "c64aaf1c2261f9194de78bae90e713a6bb489d318991ede07fb30f86d3dabb31695eddf3197c94f68c6b",
            seq7: "c49f4fdc3d6de07e5c0b0c58827fd06cdd4f6fbcf9de9aa6e5a25696fe84921275e4a1fd996e9b7e35f6",
        },
        Case {
            name: "ChaCha20-Poly1305",
            ours: CHACHA20_POLY1305,
            ring: ring_aead(ring::TLS13_CHACHA20_POLY1305_SHA256),
            key: "d923000c2ebbe7e78f9fb6b956f12f56c0a5a89205e07985eec830c208f6a697",
            iv: "e0a19f74444f6ad9ab160d17",
            seq0: "8649ba5089d073a6c28a756896070640ee9ac8c43016e5dcd595c32f1f4971a8e23fe3365d50bf6c1b6f",
            seq7: "e68b535b8172d377d4a53a93298773bb1df7f0db4b3f977f202b5f346a95e93fb5af7cc3ae60ad80cb63",
        },
    ]
}

#[test]
fn records_match_openssl() {
    for case in cases() {
        // The keys the key schedule hands over are the ones OpenSSL derived.
        let (key, iv) = traffic_keys(case.ours);
        let (key, iv) = match case.ours.extract_keys(key, iv).unwrap() {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
            _ => panic!("{}: secrets of another cipher", case.name),
        };
        assert_eq!(key.as_ref(), hex(case.key), "{}", case.name);
        assert_eq!(iv.as_ref(), hex(case.iv), "{}", case.name);
        assert_eq!(case.ours.key_len(), hex(case.key).len(), "{}", case.name);

        for (seq, expected) in [(0, case.seq0), (7, case.seq7)] {
            assert_eq!(
                seal(case.ours, MESSAGE, seq),
                hex(expected),
                "{} seq {seq}",
                case.name
            );
            assert_eq!(
                open(case.ours, &hex(expected), seq).unwrap(),
                MESSAGE,
                "{} seq {seq}",
                case.name
            );
        }
    }
}

#[test]
fn records_match_ring_both_ways() {
    for case in cases() {
        for (seq, len) in [(0u64, 0usize), (1, 1), (2, 100), (u64::MAX, 16384)] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ours = seal(case.ours, &payload, seq);
            assert_eq!(
                ours,
                seal(case.ring, &payload, seq),
                "{} seq {seq}",
                case.name
            );
            assert_eq!(ours.len(), len + 1 + 16);
            let (key, iv) = traffic_keys(case.ours);
            assert_eq!(
                case.ours.encrypter(key, iv).encrypted_payload_len(len),
                ours.len()
            );
            assert_eq!(open(case.ring, &ours, seq).unwrap(), payload);
            assert_eq!(open(case.ours, &ours, seq).unwrap(), payload);
        }
    }
}

#[test]
fn a_payload_in_pieces_seals_like_one_piece() {
    for case in cases() {
        let (key, iv) = traffic_keys(case.ours);
        let pieces: [&[u8]; 3] = [&MESSAGE[..5], &[], &MESSAGE[5..]];
        let record = case
            .ours
            .encrypter(key, iv)
            .encrypt(
                OutboundPlainMessage {
                    typ: ContentType::ApplicationData,
                    version: ProtocolVersion::TLSv1_3,
                    payload: OutboundChunks::new(&pieces),
                },
                0,
            )
            .unwrap();
        assert_eq!(record.payload.as_ref(), hex(case.seq0), "{}", case.name);
    }
}

#[test]
fn tampered_records_are_refused() {
    for case in cases() {
        let record = hex(case.seq0);
        // Every bit position of one byte, in every byte: ciphertext, content type and tag.
        for i in 0..record.len() {
            for bit in 0..8 {
                let mut bad = record.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(
                    open(case.ours, &bad, 0),
                    Err(Error::DecryptError),
                    "{} byte {i} bit {bit}",
                    case.name
                );
            }
        }
        // The wrong sequence number (a replayed or reordered record).
        assert_eq!(open(case.ours, &record, 1), Err(Error::DecryptError));
        // Cut short, down to nothing: shorter than a tag included, and no panic.
        for len in 0..record.len() {
            assert_eq!(
                open(case.ours, &record[..len], 0),
                Err(Error::DecryptError),
                "{} cut to {len}",
                case.name
            );
        }
        // Another key (from another traffic secret: no 16-byte AeadKey can be made outside
        // rustls's key schedule).
        let (_, iv) = traffic_keys(case.ours);
        let expander = HKDF_SHA256.expander_for_okm(&OkmBlock::new(&[0x55; 32]));
        let wrong = rustls::internal::derive_traffic_key(expander.as_ref(), case.ours);
        let mut buf = record.clone();
        let message = InboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            &mut buf,
        );
        assert_eq!(
            case.ours.decrypter(wrong, iv).decrypt(message, 0).err(),
            Some(Error::DecryptError)
        );
    }
}

#[test]
fn padding_is_stripped() {
    // ChaCha20-Poly1305, seq 1: MESSAGE, content type 0x17, then three zero bytes.
    let padded = hex(
        "e2319fdd1564a24766ea7693dafd5902494f11eda37e0e06f28b19c7db3677bc50df7e16b35c30537d7773fa72",
    );
    assert_eq!(open(CHACHA20_POLY1305, &padded, 1).unwrap(), MESSAGE);
}

#[test]
fn a_key_of_the_wrong_length_fails_records_instead_of_panicking() {
    // A 32-byte key for AES-128: rustls never does this, but it must not bring the firmware down.
    let (_, iv) = traffic_keys(AES_128_GCM);
    let mut encrypter = AES_128_GCM.encrypter(AeadKey::from([7; 32]), iv);
    assert_eq!(
        encrypter.encrypt(application_data(MESSAGE), 0).err(),
        Some(Error::EncryptError)
    );
    let (_, iv) = traffic_keys(AES_128_GCM);
    let mut buf = hex(cases()[0].seq0);
    let message = InboundOpaqueMessage::new(
        ContentType::ApplicationData,
        ProtocolVersion::TLSv1_2,
        &mut buf,
    );
    assert_eq!(
        AES_128_GCM
            .decrypter(AeadKey::from([7; 32]), iv)
            .decrypt(message, 0)
            .err(),
        Some(Error::DecryptError)
    );
}

// ---------------------------------------------------------------- DRBG

const SEED: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

#[test]
fn drbg_is_chacha20_of_the_seed_then_rekeys_from_its_stream() {
    let drbg = ChaChaDrbg::unseeded();
    drbg.seed(SEED);
    assert!(drbg.is_seeded());
    // The first request: ChaCha20's keystream under the seed (zero nonce, counter 0).
    let mut first = [0u8; 64];
    drbg.fill(&mut first).unwrap();
    assert_eq!(
        first.to_vec(),
        hex(
            "39fd2b7dd9c5196a8dbd0377b8dc4a498a35d86fbcde6accb2cc7d4cd8ea2492\
             2b23cce7a26023ab3f0eef693ac87f64258235eab1f7a32dc22762a0485b410c"
        )
    );
    // The next one runs under a new key: the 32 stream bytes after the first request.
    let mut second = [0u8; 16];
    drbg.fill(&mut second).unwrap();
    assert_eq!(second.to_vec(), hex("6e217d9819a2456eea2ef20181b3c741"));
}

#[test]
fn reseeding_mixes_into_the_state_and_never_replays() {
    let drbg = ChaChaDrbg::unseeded();
    drbg.seed(SEED);
    // The new key: SHA-256 of the next 32 stream bytes and the new seed.
    drbg.seed([0xa5; 32]);
    let mut out = [0u8; 16];
    drbg.fill(&mut out).unwrap();
    assert_eq!(out.to_vec(), hex("11c945935d8e045756f4c368f8f58fe1"));

    // The same seed twice does not restart the stream.
    let again = ChaChaDrbg::unseeded();
    again.seed(SEED);
    let mut a = [0u8; 32];
    again.fill(&mut a).unwrap();
    again.seed(SEED);
    let mut b = [0u8; 32];
    again.fill(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn an_unseeded_drbg_refuses() {
    let drbg = ChaChaDrbg::unseeded();
    assert!(!drbg.is_seeded());
    let mut buf = [0u8; 8];
    assert!(drbg.fill(&mut buf).is_err());
    assert_eq!(buf, [0; 8]);
    // Its Debug shows no state.
    assert_eq!(format!("{drbg:?}"), "ChaChaDrbg { .. }");
}
