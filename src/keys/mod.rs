//! Keys: the session's root key and its store (custody), the keyring of wrapped data keys, data
//! classes, the key lifecycle and status, and fetching the root from Vault or OpenBao.

pub mod classes;
pub mod custody;
pub mod keyring;
pub mod lifecycle;
pub mod vault;
