//! Keys: the session's root key and its store (custody), the keyring of wrapped data keys, the
//! subjects they derive per-person keys for, data classes, the key lifecycle, the status
//! report, and fetching the root from Vault or OpenBao.

pub mod classes;
pub mod custody;
pub mod keyring;
pub mod lifecycle;
pub mod status;
pub mod subjects;
pub mod vault;
