//! Keys and signatures: [`Signer`], [`Author`], [`Signature`], strict and batch verification.
//!
//! Verification is *strict* Ed25519 (`verify_strict` in ed25519-dalek): non-canonical `s`,
//! non-canonical or small-order `R`, and small-order public keys are all rejected. Batch
//! verification ([`verify_many`]) applies the same pre-checks to every item and then checks the
//! batch equation; when the batch fails it falls back to one strict check per item, so every
//! verdict is attributed to the right signature.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::scalar::Scalar;
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

    /// Writes the key as PKCS#8 PEM. The returned string is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>> {
        self.key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
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

    /// Strict single verification (see the module docs).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key.verify_strict(message, &sig).is_ok()
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

/// The canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().0))
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

/// The strict checks that batch verification does not make by itself, done on bytes: canonical
/// `s`, canonical `R` not of small order, a key not of small order. (Whether `R` is a point at
/// all is left to the batch, which fails on it and falls back to single verification.)
fn strict_prechecks(item: &SigCheck<'_>) -> bool {
    if item.author.is_weak() {
        return false;
    }
    let mut s = [0u8; 32];
    s.copy_from_slice(&item.signature.0[32..]);
    if Option::<Scalar>::from(Scalar::from_canonical_bytes(s)).is_none() {
        return false;
    }
    let mut r = [0u8; 32];
    r.copy_from_slice(&item.signature.0[..32]);
    is_canonical_encoding(&r) && !small_order_encodings().contains(&r)
}

/// The batch size at which [`verify_many`] is cheapest per signature, and the one [`verify`]
/// uses. Batch verification is one multi-scalar multiplication, which gets cheaper per point
/// as it grows and levels off around a thousand points (see `personctl bench`).
///
/// [`verify`]: crate::verify()
pub const VERIFY_BATCH: usize = 1024;

/// Verifies many signatures, returning one verdict per item, in order.
///
/// Items that pass the strict pre-checks are verified together with the batch equation; if the
/// batch fails, each item is checked alone with strict verification. The batch equation is the
/// cofactorless one with 128-bit coefficients derived from the inputs, so it agrees with strict
/// single verification for every signature an honest signer can make; see
/// `docs/DESIGN.md` for the one residual case (a key holder deliberately adding a torsion
/// component to `R`).
pub fn verify_many(items: &[SigCheck<'_>]) -> Vec<bool> {
    let mut verdicts: Vec<bool> = items.iter().map(strict_prechecks).collect();
    let candidates: Vec<usize> = (0..items.len()).filter(|&i| verdicts[i]).collect();
    if candidates.is_empty() {
        return verdicts;
    }
    let messages: Vec<&[u8]> = candidates.iter().map(|&i| items[i].message).collect();
    let sigs: Vec<ed25519_dalek::Signature> = candidates
        .iter()
        .map(|&i| ed25519_dalek::Signature::from_bytes(&items[i].signature.0))
        .collect();
    let keys: Vec<VerifyingKey> = candidates.iter().map(|&i| items[i].author.key).collect();
    if ed25519_dalek::verify_batch(&messages, &sigs, &keys).is_err() {
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
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let mut cases: Vec<[u8; 32]> = small_order_encodings().to_vec();
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
