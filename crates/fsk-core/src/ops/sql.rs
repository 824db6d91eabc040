//! SQL over datasets: a session registers datasets under table names and runs queries on the
//! engine, which reads each table's planned files and prunes with its own optimizer.
//!
//! Each query plans every registered table afresh (listing, footers, partition types, schema
//! unification), so it sees the committed state at that moment; a dataset with an unfinished
//! transaction is refused with [`Error::RecoveryNeeded`](crate::Error::RecoveryNeeded), never
//! read half-published.

use std::sync::Arc;

use crate::dataset::storage::Location;
use crate::engine::DatasetBackend;
use crate::error::{Error, Result};
use crate::plan::scan::{ReadOptions, plan_scan};
use crate::plan::sort::MemoryBudget;
use crate::plan::sql::{SqlParam, SqlQuery, SqlTable, validate_table_name};
use crate::stream::Batches;

/// A SQL session on an engine: datasets registered by name, queried together.
///
/// ```no_run
/// # async fn example(engine: std::sync::Arc<dyn fsk_core::DatasetBackend>) -> fsk_core::Result<()> {
/// use fsk_core::ops::sql::SqlSession;
/// use fsk_core::plan::sql::SqlParam;
///
/// let mut session = SqlSession::new(engine);
/// session.register("sales", fsk_core::Location::parse("/data/sales")?)?;
/// let rows = session
///     .query(
///         "SELECT day, sum(amount) AS total FROM sales WHERE day >= ? GROUP BY day",
///         &[SqlParam::Date(20089)],
///     )
///     .await?
///     .collect()
///     .await?;
/// # Ok(()) }
/// ```
pub struct SqlSession<'a> {
    engine: Engine<'a>,
    tables: Vec<(String, Location)>,
    memory: MemoryBudget,
}

/// The session's engine, owned or borrowed.
enum Engine<'a> {
    Owned(Arc<dyn DatasetBackend>),
    Borrowed(&'a dyn DatasetBackend),
}

impl SqlSession<'static> {
    /// A session on `engine`, with the default memory budget.
    pub fn new(engine: Arc<dyn DatasetBackend>) -> Self {
        SqlSession {
            engine: Engine::Owned(engine),
            tables: Vec::new(),
            memory: MemoryBudget::default(),
        }
    }
}

impl<'a> SqlSession<'a> {
    /// A session on a borrowed engine, with the default memory budget.
    pub fn on(engine: &'a dyn DatasetBackend) -> Self {
        SqlSession {
            engine: Engine::Borrowed(engine),
            tables: Vec::new(),
            memory: MemoryBudget::default(),
        }
    }

    fn engine(&self) -> &dyn DatasetBackend {
        match &self.engine {
            Engine::Owned(engine) => engine.as_ref(),
            Engine::Borrowed(engine) => *engine,
        }
    }

    /// Sets the memory the engine may use for a query.
    pub fn with_memory(mut self, memory: MemoryBudget) -> Self {
        self.memory = memory;
        self
    }

    /// Registers the dataset at `location` as table `name` (a SQL identifier, unique in the
    /// session, compared case-insensitively as SQL does).
    pub fn register(&mut self, name: &str, location: Location) -> Result<&mut Self> {
        validate_table_name(name)?;
        if self
            .tables
            .iter()
            .any(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            return Err(Error::invalid_argument(
                "table",
                name,
                "a table of this name is already registered",
            ));
        }
        self.tables.push((name.to_string(), location));
        Ok(self)
    }

    /// The registered tables, in order.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &Location)> {
        self.tables.iter().map(|(n, l)| (n.as_str(), l))
    }

    /// Runs `sql` with positional `params` (`?` in order, or `$1`, `$2`, ...), streaming the
    /// result. The engine's errors keep their category ([`Error::Sql`]).
    pub async fn query(&self, sql: &str, params: &[SqlParam]) -> Result<Batches> {
        if sql.trim().is_empty() {
            return Err(Error::invalid_argument("query", sql, "the query is empty"));
        }
        if let Some(wanted) = placeholders(sql)
            && wanted != params.len()
        {
            return Err(Error::invalid_argument(
                "params",
                params.len(),
                format!("the query has {wanted} placeholder(s)"),
            ));
        }
        let mut tables = Vec::with_capacity(self.tables.len());
        for (name, location) in &self.tables {
            let scan = plan_scan(location, &ReadOptions::default()).await?;
            tables.push(SqlTable {
                name: name.clone(),
                scan,
            });
        }
        tracing::debug!(
            engine = self.engine().name(),
            tables = tables.len(),
            params = params.len(),
            "planned SQL"
        );
        self.engine()
            .sql(&SqlQuery {
                tables,
                sql: sql.to_string(),
                params: params.to_vec(),
                memory: self.memory.clone(),
            })
            .await
    }
}

/// How many parameters the query takes: the number of `?` placeholders, or the highest `$n`;
/// `None` when the text does not tokenize (the engine reports that).
fn placeholders(sql: &str) -> Option<usize> {
    let dialect = sqlparser::dialect::GenericDialect {};
    let tokens = sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
        .tokenize()
        .ok()?;
    let mut questions = 0;
    let mut highest = 0;
    for token in tokens {
        if let sqlparser::tokenizer::Token::Placeholder(p) = token {
            if p == "?" {
                questions += 1;
            } else if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                highest = highest.max(n);
            }
        }
    }
    Some(questions.max(highest))
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_are_counted_outside_strings() {
        assert_eq!(placeholders("SELECT 1"), Some(0));
        assert_eq!(placeholders("SELECT ? , '?' , ?"), Some(2));
        assert_eq!(placeholders("SELECT $2, $1, $2"), Some(2));
    }
}
