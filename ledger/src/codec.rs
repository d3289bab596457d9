//! Strict, canonical DAG-CBOR: the only way bytes enter or leave the ledger.
//!
//! Encoding goes through `serde_ipld_dagcbor`, which writes canonical DAG-CBOR (map keys sorted
//! length-first, minimal integer widths, 64-bit floats, CIDs as tag 42). Decoding is strict:
//! the decoder itself rejects what the DAG-CBOR spec forbids, and on top of that a block is
//! accepted only if re-encoding the decoded value gives back the very same bytes.

use ipld_core::ipld::Ipld;
use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

/// Encodes a value as canonical DAG-CBOR.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::codec("encoding", e))
}

/// Decodes strict DAG-CBOR into `T`, then requires that re-encoding gives the same bytes.
///
/// `what` names the input in the error (for example a CID).
pub fn decode<T: Serialize + DeserializeOwned>(
    what: &dyn std::fmt::Display,
    bytes: &[u8],
) -> Result<T> {
    let value: T =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| Error::codec(what.to_string(), e))?;
    let again = encode(&value)?;
    if again != bytes {
        return Err(Error::codec(
            what.to_string(),
            "not canonical DAG-CBOR (re-encoding differs)",
        ));
    }
    Ok(value)
}

/// Decodes any strict, canonical DAG-CBOR block into the IPLD data model.
pub fn decode_ipld(what: &dyn std::fmt::Display, bytes: &[u8]) -> Result<Ipld> {
    decode(what, bytes)
}
