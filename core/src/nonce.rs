//! Nonces for AES-GCM, drawn from the operating system's CSPRNG in blocks so that a seal
//! does not pay for a system call. A pool must never be shared across `fork()`: the caller
//! owns one per process and replaces it when the process id changes.

use zeroize::Zeroize;

use crate::envelope::NONCE_LEN;

const NONCES_PER_REFILL: usize = 340;

pub struct NoncePool {
    buf: [u8; NONCE_LEN * NONCES_PER_REFILL],
    next: usize,
}

impl Default for NoncePool {
    fn default() -> Self {
        NoncePool {
            buf: [0u8; NONCE_LEN * NONCES_PER_REFILL],
            next: NONCE_LEN * NONCES_PER_REFILL,
        }
    }
}

impl NoncePool {
    /// A fresh 96-bit random nonce; each byte handed out is wiped from the pool so that no
    /// nonce can be handed out twice.
    pub fn take(&mut self) -> Result<[u8; NONCE_LEN], getrandom::Error> {
        if self.next == self.buf.len() {
            getrandom::getrandom(&mut self.buf)?;
            self.next = 0;
        }
        let slot = &mut self.buf[self.next..self.next + NONCE_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(slot);
        slot.zeroize();
        self.next += NONCE_LEN;
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nonces_do_not_repeat_across_refills() {
        let mut pool = NoncePool::default();
        let mut seen = HashSet::new();
        for _ in 0..(NONCES_PER_REFILL * 3 + 7) {
            assert!(seen.insert(pool.take().unwrap()));
        }
    }
}
