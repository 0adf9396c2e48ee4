//! ECDSA P-256 keys: loading, generating, key ids, signing and verifying.
//!
//! Private keys are PKCS#8 (`-----BEGIN PRIVATE KEY-----`, or DER) or SEC1
//! (`-----BEGIN EC PRIVATE KEY-----`); public keys are SPKI
//! (`-----BEGIN PUBLIC KEY-----`, or DER). The key id is the lower-case hex
//! SHA-256 of the public key's SPKI DER encoding.
//!
//! The secret scalar never appears in `Debug` or `Display` output.

use core::fmt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sha2::{Digest, Sha256};

/// Why a key could not be loaded. Each variant says what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input is neither a PEM block nor DER of a known key type.
    NotAKey(String),
    /// A public key was given where a private (signing) key is needed.
    PublicKeyGiven,
    /// A private key was given where a public (verifying) key is expected.
    PrivateKeyGiven,
    /// The key is for another algorithm (RSA, Ed25519, ...).
    WrongAlgorithm(String),
    /// The key is an elliptic-curve key on another curve than P-256; the
    /// string names the curve (and its OID).
    WrongCurve(String),
    /// The key file (or input) is empty.
    Empty {
        /// The file, when the key was read from one.
        path: Option<PathBuf>,
    },
    /// The PEM block is encrypted.
    Encrypted,
    /// The key's encoding is damaged.
    Malformed {
        /// What the decoder said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io { path, source } => {
                write!(f, "cannot read key file {}: {source}", path.display())
            }
            KeyError::NotAKey(what) => write!(
                f,
                "not a key ({what}): expected a PEM file (PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY) or DER; create one with `auditring keygen --out FILE`"
            ),
            KeyError::PublicKeyGiven => f.write_str(
                "this is a public key, but signing needs the private key: pass the file written by `auditring keygen`",
            ),
            KeyError::PrivateKeyGiven => f.write_str(
                "this is a private key, but verifying needs only the public key: extract it with `auditring pubkey --key FILE > public.pem` and keep the private key on the signing host",
            ),
            KeyError::WrongAlgorithm(alg) => write!(
                f,
                "the key is {alg}, but auditring signs with ECDSA P-256 (prime256v1): generate one with `auditring keygen --out FILE`"
            ),
            KeyError::WrongCurve(curve) => write!(
                f,
                "wrong curve: the key is on {curve} but auditring needs P-256 (prime256v1): generate one with `auditring keygen --out FILE` (or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"
            ),
            KeyError::Empty { path: Some(path) } => write!(
                f,
                "the key file {} is empty: point at the key written by `auditring keygen --out FILE`",
                path.display()
            ),
            KeyError::Empty { path: None } => f.write_str(
                "the key is empty (no bytes): pass the contents of the file written by `auditring keygen --out FILE`",
            ),
            KeyError::Encrypted => f.write_str(
                "the private key is encrypted: decrypt it first (`openssl pkcs8 -in KEY -out plain.pem`) and protect the file with mode 0600",
            ),
            KeyError::Malformed { source } => write!(f, "the key is damaged: {source}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Io { source, .. } => Some(source),
            KeyError::Malformed { source } => Some(&**source),
            _ => None,
        }
    }
}

/// The id of a public key: SHA-256 of its SPKI DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::format::json::hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn key_id_of(key: &VerifyingKey) -> KeyId {
    let der = key
        .to_public_key_der()
        .expect("a P-256 public key always encodes as SPKI");
    KeyId(Sha256::digest(der.as_bytes()).into())
}

/// The OID of `id-ecPublicKey`: an elliptic-curve key, whose parameters
/// name the curve.
const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
/// The OID of P-256 (prime256v1, secp256r1).
const P256_OID: &str = "1.2.840.10045.3.1.7";

/// Names an algorithm OID found where an EC key was expected.
fn algorithm_name(oid: &str) -> String {
    let name = match oid {
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10040.4.1" => "DSA",
        _ => return format!("of algorithm {oid}"),
    };
    name.to_owned()
}

/// Names an elliptic curve by its OID, with the OID.
fn curve_name(oid: &str) -> String {
    let (name, alias) = match oid {
        "1.3.132.0.34" => ("P-384", "secp384r1"),
        "1.3.132.0.35" => ("P-521", "secp521r1"),
        "1.3.132.0.33" => ("P-224", "secp224r1"),
        "1.2.840.10045.3.1.1" => ("P-192", "prime192v1"),
        "1.3.132.0.10" => ("secp256k1", ""),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", ""),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", ""),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", ""),
        _ => return format!("the curve with OID {oid}"),
    };
    if alias.is_empty() {
        format!("{name} (OID {oid})")
    } else {
        format!("{name} ({alias}, OID {oid})")
    }
}

/// What an algorithm identifier names, when it is not a P-256 key.
fn foreign_algorithm(oid: &str, curve: Option<&str>) -> Option<KeyError> {
    if oid != EC_PUBLIC_KEY_OID {
        return Some(KeyError::WrongAlgorithm(algorithm_name(oid)));
    }
    match curve {
        Some(curve) if curve != P256_OID => Some(KeyError::WrongCurve(curve_name(curve))),
        _ => None,
    }
}

/// Names the key type of DER that did not load as a P-256 key: a PKCS#8,
/// SEC1 or SPKI key of another curve or algorithm. `None` if it is none of
/// these (or is a P-256 key damaged in some other way).
fn identify_foreign(der: &[u8]) -> Option<KeyError> {
    use p256::pkcs8::der::Decode;
    if let Ok(info) = p256::pkcs8::PrivateKeyInfoRef::try_from(der) {
        let curve = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
        return foreign_algorithm(&info.algorithm.oid.to_string(), curve.as_deref());
    }
    if let Ok(info) = p256::pkcs8::SubjectPublicKeyInfoRef::try_from(der) {
        let curve = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
        return foreign_algorithm(&info.algorithm.oid.to_string(), curve.as_deref());
    }
    if let Ok(key) = sec1::EcPrivateKey::from_der(der) {
        let curve = key
            .parameters
            .map(|sec1::EcParameters::NamedCurve(oid)| oid.to_string());
        return foreign_algorithm(EC_PUBLIC_KEY_OID, curve.as_deref());
    }
    None
}

/// As [`identify_foreign`], for a PEM document.
fn identify_foreign_pem(pem: &str) -> Option<KeyError> {
    let (_, der) = p256::pkcs8::der::pem::decode_vec(pem.as_bytes()).ok()?;
    identify_foreign(&der)
}

/// The label of the first PEM block in `text`, if any.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

fn pkcs8_error(e: p256::pkcs8::Error) -> KeyError {
    match e {
        p256::pkcs8::Error::PublicKey(p256::pkcs8::spki::Error::OidUnknown { oid }) => {
            KeyError::WrongAlgorithm(algorithm_name(&oid.to_string()))
        }
        other => KeyError::Malformed {
            source: Box::new(other),
        },
    }
}

fn spki_error(e: p256::pkcs8::spki::Error) -> KeyError {
    match e {
        p256::pkcs8::spki::Error::OidUnknown { oid } => {
            KeyError::WrongAlgorithm(algorithm_name(&oid.to_string()))
        }
        other => KeyError::Malformed {
            source: Box::new(other),
        },
    }
}

/// Reads a key file; an empty (or blank) file is [`KeyError::Empty`].
fn read(path: &Path) -> Result<(std::fs::File, Vec<u8>), KeyError> {
    use std::io::Read;
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    if bytes.trim_ascii().is_empty() {
        return Err(KeyError::Empty {
            path: Some(path.to_owned()),
        });
    }
    Ok((file, bytes))
}

/// Warns (through `tracing`) when a private key file can be read or
/// written by group or others.
fn warn_if_exposed(path: &Path, file: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = file.metadata() else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                target: "auditring",
                path = %path.display(),
                mode = %format_args!("{mode:04o}"),
                "the signing key file is accessible to group or others (mode {mode:04o}): anyone who can read it can forge this log's seals; run `chmod 600 {}`",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
    }
}

/// An ECDSA P-256 private key that signs seals.
///
/// # Examples
///
/// ```
/// use auditring::SigningKey;
///
/// let key = SigningKey::generate();
/// let pem = key.to_pkcs8_pem();
/// let again = SigningKey::from_pem(&pem)?;
/// assert_eq!(again.key_id(), key.key_id());
/// // The secret never shows in Debug output.
/// assert!(!format!("{key:?}").contains(&pem[30..60]));
/// # Ok::<(), auditring::KeyError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    key_id: KeyId,
}

impl SigningKey {
    fn new(inner: p256::ecdsa::SigningKey) -> Self {
        let key_id = key_id_of(inner.verifying_key());
        Self { inner, key_id }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self::new(p256::ecdsa::SigningKey::generate())
    }

    /// Loads a PEM private key: PKCS#8 (`PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the problem: a public key, another curve or
    /// algorithm, an encrypted key, or no key at all.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.trim().is_empty() {
            return Err(KeyError::Empty { path: None });
        }
        match pem_label(pem) {
            Some("PRIVATE KEY") => p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
                .map(Self::new)
                .map_err(|e| identify_foreign_pem(pem).unwrap_or_else(|| pkcs8_error(e))),
            Some("EC PRIVATE KEY") => p256::SecretKey::from_sec1_pem(pem)
                .map(|k| Self::new(k.into()))
                .map_err(|e| {
                    identify_foreign_pem(pem).unwrap_or_else(|| KeyError::Malformed {
                        source: Box::new(e),
                    })
                }),
            Some("PUBLIC KEY") => Err(KeyError::PublicKeyGiven),
            Some("ENCRYPTED PRIVATE KEY") => Err(KeyError::Encrypted),
            Some(other) => Err(KeyError::NotAKey(format!("PEM block {other:?}"))),
            None => Err(KeyError::NotAKey("no PEM block found".into())),
        }
    }

    /// Loads a DER private key: PKCS#8 or SEC1.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](SigningKey::from_pem).
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        if der.is_empty() {
            return Err(KeyError::Empty { path: None });
        }
        match p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            Ok(k) => Ok(Self::new(k)),
            Err(e) => {
                if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
                    Ok(Self::new(k.into()))
                } else if VerifyingKey::from_public_key_der(der).is_ok() {
                    Err(KeyError::PublicKeyGiven)
                } else {
                    Err(identify_foreign(der).unwrap_or_else(|| pkcs8_error(e)))
                }
            }
        }
    }

    /// Loads a private key file, PEM or DER.
    ///
    /// On Unix, a file that group or others may read or write is loaded,
    /// with a warning through `tracing` (target `auditring`) that names
    /// the fix (`chmod 600`): whoever can read the key can forge seals.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] if the file cannot be read, [`KeyError::Empty`] if
    /// it is empty, otherwise as [`from_pem`](SigningKey::from_pem).
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::{KeyError, SigningKey};
    ///
    /// let path = std::env::temp_dir().join(format!("auditring-doc-empty-{}.pem", std::process::id()));
    /// std::fs::write(&path, "")?;
    /// let err = SigningKey::from_file(&path).unwrap_err();
    /// assert!(matches!(err, KeyError::Empty { .. }));
    /// assert!(err.to_string().contains("is empty"));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let (file, bytes) = read(path)?;
        warn_if_exposed(path, &file);
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN ") => Self::from_pem(text),
            _ => Self::from_der(&bytes),
        }
    }

    /// The PKCS#8 PEM encoding of this private key. Handle with care: it is
    /// the secret, and it is wiped from memory when the returned value is
    /// dropped.
    pub fn to_pkcs8_pem(&self) -> zeroize::Zeroizing<String> {
        self.inner
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key always encodes as PKCS#8")
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: *self.inner.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// The key id (SHA-256 of the public key's SPKI DER).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Signs a seal: ECDSA P-256 with SHA-256 over its
    /// [preimage](crate::format::seal::Seal::preimage), deterministic (RFC 6979); the
    /// signature as `r || s`, always in low-s form (`s <= n / 2`).
    pub fn sign_seal(&self, seal: &crate::format::seal::Seal) -> [u8; 64] {
        self.sign(&seal.preimage())
    }

    /// ECDSA P-256 with SHA-256 over `message` (deterministic nonce,
    /// RFC 6979); the signature as `r || s`, 32 bytes each, normalized to
    /// low s: of the two valid values `s` and `n - s`, always the smaller,
    /// so a seal line has exactly one valid spelling.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        let sig: Signature = self.inner.sign(message);
        sig.normalize_s().to_bytes().into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An ECDSA P-256 public key that verifies seals.
///
/// # Examples
///
/// ```
/// use auditring::{PublicKey, SigningKey};
///
/// let key = SigningKey::generate();
/// let public = PublicKey::from_pem(&key.public_key().to_pem())?;
/// assert_eq!(public.key_id(), key.key_id());
/// # Ok::<(), auditring::KeyError>(())
/// ```
#[derive(Clone)]
pub struct PublicKey {
    inner: VerifyingKey,
    key_id: KeyId,
}

impl PublicKey {
    /// Loads an SPKI PEM public key (`PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the problem: a private key, another curve or
    /// algorithm, or no key at all.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.trim().is_empty() {
            return Err(KeyError::Empty { path: None });
        }
        match pem_label(pem) {
            Some("PUBLIC KEY") => VerifyingKey::from_public_key_pem(pem)
                .map(Self::new)
                .map_err(|e| identify_foreign_pem(pem).unwrap_or_else(|| spki_error(e))),
            Some("PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY") => {
                Err(KeyError::PrivateKeyGiven)
            }
            Some(other) => Err(KeyError::NotAKey(format!("PEM block {other:?}"))),
            None => Err(KeyError::NotAKey("no PEM block found".into())),
        }
    }

    /// Loads an SPKI DER public key.
    ///
    /// # Errors
    ///
    /// As [`from_pem`](PublicKey::from_pem).
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        if der.is_empty() {
            return Err(KeyError::Empty { path: None });
        }
        match VerifyingKey::from_public_key_der(der) {
            Ok(k) => Ok(Self::new(k)),
            Err(e) => {
                if p256::ecdsa::SigningKey::from_pkcs8_der(der).is_ok()
                    || p256::SecretKey::from_sec1_der(der).is_ok()
                {
                    Err(KeyError::PrivateKeyGiven)
                } else {
                    Err(identify_foreign(der).unwrap_or_else(|| spki_error(e)))
                }
            }
        }
    }

    /// Loads a public key file, PEM or DER.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] if the file cannot be read, [`KeyError::Empty`] if
    /// it is empty, otherwise as [`from_pem`](PublicKey::from_pem).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let (_, bytes) = read(path.as_ref())?;
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN ") => Self::from_pem(text),
            _ => Self::from_der(&bytes),
        }
    }

    fn new(inner: VerifyingKey) -> Self {
        Self {
            key_id: key_id_of(&inner),
            inner,
        }
    }

    /// The SPKI PEM encoding.
    pub fn to_pem(&self) -> String {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key always encodes as SPKI")
    }

    /// The key id (SHA-256 of the SPKI DER).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Whether `signature` (`r || s`) is a valid, low-s ECDSA P-256 /
    /// SHA-256 signature of `message` by this key. A high-s signature (the
    /// other valid spelling `n - s` of a signature) is refused: auditring
    /// writes only low-s signatures, so each seal line has one valid form.
    ///
    /// # Examples
    ///
    /// ```
    /// use auditring::{SigningKey, Uuid};
    /// use auditring::format::seal::{Seal, SealReason, GENESIS, Orphans};
    ///
    /// let key = SigningKey::generate();
    /// let seal = Seal {
    ///     stream: Uuid::from_bytes([1; 16]), index: 0, reason: SealReason::Open, seq_start: 0, count: 0,
    ///     root: auditring::format::merkle::empty_root(), prev: GENESIS, dropped: 0,
    ///     dropped_total: 0, sink_errors: 0, orphans: Orphans::NONE, unix_nanos: 0,
    ///     key_id: key.key_id(),
    /// };
    /// let sig = key.sign_seal(&seal);
    /// assert!(key.public_key().verify(&seal.preimage(), &sig));
    /// ```
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        is_low_s(signature)
            && Signature::from_slice(signature)
                .is_ok_and(|sig| self.inner.verify(message, &sig).is_ok())
    }
}

/// Whether the `s` half of an `r || s` P-256 signature is at most half the
/// group order (the canonical, "low-s" form). Out-of-range values are not
/// low-s.
///
/// # Examples
///
/// ```
/// let mut sig = [0u8; 64];
/// sig[63] = 1;
/// assert!(auditring::format::keys::is_low_s(&sig));
/// sig[32] = 0xff;
/// assert!(!auditring::format::keys::is_low_s(&sig));
/// ```
pub fn is_low_s(signature: &[u8; 64]) -> bool {
    /// floor(n / 2) for the P-256 group order n, big-endian.
    const HALF_ORDER: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31,
        0x92, 0xa8,
    ];
    signature[32..] <= HALF_ORDER[..]
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = SigningKey::generate();
        let sig = key.sign(b"preimage");
        let public = key.public_key();
        assert!(public.verify(b"preimage", &sig));
        assert!(!public.verify(b"preimagf", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!public.verify(b"preimage", &bad));
        assert!(
            !public.verify(b"preimage", &[0; 64]),
            "an all-zero signature is invalid"
        );
        assert!(
            !SigningKey::generate()
                .public_key()
                .verify(b"preimage", &sig)
        );
    }

    /// `n - s` for a P-256 signature: the other valid spelling.
    fn flip_s(sig: &[u8; 64]) -> [u8; 64] {
        let s = Signature::from_slice(sig).unwrap();
        let flipped = Signature::from_scalars(s.r().to_bytes(), (-*s.s()).to_bytes()).unwrap();
        flipped.to_bytes().into()
    }

    #[test]
    fn signatures_are_low_s_and_high_s_is_refused() {
        let key = SigningKey::generate();
        let public = key.public_key();
        let mut saw_flip_to_high = 0;
        for i in 0..64u32 {
            let message = i.to_be_bytes();
            let sig = key.sign(&message);
            assert!(is_low_s(&sig), "the signer writes low-s only");
            assert!(public.verify(&message, &sig));
            let other = flip_s(&sig);
            assert_ne!(other, sig);
            assert!(!is_low_s(&other));
            assert!(
                !public.verify(&message, &other),
                "the high-s twin of a valid signature is refused"
            );
            // The underlying ECDSA check accepts the twin: only the low-s
            // rule tells them apart.
            let twin = Signature::from_slice(&other).unwrap();
            assert!(public.inner.verify(&message, &twin).is_ok());
            saw_flip_to_high += 1;
        }
        assert_eq!(saw_flip_to_high, 64);
    }

    #[test]
    fn wrong_kinds_of_key_are_named() {
        let key = SigningKey::generate();
        let public_pem = key.public_key().to_pem();
        assert!(matches!(
            SigningKey::from_pem(&public_pem),
            Err(KeyError::PublicKeyGiven)
        ));
        assert!(matches!(
            PublicKey::from_pem(&key.to_pkcs8_pem()),
            Err(KeyError::PrivateKeyGiven)
        ));
        assert!(matches!(
            SigningKey::from_pem("garbage"),
            Err(KeyError::NotAKey(_))
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(KeyError::NotAKey(_))
        ));
        assert!(matches!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(KeyError::Malformed { .. })
        ));
        assert!(matches!(
            SigningKey::from_der(b"\x30\x03\x02\x01\x00"),
            Err(KeyError::Malformed { .. })
        ));
        let err = SigningKey::from_file("/nonexistent/dir/key.pem").unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/dir/key.pem"));
    }

    /// A P-384 PKCS#8 key (generated once with openssl).
    const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDA57XB2td6UXxxF3jqF
oCAAAC+aiwRb5ksLJkvt6aW7LfxSGCMnqkqG6fNmvP2AwIChZANiAAQOqrRPZV7L
XtCjoggO/m9KatWbqknbNfKI5A1PIVLpzZZziZL3QlqN22FnJpfO6C3cRY/ecDaX
4CL7NWGFMyz4dPveUDXtn64idzUci3odcCM+O6UXTwCXVyxGGqOK934=
-----END PRIVATE KEY-----
";

    #[test]
    fn another_curve_is_named() {
        match SigningKey::from_pem(P384_PEM) {
            Err(KeyError::WrongCurve(curve)) => {
                assert_eq!(curve, "P-384 (secp384r1, OID 1.3.132.0.34)")
            }
            other => panic!("expected WrongCurve, got {other:?}"),
        }
    }

    #[test]
    fn der_and_sec1_forms_load() {
        let key = SigningKey::generate();
        let der = key
            .inner
            .to_pkcs8_der()
            .expect("encodes")
            .as_bytes()
            .to_vec();
        assert_eq!(SigningKey::from_der(&der).unwrap().key_id(), key.key_id());
        let public_der = key.inner.verifying_key().to_public_key_der().unwrap();
        assert!(matches!(
            SigningKey::from_der(public_der.as_bytes()),
            Err(KeyError::PublicKeyGiven)
        ));
        assert_eq!(
            PublicKey::from_der(public_der.as_bytes()).unwrap().key_id(),
            key.key_id()
        );
        let sec1 = p256::SecretKey::from(key.inner.as_nonzero_scalar())
            .to_sec1_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(SigningKey::from_pem(&sec1).unwrap().key_id(), key.key_id());
    }
}
