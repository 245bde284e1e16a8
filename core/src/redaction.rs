//! Spotting text that would carry a secret, so that the server glue can keep it out of logs
//! and activity views: statements that name the key parameter, anything shaped like a root
//! key, whatever statement, parameter list or context carries it, and the input rows that
//! COPY quotes in its errors.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::key::ROOT_KEY_LEN;

/// What statement text that carries a secret names: the key parameter, or a call of
/// `akko_crypt.rewrap(new_key)`, with or without its schema.
pub const SECRET_PARAMETERS: &[&[u8]] = &[b"akko_crypt.key", b"rewrap("];

/// What replaces a key-shaped token.
pub const REDACTED_KEY: &str = "<akko_crypt: redacted>";

/// True when `text` names a secret parameter, however it is spelt: SQL identifiers are
/// case-insensitive and may be quoted or spaced (`SET "AKKO_CRYPT" . key`).
pub fn names_secret(text: &[u8]) -> bool {
    let normalized: Vec<u8> = text
        .iter()
        .filter(|b| !b.is_ascii_whitespace() && **b != b'"')
        .map(u8::to_ascii_lowercase)
        .collect();
    SECRET_PARAMETERS
        .iter()
        .any(|name| normalized.windows(name.len()).any(|w| w == *name))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Whether `token` is something `RootKey::parse` would accept: 64 hex digits, or base64
/// (either alphabet, padded or not) of exactly 32 bytes; or the 32 bytes as a bytea literal
/// or a C-style number would spell them (`\x` and `0x` before 64 hex digits: the backslash
/// is no token byte, so the token starts at the `x`).
fn is_key_shaped(token: &[u8]) -> bool {
    let is_hex_key = |digits: &[u8]| {
        digits.len() == 2 * ROOT_KEY_LEN && digits.iter().all(u8::is_ascii_hexdigit)
    };
    let prefixes: [&[u8]; 4] = [b"0x", b"0X", b"x", b"X"];
    let unprefixed = prefixes.iter().find_map(|p| token.strip_prefix(*p));
    if is_hex_key(token) || unprefixed.is_some_and(is_hex_key) {
        return true;
    }
    if !(43..=44).contains(&token.len()) {
        return false;
    }
    let mut out = [0u8; 48];
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .any(|engine| engine.decode_slice(token, &mut out) == Ok(ROOT_KEY_LEN))
}

/// `text` with every key-shaped token replaced by [`REDACTED_KEY`], or None when it holds
/// none. A token is a longest run of base64 and hex characters with its trailing `=`
/// padding; one that is part of a longer run (a longer hex or base64 value) is left alone.
pub fn redact_keys(text: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < text.len() {
        if !is_token_byte(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_token_byte(text[i]) {
            i += 1;
        }
        while i < text.len() && text[i] == b'=' && i - start < 44 {
            i += 1;
        }
        if is_key_shaped(&text[start..i]) {
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..start]);
            out.extend_from_slice(REDACTED_KEY.as_bytes());
            copied = i;
        }
    }
    out.map(|mut out| {
        out.extend_from_slice(&text[copied..]);
        out
    })
}

/// What replaces the input COPY quotes in an error's context.
pub const COPY_INPUT_REMOVED: &[u8] = b": <akko_crypt: the input is not shown>";

/// A CONTEXT with the input that COPY FROM quotes in it (`COPY t, line 3: "..."`, or
/// `COPY t, line 3, column ssn: "..."`) removed, from its quote to the end: that line holds
/// every value of the row, protected ones in clear, and its quoted text can hold quotes and
/// line breaks of its own. None when there is no such input.
pub fn without_copy_input(context: &[u8]) -> Option<Vec<u8>> {
    let mut line_start = 0;
    while line_start < context.len() {
        let line_end = context[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(context.len(), |at| line_start + at);
        let line = &context[line_start..line_end];
        if line.starts_with(b"COPY ") && line.windows(7).any(|w| w == b", line ") {
            if let Some(quote) = line.windows(3).position(|w| w == b": \"") {
                let mut kept = context[..line_start + quote].to_vec();
                kept.extend_from_slice(COPY_INPUT_REMOVED);
                return Some(kept);
            }
        }
        line_start = line_end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_every_spelling_of_the_key_parameter() {
        for text in [
            "SET akko_crypt.key = 'x'",
            "set AKKO_CRYPT.KEY to 'x'",
            "SET \"akko_crypt\" . \"key\" = 'x'",
            "SELECT set_config('akko_crypt.key', $1, false)",
            "SELECT akko_crypt.rewrap('x')",
            "select AKKO_CRYPT.\"REWRAP\" ('x')",
            "SET akko_crypt .\n key = 'x'",
        ] {
            assert!(names_secret(text.as_bytes()), "{text}");
        }
        assert!(!names_secret(b"SELECT akko_crypt.seal_pii('{}')"));
        assert!(!names_secret(b""));
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn redacted(text: &str) -> Option<String> {
        redact_keys(text.as_bytes()).map(|r| String::from_utf8(r).unwrap())
    }

    #[test]
    fn redacts_keys_in_every_encoding_wherever_they_stand() {
        let url = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        for (text, expected) in [
            (
                format!("EXECUTE setkey('{HEX}')"),
                format!("EXECUTE setkey('{REDACTED_KEY}')"),
            ),
            (
                format!("parameters: $1 = 'akko_crypt.key', $2 = '{B64}'"),
                format!("parameters: $1 = 'akko_crypt.key', $2 = '{REDACTED_KEY}'"),
            ),
            (
                format!("{url} and {}", HEX.to_uppercase()),
                format!("{REDACTED_KEY} and {REDACTED_KEY}"),
            ),
            (format!("key={B64}"), format!("key={REDACTED_KEY}")),
            (
                format!("load_key_bytea('\\x{HEX}')"),
                format!("load_key_bytea('\\{REDACTED_KEY}')"),
            ),
            (
                format!("E'\\\\x{HEX}', 0x{HEX}, 0X{}", HEX.to_uppercase()),
                format!("E'\\\\{REDACTED_KEY}', {REDACTED_KEY}, {REDACTED_KEY}"),
            ),
            (
                format!("'{}'", "-_-_".repeat(10) + "-_A"),
                format!("'{REDACTED_KEY}'"),
            ),
        ] {
            assert_eq!(
                redacted(&text).as_deref(),
                Some(expected.as_str()),
                "{text}"
            );
        }
    }

    #[test]
    fn leaves_everything_else_as_it_is() {
        for text in [
            "SELECT akko_crypt.seal_pii('{\"name\": \"Ada\"}')",
            &format!("\\x{HEX}00"),
            &format!("{HEX}ab"),
            &format!("\\xx{HEX}"),
            &format!("y{HEX}"),
            &HEX[..62],
            "SELECT 1",
            "",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v",
        ] {
            assert_eq!(redacted(text), None, "{text}");
        }
    }

    #[test]
    fn removes_the_input_copy_quotes_and_nothing_else() {
        let removed = |context: &str| {
            without_copy_input(context.as_bytes()).map(|r| String::from_utf8(r).unwrap())
        };
        let gone = std::str::from_utf8(COPY_INPUT_REMOVED).unwrap();
        assert_eq!(
            removed("COPY v_cust, line 1: \"7,123-45-6789,a@b.c\"").as_deref(),
            Some(format!("COPY v_cust, line 1{gone}").as_str())
        );
        assert_eq!(
            removed("PL/pgSQL function f() line 3 at RAISE\nCOPY dt, line 2, column dob: \"1999-99-99\"\nSQL statement \"COPY dt FROM STDIN\"").as_deref(),
            Some(format!("PL/pgSQL function f() line 3 at RAISE\nCOPY dt, line 2, column dob{gone}").as_str())
        );
        // A quoted CSV field with a line break: everything after the quote goes.
        assert_eq!(
            removed("COPY t, line 4: \"1,\"two\nlines\",x\"").as_deref(),
            Some(format!("COPY t, line 4{gone}").as_str())
        );
        for context in [
            "COPY t, line 1, column ssn: null input",
            "COPY t, line 1",
            "SQL statement \"COPY t FROM STDIN\"",
            "PL/pgSQL function copy_rows() line 1: \"x\"",
        ] {
            assert_eq!(removed(context), None, "{context}");
        }
    }
}
