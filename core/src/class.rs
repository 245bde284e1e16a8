//! Data-class names. A class name is written into every envelope and into the HKDF info
//! string, so its alphabet is kept narrow enough to need no escaping anywhere.

use std::fmt;

/// Longest class name, in bytes; it also fits PostgreSQL's identifier length.
pub const MAX_CLASS_LEN: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassName<'a>(&'a str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassNameError {
    Empty,
    TooLong(usize),
    BadCharacter,
}

impl fmt::Display for ClassNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassNameError::Empty => write!(f, "class name is empty"),
            ClassNameError::TooLong(n) => {
                write!(f, "class name is {n} bytes long; the limit is {MAX_CLASS_LEN}")
            }
            ClassNameError::BadCharacter => write!(
                f,
                "class name must start with a lower-case letter and contain only lower-case letters, digits and underscores"
            ),
        }
    }
}

impl<'a> ClassName<'a> {
    pub fn parse(name: &'a str) -> Result<Self, ClassNameError> {
        let bytes = name.as_bytes();
        match bytes.first() {
            None => return Err(ClassNameError::Empty),
            Some(b) if !b.is_ascii_lowercase() => return Err(ClassNameError::BadCharacter),
            Some(_) => {}
        }
        if bytes.len() > MAX_CLASS_LEN {
            return Err(ClassNameError::TooLong(bytes.len()));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        {
            return Err(ClassNameError::BadCharacter);
        }
        Ok(ClassName(name))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl std::fmt::Display for ClassName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_builtin_classes() {
        for name in ["identity", "financial", "operational", "a", "hr_2024"] {
            assert_eq!(ClassName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(ClassName::parse(""), Err(ClassNameError::Empty));
        assert_eq!(
            ClassName::parse("Identity"),
            Err(ClassNameError::BadCharacter)
        );
        assert_eq!(
            ClassName::parse("9lives"),
            Err(ClassNameError::BadCharacter)
        );
        assert_eq!(ClassName::parse("a-b"), Err(ClassNameError::BadCharacter));
        assert_eq!(ClassName::parse("a b"), Err(ClassNameError::BadCharacter));
        assert_eq!(ClassName::parse("é"), Err(ClassNameError::BadCharacter));
        let long = "a".repeat(64);
        assert_eq!(ClassName::parse(&long), Err(ClassNameError::TooLong(64)));
        assert!(ClassName::parse(&"a".repeat(63)).is_ok());
    }
}
