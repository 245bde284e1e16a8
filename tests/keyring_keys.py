"""Every key a database's keyring holds, derived from its root keys as docs/FORMAT.md specifies,
with the `cryptography` package: an implementation apart from akko_crypt's Rust core, so that
tests/leaks.sh searches for the real keys and not for what the code under test says they are.

    keyring_keys.py ROOT... < rows

ROOT: a root key, 64 hex digits or base64. Each line of rows, fields separated by '|':
    wrapped|<class>|<version>|<wrapped key, hex>      a row of akko_crypt.keyring
    blind_index|<binding id, hex>|<key version>|<stored blind index, hex>|<plaintext>
                                                      a row of a trim_lower blind-indexed column
    envelope|<envelope, hex>|<context, hex, or - for none>
                                                      a sealed value (not a subject's)
Prints every data key, blind-index key, subject lookup key and value key (the key each
format 2 envelope given is sealed under), each as hex, base64 and URL-safe base64 without
padding, one per line, and `fingerprint <hex>` for each root. Fails when a wrapped key opens
under none of the roots (AES-GCM verifies it), a stored blind index is not the HMAC of its
plaintext under the derived key, or an envelope does not open under the key derived for it:
any of these means the keys found are not the keyring's.
"""

import base64
import hashlib
import hmac
import string
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HKDF_SALT = b"akko_crypt/v1"
VALUE_KEY_SALT = b"akko_crypt/v2"
FINGERPRINT_PREFIX = b"akko_crypt root fingerprint v1\0"
BLIND_INDEX_LEN = 16


def hkdf_sha256(salt, ikm, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def parse_root(text):
    text = text.strip()
    if len(text) == 64 and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    root = base64.urlsafe_b64decode(padded) if "-" in text or "_" in text else base64.b64decode(padded)
    if len(root) != 32:
        sys.exit(f"a root key is 32 bytes, this one {len(root)}")
    return root


def unwrap(root, cls, version, wrapped):
    wrapping_key = hkdf_sha256(HKDF_SALT, root, b"akko_crypt wrapping key\0" + cls.encode())
    aad = b"akko_crypt wrapped key\0" + cls.encode() + b"\0" + version.to_bytes(4, "big")
    if len(wrapped) != 61 or wrapped[0] != 1:
        sys.exit(f"the keyring's {cls} version {version} is not a format-1 wrapped key of 61 bytes")
    return AESGCM(wrapping_key).decrypt(wrapped[1:13], wrapped[13:], aad)


def envelope_key(data_keys, envelope):
    """The key an envelope (no subject) is sealed under, and the envelope's parts."""
    if envelope[:4] != b"\xacKCE" or envelope[4] not in (1, 2) or envelope[5] & 2:
        sys.exit("an envelope given is not of format 1 or 2 without a subject")
    version = int.from_bytes(envelope[6:10], "big")
    class_len = envelope[10]
    cls = envelope[11:11 + class_len].decode()
    at = 11 + class_len
    data_key = data_keys[(cls, version)]
    if envelope[4] == 1:
        key = data_key
    else:
        subkey = envelope[at:at + 16]
        at += 16
        key = hkdf_sha256(VALUE_KEY_SALT, data_key, b"akko_crypt value key\0" + subkey)
    return key, envelope[:at + 12], envelope[at:at + 12], envelope[at + 12:]


def encodings(key):
    yield key.hex()
    yield base64.b64encode(key).decode().rstrip("=")
    yield base64.urlsafe_b64encode(key).decode().rstrip("=")


def main():
    roots = [parse_root(arg) for arg in sys.argv[1:]]
    for root in roots:
        print("fingerprint", hashlib.sha256(FINGERPRINT_PREFIX + root).digest()[:8].hex())
    data_keys = {}
    keys = []
    for line in sys.stdin:
        fields = line.rstrip("\n").split("|")
        if fields[0] == "wrapped":
            cls, version, wrapped = fields[1], int(fields[2]), bytes.fromhex(fields[3])
            for root in roots:
                try:
                    data_keys[(cls, version)] = unwrap(root, cls, version, wrapped)
                    break
                except InvalidTag:
                    continue
            else:
                sys.exit(f"the keyring's {cls} version {version} opens under none of the roots given")
            keys.append(data_keys[(cls, version)])
        elif fields[0] == "blind_index":
            binding, version, stored = bytes.fromhex(fields[1]), int(fields[2]), bytes.fromhex(fields[3])
            plaintext = "|".join(fields[4:])
            column_key = hkdf_sha256(
                HKDF_SALT, data_keys[("blind_index", version)], b"akko_crypt blind index key\0" + binding
            )
            computed = hmac.new(column_key, plaintext.strip().lower().encode(), hashlib.sha256).digest()
            if computed[:BLIND_INDEX_LEN] != stored:
                sys.exit("a stored blind index is not the HMAC of its plaintext under the derived key")
            if column_key not in keys:
                keys.append(column_key)
        elif fields[0] == "envelope":
            envelope = bytes.fromhex(fields[1])
            key, header, nonce, sealed = envelope_key(data_keys, envelope)
            context = b"" if fields[2] == "-" else bytes.fromhex(fields[2])
            try:
                AESGCM(key).decrypt(nonce, sealed, header + context)
            except InvalidTag:
                sys.exit("an envelope does not open under the key derived for it from the keyring")
            if key not in keys:
                keys.append(key)
        else:
            sys.exit(f"unknown row kind {fields[0]!r}")
    for (cls, _), data_key in data_keys.items():
        if cls == "blind_index":
            lookup_key = hkdf_sha256(HKDF_SALT, data_key, b"akko_crypt subject lookup key\0")
            if lookup_key not in keys:
                keys.append(lookup_key)
    for key in keys:
        for text in encodings(key):
            print(text)


if __name__ == "__main__":
    main()
