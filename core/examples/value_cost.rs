//! The cost of the cryptography alone for one protected value, outside PostgreSQL: what
//! `make bench` sets beside the protected-table timings as their floor. A value is the
//! benchmark's tax id ("123456789" as its JSON string, 11 bytes) sealed under the class
//! `identity` (a 19-byte header), opened again, and its blind index computed.
//!
//! Prints one line per operation: `name|nanoseconds per value`.

use std::hint::black_box;
use std::time::Instant;

use akko_crypt_core::column::{text_payload, Normalization};
use akko_crypt_core::envelope::seal_written_into;
use akko_crypt_core::{ClassName, DataKeyMaterial, Envelope, NoncePool, SealRequest};

const VALUES: u32 = 1_000_000;

fn per_value(name: &str, mut f: impl FnMut(u32)) {
    for i in 0..VALUES / 10 {
        f(i);
    }
    let started = Instant::now();
    for i in 0..VALUES {
        f(i);
    }
    println!(
        "{name}|{:.0}",
        started.elapsed().as_nanos() as f64 / f64::from(VALUES)
    );
}

fn main() {
    let material = DataKeyMaterial::generate().expect("the OS CSPRNG");
    let mut sealing = material.new_sealing_key().expect("the OS CSPRNG");
    let (subkey, key) = sealing.take().expect("a fresh budget");
    let blind_index_key = material.blind_index_key(&[7; 16]);
    let class = ClassName::parse("identity").expect("a valid class");
    let payload = text_payload("123456789");
    let mut nonces = NoncePool::default();
    let request = |nonce| SealRequest {
        class,
        key_version: 1,
        subject: None,
        subkey,
        context: None,
        nonce,
    };
    let mut sealed = vec![0u8; request([0; 12]).sealed_len(payload.json_len())];

    per_value("seal", |_| {
        let nonce = nonces.take().expect("the OS CSPRNG");
        let write = |out: &mut [u8]| payload.write_to(out);
        seal_written_into(key, &request(nonce), payload.json_len(), write, &mut sealed);
        black_box(&sealed);
    });
    let mut opened = vec![0u8; payload.json_len()];
    per_value("open", |_| {
        let envelope = Envelope::parse(black_box(&sealed)).expect("just sealed");
        envelope
            .open_into(key, None, &mut opened)
            .expect("just sealed");
        black_box(&opened);
    });
    per_value("blind_index", |i| {
        black_box(blind_index_key.compute(
            Normalization::Lower,
            if i % 2 == 0 { "a@b.c" } else { "d@e.f" },
        ));
    });
}
