//! What the trigger knows of each protected table: its columns' classes, modes, original
//! types, blind indexes and migrating plaintext columns, and its primary key; read from the
//! registry once per session, after checking that the registry and the arguments the table's
//! sealing trigger carries agree, and kept until a relcache invalidation of the table
//! (protect and unprotect recreate the trigger, which sends one), so a row costs no catalog
//! query.

use std::cell::RefCell;
use std::ffi::CStr;
use std::rc::Rc;

use akko_crypt_core::column::{BindingId, Normalization};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{raise, Error};
use crate::pg::majors::tuple_desc_attributes;
use crate::pg::sql;
use crate::session_cache::{get_or_load, SessionCache};
use crate::tables::registry::{self, Mode};
use crate::tables::type_io::{Lookup, OriginalType, SpecMemory};
use crate::values::blind_index::BlindIndex;
use crate::values::columns::KeyOutput;

/// Protected tables whose specs a session keeps at most; one more starts over.
const MAX_CACHED_TABLES: usize = 1024;

/// The specs are dropped table by table, by relcache invalidation (`forget_table`), not by a
/// generation: this one never moves.
const SPEC_GENERATION: u64 = 0;

thread_local! {
    static TABLES: RefCell<SessionCache<pg_sys::Oid, Rc<TableSpec>>> =
        const { RefCell::new(SessionCache::new(MAX_CACHED_TABLES)) };
}

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callback has the C ABI PostgreSQL calls it
    // with.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget_table), pg_sys::Datum::from(0)) }
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_table(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    TABLES.with(|t| {
        let mut tables = t.borrow_mut();
        if relid == pg_sys::InvalidOid {
            tables.clear();
        } else {
            tables.forget(&relid);
        }
    });
}

pub enum ColumnMode {
    /// bytea or text mode: the value is its original type's text, sealed as a JSON string.
    Scalar(OriginalType, Carrier),
    Jsonb,
}

/// How a scalar column holds an envelope: as bytea, or as `$akko:` text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Bytea,
    Text,
}

pub struct ColumnSpec {
    pub name: String,
    /// Index of the column in the row (attnum - 1).
    pub(super) column: usize,
    pub class: String,
    pub mode: ColumnMode,
    pub binding: BindingId,
    pub(super) bound_to_row: bool,
    pub blind_index: Option<BlindIndex>,
    /// While a column migrates online: the renamed plaintext column, of the original type.
    pub(super) plain: Option<usize>,
}

pub struct TableSpec {
    pub columns: Vec<ColumnSpec>,
    /// The primary key columns (index in the row, how they are written), for row-bound values.
    pub(super) key: Vec<(usize, KeyOutput)>,
}

pub unsafe fn relation_name(relation: pg_sys::Relation) -> String {
    CStr::from_ptr((*(*relation).rd_rel).relname.data.as_ptr())
        .to_string_lossy()
        .into_owned()
}

/// The name of the one sealing trigger `protect` gives a table.
const TRIGGER_NAME: &CStr = c"zz_akko_crypt_protect";

/// The arguments of the table's sealing trigger, which carry what it protects (see
/// `registry::carried_arguments`); None when the table has no such trigger (by that name,
/// running akko_crypt.protect_row()).
unsafe fn carried_by_trigger(relation: pg_sys::Relation) -> Option<Vec<String>> {
    let triggers = (*relation).trigdesc;
    if triggers.is_null() {
        return None;
    }
    let triggers =
        std::slice::from_raw_parts((*triggers).triggers, (*triggers).numtriggers as usize);
    let protect_row = registry::protect_row_function();
    let trigger = triggers
        .iter()
        .find(|t| CStr::from_ptr(t.tgname) == TRIGGER_NAME && t.tgfoid == protect_row)?;
    Some(
        (0..trigger.tgnargs as usize)
            .map(|i| {
                CStr::from_ptr(*trigger.tgargs.add(i))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
    )
}

/// The columns on which the registry and the sealing trigger of table `relid` disagree;
/// None when they agree on at least one protected column. Empty when neither has any.
pub fn disagreements(relid: pg_sys::Oid) -> Option<Vec<String>> {
    disagreements_with(
        relid,
        &registry::trigger_arguments(relid).unwrap_or_default(),
    )
}

fn disagreements_with(relid: pg_sys::Oid, carried: &[String]) -> Option<Vec<String>> {
    let differ = registry::disagreements(relid, carried);
    (carried.is_empty() || !differ.is_empty()).then_some(differ)
}

unsafe fn load_spec(relation: pg_sys::Relation) -> TableSpec {
    let relid = (*relation).rd_id;
    let tupdesc = (*relation).rd_att;
    let attrs = tuple_desc_attributes(tupdesc);
    let table = relation_name(relation);
    // The registry and the trigger's arguments must agree: after a table-level or
    // schema-only restore the registry has nothing, and the table nothing is written to.
    if let Some(differ) =
        disagreements_with(relid, &carried_by_trigger(relation).unwrap_or_default())
    {
        raise(Error::ProtectionIncomplete {
            table: &table,
            columns: &differ,
        });
    }
    let column_index = |name: &str, wanted: Option<pg_sys::Oid>| -> usize {
        let found = attrs.iter().position(|a| {
            !a.attisdropped && CStr::from_ptr(a.attname.data.as_ptr()).to_bytes() == name.as_bytes()
        });
        let Some(i) = found else {
            raise(Error::ProtectedColumnMissing {
                table: &table,
                column: name,
            })
        };
        if wanted.is_some_and(|wanted| attrs[i].atttypid != wanted) {
            raise(Error::ProtectedColumnRetyped {
                table: &table,
                column: name,
            });
        }
        i
    };
    let memory = Rc::new(SpecMemory::default());
    let columns = registry::columns_of(relid)
        .into_iter()
        .map(|p| {
            let original = || {
                let lookup = || Lookup::PerTransaction(memory.clone());
                OriginalType::of(p.original_type, p.original_typmod, lookup)
            };
            let mode = match p.mode {
                Mode::Jsonb => ColumnMode::Jsonb,
                Mode::Bytea => ColumnMode::Scalar(original(), Carrier::Bytea),
                Mode::Text => ColumnMode::Scalar(original(), Carrier::Text),
            };
            let stored_as = p.mode.stored_type();
            let plain = p
                .plain_col
                .as_deref()
                .map(|plain| column_index(plain, Some(p.original_type)));
            ColumnSpec {
                column: column_index(&p.col, Some(stored_as)),
                class: p.class,
                mode,
                binding: p.binding_id,
                bound_to_row: p.bind_row,
                blind_index: p.bidx_col.as_deref().map(|bidx| BlindIndex {
                    column: column_index(bidx, Some(pg_sys::BYTEAOID)),
                    key_version: p.bidx_key_version.unwrap_or(1) as u32,
                    normalization: p
                        .bidx_normalize
                        .as_deref()
                        .and_then(Normalization::parse)
                        .unwrap_or(Normalization::None),
                }),
                plain,
                name: p.col,
            }
        })
        .collect::<Vec<_>>();
    let key = sql::primary_key(relid)
        .into_iter()
        .map(|(attnum, _)| {
            let i = attnum as usize - 1;
            (i, KeyOutput::of(attrs[i].atttypid))
        })
        .collect::<Vec<_>>();
    if key.is_empty() && columns.iter().any(|c| c.bound_to_row) {
        raise(Error::RowBindingNeedsPrimaryKey { table: &table });
    }
    TableSpec { columns, key }
}

pub unsafe fn table_spec(relation: pg_sys::Relation) -> Rc<TableSpec> {
    // Loaded on the session's first write to the table, which may be under any search_path.
    get_or_load(&TABLES, SPEC_GENERATION, &(*relation).rd_id, || {
        Rc::new(sql::pinned(|| load_spec(relation)))
    })
}
