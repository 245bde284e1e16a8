//! Any bytes as an envelope of either format: parsing and opening (with and without a
//! context, under the key a fixed data key gives it) must return an error or the plaintext, never panic.
#![no_main]

use akko_crypt_core::{DataKeyMaterial, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    let key = DataKeyMaterial::from_bytes([7; 32]).key_for(&envelope);
    let _ = envelope.is_context_bound();
    let _ = envelope.open(&key, None);
    let _ = envelope.open(&key, Some(b""));
    let _ = envelope.open(&key, Some(&data[..data.len().min(24)]));
});
