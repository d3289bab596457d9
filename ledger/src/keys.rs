//! Keys and signatures: [`Signer`], [`Author`], [`Signature`], single and batch verification.
//!
//! One set of validation criteria for every path (docs/FORMAT.md, "Signature validity"), chosen
//! so that single ([`Author::verify`]) and batch ([`verify_many`]) verification give the same
//! verdict on every input:
//!
//! 1. `A` (the public key) is the canonical encoding of a curve point that is not of small
//!    order (checked when an [`Author`] is parsed, and `is_weak`);
//! 2. `R` is the canonical encoding of a curve point that is not of small order;
//! 3. `s` is canonical: `s < ℓ`;
//! 4. the cofactored equation holds: `[8][s]B = [8]R + [8][k]A`, with
//!    `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
//!
//! Batch verification checks `[8]([-Σ zᵢsᵢ]B + Σ[zᵢ]Rᵢ + Σ[zᵢkᵢ]Aᵢ) = 0` with independent
//! random 128-bit `zᵢ`: it holds when every single equation holds, and otherwise fails except
//! with probability about 2⁻¹²⁸, whatever torsion components the inputs carry (multiplying by
//! the cofactor removes them; the cofactorless batch equation, which ed25519-dalek's
//! `verify_batch` checks, does not, and so could accept a crafted signature that single
//! verification rejects, or the other way). When a batch fails, each item is checked alone, so
//! every verdict is attributed to its signature.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::{Error, Result};

/// Multicodec prefix of an ed25519 public key (`0xed` as a varint), used by `did:key`.
const ED25519_PUB_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// A secret signing key. Its `Debug` form never shows secret material.
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Signer> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Io {
            context: "reading the system random source for a new key".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Signer::from_seed(seed))
    }

    /// A key from its 32-byte seed (RFC 8032 secret key). Used for fixtures and tests.
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as OpenSSL writes it.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Signer> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| Error::InvalidKey {
            input: "PKCS#8 PEM private key".into(),
            reason: e.to_string(),
        })?;
        Ok(Signer { key })
    }

    /// Writes the key as PKCS#8 v1 PEM (RFC 8410: the private key alone, no public key), the
    /// form OpenSSL 3 and Node's crypto read; [`Signer::from_pkcs8_pem`] reads v1 and v2. The
    /// returned string is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>> {
        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        v1.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| Error::InvalidKey {
                input: "signing key".into(),
                reason: e.to_string(),
            })
    }

    /// The public half.
    pub fn author(&self) -> Author {
        let key = self.key.verifying_key();
        Author {
            key,
            weak: key.is_weak(),
        }
    }

    /// Signs `message` (already domain-separated by the caller).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message).to_bytes())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.author())
    }
}

/// A public key that signs events. Text form: `did:key:z6Mk...`.
#[derive(Clone, Copy)]
pub struct Author {
    key: VerifyingKey,
    /// Whether the key has small order; computed once, checked for every signature.
    weak: bool,
}

impl PartialEq for Author {
    fn eq(&self, other: &Author) -> bool {
        self.key == other.key
    }
}

impl Eq for Author {}

impl std::hash::Hash for Author {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.as_bytes().hash(state);
    }
}

impl Author {
    /// Parses the 32-byte compressed public key. Fails for bytes that are not a curve point,
    /// or not its canonical encoding.
    /// Small-order ("weak") keys parse, but never verify.
    ///
    /// Decompressing a point costs about as much as a quarter of a verification, and a ledger has
    /// few authors, so each thread remembers the last few keys it parsed.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Author> {
        thread_local! {
            static RECENT: std::cell::RefCell<Vec<([u8; 32], Author)>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        if let Some(hit) =
            RECENT.with(|r| r.borrow().iter().find(|(b, _)| b == bytes).map(|(_, a)| *a))
        {
            return Ok(hit);
        }
        let author = Author::decompress(bytes)?;
        RECENT.with(|r| {
            let mut r = r.borrow_mut();
            if r.len() == 16 {
                r.remove(0);
            }
            r.push((*bytes, author));
        });
        Ok(author)
    }

    fn decompress(bytes: &[u8; 32]) -> Result<Author> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|e| Error::InvalidKey {
            input: hex(bytes),
            reason: format!("not an ed25519 public key: {e}"),
        })?;
        // One key, one encoding: a y coordinate of p or more (or a sign bit set on x = 0)
        // names the same point as its canonical form, so two `did:key`s would be one author.
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(Error::InvalidKey {
                input: hex(bytes),
                reason: "a non-canonical encoding of an ed25519 public key".into(),
            });
        }
        Ok(Author {
            key,
            weak: key.is_weak(),
        })
    }

    /// The 32-byte compressed public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether the key has small order, so that it could "sign" for anyone.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// Single verification under the module's criteria (see the module docs).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let Some((r, s)) = self.prechecked(signature) else {
            return false;
        };
        let k = challenge(signature, self, message);
        let a = self.key.to_edwards();
        let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s);
        (sb_minus_ka - r).mul_by_cofactor().is_identity()
    }

    /// Criteria 1 to 3 (see the module docs): `R` decompressed and `s` parsed, when they hold.
    fn prechecked(&self, signature: &Signature) -> Option<(EdwardsPoint, Scalar)> {
        if self.weak {
            return None;
        }
        let mut s = [0u8; 32];
        s.copy_from_slice(&signature.0[32..]);
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s))?;
        let mut r = [0u8; 32];
        r.copy_from_slice(&signature.0[..32]);
        if !is_canonical_encoding(&r) {
            return None;
        }
        let point = CompressedEdwardsY(r).decompress()?;
        if point.is_small_order() {
            return None;
        }
        Some((point, s))
    }

    /// A short form for logs: the last 8 characters of the `did:key`.
    pub fn short(&self) -> String {
        let text = self.to_string();
        format!("…{}", &text[text.len() - 8..])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(34);
        bytes.extend_from_slice(&ED25519_PUB_MULTICODEC);
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "did:key:{}",
            multibase::encode(multibase::Base::Base58Btc, bytes)
        )
    }
}

impl fmt::Debug for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Author({self})")
    }
}

impl FromStr for Author {
    type Err = Error;

    fn from_str(s: &str) -> Result<Author> {
        let bad = |reason: &str| Error::InvalidKey {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s
            .trim()
            .strip_prefix("did:key:")
            .ok_or_else(|| bad("expected a did:key:z... string"))?;
        if !rest.starts_with('z') {
            return Err(bad(
                "a did:key must be base58btc multibase (start with 'z')",
            ));
        }
        let (_, bytes) =
            multibase::decode(rest).map_err(|e| bad(&format!("bad multibase: {e}")))?;
        let key = bytes
            .strip_prefix(&ED25519_PUB_MULTICODEC[..])
            .ok_or_else(|| bad("not an ed25519 did:key (multicodec 0xed)"))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| bad("an ed25519 key has 32 bytes"))?;
        Author::from_bytes(&key)
    }
}

/// An ed25519 signature (64 bytes: `R` then `s`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex(&self.0))
    }
}

/// One signature to check with [`verify_many`].
#[derive(Clone, Copy, Debug)]
pub struct SigCheck<'a> {
    /// The exact signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
    /// The claimed signer.
    pub author: &'a Author,
}

/// Whether `r` is the canonical encoding of a point's y coordinate: y < p = 2^255 - 19, and the
/// sign bit is clear when x = 0 (y = 1 or y = p - 1). Decompression is not attempted.
fn is_canonical_encoding(r: &[u8; 32]) -> bool {
    let y_top = r[31] & 0x7f;
    let y_at_least_p = y_top == 0x7f && r[1..31].iter().all(|&b| b == 0xff) && r[0] >= 0xed;
    if y_at_least_p {
        return false;
    }
    let sign = r[31] & 0x80 != 0;
    let y_is_one = r[0] == 1 && r[1..31].iter().all(|&b| b == 0) && y_top == 0;
    let y_is_minus_one = r[0] == 0xec && r[1..31].iter().all(|&b| b == 0xff) && y_top == 0x7f;
    !(sign && (y_is_one || y_is_minus_one))
}

/// `k = SHA-512(R ‖ A ‖ M) mod ℓ`, the challenge of a signature.
fn challenge(signature: &Signature, author: &Author, message: &[u8]) -> Scalar {
    use sha512::Digest;
    let mut hash = sha512::Sha512::new();
    hash.update(&signature.0[..32]);
    hash.update(author.key.as_bytes());
    hash.update(message);
    let digest: [u8; 64] = hash.finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// The batch size at which [`verify_many`] is cheapest per signature, and the one [`verify`]
/// uses. Batch verification is one multi-scalar multiplication, which gets cheaper per point
/// as it grows and levels off around a thousand points (see `personctl bench`).
///
/// [`verify`]: crate::verify()
pub const VERIFY_BATCH: usize = 1024;

/// Verifies many signatures, returning one verdict per item, in order: the same verdicts as
/// [`Author::verify`] on each (see the module docs).
///
/// Items that pass criteria 1 to 3 are checked together with the cofactored batch equation;
/// if it fails, each of them is checked alone.
pub fn verify_many(items: &[SigCheck<'_>]) -> Vec<bool> {
    let prechecked: Vec<Option<(EdwardsPoint, Scalar)>> = items
        .iter()
        .map(|i| i.author.prechecked(i.signature))
        .collect();
    let mut verdicts: Vec<bool> = prechecked.iter().map(Option::is_some).collect();
    let candidates: Vec<usize> = (0..items.len()).filter(|&i| verdicts[i]).collect();
    if candidates.is_empty() {
        return verdicts;
    }
    let mut rng = rand::rng();
    let mut b_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(2 * candidates.len() + 1);
    let mut points = Vec::with_capacity(2 * candidates.len() + 1);
    for &i in &candidates {
        let (r, s) = prechecked[i].expect("a candidate passed the pre-checks");
        let item = &items[i];
        let mut z = [0u8; 32];
        rand::RngExt::fill(&mut rng, &mut z[..16]);
        let z = Scalar::from_bytes_mod_order(z);
        let k = challenge(item.signature, item.author, item.message);
        b_coefficient -= z * s;
        scalars.push(z);
        points.push(r);
        scalars.push(z * k);
        points.push(item.author.key.to_edwards());
    }
    scalars.push(b_coefficient);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    let sum = EdwardsPoint::vartime_multiscalar_mul(&scalars, &points);
    if !sum.mul_by_cofactor().is_identity() {
        for &i in &candidates {
            verdicts[i] = items[i].author.verify(items[i].message, items[i].signature);
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_canonical_key_encoding_is_refused() {
        // y = p = 2^255 - 19 names the point y = 0 (of order 4), whose canonical form is zeros.
        let mut non_canonical = [0xff; 32];
        non_canonical[0] = 0xed;
        non_canonical[31] = 0x7f;
        let err = Author::from_bytes(&non_canonical).unwrap_err().to_string();
        assert!(err.contains("non-canonical"), "{err}");
        assert!(
            Author::from_bytes(&[0; 32]).is_ok(),
            "its canonical form parses"
        );
    }

    #[test]
    fn keys_are_written_as_pkcs8_v1_and_read_in_both_versions() {
        let signer = Signer::from_seed([11; 32]);
        let pem = signer.to_pkcs8_pem().unwrap();
        // v1: version 0 and no public key, 48 bytes of DER.
        let der_len = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::len)
            .sum::<usize>();
        assert_eq!(der_len, 64, "{}", pem.as_str());
        assert_eq!(
            Signer::from_pkcs8_pem(&pem).unwrap().author(),
            signer.author()
        );
        // v2 (what earlier versions wrote) still reads.
        let v2 = signer
            .key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        assert_ne!(v2.as_str(), pem.as_str());
        assert_eq!(
            Signer::from_pkcs8_pem(&v2).unwrap().author(),
            signer.author()
        );
        // And OpenSSL reads it, where it is installed (it is on this project's machines).
        if let Ok(dir) = std::env::temp_dir().canonicalize() {
            let path = dir.join(format!("personctl-key-{}.pem", std::process::id()));
            std::fs::write(&path, pem.as_bytes()).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&path)
                .output();
            std::fs::remove_file(&path).unwrap();
            if let Ok(out) = out {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(out.stdout.ends_with(&signer.author().to_bytes()));
            }
        }
    }

    #[test]
    fn did_key_round_trip() {
        let signer = Signer::from_seed([7; 32]);
        let author = signer.author();
        let text = author.to_string();
        assert!(text.starts_with("did:key:z6Mk"), "{text}");
        assert_eq!(text.parse::<Author>().unwrap(), author);
        assert!("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
            .parse::<Author>()
            .is_err());
        assert!("z6Mk".parse::<Author>().is_err());
    }

    #[test]
    fn pem_round_trip() {
        let signer = Signer::from_seed([9; 32]);
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = Signer::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.author(), signer.author());
        assert!(Signer::from_pkcs8_pem("garbage").is_err());
    }

    #[test]
    fn batch_attributes_failures() {
        let a = Signer::from_seed([1; 32]);
        let b = Signer::from_seed([2; 32]);
        let (aa, ba) = (a.author(), b.author());
        let s1 = a.sign(b"one");
        let s2 = b.sign(b"two");
        let items = [
            SigCheck {
                message: b"one",
                signature: &s1,
                author: &aa,
            },
            SigCheck {
                message: b"two",
                signature: &s2,
                author: &aa,
            },
            SigCheck {
                message: b"two",
                signature: &s2,
                author: &ba,
            },
        ];
        assert_eq!(verify_many(&items), vec![true, false, true]);
    }

    #[test]
    fn canonical_encoding_by_bytes_agrees_with_decompression() {
        let mut cases: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .map(|p| p.compress().0)
            .to_vec();
        let mut p_minus = [0xff; 32];
        p_minus[31] = 0x7f;
        for low in [0xeb, 0xec, 0xed, 0xee, 0xff] {
            p_minus[0] = low;
            cases.push(p_minus);
            let mut signed = p_minus;
            signed[31] |= 0x80;
            cases.push(signed);
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        cases.push(one);
        one[31] = 0x80;
        cases.push(one);
        cases.push(Signer::from_seed([5; 32]).author().to_bytes());
        for r in cases {
            if let Some(point) = CompressedEdwardsY(r).decompress() {
                assert_eq!(
                    is_canonical_encoding(&r),
                    point.compress().0 == r,
                    "{r:02x?}"
                );
            }
        }
    }
}
