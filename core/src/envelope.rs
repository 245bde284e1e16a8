//! Envelope formats (see `docs/FORMAT.md`). Seals write version 2; version 1 still opens.
//!
//! ```text
//! magic "\xACKCE" | format | flags | key version (u32 BE) | class length | class
//!     | [subject id (16), if flag bit 1] | [subkey id (16), format 2 only] | nonce (12)
//!     | ciphertext | tag (16)
//! ```
//!
//! Everything before the ciphertext is the header, and the header (followed by the
//! context, when the value is context-bound) is the AES-GCM associated data, so changing
//! any byte of an envelope makes it fail to open.
//!
//! A version 2 envelope is sealed under a *value key* derived from the data key (or the
//! subject's key) and the envelope's random subkey id; each process draws a fresh subkey id
//! after [`SEALS_PER_SUBKEY`] seals (see [`SealingKey`]), so no AES-GCM key ever meets the
//! invocation limit of random nonces, however many values a data key protects. Version 1
//! envelopes were sealed under the data key itself.

use std::fmt;

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;

use crate::class::{ClassName, ClassNameError, MAX_CLASS_LEN};
use crate::key::DataKey;

pub const MAGIC: [u8; 4] = [0xAC, b'K', b'C', b'E'];
/// Sealed under the data key itself; opened, never written any more.
pub const FORMAT_V1: u8 = 1;
/// Sealed under a value key derived per subkey id; what every seal writes.
pub const FORMAT_V2: u8 = 2;
/// Flags bit 0: the associated data includes a caller-supplied context.
pub const FLAG_CONTEXT_BOUND: u8 = 0x01;
/// Flags bit 1: sealed under a per-subject key; the subject's id follows the class.
pub const FLAG_SUBJECT: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_CONTEXT_BOUND | FLAG_SUBJECT;
pub const SUBJECT_ID_LEN: usize = 16;
pub const SUBKEY_ID_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// How many values one value key seals before its process draws another subkey id. With
/// random 96-bit nonces, the chance that two of 2^20 seals under one key share a nonce is
/// below 2^-57 (NIST SP 800-38D asks for 2^-32, reached at 2^32 seals); docs/FORMAT.md
/// gives the bound over a data key's whole life.
pub const SEALS_PER_SUBKEY: u32 = 1 << 20;

const MAGIC_AT: usize = 0;
const FORMAT_AT: usize = 4;
const FLAGS_AT: usize = 5;
const KEY_VERSION_AT: usize = 6;
const CLASS_LEN_AT: usize = 10;
const CLASS_AT: usize = 11;

pub type SubjectId = [u8; SUBJECT_ID_LEN];
pub type SubkeyId = [u8; SUBKEY_ID_LEN];

/// A value key and how many more seals it may make.
pub struct SealingKey {
    id: SubkeyId,
    key: DataKey,
    remaining: u32,
}

impl SealingKey {
    pub(crate) fn new(id: SubkeyId, key: DataKey) -> Self {
        SealingKey {
            id,
            key,
            remaining: SEALS_PER_SUBKEY,
        }
    }

    /// Counts one seal against the budget and gives the subkey id and key to seal with, or
    /// None once the budget is spent (the caller then draws a new sealing key).
    pub fn take(&mut self) -> Option<(&SubkeyId, &DataKey)> {
        self.remaining = self.remaining.checked_sub(1)?;
        Some((&self.id, &self.key))
    }

    pub fn remaining(&self) -> u32 {
        self.remaining
    }
}

/// What to seal under: the class, key version, subject and subkey id name the key (so
/// rotation adds versions without a format change); the nonce must be fresh and random for
/// every seal.
pub struct SealRequest<'a> {
    pub class: ClassName<'a>,
    pub key_version: u32,
    pub subject: Option<&'a SubjectId>,
    pub subkey: &'a SubkeyId,
    pub context: Option<&'a [u8]>,
    pub nonce: [u8; NONCE_LEN],
}

/// Header length of a version 2 envelope.
fn header_len_v2(class_len: usize, subject: bool) -> usize {
    CLASS_AT + class_len + if subject { SUBJECT_ID_LEN } else { 0 } + SUBKEY_ID_LEN + NONCE_LEN
}

impl SealRequest<'_> {
    fn header_len(&self) -> usize {
        header_len_v2(self.class.as_str().len(), self.subject.is_some())
    }

    /// Length of the envelope that sealing `plaintext_len` bytes produces.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        self.header_len() + plaintext_len + TAG_LEN
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    Truncated(usize),
    BadMagic,
    UnsupportedFormat(u8),
    ReservedFlags(u8),
    BadClass(ClassNameError),
    KeyVersionZero,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated(n) => {
                write!(
                    f,
                    "sealed value is truncated ({n} bytes is shorter than its header and tag)"
                )
            }
            EnvelopeError::BadMagic => {
                write!(f, "value is not an akko_crypt envelope (bad magic bytes)")
            }
            EnvelopeError::UnsupportedFormat(v) => {
                write!(
                    f,
                    "unsupported envelope format version {v}; this build reads versions {FORMAT_V1} and {FORMAT_V2}"
                )
            }
            EnvelopeError::ReservedFlags(flags) => {
                write!(
                    f,
                    "envelope has reserved flag bits set (flags 0x{flags:02x})"
                )
            }
            EnvelopeError::BadClass(e) => write!(f, "envelope names an invalid data class: {e}"),
            EnvelopeError::KeyVersionZero => {
                write!(f, "envelope names key version 0, which never exists")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    ContextRequired,
    ContextNotExpected,
    AuthenticationFailed,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::ContextRequired => write!(
                f,
                "sealed value is bound to a context, but no context was given"
            ),
            OpenError::ContextNotExpected => {
                write!(
                    f,
                    "a context was given, but the sealed value is not bound to one"
                )
            }
            OpenError::AuthenticationFailed => write!(
                f,
                "sealed value failed authentication: wrong key, wrong context, or altered bytes"
            ),
        }
    }
}

/// Seals `plaintext` into a version 2 envelope in `out`, which must be exactly
/// `request.sealed_len(..)` bytes long, so the caller can hand in a buffer that is already
/// the final datum. `key` is the value key of `request.subkey`.
pub fn seal_into(key: &DataKey, request: &SealRequest<'_>, plaintext: &[u8], out: &mut [u8]) {
    seal_written_into(
        key,
        request,
        plaintext.len(),
        |at| at.copy_from_slice(plaintext),
        out,
    );
}

/// Seals the `plaintext_len` bytes that `write` puts where their ciphertext goes in `out`
/// (exactly `request.sealed_len(plaintext_len)` bytes), encrypting them in place: a
/// plaintext assembled from parts (a JSON string around a value) needs no copy of its own
/// to wipe. `write` must fill the slice it is given.
pub fn seal_written_into(
    key: &DataKey,
    request: &SealRequest<'_>,
    plaintext_len: usize,
    write: impl FnOnce(&mut [u8]),
    out: &mut [u8],
) {
    let class = request.class.as_str().as_bytes();
    let header_len = request.header_len();
    assert_eq!(
        out.len(),
        request.sealed_len(plaintext_len),
        "seal_into needs a buffer of sealed_len() bytes"
    );
    let mut flags = 0;
    if request.context.is_some() {
        flags |= FLAG_CONTEXT_BOUND;
    }
    if request.subject.is_some() {
        flags |= FLAG_SUBJECT;
    }
    out[MAGIC_AT..FORMAT_AT].copy_from_slice(&MAGIC);
    out[FORMAT_AT] = FORMAT_V2;
    out[FLAGS_AT] = flags;
    out[KEY_VERSION_AT..CLASS_LEN_AT].copy_from_slice(&request.key_version.to_be_bytes());
    out[CLASS_LEN_AT] = class.len() as u8;
    out[CLASS_AT..CLASS_AT + class.len()].copy_from_slice(class);
    let mut at = CLASS_AT + class.len();
    if let Some(subject) = request.subject {
        out[at..at + SUBJECT_ID_LEN].copy_from_slice(subject);
        at += SUBJECT_ID_LEN;
    }
    out[at..at + SUBKEY_ID_LEN].copy_from_slice(request.subkey);
    out[header_len - NONCE_LEN..header_len].copy_from_slice(&request.nonce);

    let (header, body) = out.split_at_mut(header_len);
    let (text, tag_out) = body.split_at_mut(plaintext_len);
    write(text);
    let tag = with_associated_data(header, request.context, |aad| {
        key.cipher
            .encrypt_inout_detached((&request.nonce).into(), aad, InOutBuf::from(text))
    })
    .expect("AES-GCM seals up to 64 GiB; PostgreSQL values stop at 1 GiB");
    tag_out.copy_from_slice(&tag);
}

/// Convenience form of [`seal_into`] that allocates.
pub fn seal(key: &DataKey, request: &SealRequest<'_>, plaintext: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; request.sealed_len(plaintext.len())];
    seal_into(key, request, plaintext, &mut out);
    out
}

fn with_associated_data<T>(header: &[u8], context: Option<&[u8]>, f: impl FnOnce(&[u8]) -> T) -> T {
    match context {
        None => f(header),
        Some(context) => {
            let mut aad = Vec::with_capacity(header.len() + context.len());
            aad.extend_from_slice(header);
            aad.extend_from_slice(context);
            f(&aad)
        }
    }
}

/// A parsed envelope, borrowing the bytes it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    header: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
    pub format: u8,
    pub flags: u8,
    pub key_version: u32,
    pub class: ClassName<'a>,
    pub subject: Option<&'a SubjectId>,
    /// The subkey id of a version 2 envelope; None for version 1.
    pub subkey: Option<&'a SubkeyId>,
}

impl<'a> Envelope<'a> {
    /// Parses without decrypting. Total on every input: it returns an error, never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() < FORMAT_AT + 1 {
            return Err(
                if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
                    EnvelopeError::BadMagic
                } else {
                    EnvelopeError::Truncated(bytes.len())
                },
            );
        }
        if bytes[MAGIC_AT..FORMAT_AT] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let format = bytes[FORMAT_AT];
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return Err(EnvelopeError::UnsupportedFormat(format));
        }
        if bytes.len() < CLASS_AT {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        let flags = bytes[FLAGS_AT];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(EnvelopeError::ReservedFlags(flags));
        }
        let key_version = u32::from_be_bytes(
            bytes[KEY_VERSION_AT..CLASS_LEN_AT]
                .try_into()
                .expect("slice of four bytes"),
        );
        if key_version == 0 {
            return Err(EnvelopeError::KeyVersionZero);
        }
        let class_len = bytes[CLASS_LEN_AT] as usize;
        if class_len == 0 || class_len > MAX_CLASS_LEN {
            return Err(EnvelopeError::BadClass(if class_len == 0 {
                ClassNameError::Empty
            } else {
                ClassNameError::TooLong(class_len)
            }));
        }
        let subject_len = if flags & FLAG_SUBJECT != 0 {
            SUBJECT_ID_LEN
        } else {
            0
        };
        let subkey_len = if format == FORMAT_V2 {
            SUBKEY_ID_LEN
        } else {
            0
        };
        let header_len = CLASS_AT + class_len + subject_len + subkey_len + NONCE_LEN;
        if bytes.len() < header_len + TAG_LEN {
            return Err(EnvelopeError::Truncated(bytes.len()));
        }
        let class = std::str::from_utf8(&bytes[CLASS_AT..CLASS_AT + class_len])
            .map_err(|_| EnvelopeError::BadClass(ClassNameError::BadCharacter))
            .and_then(|name| ClassName::parse(name).map_err(EnvelopeError::BadClass))?;
        let ids = &bytes[CLASS_AT + class_len..];
        let subject = (subject_len != 0).then(|| {
            ids[..SUBJECT_ID_LEN]
                .try_into()
                .expect("slice of SUBJECT_ID_LEN bytes")
        });
        let subkey = (subkey_len != 0).then(|| {
            ids[subject_len..subject_len + SUBKEY_ID_LEN]
                .try_into()
                .expect("slice of SUBKEY_ID_LEN bytes")
        });
        let (header, rest) = bytes.split_at(header_len);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let tag = tag.try_into().expect("split at TAG_LEN from the end");
        Ok(Envelope {
            header,
            ciphertext,
            tag,
            format,
            flags,
            key_version,
            class,
            subject,
            subkey,
        })
    }

    pub fn is_context_bound(&self) -> bool {
        self.flags & FLAG_CONTEXT_BOUND != 0
    }

    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len()
    }

    fn nonce(&self) -> &'a [u8; NONCE_LEN] {
        self.header[self.header.len() - NONCE_LEN..]
            .try_into()
            .expect("a parsed header ends with the nonce")
    }

    /// Checks the context against the flags before any key is needed.
    pub fn check_context(&self, context: Option<&[u8]>) -> Result<(), OpenError> {
        match (self.is_context_bound(), context.is_some()) {
            (true, false) => Err(OpenError::ContextRequired),
            (false, true) => Err(OpenError::ContextNotExpected),
            _ => Ok(()),
        }
    }

    /// Authenticates and decrypts into `out` (exactly `plaintext_len()` bytes) with `key`:
    /// for version 2 the value key of [`Envelope::subkey`], for version 1 the data key (see
    /// `DataKeyMaterial::key_for`). On failure `out` is left untouched: the tag is verified
    /// before anything is decrypted.
    pub fn open_into(
        &self,
        key: &DataKey,
        context: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), OpenError> {
        self.check_context(context)?;
        assert_eq!(
            out.len(),
            self.ciphertext.len(),
            "open_into needs plaintext_len() bytes"
        );
        with_associated_data(self.header, context, |aad| {
            let data = InOutBuf::new(self.ciphertext, out).expect("length checked above");
            key.cipher
                .decrypt_inout_detached(self.nonce().into(), aad, data, self.tag.into())
        })
        .map_err(|_| OpenError::AuthenticationFailed)
    }

    /// Convenience form of [`Envelope::open_into`] that allocates.
    pub fn open(&self, key: &DataKey, context: Option<&[u8]>) -> Result<Vec<u8>, OpenError> {
        let mut out = vec![0u8; self.plaintext_len()];
        self.open_into(key, context, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrap::DataKeyMaterial;

    fn key(byte: u8) -> DataKey {
        DataKeyMaterial::from_bytes([byte; 32]).cipher()
    }

    const SUBKEY: SubkeyId = [5u8; SUBKEY_ID_LEN];

    fn request<'a>(class: &'a str, context: Option<&'a [u8]>) -> SealRequest<'a> {
        SealRequest {
            class: ClassName::parse(class).unwrap(),
            key_version: 1,
            subject: None,
            subkey: &SUBKEY,
            context,
            nonce: [7u8; NONCE_LEN],
        }
    }

    /// A version 1 envelope, as releases before 0.3.0 sealed it: no subkey id, and the key
    /// given is the data key itself.
    fn seal_v1(key: &DataKey, request: &SealRequest<'_>, plaintext: &[u8]) -> Vec<u8> {
        let v2 = seal(key, request, plaintext);
        let subkey_at =
            CLASS_AT + request.class.as_str().len() + request.subject.map_or(0, |_| SUBJECT_ID_LEN);
        let mut header = v2[..request.header_len()].to_vec();
        header[FORMAT_AT] = FORMAT_V1;
        header.drain(subkey_at..subkey_at + SUBKEY_ID_LEN);
        let tag = with_associated_data(&header, request.context, |aad| {
            let mut out = header.clone();
            out.resize(header.len() + plaintext.len(), 0);
            let (_, ciphertext) = out.split_at_mut(header.len());
            let data = InOutBuf::new(plaintext, ciphertext).unwrap();
            let tag = key
                .cipher
                .encrypt_inout_detached((&request.nonce).into(), aad, data)
                .unwrap();
            out.extend_from_slice(&tag);
            out
        });
        tag
    }

    const DOC: &[u8] = br#"{"name": "Ada Lovelace", "email": "ada@example.com"}"#;

    #[test]
    fn round_trips_without_and_with_context() {
        let k = key(1);
        for context in [None, Some(&b""[..]), Some(&b"customers:42"[..])] {
            for plaintext in [
                &b""[..],
                b"{}",
                b"null",
                DOC,
                "\"\u{1F600} \u{00e9}\"".as_bytes(),
            ] {
                let sealed = seal(&k, &request("identity", context), plaintext);
                assert_eq!(
                    sealed.len(),
                    request("identity", context).sealed_len(plaintext.len())
                );
                let env = Envelope::parse(&sealed).unwrap();
                assert_eq!(env.class.as_str(), "identity");
                assert_eq!(env.key_version, 1);
                assert_eq!(env.is_context_bound(), context.is_some());
                assert_eq!(env.open(&k, context).unwrap(), plaintext);
            }
        }
    }

    #[test]
    fn the_same_plaintext_seals_differently_under_different_nonces() {
        let k = key(1);
        let mut a = request("identity", None);
        let b = seal(&k, &a, DOC);
        a.nonce = [8u8; NONCE_LEN];
        assert_ne!(seal(&k, &a, DOC), b);
    }

    #[test]
    fn wrong_key_or_context_fails() {
        let sealed = seal(&key(1), &request("identity", Some(b"row:1")), DOC);
        let env = Envelope::parse(&sealed).unwrap();
        let auth = Err(OpenError::AuthenticationFailed);
        assert_eq!(env.open(&key(2), Some(b"row:1")), auth);
        assert_eq!(env.open(&key(1), Some(b"row:2")), auth);
        assert_eq!(env.open(&key(1), Some(b"")), auth);
        assert_eq!(env.open(&key(1), None), Err(OpenError::ContextRequired));
        let unbound = seal(&key(1), &request("identity", None), DOC);
        assert_eq!(
            Envelope::parse(&unbound)
                .unwrap()
                .open(&key(1), Some(b"row:1")),
            Err(OpenError::ContextNotExpected)
        );
    }

    #[test]
    fn a_header_naming_another_class_version_or_subject_fails_under_the_same_key() {
        let k = key(1);
        let sealed = seal(&k, &request("identity", None), DOC);
        let mut other_class = request("identity", None);
        other_class.class = ClassName::parse("identitx").unwrap();
        let relabelled = |req: &SealRequest<'_>| {
            let mut bytes = seal(&k, req, DOC);
            let header_len = req.header_len();
            bytes.truncate(header_len);
            bytes.extend_from_slice(&sealed[sealed.len() - DOC.len() - TAG_LEN..]);
            Envelope::parse(&bytes).unwrap().open(&k, None)
        };
        let auth = Err(OpenError::AuthenticationFailed);
        assert_eq!(relabelled(&other_class), auth);
        let mut other_version = request("identity", None);
        other_version.key_version = 2;
        assert_eq!(relabelled(&other_version), auth);
        let mut with_subject = request("identity", None);
        with_subject.subject = Some(&[3; SUBJECT_ID_LEN]);
        assert_eq!(relabelled(&with_subject), auth);
    }

    #[test]
    fn flipping_any_bit_of_any_byte_fails() {
        let k = key(1);
        let sealed = seal(&k, &request("identity", Some(b"ctx")), DOC);
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                let opened = Envelope::parse(&bad).map_err(|_| ()).and_then(|env| {
                    env.open(
                        &k,
                        if env.is_context_bound() {
                            Some(b"ctx")
                        } else {
                            None
                        },
                    )
                    .map_err(|_| ())
                });
                assert!(
                    opened.is_err(),
                    "byte {i} bit {bit} changed and the value still opened"
                );
            }
        }
    }

    #[test]
    fn truncated_and_extended_envelopes_fail() {
        let k = key(1);
        let sealed = seal(&k, &request("identity", None), DOC);
        for len in 0..sealed.len() {
            let opened = Envelope::parse(&sealed[..len])
                .map_err(|_| ())
                .and_then(|e| e.open(&k, None).map_err(|_| ()));
            assert!(opened.is_err(), "prefix of {len} bytes opened");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            Envelope::parse(&longer).unwrap().open(&k, None),
            Err(OpenError::AuthenticationFailed)
        );
    }

    #[test]
    fn header_errors_are_specific() {
        let sealed = seal(&key(1), &request("identity", None), DOC);
        let with = |i: usize, v: u8| {
            let mut b = sealed.clone();
            b[i] = v;
            Envelope::parse(&b).map(|_| ())
        };
        assert_eq!(
            Envelope::parse(b"").map(|_| ()),
            Err(EnvelopeError::Truncated(0))
        );
        assert_eq!(
            Envelope::parse(br#"{"a":1}"#).map(|_| ()),
            Err(EnvelopeError::BadMagic)
        );
        assert_eq!(with(FORMAT_AT, 3), Err(EnvelopeError::UnsupportedFormat(3)));
        assert_eq!(
            with(FLAGS_AT, 0x80),
            Err(EnvelopeError::ReservedFlags(0x80))
        );
        assert_eq!(
            with(CLASS_LEN_AT, 0),
            Err(EnvelopeError::BadClass(ClassNameError::Empty))
        );
        assert_eq!(
            with(CLASS_AT, b'I'),
            Err(EnvelopeError::BadClass(ClassNameError::BadCharacter))
        );
        assert_eq!(
            with(CLASS_AT, 0xff),
            Err(EnvelopeError::BadClass(ClassNameError::BadCharacter))
        );
        let mut zero_version = sealed.clone();
        zero_version[KEY_VERSION_AT..CLASS_LEN_AT].copy_from_slice(&[0; 4]);
        assert_eq!(
            Envelope::parse(&zero_version).map(|_| ()),
            Err(EnvelopeError::KeyVersionZero)
        );
    }

    #[test]
    fn parse_never_panics_on_random_or_mutated_input() {
        let k = key(1);
        let sealed = seal(&k, &request("identity", None), DOC);
        let mut noise = vec![0u8; 4096];
        getrandom::getrandom(&mut noise).unwrap();
        for round in 0..20_000usize {
            let start = (round * 7) % noise.len();
            let len = (round * 13) % 200;
            let random: Vec<u8> = noise
                .iter()
                .cycle()
                .skip(start)
                .take(len)
                .copied()
                .collect();
            let _ = Envelope::parse(&random).map(|e| e.open(&k, None));
            let mut mutated = sealed.clone();
            mutated[round % sealed.len()] = noise[round % noise.len()];
            mutated.truncate(sealed.len() - (round % 5));
            if let Ok(env) = Envelope::parse(&mutated) {
                let _ = env.open(&k, None);
            }
            for format in [FORMAT_V1, FORMAT_V2] {
                let mut magic_prefixed = MAGIC.to_vec();
                magic_prefixed.push(format);
                magic_prefixed.extend_from_slice(&random);
                let _ = Envelope::parse(&magic_prefixed).map(|e| e.open(&k, None));
            }
        }
    }

    #[test]
    fn seals_write_version_2_with_the_subkey_id_in_the_header() {
        let k = key(1);
        let sealed = seal(&k, &request("identity", None), DOC);
        assert_eq!(sealed[FORMAT_AT], FORMAT_V2);
        let env = Envelope::parse(&sealed).unwrap();
        assert_eq!(env.format, FORMAT_V2);
        assert_eq!(env.subkey, Some(&SUBKEY));
        assert_eq!(sealed.len(), 63 + DOC.len());
        let subject = [9u8; SUBJECT_ID_LEN];
        let mut with_subject = request("identity", None);
        with_subject.subject = Some(&subject);
        let sealed = seal(&k, &with_subject, DOC);
        let env = Envelope::parse(&sealed).unwrap();
        assert_eq!((env.subject, env.subkey), (Some(&subject), Some(&SUBKEY)));
        assert_eq!(env.open(&k, None).unwrap(), DOC);
    }

    #[test]
    fn version_1_envelopes_still_open_and_carry_no_subkey() {
        let k = key(1);
        for context in [None, Some(&b"row"[..])] {
            let subject = [4u8; SUBJECT_ID_LEN];
            for subject in [None, Some(&subject)] {
                let mut req = request("financial", context);
                req.subject = subject;
                let sealed = seal_v1(&k, &req, DOC);
                let env = Envelope::parse(&sealed).unwrap();
                assert_eq!(
                    (env.format, env.subkey, env.subject),
                    (FORMAT_V1, None, subject)
                );
                assert_eq!(env.open(&k, context).unwrap(), DOC);
                // Relabelled as version 2, its bytes no longer line up and fail to open.
                let mut relabelled = sealed.clone();
                relabelled[FORMAT_AT] = FORMAT_V2;
                let opened = Envelope::parse(&relabelled)
                    .map_err(|_| ())
                    .and_then(|e| e.open(&k, context).map_err(|_| ()));
                assert!(opened.is_err());
            }
        }
    }

    #[test]
    fn a_sealing_key_counts_its_budget_down_and_then_refuses() {
        let mut sealing = SealingKey::new([1; SUBKEY_ID_LEN], key(1));
        sealing.remaining = 2;
        assert!(sealing.take().is_some());
        assert!(sealing.take().is_some());
        assert!(sealing.take().is_none());
        assert_eq!(sealing.remaining(), 0);
        assert!(sealing.take().is_none());
        assert_eq!(
            SealingKey::new([1; SUBKEY_ID_LEN], key(1)).remaining(),
            SEALS_PER_SUBKEY
        );
    }
}
