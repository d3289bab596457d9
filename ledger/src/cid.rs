//! [`Cid`]: the content address of every ledger block.
//!
//! A ledger CID is always CIDv1 with codec dag-cbor (0x71) and a BLAKE3-256 multihash (0x1e, 32
//! bytes). Because both codes are fixed, the newtype stores only the 32-byte digest; the full
//! CID is rebuilt for text, bytes and serde. Its text form is the standard base32 multibase
//! string (`bafyr4i...`).

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Multicodec code of DAG-CBOR.
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of BLAKE3 with a 256-bit digest.
pub const BLAKE3_256: u64 = 0x1e;

/// Length in bytes of a ledger CID in its binary form (version, codec, hash code, length, digest).
pub const CID_LEN: usize = 36;
const PREFIX: [u8; 4] = [0x01, 0x71, 0x1e, 0x20];

/// The CID of a ledger block: CIDv1, dag-cbor, BLAKE3-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid([u8; 32]);

impl Cid {
    /// The CID of `bytes`, taken as a DAG-CBOR block. Does not check the encoding.
    pub fn of(bytes: &[u8]) -> Cid {
        Cid(*blake3::hash(bytes).as_bytes())
    }

    /// Builds a CID from its BLAKE3-256 digest.
    pub const fn from_digest(digest: [u8; 32]) -> Cid {
        Cid(digest)
    }

    /// The BLAKE3-256 digest.
    pub const fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The binary form: `0x01 0x71 0x1e 0x20` followed by the digest.
    pub fn to_bytes(&self) -> [u8; CID_LEN] {
        let mut out = [0u8; CID_LEN];
        out[..4].copy_from_slice(&PREFIX);
        out[4..].copy_from_slice(&self.0);
        out
    }

    /// Parses the binary form, rejecting any CID that is not a ledger CID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cid> {
        if bytes.len() == CID_LEN && bytes[..4] == PREFIX {
            let mut digest = [0u8; 32];
            digest.copy_from_slice(&bytes[4..]);
            return Ok(Cid(digest));
        }
        match cid::Cid::try_from(bytes) {
            Ok(raw) => Cid::try_from(raw),
            Err(e) => Err(Error::InvalidCid {
                input: hex_prefix(bytes),
                reason: e.to_string(),
            }),
        }
    }

    /// The general `cid` crate form of this CID.
    pub fn to_raw(&self) -> cid::Cid {
        let mh = multihash::Multihash::<64>::wrap(BLAKE3_256, &self.0)
            .expect("a 32-byte digest fits in a 64-byte multihash");
        cid::Cid::new_v1(DAG_CBOR, mh)
    }

    /// A short form for logs and terminals: the last 10 characters of the text form.
    pub fn short(&self) -> ShortCid {
        ShortCid(*self)
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(40).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 40 {
        format!("{shown}...")
    } else {
        shown
    }
}

impl TryFrom<cid::Cid> for Cid {
    type Error = Error;

    fn try_from(raw: cid::Cid) -> Result<Cid> {
        let reject = |reason: String| {
            Err(Error::InvalidCid {
                input: raw.to_string(),
                reason,
            })
        };
        if raw.version() != cid::Version::V1 {
            return reject("not a CIDv1".into());
        }
        if raw.codec() != DAG_CBOR {
            return reject(format!("codec 0x{:x} is not dag-cbor (0x71)", raw.codec()));
        }
        let mh = raw.hash();
        if mh.code() != BLAKE3_256 || mh.size() != 32 {
            return reject(format!(
                "multihash 0x{:x} of {} bytes is not blake3-256 (0x1e, 32 bytes)",
                mh.code(),
                mh.size()
            ));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(mh.digest());
        Ok(Cid(digest))
    }
}

impl From<Cid> for cid::Cid {
    fn from(cid: Cid) -> cid::Cid {
        cid.to_raw()
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = multibase::encode(multibase::Base::Base32Lower, self.to_bytes());
        f.write_str(&text)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cid> {
        let raw = cid::Cid::from_str(s.trim()).map_err(|e| Error::InvalidCid {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        Cid::try_from(raw)
    }
}

/// The short display form of a [`Cid`], for logs.
#[derive(Clone, Copy)]
pub struct ShortCid(Cid);

impl fmt::Display for ShortCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        write!(f, "…{}", &text[text.len() - 10..])
    }
}

impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.to_raw().serialize(serializer)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Cid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cid, D::Error> {
        use serde::de::Error as _;
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(D::Error::custom)
        } else {
            let raw = cid::Cid::deserialize(deserializer)?;
            Cid::try_from(raw).map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_round_trip() {
        let cid = Cid::of(b"\xa0");
        let text = cid.to_string();
        assert!(text.starts_with("bafyr4i"), "{text}");
        assert_eq!(text.parse::<Cid>().unwrap(), cid);
        assert_eq!(Cid::from_bytes(&cid.to_bytes()).unwrap(), cid);
        assert_eq!(cid.to_raw().to_bytes(), cid.to_bytes().to_vec());
        assert!(cid.short().to_string().ends_with(&text[text.len() - 10..]));
    }

    #[test]
    fn rejects_foreign_cids() {
        // A sha2-256 dag-cbor CID from the IPLD fixtures.
        let err = "bafyreihdb57fdysx5h35urvxz64ros7zvywshber7id6t6c6fek37jgyfe".parse::<Cid>();
        assert!(err.unwrap_err().to_string().contains("not blake3-256"));
        let err = "bafkreiebzrnroamgos2adnbpgw5apo3z4iishhbdx77gldnbk57d4zdio4".parse::<Cid>();
        assert!(err.unwrap_err().to_string().contains("not dag-cbor"));
        assert!("not-a-cid".parse::<Cid>().is_err());
    }
}
