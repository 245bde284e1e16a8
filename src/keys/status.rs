//! `status()`, the security officer's report (the query is `sql/status.sql`), and the
//! rotation policy it reports against, `akko_crypt.rotation_interval`.

use akko_crypt_core::SEALS_PER_SUBKEY;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, JsonB};

use crate::errors::{raise, Error};
use crate::extension::as_owner;
use crate::keys::custody;
use crate::pg::spi::read_one;
use crate::privileges::{self, Privilege};

extension_sql!(
    "REVOKE ALL ON FUNCTION status() FROM PUBLIC;",
    name = "status_grants",
    requires = [status, "keyring"]
);

/// 90 days, in minutes (the parameter's unit).
const DEFAULT_ROTATION_INTERVAL_MINUTES: i32 = 90 * 24 * 60;
static ROTATION_INTERVAL: GucSetting<i32> =
    GucSetting::<i32>::new(DEFAULT_ROTATION_INTERVAL_MINUTES);

pub fn init() {
    GucRegistry::define_int_guc(
        c"akko_crypt.rotation_interval",
        c"How long a data key may stay active before akko_crypt.status() reports its rotation overdue.",
        c"Policy only: nothing rotates by itself. Set it per database with ALTER DATABASE ... SET.",
        &ROTATION_INTERVAL,
        60,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MIN,
    );
}

/// The security officer's report: cipher, this session's key, the rotation policy, and
/// every key version of every class with its state and age.
#[pg_extern(stable, parallel_unsafe)]
fn status() -> JsonB {
    privileges::require(Privilege::Admin, None);
    let fingerprint = custody::fingerprint().map(|f| f.to_string());
    let source = custody::source();
    as_owner(|| {
        read_one::<JsonB>(
            "build the status report",
            include_str!("../../sql/status.sql"),
            &[
                fingerprint.into(),
                source.into(),
                i64::from(SEALS_PER_SUBKEY).into(),
            ],
        )
    })
    .unwrap_or_else(|| raise(Error::ExtensionMissing))
}
