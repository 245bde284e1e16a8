//! Protected table columns: what a value is bound to, how a scalar value is carried as the
//! envelope's JSON plaintext, the jsonb and text forms of an envelope, and blind indexes.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// A protected column's random binding id, kept in its registry row: values are bound to it
/// rather than to the table's name or OID, which change with renames and restores.
pub const BINDING_ID_LEN: usize = 16;
pub type BindingId = [u8; BINDING_ID_LEN];

/// A fresh random binding id, for a column about to be protected.
pub fn new_binding_id() -> Result<BindingId, getrandom::Error> {
    let mut id = [0u8; BINDING_ID_LEN];
    getrandom::getrandom(&mut id)?;
    Ok(id)
}

const ROW_CONTEXT_PREFIX: &[u8] = b"akko_crypt row v1\0";

/// The context of a value bound to its row: the column's binding id and the text of each
/// primary key column, each prefixed with its length so that no two keys give one context.
pub fn row_context<'a>(binding: &BindingId, key: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut context = Vec::with_capacity(ROW_CONTEXT_PREFIX.len() + BINDING_ID_LEN + 16);
    context.extend_from_slice(ROW_CONTEXT_PREFIX);
    context.extend_from_slice(binding);
    for part in key {
        context.extend_from_slice(&(part.len() as u32).to_be_bytes());
        context.extend_from_slice(part);
    }
    context
}

/// The plaintext of a scalar value: its text form as a JSON string, so that every envelope
/// holds JSON and `open_pii` opens any of them.
pub enum TextPayload<'a> {
    /// The text between quotes, as it is: nothing in it needs escaping (most values).
    Quoted(&'a str),
    /// The JSON string serde_json writes, wiped when it goes.
    Escaped(Zeroizing<Vec<u8>>),
}

pub fn text_payload(text: &str) -> TextPayload<'_> {
    if needs_no_escape(text) {
        TextPayload::Quoted(text)
    } else {
        TextPayload::Escaped(Zeroizing::new(
            serde_json::to_vec(text).expect("a string always serialises"),
        ))
    }
}

impl TextPayload<'_> {
    /// The length of the JSON string: never 0, it has its quotes.
    pub fn json_len(&self) -> usize {
        match self {
            TextPayload::Quoted(text) => text.len() + 2,
            TextPayload::Escaped(json) => json.len(),
        }
    }

    /// Writes the payload into `out`, which must be `json_len()` bytes long.
    pub fn write_to(&self, out: &mut [u8]) {
        match self {
            TextPayload::Quoted(text) => {
                let (open, rest) = out.split_at_mut(1);
                let (inner, close) = rest.split_at_mut(text.len());
                open[0] = b'"';
                inner.copy_from_slice(text.as_bytes());
                close[0] = b'"';
            }
            TextPayload::Escaped(json) => out.copy_from_slice(json),
        }
    }
}

/// The text form of a plaintext: a JSON string unescaped, any other JSON as it is.
pub fn payload_text(json: &str) -> Option<Cow<'_, str>> {
    if !json.starts_with('"') {
        return Some(Cow::Borrowed(json));
    }
    // Most values (a tax id, an email, a date) hold nothing JSON escapes: read them in
    // place rather than through a parser and a copy.
    if let Some(inner) = json[1..].strip_suffix('"') {
        if needs_no_escape(inner) {
            return Some(Cow::Borrowed(inner));
        }
    }
    serde_json::from_str::<String>(json).ok().map(Cow::Owned)
}

/// Whether JSON writes `text` between quotes as it is: no quote, backslash or control
/// character, the only characters a JSON string must escape.
fn needs_no_escape(text: &str) -> bool {
    !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

const JSONB_ENVELOPE_START: &str = "{\"$akko\": \"";
const JSONB_ENVELOPE_END: &str = "\"}";

/// `{"$akko": "<base64 envelope>"}`, as PostgreSQL's jsonb output writes it.
pub fn jsonb_envelope_text(envelope: &[u8]) -> String {
    let mut text = String::with_capacity(
        JSONB_ENVELOPE_START.len() + envelope.len().div_ceil(3) * 4 + JSONB_ENVELOPE_END.len(),
    );
    text.push_str(JSONB_ENVELOPE_START);
    STANDARD.encode_string(envelope, &mut text);
    text.push_str(JSONB_ENVELOPE_END);
    text
}

/// The envelope a jsonb document holds, given the document's output text; None if it is
/// any other document. An object with the key but a malformed value is an error.
pub fn jsonb_envelope(json_text: &str) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    let encoded = json_text
        .strip_prefix(JSONB_ENVELOPE_START)?
        .strip_suffix(JSONB_ENVELOPE_END)?;
    if encoded.contains('"') {
        return None;
    }
    Some(STANDARD.decode(encoded))
}

/// How a text-mode column carries an envelope: this prefix, then the envelope in standard
/// base64, padded. Any other text in the column is plaintext.
pub const TEXT_ENVELOPE_PREFIX: &str = "$akko:";

/// The length of the text envelope of an envelope of `len` bytes.
pub fn text_envelope_len(len: usize) -> usize {
    TEXT_ENVELOPE_PREFIX.len() + len.div_ceil(3) * 4
}

/// Writes `$akko:<base64 envelope>`, the text a text-mode column holds, into `out`, which must be exactly
/// `text_envelope_len(envelope.len())` bytes long: the caller's buffer can be the datum.
pub fn text_envelope_into(envelope: &[u8], out: &mut [u8]) {
    let (prefix, encoded) = out.split_at_mut(TEXT_ENVELOPE_PREFIX.len());
    prefix.copy_from_slice(TEXT_ENVELOPE_PREFIX.as_bytes());
    let written = STANDARD
        .encode_slice(envelope, encoded)
        .expect("a buffer of text_envelope_len() bytes");
    assert_eq!(
        written,
        encoded.len(),
        "a buffer of text_envelope_len() bytes"
    );
}

/// The envelope a text-mode column's value holds; None if the value is plaintext. A value
/// with the prefix that is not base64 is an error: it is neither.
pub fn envelope_in_text(text: &[u8]) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    let encoded = text.strip_prefix(TEXT_ENVELOPE_PREFIX.as_bytes())?;
    Some(STANDARD.decode(encoded))
}

/// Length of a blind index value: the first 16 bytes of HMAC-SHA256.
pub const BLIND_INDEX_LEN: usize = 16;

/// How a value is normalised before its blind index is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// The value's text as it is.
    None,
    /// Unicode lower case (not the database collation's).
    Lower,
    /// Leading and trailing white space removed, then Unicode lower case.
    TrimLower,
}

impl Normalization {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Normalization::None),
            "lower" => Some(Normalization::Lower),
            "trim_lower" => Some(Normalization::TrimLower),
            _ => None,
        }
    }
}

/// The HMAC-SHA256 key of one column's blind index; zeroized on drop.
#[derive(ZeroizeOnDrop)]
pub struct BlindIndexKey {
    bytes: [u8; 32],
}

impl BlindIndexKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        BlindIndexKey { bytes }
    }

    /// HMAC-SHA256(key, normalised text), truncated to [`BLIND_INDEX_LEN`] bytes.
    pub fn compute(&self, normalization: Normalization, text: &str) -> [u8; BLIND_INDEX_LEN] {
        let mut mac = self.hmac();
        let text = match normalization {
            Normalization::TrimLower => text.trim(),
            Normalization::None | Normalization::Lower => text,
        };
        if normalization == Normalization::None {
            mac.update(text.as_bytes());
        } else if text.is_ascii() {
            // Unicode lower case of ASCII text is its ASCII lower case: fed a chunk at a
            // time from a buffer that is wiped, with no copy of the whole value.
            let mut chunk = Zeroizing::new([0u8; 64]);
            for part in text.as_bytes().chunks(chunk.len()) {
                for (to, from) in chunk.iter_mut().zip(part) {
                    *to = from.to_ascii_lowercase();
                }
                mac.update(&chunk[..part.len()]);
            }
        } else {
            mac.update(Zeroizing::new(text.to_lowercase()).as_bytes());
        }
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        digest[..BLIND_INDEX_LEN]
            .try_into()
            .expect("HMAC-SHA256 is 32 bytes")
    }

    /// HMAC-SHA256(key, message), all 32 bytes.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes).expect("HMAC takes a key of any length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataKeyMaterial;

    #[test]
    fn blind_indexes_lower_case_as_unicode_does() {
        let key = DataKeyMaterial::from_bytes([3; 32]).blind_index_key(&[4; 16]);
        let digest = |text: &str| -> [u8; BLIND_INDEX_LEN] {
            key.mac(text.as_bytes())[..16].try_into().unwrap()
        };
        let long = format!("{}@Example.COM", "MiXeD.".repeat(30));
        for text in [
            "Ada@Example.com",
            "",
            "A",
            long.as_str(),
            "Zoë@Ünïcode.de",
            "ΣΑΣ",
            " \t Ada@X.org \n",
        ] {
            assert_eq!(
                key.compute(Normalization::Lower, text),
                digest(&text.to_lowercase())
            );
            assert_eq!(
                key.compute(Normalization::TrimLower, text),
                digest(&text.trim().to_lowercase())
            );
            assert_eq!(key.compute(Normalization::None, text), digest(text));
        }
    }

    #[test]
    fn row_contexts_differ_by_binding_and_key() {
        let a = row_context(&[1; 16], [b"1".as_slice()]);
        assert_eq!(a.len(), ROW_CONTEXT_PREFIX.len() + 16 + 4 + 1);
        assert_ne!(a, row_context(&[2; 16], [b"1".as_slice()]));
        assert_ne!(a, row_context(&[1; 16], [b"2".as_slice()]));
        // Lengths keep ("ab", "c") apart from ("a", "bc").
        assert_ne!(
            row_context(&[1; 16], [b"ab".as_slice(), b"c"]),
            row_context(&[1; 16], [b"a".as_slice(), b"bc"])
        );
    }

    #[test]
    fn text_payloads_round_trip() {
        for text in [
            "",
            "123-45-6789",
            "quote \" and \\ and \n",
            "Zoë 日本",
            "del \u{7f} and \u{2028}",
            "tab\there",
            "\"",
        ] {
            let payload = text_payload(text);
            let mut written = vec![0; payload.json_len()];
            payload.write_to(&mut written);
            // The escape-free fast paths write and read exactly what serde_json does.
            assert_eq!(written, serde_json::to_vec(text).unwrap());
            let json = std::str::from_utf8(&written).unwrap();
            assert_eq!(payload_text(json).unwrap(), text);
        }
        assert_eq!(payload_text("\"a\\u0041\"").unwrap(), "aA");
        assert!(payload_text("\"").is_none());
        assert!(payload_text("\"abc\\\"").is_none());
        assert_eq!(payload_text("{\"a\": 1}").unwrap(), "{\"a\": 1}");
        assert_eq!(payload_text("12.50").unwrap(), "12.50");
        assert!(payload_text("\"unterminated").is_none());
    }

    #[test]
    fn jsonb_envelopes_are_recognised_and_nothing_else() {
        let text = jsonb_envelope_text(&[0xAC, 1, 2, 3]);
        assert_eq!(text, "{\"$akko\": \"rAECAw==\"}");
        assert_eq!(jsonb_envelope(&text).unwrap().unwrap(), vec![0xAC, 1, 2, 3]);
        assert!(jsonb_envelope("{\"$akko\": \"!!\"}").unwrap().is_err());
        assert!(jsonb_envelope("{\"name\": \"Ada\"}").is_none());
        assert!(jsonb_envelope("{\"$akko\": \"a\", \"x\": \"b\"}").is_none());
        assert!(jsonb_envelope("{\"$akko\": 1}").is_none());
    }

    #[test]
    fn text_envelopes_are_recognised_and_nothing_else() {
        let mut text = vec![0; text_envelope_len(4)];
        text_envelope_into(&[0xAC, 1, 2, 3], &mut text);
        assert_eq!(text, b"$akko:rAECAw==");
        assert_eq!(
            envelope_in_text(&text).unwrap().unwrap(),
            vec![0xAC, 1, 2, 3]
        );
        assert!(envelope_in_text(b"$akko:not base64").unwrap().is_err());
        assert!(envelope_in_text(b"123-45-6789").is_none());
        assert!(envelope_in_text(b" $akko:rAECAw==").is_none());
    }

    #[test]
    fn blind_indexes_depend_on_key_column_and_normalisation() {
        let material = DataKeyMaterial::from_bytes([9; 32]);
        let email = material.blind_index_key(&[1; 16]);
        let other_column = material.blind_index_key(&[2; 16]);
        let a = email.compute(Normalization::Lower, "Ada@Example.com");
        assert_eq!(a, email.compute(Normalization::Lower, "ada@example.com"));
        assert_ne!(a, email.compute(Normalization::None, "Ada@Example.com"));
        assert_eq!(
            a,
            email.compute(Normalization::TrimLower, "  ADA@example.com ")
        );
        assert_ne!(
            a,
            other_column.compute(Normalization::Lower, "ada@example.com")
        );
        let other_key = DataKeyMaterial::from_bytes([8; 32]).blind_index_key(&[1; 16]);
        assert_ne!(
            a,
            other_key.compute(Normalization::Lower, "ada@example.com")
        );
        assert_eq!(
            Normalization::parse("trim_lower"),
            Some(Normalization::TrimLower)
        );
        assert_eq!(Normalization::parse("upper"), None);
    }
}
