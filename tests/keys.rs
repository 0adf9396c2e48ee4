//! Loading keys: a key on another curve or of another algorithm, and an
//! empty file, are each named in plain words with the fix. The fixtures in
//! `tests/data` were made with openssl:
//!
//! ```sh
//! openssl ecparam -name secp384r1 -genkey -noout -out p384-sec1.pem
//! openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384-pkcs8.pem
//! openssl pkey -in p384-pkcs8.pem -pubout -out p384-public.pem
//! openssl ecparam -name secp256k1 -genkey -noout -out secp256k1-sec1.pem
//! openssl genpkey -algorithm ed25519 -out ed25519-pkcs8.pem
//! ```

use std::path::PathBuf;

use auditring::{KeyError, PublicKey, SigningKey};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auditring-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The PEM body of a fixture as DER.
fn der_of(name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(data(name)).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &v)| n | (u32::from(v) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn assert_wrong_curve(result: Result<impl std::fmt::Debug, KeyError>, curve: &str) {
    let err = result.expect_err("a key on another curve must be refused");
    let msg = err.to_string();
    assert!(matches!(err, KeyError::WrongCurve(_)), "{err:?}");
    assert!(msg.starts_with("wrong curve: the key is on "), "{msg}");
    assert!(msg.contains(curve), "{msg}");
    assert!(msg.contains("auditring needs P-256 (prime256v1)"), "{msg}");
    assert!(!msg.contains("damaged"), "{msg}");
}

#[test]
fn p384_sec1_key_is_named_as_the_wrong_curve() {
    let path = data("p384-sec1.pem");
    assert_wrong_curve(
        SigningKey::from_file(&path),
        "P-384 (secp384r1, OID 1.3.132.0.34)",
    );
    assert_wrong_curve(
        SigningKey::from_der(&der_of("p384-sec1.pem")),
        "P-384 (secp384r1, OID 1.3.132.0.34)",
    );
}

#[test]
fn p384_pkcs8_key_is_named_as_the_wrong_curve() {
    let path = data("p384-pkcs8.pem");
    assert_wrong_curve(
        SigningKey::from_file(&path),
        "P-384 (secp384r1, OID 1.3.132.0.34)",
    );
    assert_wrong_curve(
        SigningKey::from_der(&der_of("p384-pkcs8.pem")),
        "P-384 (secp384r1, OID 1.3.132.0.34)",
    );
}

#[test]
fn p384_public_key_is_named_as_the_wrong_curve() {
    assert_wrong_curve(
        PublicKey::from_file(data("p384-public.pem")),
        "P-384 (secp384r1, OID 1.3.132.0.34)",
    );
    assert_wrong_curve(PublicKey::from_der(&der_of("p384-public.pem")), "P-384");
}

#[test]
fn secp256k1_sec1_key_is_named_as_the_wrong_curve() {
    assert_wrong_curve(
        SigningKey::from_file(data("secp256k1-sec1.pem")),
        "secp256k1 (OID 1.3.132.0.10)",
    );
}

#[test]
fn another_algorithm_is_named() {
    let err = SigningKey::from_file(data("ed25519-pkcs8.pem")).unwrap_err();
    assert!(
        matches!(&err, KeyError::WrongAlgorithm(alg) if alg == "Ed25519"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ECDSA P-256"), "{err}");
}

#[test]
fn empty_key_files_say_they_are_empty() {
    let dir = tempdir("empty");
    for (name, content) in [("empty.pem", ""), ("blank.pem", " \n\n")] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        for err in [
            SigningKey::from_file(&path).map(|_| ()).unwrap_err(),
            PublicKey::from_file(&path).map(|_| ()).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(
                matches!(&err, KeyError::Empty { path: Some(p) } if *p == path),
                "{err:?}"
            );
            assert!(
                msg.contains(&format!("{} is empty", path.display())),
                "{msg}"
            );
            assert!(!msg.to_lowercase().contains("asn"), "{msg}");
        }
    }
    assert!(matches!(
        SigningKey::from_der(&[]),
        Err(KeyError::Empty { path: None })
    ));
    assert!(matches!(
        PublicKey::from_pem("\n"),
        Err(KeyError::Empty { path: None })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn p256_keys_still_load_in_every_form() {
    use p256::pkcs8::DecodePrivateKey;
    let key = SigningKey::generate();
    let dir = tempdir("p256");
    let pkcs8 = dir.join("k.pem");
    std::fs::write(&pkcs8, key.to_pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(
        SigningKey::from_file(&pkcs8).unwrap().key_id(),
        key.key_id()
    );
    // SEC1, PEM and DER (as `openssl ec` writes them).
    let secret = p256::SecretKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
    let sec1_pem = dir.join("sec1.pem");
    std::fs::write(
        &sec1_pem,
        secret
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        SigningKey::from_file(&sec1_pem).unwrap().key_id(),
        key.key_id()
    );
    let sec1_der = dir.join("sec1.der");
    std::fs::write(&sec1_der, secret.to_sec1_der().unwrap()).unwrap();
    assert_eq!(
        SigningKey::from_file(&sec1_der).unwrap().key_id(),
        key.key_id()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
