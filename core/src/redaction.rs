//! Spotting statement text that would carry a secret, so that the server glue can keep it
//! out of logs and activity views.

/// What statement text that carries a secret names: the key parameter, or a call of
/// `akko_crypt.rewrap(new_key)`, with or without its schema.
pub const SECRET_PARAMETERS: &[&[u8]] = &[b"akko_crypt.key", b"rewrap("];

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

#[cfg(test)]
mod tests {
    use super::names_secret;

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
}
