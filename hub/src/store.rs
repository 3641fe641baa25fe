//! The storage seam: one small SQL interface over the two backends the hub
//! can keep its registry in, SQLite (embedded, the default) and PostgreSQL
//! (several hubs on one database). The hub's modules write SQL once, in the
//! common dialect (`?N` parameters, `INSERT ... ON CONFLICT`), against a
//! [`Tx`]; for PostgreSQL the parameters become `$N` and the values are
//! converted at the wire (integers to the column's width, NULL to any type).
//!
//! Shaped like rusqlite's API (`execute`, `query_row`, `prepare` +
//! `query_map`, `.optional()`, `params!`) so the modules read as before.
//!
//! Must not log SQL parameters (they may be digests of secrets) or a
//! database password.

use rusqlite::types::Value;
use std::cell::RefCell;
use std::fmt;

/// A storage error: from either driver, or raised by our own code inside a
/// transaction.
#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Pg(postgres::Error),
    /// `query_row` found no row (`.optional()` turns it into `None`).
    NoRows,
    /// A value of another type than the code expected.
    Type(String),
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "{e}"),
            Error::Pg(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => write!(f, "{e}"),
            },
            Error::NoRows => f.write_str("no row"),
            Error::Type(s) | Error::Other(s) => f.write_str(s),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        Error::Pg(e)
    }
}

impl Error {
    /// A conflict between concurrent transactions of several hubs (or
    /// workers) on PostgreSQL: the transaction is run again.
    pub fn is_conflict(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            Error::Pg(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::UNIQUE_VIOLATION
            ),
            _ => false,
        }
    }
}

/// `.optional()` as in rusqlite: no row is `None`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ------------------------------------------------------------- values in

/// A value that can be a statement parameter.
pub trait ToVal {
    fn to_val(&self) -> Value;
}

impl ToVal for str {
    fn to_val(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToVal for String {
    fn to_val(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToVal for i64 {
    fn to_val(&self) -> Value {
        Value::Integer(*self)
    }
}
impl ToVal for i32 {
    fn to_val(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToVal for u32 {
    fn to_val(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToVal for bool {
    fn to_val(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl<T: ToVal + ?Sized> ToVal for &T {
    fn to_val(&self) -> Value {
        (**self).to_val()
    }
}
impl<T: ToVal> ToVal for Option<T> {
    fn to_val(&self) -> Value {
        match self {
            Some(v) => v.to_val(),
            None => Value::Null,
        }
    }
}

/// Statement parameters: `[a, b]`, `()` or `params![a, b, ...]`.
pub trait Params {
    fn vals(self) -> Vec<Value>;
}

impl<T: ToVal, const N: usize> Params for [T; N] {
    fn vals(self) -> Vec<Value> {
        self.iter().map(ToVal::to_val).collect()
    }
}
impl Params for &[&dyn ToVal] {
    fn vals(self) -> Vec<Value> {
        self.iter().map(|v| v.to_val()).collect()
    }
}
impl Params for () {
    fn vals(self) -> Vec<Value> {
        Vec::new()
    }
}

/// `params![a, b, ...]`: parameters of mixed types.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::store::ToVal),*] as &[&dyn $crate::store::ToVal]
    };
}
pub use crate::params;

// ------------------------------------------------------------ values out

/// A value a column can be read as.
pub trait FromVal: Sized {
    fn from_val(v: &Value) -> Result<Self>;
}

fn type_err(want: &str, v: &Value) -> Error {
    Error::Type(format!("expected {want}, found {:?}", v.data_type()))
}

impl FromVal for i64 {
    fn from_val(v: &Value) -> Result<Self> {
        match v {
            Value::Integer(i) => Ok(*i),
            other => Err(type_err("an integer", other)),
        }
    }
}
impl FromVal for bool {
    fn from_val(v: &Value) -> Result<Self> {
        i64::from_val(v).map(|i| i != 0)
    }
}
impl FromVal for String {
    fn from_val(v: &Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(type_err("text", other)),
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// A column index (rusqlite's `get::<_, T>(i)` shape).
pub trait RowIndex {
    fn index(self) -> usize;
}
impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}
impl RowIndex for i32 {
    fn index(self) -> usize {
        usize::try_from(self).unwrap_or(usize::MAX)
    }
}

/// One result row.
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<I: RowIndex, T: FromVal>(&self, i: I) -> Result<T> {
        let i = i.index();
        match self.0.get(i) {
            Some(v) => T::from_val(v),
            None => Err(Error::Type(format!("no column {i}"))),
        }
    }
}

// ------------------------------------------------------- the PostgreSQL wire

/// A parameter on its way to PostgreSQL: converted to the type the server
/// inferred for it (so an integer fits a BIGINT or an INTEGER column, and
/// NULL fits any).
#[derive(Debug)]
struct PgIn<'a>(&'a Value);

impl postgres::types::ToSql for PgIn<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::{IsNull, Type};
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column on its way back from PostgreSQL.
struct PgOut(Value);

impl<'a> postgres::types::FromSql<'a> for PgOut {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        Ok(PgOut(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(<&str>::from_sql(ty, raw)?.to_string()),
        }))
    }

    fn from_sql_null(
        _: &postgres::types::Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgOut(Value::Null))
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
}

/// `?N` placeholders to PostgreSQL's `$N` (outside quoted text).
pub fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut it = sql.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && it.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

fn pg_rows(rows: Vec<postgres::Row>) -> Result<Vec<Row>> {
    rows.into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, PgOut>(i).map(|v| v.0))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Row)
                .map_err(Error::Pg)
        })
        .collect()
}

// --------------------------------------------------------------- the handle

/// The statements a PostgreSQL connection has prepared, by their SQL text
/// (ours are literals: a bounded set), so each is parsed once per
/// connection instead of once per use.
#[derive(Default)]
pub struct PgCache(RefCell<std::collections::HashMap<String, postgres::Statement>>);

/// More distinct statements than the hub has: the cache starts over.
const PG_CACHE_MAX: usize = 512;

impl PgCache {
    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }

    fn get(&self, c: &mut impl postgres::GenericClient, sql: &str) -> Result<postgres::Statement> {
        if let Some(st) = self.0.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = c.prepare(&pg_sql(sql))?;
        let mut m = self.0.borrow_mut();
        if m.len() >= PG_CACHE_MAX {
            m.clear();
        }
        m.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

fn pg_execute(
    c: &mut impl postgres::GenericClient,
    cache: &PgCache,
    sql: &str,
    vals: &[Value],
) -> Result<usize> {
    let st = cache.get(c, sql)?;
    let ins: Vec<PgIn> = vals.iter().map(PgIn).collect();
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = ins.iter().map(|p| p as _).collect();
    Ok(c.execute(&st, &refs)? as usize)
}

fn pg_query(
    c: &mut impl postgres::GenericClient,
    cache: &PgCache,
    sql: &str,
    vals: &[Value],
) -> Result<Vec<Row>> {
    let st = cache.get(c, sql)?;
    let ins: Vec<PgIn> = vals.iter().map(PgIn).collect();
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = ins.iter().map(|p| p as _).collect();
    pg_rows(c.query(&st, &refs)?)
}

/// Where statements go: a SQLite connection (in a transaction or not), a
/// PostgreSQL transaction, or a PostgreSQL connection in autocommit.
pub enum Tx<'a> {
    Lite(&'a rusqlite::Connection),
    Pg(RefCell<postgres::Transaction<'a>>, &'a PgCache),
    PgAuto(&'a RefCell<postgres::Client>, &'a PgCache),
}

impl Tx<'_> {
    pub fn is_pg(&self) -> bool {
        !matches!(self, Tx::Lite(_))
    }

    /// Run a statement; the number of rows changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let vals = params.vals();
        match self {
            Tx::Lite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(vals.iter()))?),
            Tx::Pg(t, cache) => pg_execute(&mut *t.borrow_mut(), cache, sql, &vals),
            Tx::PgAuto(c, cache) => pg_execute(&mut *c.borrow_mut(), cache, sql, &vals),
        }
    }

    /// Several statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Tx::Lite(c) => Ok(c.execute_batch(sql)?),
            Tx::Pg(t, _) => Ok(t.borrow_mut().batch_execute(sql)?),
            Tx::PgAuto(c, _) => Ok(c.borrow_mut().batch_execute(sql)?),
        }
    }

    fn rows(&self, sql: &str, vals: Vec<Value>) -> Result<Vec<Row>> {
        match self {
            Tx::Lite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(vals.iter()), |r| {
                        (0..n).map(|i| r.get::<_, Value>(i)).collect()
                    })?
                    .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
                Ok(rows.into_iter().map(Row).collect())
            }
            Tx::Pg(t, cache) => pg_query(&mut *t.borrow_mut(), cache, sql, &vals),
            Tx::PgAuto(c, cache) => pg_query(&mut *c.borrow_mut(), cache, sql, &vals),
        }
    }

    /// The first row through `f`; [`Error::NoRows`] when there is none.
    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        match self.rows(sql, params.vals())?.first() {
            Some(r) => f(r),
            None => Err(Error::NoRows),
        }
    }

    pub fn prepare<'s>(&'s self, sql: &'s str) -> Result<Stmt<'s, Self>> {
        Ok(Stmt { tx: self, sql })
    }
}

/// A statement to run with parameters (`prepare(...)?.query_map(...)`).
pub struct Stmt<'s, X> {
    tx: &'s X,
    sql: &'s str,
}

impl Stmt<'_, Tx<'_>> {
    pub fn query_map<T, P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.tx.rows(self.sql, params.vals())?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        Ok(!self.tx.rows(self.sql, params.vals())?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        let cases = [
            ("SELECT a FROM t WHERE k=?1", "SELECT a FROM t WHERE k=$1"),
            ("VALUES(?1, ?12, ?12)", "VALUES($1, $12, $12)"),
            ("SELECT '?1' , ?2", "SELECT '?1' , $2"),
            ("SELECT 'it''s ?1', ?3", "SELECT 'it''s ?1', $3"),
            ("SELECT ? FROM x", "SELECT ? FROM x"),
        ];
        for (sql, want) in cases {
            assert_eq!(pg_sql(sql), want, "{sql}");
        }
    }

    #[test]
    fn values_convert_and_mismatches_are_errors() {
        let row = Row(vec![
            Value::Integer(7),
            Value::Text("x".into()),
            Value::Null,
        ]);
        assert_eq!(row.get::<_, i64>(0).ok(), Some(7));
        assert_eq!(row.get::<_, bool>(0).ok(), Some(true));
        assert_eq!(row.get::<_, String>(1).ok().as_deref(), Some("x"));
        assert_eq!(row.get::<_, Option<i64>>(2).ok(), Some(None));
        assert!(row.get::<_, i64>(1).is_err(), "text as integer");
        assert!(row.get::<_, String>(2).is_err(), "NULL as text");
        assert!(row.get::<_, i64>(3).is_err(), "no such column");
        let p = params![1i64, "a", Some(2i64), None::<i64>, true];
        assert_eq!(
            p.vals(),
            vec![
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Integer(2),
                Value::Null,
                Value::Integer(1)
            ]
        );
    }
}
