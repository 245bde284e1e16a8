//! The row trigger that keeps a table's protected columns sealed: `akko_crypt.protect_row()`,
//! one BEFORE INSERT OR UPDATE trigger per table, which `akko_crypt.protect` creates.
//!
//! It is the one place where plaintext becomes ciphertext for a protected column, so a
//! value is sealed the same way whether it arrives through the decrypting view, straight
//! into the table, by COPY, or from a row that a migration batch touches. An envelope
//! written into a protected column is authenticated before it is stored: it must open,
//! under the column's class, bound to this row if the column binds values, and hold a
//! valid value of the column's type; so only a role that may open the class can write one,
//! and nothing shaped like an envelope is ever stored unopened. What each table protects is
//! its spec (`spec`), read once per session. `install_trigger` creates the trigger, with
//! what it protects as its arguments.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use akko_crypt_core::column::{
    envelope_in_text, jsonb_envelope_text, payload_text, row_context, text_payload, BLIND_INDEX_LEN,
};
use akko_crypt_core::envelope::MAGIC;
use akko_crypt_core::{ClassName, Envelope};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroizing;

use crate::errors::{self, raise, Error};
use crate::pg::datum::{bytea_datum, datum_bytes, Wiped};
use crate::pg::spi::read_row;
use crate::pg::sql::{run, Table};
use crate::privileges::{self, Privilege};
use crate::tables::registry;
use crate::tables::spec::{table_spec, Carrier, ColumnMode, ColumnSpec, TableSpec};
use crate::tables::type_io::{to_server_cstring, OriginalType, ValueText};
use crate::values::blind_index::{self, BlindIndex};
use crate::values::columns::{jsonb_envelope_of, text_envelope_datum, KeyOutput};
use crate::values::sealing::{
    open_just_sealed, open_to_buffer, plaintext_input, seal_written_to_varlena, server_jsonb_in,
    text_as_utf8, value_class, JsonText,
};

extension_sql!(
    r#"
CREATE FUNCTION protect_row() RETURNS trigger LANGUAGE c
    AS 'MODULE_PATHNAME', 'akko_protect_row';
COMMENT ON FUNCTION protect_row() IS
    'BEFORE INSERT OR UPDATE row trigger that akko_crypt.protect creates: seals the protected columns of each row';
REVOKE ALL ON FUNCTION protect_row() FROM PUBLIC;
"#,
    name = "protect_trigger",
    requires = ["sealing"]
);

v1_function_info!(pg_finfo_akko_protect_row);

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callback has the C ABI PostgreSQL calls it
    // with.
    unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) }
}

/// A row's place in its table: block and offset.
type RowId = (u32, u16);

/// What reencrypt writes in one statement: the table, the column, and for each row the
/// envelope that replaces the row's value.
type Batch = (pg_sys::Oid, String, HashMap<RowId, Vec<u8>>);

thread_local! {
    /// While reencrypt writes a batch: what it writes.
    static RESEALED: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// The envelopes reencrypt writes into a table's column in one statement, each for its row,
/// which the trigger takes as they are for as long as this lives: reencrypt opened each
/// one's predecessor under the caller's privileges and sealed it again, keeping its context,
/// so there is nothing left to authenticate (and the table's owner, whom the statement may
/// run as, need not open). The same envelope in another row or column is authenticated as
/// any written envelope is.
pub struct Resealed {
    outer: Option<Batch>,
}

impl Resealed {
    pub fn new(
        table: pg_sys::Oid,
        column: &str,
        rows: &[pg_sys::ItemPointerData],
        envelopes: &[Vec<u8>],
    ) -> Resealed {
        let batch = rows
            .iter()
            .map(|&row| pgrx::itemptr::item_pointer_get_both(row))
            .zip(envelopes.iter().cloned())
            .collect();
        Resealed {
            outer: RESEALED.with(|r| r.replace(Some((table, column.to_owned(), batch)))),
        }
    }

    fn holds(table: pg_sys::Oid, column: &str, row: Option<RowId>, envelope: &[u8]) -> bool {
        RESEALED.with(|r| {
            r.borrow().as_ref().is_some_and(|(on, col, batch)| {
                *on == table
                    && col == column
                    && row.is_some_and(|row| batch.get(&row).is_some_and(|e| e == envelope))
            })
        })
    }
}

impl Drop for Resealed {
    fn drop(&mut self) {
        RESEALED.with(|r| *r.borrow_mut() = self.outer.take());
    }
}

/// One value the trigger sealed for an INSERT: where, the envelope, and the context it is
/// bound to. Not its plaintext: an UPDATE that writes it back opens it again, which only
/// an upsert pays for.
struct SealedValue {
    column: usize,
    envelope: Vec<u8>,
    context: Option<Vec<u8>>,
}

/// What the trigger sealed in the row it last inserted, in this command. INSERT ... ON
/// CONFLICT DO UPDATE runs the INSERT's trigger on the proposed row, then the UPDATE's on
/// the row that conflicted, whose `SET col = EXCLUDED.col` writes the envelopes just
/// sealed: the writer gave their plaintext, so the UPDATE takes them without opening them
/// (a role that may only seal can upsert). Kept until the next INSERT's trigger or the
/// transaction's end.
struct JustSealed {
    table: pg_sys::Oid,
    command: pg_sys::CommandId,
    /// The first `count` are this row's; the rest are earlier rows' buffers, reused so that
    /// an INSERT of many rows allocates them once.
    values: Vec<SealedValue>,
    count: usize,
}

thread_local! {
    static JUST_SEALED: RefCell<Option<JustSealed>> = const { RefCell::new(None) };
}

impl JustSealed {
    fn start(table: pg_sys::Oid) {
        let command = crate::pg::unguarded::current_command_id();
        JUST_SEALED.with(|j| {
            let mut j = j.borrow_mut();
            let just = j.get_or_insert_with(|| JustSealed {
                table,
                command,
                values: Vec::new(),
                count: 0,
            });
            just.table = table;
            just.command = command;
            just.count = 0;
        });
    }

    fn record(sealing: &Sealing<'_>, envelope: &[u8]) {
        JUST_SEALED.with(|j| {
            if let Some(just) = j.borrow_mut().as_mut().filter(|j| j.table == sealing.table) {
                if just.count == just.values.len() {
                    just.values.push(SealedValue {
                        column: 0,
                        envelope: Vec::new(),
                        context: None,
                    });
                }
                let value = &mut just.values[just.count];
                value.column = sealing.column;
                value.envelope.clear();
                value.envelope.extend_from_slice(envelope);
                value.context.clone_from(&sealing.context);
                just.count += 1;
            }
        });
    }

    /// For an UPDATE of `sealing`'s row: the plaintext of `envelope` if the last INSERT of
    /// this command sealed it for the same column, and whether the context it is bound to
    /// differs from this row's.
    unsafe fn find<'b>(sealing: &Sealing<'_>, envelope: &[u8]) -> Option<(Wiped<'b>, bool)> {
        let command = crate::pg::unguarded::current_command_id();
        let context = JUST_SEALED.with(|j| {
            let just = j.borrow();
            let just = just
                .as_ref()
                .filter(|j| j.table == sealing.table && j.command == command)?;
            just.values[..just.count]
                .iter()
                .find(|v| v.column == sealing.column && v.envelope == envelope)
                .map(|v| v.context.clone())
        })?;
        let plaintext = open_just_sealed(envelope, context.as_deref());
        Some((plaintext, context != sealing.context))
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE
    ) {
        JUST_SEALED.with(|j| j.replace(None));
    }
}

/// One row's values, deformed.
struct Row {
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl Row {
    unsafe fn deform(tuple: pg_sys::HeapTuple, tupdesc: pg_sys::TupleDesc) -> Row {
        let natts = (*tupdesc).natts as usize;
        let mut row = Row {
            values: vec![pg_sys::Datum::from(0); natts],
            nulls: vec![false; natts],
        };
        pg_sys::heap_deform_tuple(
            tuple,
            tupdesc,
            row.values.as_mut_ptr(),
            row.nulls.as_mut_ptr(),
        );
        row
    }

    /// The row as a new tuple with `changes` made, as heap_modify_tuple_by_cols makes it
    /// (which would deform the row a second time): formed from this row's values, with
    /// the identity of `tuple`, the row it was deformed from.
    unsafe fn changed(
        mut self,
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
        changes: &Changes,
    ) -> pg_sys::HeapTuple {
        for &(column, value) in &changes.0 {
            self.values[column] = value.unwrap_or(pg_sys::Datum::from(0));
            self.nulls[column] = value.is_none();
        }
        let formed =
            pg_sys::heap_form_tuple(tupdesc, self.values.as_mut_ptr(), self.nulls.as_mut_ptr());
        (*(*formed).t_data).t_ctid = (*(*tuple).t_data).t_ctid;
        (*formed).t_self = (*tuple).t_self;
        (*formed).t_tableOid = (*tuple).t_tableOid;
        formed
    }

    fn get(&self, i: usize) -> Option<pg_sys::Datum> {
        (!self.nulls[i]).then(|| self.values[i])
    }

    unsafe fn key_text(&self, key: &[(usize, KeyOutput)]) -> Vec<Vec<u8>> {
        key.iter()
            .map(|(i, output)| match self.get(*i) {
                Some(value) => output.text(value),
                None => Vec::new(),
            })
            .collect()
    }
}

/// The replacements for one row's columns: the column's index in the row and its new
/// value, None for NULL.
struct Changes(Vec<(usize, Option<pg_sys::Datum>)>);

impl Changes {
    /// Room for the changes a row of `spec` can have (each column, its blind index and its
    /// migrating plaintext column), so that a row allocates the list once.
    fn for_row_of(spec: &TableSpec) -> Changes {
        Changes(Vec::with_capacity(spec.columns.len() * 3))
    }

    fn set(&mut self, column: usize, value: Option<pg_sys::Datum>) {
        self.0.push((column, value));
    }
}

/// What this row's values are sealed with, and how an envelope written into it must open.
struct Sealing<'a> {
    table: pg_sys::Oid,
    /// The column's index in the row.
    column: usize,
    /// For an UPDATE, where the row was.
    row: Option<RowId>,
    class: ClassName<'a>,
    /// The context of this row, if the column binds values to rows.
    context: Option<Vec<u8>>,
    /// When an UPDATE moved the row's key: the context of the row as it was.
    old_context: Option<Vec<u8>>,
}

impl Sealing<'_> {
    /// The payload of `len` bytes that `write` puts in place sealed under the class's
    /// active key version, as a bytea datum.
    unsafe fn seal(&self, len: usize, write: impl FnOnce(&mut [u8])) -> *mut pg_sys::varlena {
        privileges::require(Privilege::Seal, Some(self.class));
        let context = self.context.as_deref();
        let sealed = seal_written_to_varlena(self.class, None, context, len, write);
        if self.row.is_none() {
            JustSealed::record(self, datum_bytes(pg_sys::Datum::from(sealed)));
        }
        sealed
    }

    /// The plaintext of an envelope an UPDATE writes into the column, and whether it must
    /// be sealed again for this row: an envelope this INSERT's trigger just sealed (the
    /// EXCLUDED value of INSERT ... ON CONFLICT DO UPDATE) is the writer's own plaintext,
    /// resealed if it was bound to the proposed row rather than this one; any other is
    /// authenticated.
    unsafe fn written<'b>(
        &self,
        column: &ColumnSpec,
        sealed: &'b [u8],
        kept: bool,
    ) -> (Wiped<'b>, bool) {
        if !kept {
            if let Some(found) = JustSealed::find(self, sealed) {
                return found;
            }
        }
        (self.authenticate(column, sealed, kept), false)
    }

    /// Opens an envelope written into the column, as it must open there: under the column's
    /// class, with the context it is bound to (the old row's if `kept` and the key moved,
    /// this row's otherwise). Raises if it does not, or if the role may not open the class.
    unsafe fn authenticate<'b>(
        &self,
        column: &ColumnSpec,
        sealed: &'b [u8],
        kept: bool,
    ) -> Wiped<'b> {
        let context = if kept {
            self.old_context.as_deref()
        } else {
            self.context.as_deref()
        };
        let envelope =
            Envelope::parse(sealed).unwrap_or_else(|e| raise(Error::BadEnvelope { error: e }));
        if envelope.class != self.class {
            raise(Error::EnvelopeOfOtherClass {
                column: &column.name,
                got: envelope.class.as_str(),
                want: self.class.as_str(),
            });
        }
        open_to_buffer(sealed, context)
    }
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_protect_row(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let trigger = crate::pg::datum::trigger_data(fcinfo);
    let event = (*trigger).tg_event;
    if event & pg_sys::TRIGGER_EVENT_ROW == 0 || event & pg_sys::TRIGGER_EVENT_BEFORE == 0 {
        raise(Error::NotCalledAsTrigger);
    }
    let is_update = event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_UPDATE;
    let relation = (*trigger).tg_relation;
    let tupdesc = (*relation).rd_att;
    let tuple = if is_update {
        (*trigger).tg_newtuple
    } else {
        (*trigger).tg_trigtuple
    };
    let spec = table_spec(relation);
    let new = Row::deform(tuple, tupdesc);
    let old = is_update.then(|| Row::deform((*trigger).tg_trigtuple, tupdesc));
    if !is_update {
        JustSealed::start((*relation).rd_id);
    }

    let binds = spec.columns.iter().any(|c| c.bound_to_row);
    let new_key = if binds {
        new.key_text(&spec.key)
    } else {
        Vec::new()
    };
    let old_key = match &old {
        Some(old) if binds => Some(old.key_text(&spec.key)),
        _ => None,
    };
    let key_changed = old_key.as_ref().is_some_and(|k| *k != new_key);

    let mut changes = Changes::for_row_of(&spec);
    for column in &spec.columns {
        let bound = |key: &[Vec<u8>]| {
            column
                .bound_to_row
                .then(|| row_context(&column.binding, key.iter().map(Vec::as_slice)))
        };
        let sealing = Sealing {
            table: (*relation).rd_id,
            column: column.column,
            row: is_update
                .then(|| pgrx::itemptr::item_pointer_get_both((*(*trigger).tg_trigtuple).t_self)),
            class: value_class(&column.class),
            context: bound(&new_key),
            old_context: (column.bound_to_row && key_changed)
                .then(|| bound(old_key.as_deref().unwrap_or_default()))
                .flatten(),
        };
        let unchanged = old
            .as_ref()
            .is_some_and(|old| same_value(old, &new, column.column));
        match &column.mode {
            ColumnMode::Scalar(original, carrier) => protect_scalar(
                column,
                original,
                *carrier,
                &sealing,
                &new,
                old.as_ref().filter(|_| unchanged),
                &mut changes,
            ),
            ColumnMode::Jsonb => protect_jsonb(column, &sealing, &new, unchanged, &mut changes),
        }
    }
    if changes.0.is_empty() {
        return pg_sys::Datum::from(tuple);
    }
    pg_sys::Datum::from(new.changed(tuple, tupdesc, &changes))
}

unsafe fn same_value(old: &Row, new: &Row, i: usize) -> bool {
    match (old.get(i), new.get(i)) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b || datum_bytes(a) == datum_bytes(b),
        _ => false,
    }
}

/// A bytea- or text-mode column: anything that is not an envelope is plaintext (text of the
/// original type: UTF-8 bytes in bytea mode, the column's text in text mode) and is sealed;
/// an envelope is authenticated, and resealed if the row's key moved under it or its
/// plaintext is not in its type's canonical form; a row that still has its value in the
/// migrating plaintext column has it sealed from there.
unsafe fn protect_scalar(
    column: &ColumnSpec,
    original: &OriginalType,
    carrier: Carrier,
    sealing: &Sealing<'_>,
    new: &Row,
    kept_from: Option<&Row>,
    changes: &mut Changes,
) {
    let unchanged = kept_from.is_some();
    // A value still in the migrating plaintext column leaves it in every case.
    let plain_value = column
        .plain
        .and_then(|i| new.get(i).inspect(|_| changes.set(i, None)));
    let Some(value) = new.get(column.column) else {
        match plain_value {
            Some(value) => {
                // The plaintext column has the original type: its text under fixed settings
                // is the canonical text, whatever the session's.
                let text = original.text_of(value);
                seal_canonical(column, original, carrier, sealing, &text, changes);
            }
            None => {
                if let Some(bidx) = &column.blind_index {
                    if new.get(bidx.column).is_some() {
                        changes.set(bidx.column, None);
                    }
                }
            }
        }
        return;
    };
    let bytes = datum_bytes(value);
    let decoded;
    let envelope = match carrier {
        // No UTF-8 text starts with 0xAC, so anything else is plaintext, or refused as neither.
        Carrier::Bytea if !bytes.starts_with(&MAGIC) => {
            let utf8 = std::str::from_utf8(bytes).unwrap_or_else(|_| {
                raise(Error::ProtectedPlaintextNotUtf8 {
                    column: &column.name,
                })
            });
            seal_text(column, original, carrier, sealing, utf8, changes);
            return;
        }
        Carrier::Bytea => bytes,
        Carrier::Text => match envelope_in_text(bytes) {
            None => {
                let utf8 = text_as_utf8(bytes, Some(&column.name));
                seal_text(column, original, carrier, sealing, &utf8, changes);
                return;
            }
            Some(Ok(envelope)) => {
                decoded = envelope;
                &decoded[..]
            }
            Some(Err(_)) => raise(Error::BadTextEnvelope {
                column: &column.name,
            }),
        },
    };
    // An envelope kept by an UPDATE was authenticated when it was written: it stays as it
    // is unless the row's key moved under it.
    let rebind = unchanged && sealing.old_context.is_some();
    if unchanged && !rebind {
        // The value is the one the trigger indexed when it was written: so is its index.
        if let Some(old) = kept_from {
            keep_blind_index(column, old, new, changes);
        }
        return;
    }
    if Resealed::holds(sealing.table, &column.name, sealing.row, envelope) {
        return;
    }
    let (plaintext, reseal) = sealing.written(column, envelope, rebind);
    let utf8 = std::str::from_utf8(&plaintext).unwrap_or_else(|_| raise(Error::PlaintextNotUtf8));
    let written = match original.json {
        true => ValueText::Borrowed(utf8),
        false => match payload_text(utf8) {
            Some(std::borrow::Cow::Borrowed(text)) => ValueText::Borrowed(text),
            Some(std::borrow::Cow::Owned(text)) => ValueText::Owned(Zeroizing::new(text)),
            None => raise(Error::PlaintextNotUtf8),
        },
    };
    let canonical = original.canonical_text(&column.name, &written);
    let is_canonical = *written == *canonical;
    if rebind || reseal || !is_canonical {
        seal_canonical(column, original, carrier, sealing, &canonical, changes);
    } else {
        set_blind_index(column, &canonical, new, changes);
    }
}

unsafe fn seal_text(
    column: &ColumnSpec,
    original: &OriginalType,
    carrier: Carrier,
    sealing: &Sealing<'_>,
    utf8: &str,
    changes: &mut Changes,
) {
    let text = original.canonical_text(&column.name, utf8);
    seal_canonical(column, original, carrier, sealing, &text, changes);
}

/// Seals a value's canonical text into the column and sets its blind index.
unsafe fn seal_canonical(
    column: &ColumnSpec,
    original: &OriginalType,
    carrier: Carrier,
    sealing: &Sealing<'_>,
    text: &str,
    changes: &mut Changes,
) {
    let sealed = if original.json {
        sealing.seal(text.len(), |out| out.copy_from_slice(text.as_bytes()))
    } else {
        let payload = text_payload(text);
        sealing.seal(payload.json_len(), |out| payload.write_to(out))
    };
    let stored = match carrier {
        Carrier::Bytea => pg_sys::Datum::from(sealed),
        Carrier::Text => {
            // The bytea goes with the row's memory: an envelope is no secret to wipe.
            text_envelope_datum(datum_bytes(pg_sys::Datum::from(sealed)))
        }
    };
    changes.set(column.column, Some(stored));
    if let Some(bidx) = &column.blind_index {
        changes.set(bidx.column, Some(blind_index_datum(column, bidx, text)));
    }
}

/// An UPDATE that keeps a value keeps its blind index: one written into `<col>_bidx` alone
/// (by a role that may only seal, to make lookups find another row) is put back.
unsafe fn keep_blind_index(column: &ColumnSpec, old: &Row, new: &Row, changes: &mut Changes) {
    if let Some(bidx) = &column.blind_index {
        let (was, now) = (old.get(bidx.column), new.get(bidx.column));
        let same = match (was, now) {
            (Some(was), Some(now)) => datum_bytes(was) == datum_bytes(now),
            (None, None) => true,
            _ => false,
        };
        if !same {
            changes.set(bidx.column, was);
        }
    }
}

unsafe fn set_blind_index(column: &ColumnSpec, text: &str, new: &Row, changes: &mut Changes) {
    if let Some(bidx) = &column.blind_index {
        let value = blind_index_datum(column, bidx, text);
        if new
            .get(bidx.column)
            .is_none_or(|current| datum_bytes(current) != datum_bytes(value))
        {
            changes.set(bidx.column, Some(value));
        }
    }
}

unsafe fn blind_index_datum(column: &ColumnSpec, bidx: &BlindIndex, text: &str) -> pg_sys::Datum {
    let digest: [u8; BLIND_INDEX_LEN] = blind_index::compute(&column.binding, bidx, text);
    bytea_datum(&digest)
}

/// A jsonb-mode column: `{"$akko": "<envelope>"}` is authenticated (and resealed if the
/// row's key moved under it), any other document is sealed into one.
unsafe fn protect_jsonb(
    column: &ColumnSpec,
    sealing: &Sealing<'_>,
    new: &Row,
    unchanged: bool,
    changes: &mut Changes,
) {
    let Some(value) = new.get(column.column) else {
        return;
    };
    let jsonb = pg_sys::pg_detoast_datum(value.cast_mut_ptr()).cast::<pg_sys::Jsonb>();
    if let Some(envelope) = jsonb_envelope_of(jsonb) {
        let rebind = unchanged && sealing.old_context.is_some();
        if unchanged && !rebind {
            return;
        }
        let (plaintext, reseal) = sealing.written(column, &envelope, rebind);
        let document = plaintext_as_jsonb_text(&column.name, &plaintext);
        if rebind || reseal {
            set_jsonb_envelope(column, sealing, document, changes);
        }
        return;
    }
    let text = JsonText::of(jsonb);
    set_jsonb_envelope(column, sealing, text.utf8(), changes);
}

/// The plaintext of a jsonb-mode envelope checked to be a jsonb document (UTF-8, parsed by
/// jsonb_in, whose own error would quote it).
unsafe fn plaintext_as_jsonb_text<'a>(column: &str, plaintext: &'a [u8]) -> &'a [u8] {
    let utf8 = std::str::from_utf8(plaintext).unwrap_or_else(|_| raise(Error::PlaintextNotUtf8));
    if utf8.contains('\0') {
        raise(Error::PlaintextNotUtf8);
    }
    let server = to_server_cstring(utf8);
    plaintext_input(
        || {
            pg_sys::DirectFunctionCall1Coll(
                Some(server_jsonb_in),
                pg_sys::InvalidOid,
                pg_sys::Datum::from(server.as_ptr()),
            )
        },
        |code| {
            raise(Error::InvalidProtectedValue {
                column,
                type_name: "jsonb",
                sqlstate: errors::sqlstate_of(code),
            })
        },
    );
    plaintext
}

unsafe fn set_jsonb_envelope(
    column: &ColumnSpec,
    sealing: &Sealing<'_>,
    payload: &[u8],
    changes: &mut Changes,
) {
    let sealed = sealing.seal(payload.len(), |out| out.copy_from_slice(payload));
    let sealed = datum_bytes(pg_sys::Datum::from(sealed));
    let text = CString::new(jsonb_envelope_text(sealed)).expect("base64 has no NUL");
    let jsonb = pg_sys::DirectFunctionCall1Coll(
        Some(server_jsonb_in),
        pg_sys::InvalidOid,
        pg_sys::Datum::from(text.as_ptr()),
    );
    changes.set(column.column, Some(jsonb));
}

/// Creates, or drops when nothing is left to protect, the table's one sealing trigger.
/// BEFORE triggers fire in name order: "zz_" lets the table's own BEFORE triggers change a
/// value before it is sealed.
pub fn install_trigger(table: &Table) {
    let exists = read_row(
        "look up the trigger",
        "SELECT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = $1 AND g.tgname = 'zz_akko_crypt_protect')",
        &[table.oid.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false);
    // As the caller, who may reach akko_crypt.protect_row(), which the owner need not; no
    // code of the table's runs in either statement.
    if exists {
        run(&format!(
            "DROP TRIGGER zz_akko_crypt_protect ON {}",
            table.sql
        ));
    }
    // The trigger carries what it protects, so that a dump of the table alone carries it
    // too (see `registry::carried_arguments`).
    let carried = registry::carried_arguments(table.oid);
    if !carried.is_empty() {
        run(&format!(
            "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON {} \
             FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row({})",
            table.sql,
            carried.join(", ")
        ));
    }
}
