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
        let partition_filters = partition_conjuncts(sql);
        let mut tables = Vec::with_capacity(self.tables.len());
        for (name, location) in &self.tables {
            let mut scan = plan_scan(location, &ReadOptions::default()).await?;
            if let Some((table, conjuncts)) = &partition_filters
                && table.eq_ignore_ascii_case(name)
            {
                prune_partitions(&mut scan, conjuncts);
            }
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

/// The conjuncts of the `WHERE` of a query over one table and nothing else (no join, no
/// set operation, no CTE): the only shape where a row of that table that fails the `WHERE`
/// can never reach the result, so files whose partition values fail a conjunct need not be
/// registered. Returns the table name and the conjuncts; `None` for any other query, or text
/// sqlparser's generic dialect does not read (the engine then prunes alone).
fn partition_conjuncts(sql: &str) -> Option<(String, Vec<sqlparser::ast::Expr>)> {
    use sqlparser::ast::{BinaryOperator, Expr, SetExpr, Statement, TableFactor};
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::GenericDialect {};
    // One SELECT and one FROM in the whole text: no subquery anywhere (a subquery elsewhere
    // could read the same table, which must then be whole). Conservative: `EXTRACT(x FROM
    // y)` also counts as a FROM, and such a query is simply not pruned here.
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let count = |keyword: Keyword| {
        tokens
            .iter()
            .filter(
                |t| matches!(t, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none()),
            )
            .count()
    };
    if count(Keyword::SELECT) != 1
        || count(Keyword::FROM) != 1
        || count(Keyword::VALUES) + count(Keyword::WITH) + count(Keyword::TABLE) > 0
    {
        return None;
    }
    let statements = sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return None;
    };
    if query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name, args: None, ..
    } = &from.relation
    else {
        return None;
    };
    let [table] = name.0.as_slice() else {
        return None;
    };
    let table = table.as_ident()?.value.clone();
    let mut conjuncts = Vec::new();
    let mut pending: Vec<&Expr> = select.selection.iter().collect();
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                pending.push(left);
                pending.push(right);
            }
            Expr::Nested(inner) => pending.push(inner),
            other => conjuncts.push(other.clone()),
        }
    }
    Some((table, conjuncts))
}

/// Drops from `scan` the files whose partition values fail a conjunct that refers to
/// partition columns only and is in the filter language (others are left to the engine).
/// Three-valued: a file goes only when the conjunct is certainly not true for it.
fn prune_partitions(scan: &mut crate::plan::scan::ScanPlan, conjuncts: &[sqlparser::ast::Expr]) {
    let names = scan.partitions.names();
    let partition_schema = arrow::datatypes::Schema::new(scan.partitions.fields.clone());
    for conjunct in conjuncts {
        let text = conjunct.to_string();
        let Ok(predicate) = crate::expr::Predicate::from_sql(&text, conjunct) else {
            continue;
        };
        let columns = predicate.columns();
        if columns.is_empty() || !columns.iter().all(|c| names.contains(c)) {
            continue;
        }
        let Ok(bound) = predicate.bind(&text, &partition_schema) else {
            continue;
        };
        let before = scan.files.len();
        scan.files
            .retain(|f| bound.may_match_partition(&f.partition));
        scan.files_pruned_by_partition += before - scan.files.len();
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
    use super::{partition_conjuncts, placeholders};

    #[test]
    fn conjuncts_only_of_single_table_queries() {
        let (table, conjuncts) = partition_conjuncts(
            "SELECT day, sum(x) FROM sales WHERE (day >= DATE '2025-01-02' AND x > 1) AND n = 3 \
             GROUP BY day",
        )
        .expect("one table");
        assert_eq!(table, "sales");
        let mut texts: Vec<String> = conjuncts.iter().map(|c| c.to_string()).collect();
        texts.sort();
        assert_eq!(texts, vec!["day >= DATE '2025-01-02'", "n = 3", "x > 1"]);
        for other in [
            "SELECT * FROM a JOIN b ON a.id = b.id WHERE a.day = 1",
            "WITH c AS (SELECT * FROM t) SELECT * FROM c WHERE day = 1",
            "SELECT * FROM t WHERE day = 1 UNION ALL SELECT * FROM t",
            "SELECT * FROM a, b WHERE day = 1",
            "not sql at all",
            "SELECT (SELECT count(*) FROM t) AS total, x FROM t WHERE day = 1",
            "SELECT x FROM t WHERE day = (SELECT max(day) FROM t)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u)",
        ] {
            assert!(partition_conjuncts(other).is_none(), "{other}");
        }
        assert_eq!(
            partition_conjuncts("SELECT 1 FROM t").map(|(_, c)| c.len()),
            Some(0)
        );
    }

    #[test]
    fn placeholders_are_counted_outside_strings() {
        assert_eq!(placeholders("SELECT 1"), Some(0));
        assert_eq!(placeholders("SELECT ? , '?' , ?"), Some(2));
        assert_eq!(placeholders("SELECT $2, $1, $2"), Some(2));
    }
}
