//! Checks the test vectors printed in docs/FORMAT.md, so the spec and the code cannot drift.

use std::collections::HashMap;

use akko_crypt_core::envelope::{seal, SealRequest};
use akko_crypt_core::{ClassName, Envelope, RootKey};

const FORMAT_MD: &str = include_str!("../../docs/FORMAT.md");

fn vectors() -> Vec<HashMap<String, String>> {
    FORMAT_MD
        .split("```vector\n")
        .skip(1)
        .map(|block| {
            block[..block.find("```").expect("closed block")]
                .lines()
                .map(|line| {
                    let (field, value) = line.split_once('=').expect("field = value");
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    (field.trim().to_owned(), value.to_owned())
                })
                .collect()
        })
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn format_md_vectors_seal_and_open() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 3, "FORMAT.md should carry three vectors");
    for v in vectors {
        let root = RootKey::parse(&v["root_key"]).unwrap();
        assert_eq!(root.fingerprint().to_string(), v["fingerprint"]);
        let class = ClassName::parse(&v["class"]).unwrap();
        let version: u32 = v["key_version"].parse().unwrap();
        assert_eq!(
            root.class_key_bytes(class, version).to_vec(),
            hex(&v["class_key"])
        );
        let context = (v["context"] != "none").then(|| hex(&v["context"]));
        let request = SealRequest {
            class,
            key_version: version,
            context: context.as_deref(),
            nonce: hex(&v["nonce"]).try_into().unwrap(),
        };
        let key = root.derive_class_key(class, version);
        let envelope = hex(&v["envelope"]);
        assert_eq!(seal(&key, &request, v["plaintext"].as_bytes()), envelope);
        let opened = Envelope::parse(&envelope)
            .unwrap()
            .open(&key, context.as_deref())
            .unwrap();
        assert_eq!(opened, v["plaintext"].as_bytes());
    }
}
