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

/// Where `text` holds a key-shaped token: a longest run of base64 and hex characters with
/// its trailing `=` padding; one that is part of a longer run (a longer hex or base64
/// value) is left alone.
/// The shortest run of key characters before `...` that is taken for a key cut short.
const TRUNCATED_KEY_MIN: usize = 16;

fn key_tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
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
        // A value that log_parameter_max_length cut ends in "...": a long enough start of
        // a key leaves too little of it to guess.
        let cut_short = text[i..].starts_with(b"...") && i - start >= TRUNCATED_KEY_MIN;
        if is_key_shaped(&text[start..i]) || cut_short {
            spans.push((start, i));
        }
    }
    spans
}

/// Where `text` holds 32 bytes as hex in groups that whitespace separates, as bytea input
/// takes them (`'\x84 6b 08 ...'`): consecutive groups of whole bytes, 64 digits in all. The
/// whitespace may be written as an escape of an `E'...'` string (`\n`, `\r`, `\t`, ...).
fn separator_len(rest: &[u8]) -> usize {
    match rest {
        [b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, ..] => 1,
        [b'\\', b'n' | b'r' | b't' | b'f' | b'v', ..] => 2,
        _ => 0,
    }
}

fn spaced_hex_keys(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    let mut after_separator = false;
    let flush = |groups: &mut Vec<(usize, usize)>, spans: &mut Vec<(usize, usize)>| {
        for first in 0..groups.len() {
            let mut digits = 0;
            for (last, &(start, end)) in groups.iter().enumerate().skip(first) {
                if (end - start) % 2 != 0 {
                    break;
                }
                digits += end - start;
                if digits >= 2 * ROOT_KEY_LEN {
                    if digits == 2 * ROOT_KEY_LEN && last > first {
                        spans.push((groups[first].0, end));
                    }
                    break;
                }
            }
        }
        groups.clear();
    };
    while i < text.len() {
        // A group starts after anything but a letter or digit, or after the x of `\x`/`0x`.
        let starts = i == 0
            || after_separator
            || !text[i - 1].is_ascii_alphanumeric()
            || (matches!(text[i - 1], b'x' | b'X')
                && (i == 1
                    || matches!(text[i - 2], b'\\' | b'0')
                    || !text[i - 2].is_ascii_alphanumeric()));
        if text[i].is_ascii_hexdigit() && starts {
            let start = i;
            while i < text.len() && text[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i < text.len() && text[i].is_ascii_alphanumeric() {
                flush(&mut groups, &mut spans);
                continue;
            }
            groups.push((start, i));
            let mut spaces = 0;
            while i + spaces < text.len() {
                match separator_len(&text[i + spaces..]) {
                    0 => break,
                    n => spaces += n,
                }
            }
            if spaces == 0 {
                flush(&mut groups, &mut spans);
            }
            i += spaces;
            after_separator = spaces > 0;
        } else {
            flush(&mut groups, &mut spans);
            after_separator = false;
            i += 1;
        }
    }
    flush(&mut groups, &mut spans);
    spans
}

/// Where a quoted literal of `text` holds 32 bytes in bytea's escape format (`'\204\153k...'`,
/// or with each backslash doubled inside `E'...'`): at least eight octal escapes, and the
/// rest printable characters, 32 bytes in all.
fn escaped_bytea_keys(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while let Some(open) = text[i..].iter().position(|&b| b == b'\'').map(|at| i + at) {
        let Some(close) = text[open + 1..]
            .iter()
            .position(|&b| b == b'\'')
            .map(|at| open + 1 + at)
        else {
            break;
        };
        let literal = &text[open + 1..close];
        let (mut bytes, mut escapes, mut j) = (0, 0, 0);
        while j < literal.len() {
            let slashes = literal[j..]
                .iter()
                .take_while(|&&b| b == b'\\')
                .count()
                .min(2);
            let octal = &literal[j + slashes..];
            if slashes > 0
                && octal.len() >= 3
                && matches!(octal[0], b'0'..=b'3')
                && octal[1..3].iter().all(|b| matches!(b, b'0'..=b'7'))
            {
                escapes += 1;
                j += slashes + 3;
            } else {
                j += slashes.max(1);
            }
            bytes += 1;
        }
        if escapes >= 8 && bytes == ROOT_KEY_LEN {
            spans.push((open + 1, close));
        }
        i = close + 1;
    }
    spans
}

/// `text` with every key-shaped token, spaced hex key and escaped bytea key replaced by
/// [`REDACTED_KEY`], or None when it holds none.
pub fn redact_keys(text: &[u8]) -> Option<Vec<u8>> {
    let mut spans = key_tokens(text);
    spans.extend(spaced_hex_keys(text));
    spans.extend(escaped_bytea_keys(text));
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    // Overlapping spans (hex groups that could belong to a key either way) go as one.
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in merged {
        out.extend_from_slice(&text[copied..start]);
        out.extend_from_slice(REDACTED_KEY.as_bytes());
        copied = end;
    }
    out.extend_from_slice(&text[copied..]);
    Some(out)
}

/// What replaces the input an error's context quotes.
pub const QUOTED_INPUT_REMOVED: &[u8] = b": <akko_crypt: the input is not shown>";

/// A CONTEXT with the input it quotes removed, from the quote to the end, or None when it
/// quotes none: the line `COPY t, line 3: "..."` (or `COPY t, line 3, column ssn: "..."`),
/// which holds every value of the row, protected ones in clear; and the document that the
/// JSON parser quotes for a value it refuses (`JSON data, line 1: {"ssn": 123-45...`). Quoted
/// text can hold quotes and line breaks of its own, so everything after the quote goes.
pub fn without_quoted_input(context: &[u8]) -> Option<Vec<u8>> {
    let mut line_start = 0;
    while line_start < context.len() {
        let line_end = context[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(context.len(), |at| line_start + at);
        let line = &context[line_start..line_end];
        let quote = if line.starts_with(b"COPY ") && line.windows(7).any(|w| w == b", line ") {
            line.windows(3).position(|w| w == b": \"")
        } else if line.starts_with(b"JSON data, line ") {
            line.windows(2).position(|w| w == b": ")
        } else {
            None
        };
        if let Some(quote) = quote {
            let mut kept = context[..line_start + quote].to_vec();
            kept.extend_from_slice(QUOTED_INPUT_REMOVED);
            return Some(kept);
        }
        line_start = line_end + 1;
    }
    None
}

/// Whether a CONTEXT says COPY FROM stopped at an input line: the error's message can then
/// quote a value of it (`invalid input syntax for type integer: "123-45-6789"`, a column
/// out of line).
pub fn quotes_copy_input(context: &[u8]) -> bool {
    context
        .split(|&b| b == b'\n')
        .any(|line| line.starts_with(b"COPY ") && line.windows(7).any(|w| w == b", line "))
}

/// A message with the value it quotes (`...: "value"`) removed, or None when it quotes none.
pub fn without_quoted_value(message: &[u8]) -> Option<Vec<u8>> {
    let quote = message.windows(3).position(|w| w == b": \"")?;
    let mut kept = message[..quote].to_vec();
    kept.extend_from_slice(QUOTED_INPUT_REMOVED);
    Some(kept)
}

/// Whether a CONTEXT says the JSON parser refused a document: its DETAIL then quotes the
/// token it stopped at, a piece of the value.
pub fn quotes_json_input(context: &[u8]) -> bool {
    context
        .split(|&b| b == b'\n')
        .any(|line| line.starts_with(b"JSON data, line "))
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
    fn redacts_keys_bytea_would_take_in_pieces() {
        let spaced = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        let escaped: String = (0u8..32).map(|b| format!("\\{b:03o}")).collect();
        let doubled = escaped.replace('\\', "\\\\");
        let mixed: String = (0u8..32)
            .map(|b| {
                if b % 2 == 0 {
                    format!("\\{:03o}", b + 128)
                } else {
                    "k".to_owned()
                }
            })
            .collect();
        for (text, expected) in [
            (
                format!("f('\\x{spaced}')"),
                format!("f('\\x{REDACTED_KEY}')"),
            ),
            // Hex-looking words around it may go with it: either could be part of the key.
            (
                format!("$1 = 'be {spaced} ad'"),
                format!("$1 = '{REDACTED_KEY}'"),
            ),
            (
                format!("$1 = 'key: {spaced}'"),
                format!("$1 = 'key: {REDACTED_KEY}'"),
            ),
            (format!("f('{escaped}')"), format!("f('{REDACTED_KEY}')")),
            (
                format!("f(E'{doubled}'::bytea)"),
                format!("f(E'{REDACTED_KEY}'::bytea)"),
            ),
            (format!("f('{mixed}')"), format!("f('{REDACTED_KEY}')")),
            (
                format!("f(E'\\\\x{}\\n{}')", &HEX[..32], &HEX[32..]),
                format!("f(E'\\\\x{REDACTED_KEY}')"),
            ),
            (
                format!("f('\\x{}\r\n{}')", &HEX[..32], &HEX[32..]),
                format!("f('\\x{REDACTED_KEY}')"),
            ),
            // log_parameter_max_length = 40 cuts the value and adds "...".
            (
                format!("$1 = '{}...'", &B64[..40]),
                format!("$1 = '{REDACTED_KEY}...'"),
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
            "ab cd ef 01 23 45 67 89",
            "SELECT 'it''s', 'a\\000b', 'deadbeef cafe'",
            &HEX[..62],
            "SELECT 1",
            "",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v",
        ] {
            assert_eq!(redacted(text), None, "{text}");
        }
    }

    #[test]
    fn removes_the_input_contexts_quote_and_nothing_else() {
        let removed = |context: &str| {
            without_quoted_input(context.as_bytes()).map(|r| String::from_utf8(r).unwrap())
        };
        let gone = std::str::from_utf8(QUOTED_INPUT_REMOVED).unwrap();
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
        assert_eq!(
            removed("JSON data, line 1: {\"name\": \"Ada\", \"ssn\": 123-45...").as_deref(),
            Some(format!("JSON data, line 1{gone}").as_str())
        );
        assert!(quotes_json_input(
            b"SQL function f\nJSON data, line 1: {...}"
        ));
        assert!(!quotes_json_input(b"SQL function f"));
        assert!(quotes_copy_input(b"COPY t, line 2, column n: \"x\""));
        assert!(!quotes_copy_input(b"SQL statement \"COPY t FROM STDIN\""));
        assert_eq!(
            without_quoted_value(b"invalid input syntax for type integer: \"444-55-6666\"")
                .as_deref(),
            Some(format!("invalid input syntax for type integer{gone}").as_bytes())
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
