//! Any text as a root key (64 hex digits or base64): a key or an error, never a panic.
#![no_main]

use akko_crypt_core::RootKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = RootKey::parse(text) {
            let _ = key.fingerprint();
        }
    }
});
