//! Any text as a protected column's plaintext payload or jsonb envelope document: the text
//! or an error, never a panic; a scalar's payload always reads back as the scalar.
#![no_main]

use akko_crypt_core::column::{jsonb_envelope, payload_text, text_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = payload_text(text);
    let _ = jsonb_envelope(text);
    let payload = text_payload(text);
    let mut written = vec![0; payload.json_len()];
    payload.write_to(&mut written);
    let json = std::str::from_utf8(&written).expect("a payload is UTF-8");
    assert_eq!(payload_text(json).as_deref(), Some(text));
});
