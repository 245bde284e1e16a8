//! The cryptographic core of akko_crypt, free of PostgreSQL so that it can be unit-tested,
//! fuzzed and reused outside the server. The byte layout it implements is specified in
//! `docs/FORMAT.md`.

#![forbid(unsafe_code)]

pub mod class;
pub mod column;
pub mod envelope;
pub mod handoff;
pub mod key;
pub mod nonce;
pub mod redaction;
pub mod wrap;

pub use class::{ClassName, ClassNameError};
pub use envelope::{
    Envelope, EnvelopeError, OpenError, SealRequest, SealingKey, SubkeyId, SEALS_PER_SUBKEY,
};
pub use handoff::{HandoffError, HandoffKey, HandoffTarget};
pub use key::{DataKey, Fingerprint, KeyParseError, RootKey};
pub use nonce::NoncePool;
pub use wrap::{DataKeyMaterial, UnwrapError};
