//! Checks the test vectors printed in docs/FORMAT.md, so the spec and the code cannot drift.

use std::collections::HashMap;

use akko_crypt_core::envelope::{seal, SealRequest};
use akko_crypt_core::{ClassName, DataKeyMaterial, Envelope, RootKey};

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

fn array<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().expect("field of the right length")
}

#[test]
fn format_md_vectors_wrap_seal_and_open() {
    let vectors = vectors();
    assert_eq!(
        vectors.len(),
        8,
        "FORMAT.md should carry four vectors of each format"
    );
    for v in vectors {
        let root = RootKey::parse(&v["root_key"]).unwrap();
        assert_eq!(root.fingerprint().to_string(), v["fingerprint"]);
        let class = ClassName::parse(&v["class"]).unwrap();
        let version: u32 = v["key_version"].parse().unwrap();

        let data_key = DataKeyMaterial::from_bytes(array(&v["data_key"]));
        let wrapped = hex(&v["wrapped_key"]);
        assert_eq!(
            root.wrap_with_nonce(class, version, &data_key, array(&v["wrap_nonce"]))
                .to_vec(),
            wrapped
        );
        let unwrapped = root.unwrap(class, version, &wrapped).unwrap();

        let subject: Option<[u8; 16]> =
            (v["subject_id"] != "none").then(|| array(&v["subject_id"]));
        let sealing_material = match &subject {
            Some(id) => unwrapped.subject_material(id, &array(&v["subject_salt"])),
            None => unwrapped,
        };
        let context = (v["context"] != "none").then(|| hex(&v["context"]));
        let envelope = hex(&v["envelope"]);
        let parsed = Envelope::parse(&envelope).unwrap();
        assert_eq!(parsed.format.to_string(), v["format"]);
        assert_eq!(parsed.subject, subject.as_ref());
        if v["format"] == "2" {
            let subkey: [u8; 16] = array(&v["subkey_id"]);
            assert_eq!(parsed.subkey, Some(&subkey));
            let value_key = sealing_material.value_key(&subkey);
            let request = SealRequest {
                class,
                key_version: version,
                subject: subject.as_ref(),
                subkey: &subkey,
                context: context.as_deref(),
                nonce: array(&v["nonce"]),
            };
            assert_eq!(
                seal(&value_key, &request, v["plaintext"].as_bytes()),
                envelope
            );
            // value_key is printed for independent readers; it is the key that opens.
            let printed = DataKeyMaterial::from_bytes(array(&v["value_key"])).cipher();
            assert_eq!(
                parsed.open(&printed, context.as_deref()).unwrap(),
                v["plaintext"].as_bytes()
            );
        } else {
            assert_eq!(parsed.subkey, None);
        }
        let opened = parsed
            .open(&sealing_material.key_for(&parsed), context.as_deref())
            .unwrap();
        assert_eq!(opened, v["plaintext"].as_bytes());
    }
}
