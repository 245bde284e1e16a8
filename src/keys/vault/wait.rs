//! Waiting for a Vault request without blocking the backend: the request runs on a helper
//! thread (`akko_crypt_vault` knows nothing of PostgreSQL, and nothing here is called off
//! the main thread); the backend waits on its latch and a socket the helper writes to when
//! done, so `statement_timeout` and `pg_cancel_backend` end the wait at once, and
//! `akko_crypt.vault_timeout` bounds it.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Instant;

use akko_crypt_vault::VaultError;
use pgrx::pg_sys;

use crate::errors::{raise, Error};
use crate::keys::vault::settings::timeout;

/// Waits for `work` on a helper thread, on the latch and a socket the helper writes to when
/// done, so that interrupts (statement_timeout, pg_cancel_backend, shutdown) are served at
/// once. At akko_crypt.vault_timeout the wait ends; an abandoned helper ends by itself, as
/// its requests carry the same timeout.
pub fn off_main_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let deadline = Instant::now() + timeout();
    let (waiter, mut notifier) =
        UnixStream::pair().unwrap_or_else(|e| raise(Error::VaultThreadFailed { error: &e }));
    let (sender, receiver) = mpsc::channel();
    // The helper must not take the backend's signals: they belong to the main thread.
    // SAFETY: sigset_t is plain data that sigfillset initialises; the mask is changed on this
    // thread only and put back right after the spawn, so the new thread inherits a full mask
    // and the backend's own is as before.
    let spawned = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let spawned = std::thread::Builder::new()
            .name("akko_crypt vault".into())
            .spawn(move || {
                let _ = sender.send(work());
                let _ = notifier.write_all(&[1]);
            });
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned
    };
    spawned.unwrap_or_else(|e| raise(Error::VaultThreadFailed { error: &e }));
    loop {
        if let Ok(result) = receiver.try_recv() {
            let mut drained = [0u8; 1];
            let _ = (&waiter).read(&mut drained);
            return result;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            raise(Error::VaultFailed {
                what: "fetch the root key",
                error: &VaultError::TimedOut,
            });
        }
        // SAFETY: MyLatch is this backend's latch; the socket is the waiter end of a pair this
        // function owns for the whole wait; WL_EXIT_ON_PM_DEATH makes the postmaster's death
        // end the backend, not the wait.
        unsafe {
            let events = pg_sys::WaitLatchOrSocket(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET
                    | pg_sys::WL_SOCKET_READABLE
                    | pg_sys::WL_TIMEOUT
                    | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                waiter.as_raw_fd(),
                remaining.as_millis().max(1) as _,
                pg_sys::PG_WAIT_EXTENSION,
            );
            if events & pg_sys::WL_LATCH_SET as i32 != 0 {
                pg_sys::ResetLatch(pg_sys::MyLatch);
            }
        }
        pg_sys::check_for_interrupts!();
    }
}
