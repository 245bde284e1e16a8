//! The input and output functions of the types protected columns had before they were
//! protected: looked up once per transaction for the table specs (an FmgrInfo and what its
//! function keeps in `fn_extra` live in the transaction's memory), and the canonical text a
//! value of such a type is sealed as, printed under fixed settings where its text depends on
//! the session's. It counts the backend's transactions (`count_transaction_end`), so that
//! nothing cached in one transaction's memory is used in the next.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, CStr};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroizing;

use crate::errors::{self, raise, Error};
use crate::pg::datum::{c_bytes_mut, Wiped};
use crate::pg::encoding::database_is_utf8;
use crate::pg::settings::with_settings;
use crate::pg::sql;
use crate::values::sealing::{plaintext_input, ServerText};

/// How a type's I/O function is looked up.
pub enum Lookup {
    /// Once per transaction, in the table spec's memory of that transaction: what the
    /// function keeps in `fn_extra` (an array's element I/O, a domain's constraints) serves
    /// the transaction's later values. For the table specs, which every row of every
    /// statement uses.
    PerTransaction(Rc<SpecMemory>),
    /// For every call, in the current memory context: for a type used once.
    PerCall,
}

/// The memory a table spec's cached functions keep their state in: a child of
/// TopTransactionContext made by the first call of a transaction, which goes with the
/// transaction, or earlier with the spec (a spec made again at every invalidation of its
/// table within one long transaction would otherwise pile up its domains' state there).
#[derive(Default)]
pub struct SpecMemory(Cell<Option<(u64, pg_sys::MemoryContext)>>);

impl SpecMemory {
    /// This transaction's context.
    unsafe fn current(&self) -> pg_sys::MemoryContext {
        let transaction = transaction_number();
        match self.0.get() {
            Some((made_in, memory)) if made_in == transaction => memory,
            _ => {
                let memory = pg_sys::AllocSetContextCreateInternal(
                    pg_sys::TopTransactionContext,
                    c"akko_crypt table spec".as_ptr(),
                    pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
                );
                self.0.set(Some((transaction, memory)));
                memory
            }
        }
    }
}

impl Drop for SpecMemory {
    fn drop(&mut self) {
        // A context of an earlier transaction went with it: the transaction number moves on
        // (count_transaction_end) before PostgreSQL frees the transaction's memory.
        if let Some((made_in, memory)) = self.0.get() {
            if made_in == transaction_number() {
                // SAFETY: the context was made by this spec in this transaction (checked just
                // above), so TopTransactionContext still holds it and nothing else deletes it.
                unsafe { pg_sys::MemoryContextDelete(memory) }
            }
        }
    }
}

/// A type's input or output function, and the FmgrInfo its calls take.
struct TypeFunction {
    oid: pg_sys::Oid,
    lookup: Lookup,
    /// The FmgrInfo looked up in the transaction of that number (`transaction_number`).
    cached: UnsafeCell<Option<(u64, pg_sys::FmgrInfo)>>,
    /// Whether a call through `cached` is running. What `fn_extra` holds belongs to one call
    /// at a time: a nested one (a domain CHECK that writes to the same table) gets an
    /// FmgrInfo of its own, as PL/pgSQL's cast cache does.
    in_use: Cell<bool>,
}

/// Marks a TypeFunction's cached FmgrInfo free again when its call returns or unwinds.
struct InUse<'a>(&'a Cell<bool>);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl TypeFunction {
    fn new(oid: pg_sys::Oid, lookup: Lookup) -> TypeFunction {
        TypeFunction {
            oid,
            lookup,
            cached: UnsafeCell::new(None),
            in_use: Cell::new(false),
        }
    }

    /// Runs `call` with the function's FmgrInfo.
    unsafe fn call<R>(&self, call: impl FnOnce(*mut pg_sys::FmgrInfo) -> R) -> R {
        let memory = match &self.lookup {
            Lookup::PerTransaction(memory) if !self.in_use.get() => memory,
            _ => {
                let mut info = std::mem::zeroed::<pg_sys::FmgrInfo>();
                pg_sys::fmgr_info(self.oid, &mut info);
                return call(&mut info);
            }
        };
        let transaction = transaction_number();
        // No reference into `cached` is held while `call` runs: a nested call sees `in_use`.
        let cached = &mut *self.cached.get();
        let info: *mut pg_sys::FmgrInfo = match cached {
            Some((looked_up_in, info)) if *looked_up_in == transaction => info,
            _ => {
                let mut info = std::mem::zeroed::<pg_sys::FmgrInfo>();
                pg_sys::fmgr_info_cxt(self.oid, &mut info, memory.current());
                &mut cached.insert((transaction, info)).1
            }
        };
        self.in_use.set(true);
        let _in_use = InUse(&self.in_use);
        call(info)
    }
}

thread_local! {
    /// Counts the backend's transactions, so that an FmgrInfo cached in one transaction's
    /// memory is never used in the next.
    static TRANSACTIONS: Cell<u64> = const { Cell::new(0) };
}

fn transaction_number() -> u64 {
    TRANSACTIONS.with(Cell::get)
}

/// The type a bytea- or text-mode column had before it was protected: plaintext written to
/// it is checked and normalised by that type's input and output functions, looked up once.
pub struct OriginalType {
    pub name: String,
    oid: pg_sys::Oid,
    typmod: i32,
    input: TypeFunction,
    io_param: pg_sys::Oid,
    output: TypeFunction,
    /// json and jsonb values (or a domain over them) are sealed as the document itself,
    /// others as a JSON string.
    pub(super) json: bool,
    /// text and unconstrained varchar: the text as written is the canonical text.
    verbatim: bool,
    /// Dates, times and intervals print by DateStyle, IntervalStyle and TimeZone, floats by
    /// extra_float_digits, and arrays, ranges and composites by their elements: they are
    /// sealed under fixed settings (ISO dates in UTC, every float digit), which every
    /// session reads back whatever its own.
    styled: bool,
    /// Of those, the ones whose text also depends on TimeZone: timestamptz and timetz, and
    /// arrays, ranges and composites, which may hold them. A date needs no switch in a
    /// session whose time zone is not UTC.
    zoned: bool,
}

impl OriginalType {
    /// `lookup` makes how each of its two functions is looked up.
    pub unsafe fn of(oid: pg_sys::Oid, typmod: i32, lookup: impl Fn() -> Lookup) -> OriginalType {
        let (mut input, mut io_param, mut output, mut is_varlena) = (
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            false,
        );
        let (mut category, mut preferred) = (0 as c_char, false);
        pg_sys::getTypeInputInfo(oid, &mut input, &mut io_param);
        pg_sys::getTypeOutputInfo(oid, &mut output, &mut is_varlena);
        pg_sys::get_type_category_preferred(oid, &mut category, &mut preferred);
        let base = pg_sys::getBaseType(oid);
        let containers = [
            pg_sys::TYPCATEGORY_ARRAY,
            pg_sys::TYPCATEGORY_RANGE,
            pg_sys::TYPCATEGORY_COMPOSITE,
        ];
        let category = category as u8;
        OriginalType {
            name: sql::type_display(oid, typmod),
            oid,
            typmod,
            input: TypeFunction::new(input, lookup()),
            io_param,
            output: TypeFunction::new(output, lookup()),
            json: base == pg_sys::JSONBOID || base == pg_sys::JSONOID,
            verbatim: oid == pg_sys::TEXTOID || (oid == pg_sys::VARCHAROID && typmod < 0),
            styled: category == pg_sys::TYPCATEGORY_DATETIME
                || category == pg_sys::TYPCATEGORY_TIMESPAN
                || containers.contains(&category)
                || [pg_sys::FLOAT4OID, pg_sys::FLOAT8OID].contains(&base),
            zoned: containers.contains(&category)
                || [pg_sys::TIMESTAMPTZOID, pg_sys::TIMETZOID].contains(&base),
        }
    }

    /// The type a reader parses this one's text as, without running a domain's CHECK (see
    /// `sql::reader_type`), where that is another type; for one call.
    pub unsafe fn without_domains(&self, column: &str, table: &str) -> Option<OriginalType> {
        let (oid, typmod) = sql::reader_type(self.oid, self.typmod).unwrap_or_else(|| {
            raise(Error::UnreadableType {
                column,
                table,
                type_name: &self.name,
            })
        });
        (oid != self.oid).then(|| OriginalType::of(oid, typmod, || Lookup::PerCall))
    }

    /// The value's text as its type writes it, from text as a user wrote it. Errors name
    /// the column and type, never the value.
    pub fn canonical_text<'t>(&self, column: &str, utf8: &'t str) -> ValueText<'t> {
        if utf8.contains('\0') {
            raise(Error::PlaintextNotUtf8);
        }
        if self.verbatim {
            return ValueText::Borrowed(utf8);
        }
        // SAFETY: server is a NUL-terminated copy that lives until after the input function
        // returns; info is this type's input function, called with its own I/O parameter and
        // the column's typmod, and the datum it returns is of this type, as text_of needs.
        unsafe {
            let server = to_server_cstring(utf8);
            let value = plaintext_input(
                || {
                    self.input.call(|info| {
                        let text = server.as_ptr().cast_mut().cast();
                        pg_sys::InputFunctionCall(info, text, self.io_param, self.typmod)
                    })
                },
                |code| {
                    raise(Error::InvalidProtectedValue {
                        column,
                        type_name: &self.name,
                        sqlstate: errors::sqlstate_of(code),
                    })
                },
            );
            drop(server);
            self.text_of(value)
        }
    }

    /// A value of this type as its output function writes it under fixed settings (see
    /// `styled`), as UTF-8: its canonical text.
    ///
    /// # Safety
    /// `value` is a datum of this type, alive for the call.
    pub unsafe fn text_of<'t>(&self, value: pg_sys::Datum) -> ValueText<'t> {
        let output = if self.styled && !fixed_settings_in_effect(self.zoned) {
            with_settings(
                &[
                    (c"datestyle", c"ISO, YMD"),
                    (c"intervalstyle", c"postgres"),
                    (c"extra_float_digits", c"1"),
                    (c"timezone", c"UTC"),
                ],
                || {
                    self.output
                        .call(|info| pg_sys::OutputFunctionCall(info, value))
                },
            )
        } else {
            self.output
                .call(|info| pg_sys::OutputFunctionCall(info, value))
        };
        from_server_cstring(output)
    }
}

/// A value's text: borrowed (a canonical text that is the text as written), a copy of its
/// own (unescaped from JSON), or as its type's output function printed it; the last two are
/// wiped when they go.
pub enum ValueText<'t> {
    Borrowed(&'t str),
    Owned(Zeroizing<String>),
    /// Checked to be UTF-8 when it was made (`from_server_cstring`).
    Printed(ServerText<'t>),
}

impl std::ops::Deref for ValueText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            ValueText::Borrowed(text) => text,
            ValueText::Owned(text) => text,
            // SAFETY: from_server_cstring checked these bytes, which do not change until
            // the text is wiped when it goes.
            ValueText::Printed(text) => unsafe { std::str::from_utf8_unchecked(text.utf8()) },
        }
    }
}

/// Whether DateStyle and IntervalStyle already print ISO, floats print every digit and, for
/// a type whose text depends on it (`zoned`), the time zone is UTC: then a value needs no
/// switch, which costs setting changes per value.
fn fixed_settings_in_effect(zoned: bool) -> bool {
    // SAFETY: reads settings PostgreSQL keeps in globals on this thread; session_timezone is
    // checked for NULL before its name is read.
    unsafe {
        pg_sys::DateStyle == pg_sys::USE_ISO_DATES as i32
            && pg_sys::IntervalStyle == pg_sys::INTSTYLE_POSTGRES as i32
            && pg_sys::extra_float_digits > 0
            && (!zoned
                || !pg_sys::session_timezone.is_null()
                    && CStr::from_ptr(pg_sys::pg_get_timezone_name(pg_sys::session_timezone))
                        == c"UTC")
    }
}

/// A palloc'd, NUL-terminated copy of UTF-8 text in the server encoding, wiped when the
/// guard goes (the UTF-8 copy at once, if it was converted).
pub(super) unsafe fn to_server_cstring<'a>(utf8: &str) -> Wiped<'a> {
    let copy = pg_sys::palloc(utf8.len() + 1).cast::<u8>();
    std::ptr::copy_nonoverlapping(utf8.as_ptr(), copy, utf8.len());
    *copy.add(utf8.len()) = 0;
    let copy = copy.cast::<c_char>();
    if database_is_utf8() {
        return Wiped(std::slice::from_raw_parts_mut(copy.cast(), utf8.len() + 1));
    }
    let server = pg_sys::pg_any_to_server(copy, utf8.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
    if server != copy {
        drop(Wiped(c_bytes_mut(copy)));
    }
    let len = CStr::from_ptr(server).to_bytes().len();
    Wiped(std::slice::from_raw_parts_mut(server.cast(), len + 1))
}

/// An output function's text as UTF-8, read in place; the palloc'd text is wiped.
unsafe fn from_server_cstring<'t>(text: *mut c_char) -> ValueText<'t> {
    let text = ServerText::wrap(text);
    if std::str::from_utf8(text.utf8()).is_err() {
        raise(Error::ValueNotUtf8);
    }
    ValueText::Printed(text)
}

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callback has the C ABI PostgreSQL calls it
    // with.
    unsafe { pg_sys::RegisterXactCallback(Some(count_transaction_end), std::ptr::null_mut()) }
}

#[pg_guard]
unsafe extern "C-unwind" fn count_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PREPARE
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
    ) {
        // What was cached in the transaction's memory goes with it, after this callback.
        TRANSACTIONS.with(|t| t.set(t.get() + 1));
    }
}
