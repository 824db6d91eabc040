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
use crate::expr::Predicate;
use crate::plan::scan::{ReadOptions, plan_scan_pruned};
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
        let hints = pruning_hints(sql, params);
        let mut tables = Vec::with_capacity(self.tables.len());
        for (name, location) in &self.tables {
            let hints: &[Predicate] = match &hints {
                Some((table, hints)) if table.eq_ignore_ascii_case(name) => hints.as_slice(),
                _ => &[],
            };
            let scan = plan_scan_pruned(location, &ReadOptions::default(), hints).await?;
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

/// What the core may prune a query's table by before the engine sees it: for a query over
/// one table and nothing else (no join, set operation, subquery or CTE), the conjuncts of
/// its `WHERE` that are in the filter language, with the parameters put in for their
/// placeholders. That is the only shape where a row failing the `WHERE` can never reach the
/// result, so files that cannot hold a row meeting a conjunct need not be registered (the
/// engine still evaluates the whole `WHERE`). The parameters are put into a copy of the text
/// the core alone reads: the engine binds them itself. `None` for any other query, or text
/// sqlparser's generic dialect does not read (the engine then prunes alone).
fn pruning_hints(sql: &str, params: &[SqlParam]) -> Option<(String, Vec<Predicate>)> {
    let sql = with_params(sql, params)?;
    let (table, conjuncts) = where_conjuncts(&sql)?;
    let hints = conjuncts
        .iter()
        .filter_map(|conjunct| Predicate::from_sql(&sql, conjunct).ok())
        .collect();
    Some((table, hints))
}

/// `sql` with each placeholder (`?` in order, `$n` by number) replaced by its parameter as a
/// SQL literal; `None` when a placeholder has no parameter or a parameter has no literal
/// (a float that is not finite).
fn with_params(sql: &str, params: &[SqlParam]) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    if !tokens.iter().any(|t| matches!(t, Token::Placeholder(_))) {
        return Some(sql.to_string());
    }
    let mut next = 0;
    let mut text = String::with_capacity(sql.len());
    for token in tokens {
        match token {
            Token::Placeholder(p) => {
                let index = if p == "?" {
                    next += 1;
                    next - 1
                } else {
                    p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1)?
                };
                text.push_str(&param_literal(params.get(index)?)?);
            }
            other => text.push_str(&other.to_string()),
        }
    }
    Some(text)
}

/// A parameter as a SQL literal of the filter language.
fn param_literal(param: &SqlParam) -> Option<String> {
    Some(match param {
        SqlParam::Null => "NULL".to_string(),
        SqlParam::Bool(b) => b.to_string(),
        SqlParam::Int(i) => format!("({i})"),
        SqlParam::Float(x) if x.is_finite() => format!("({x:?})"),
        SqlParam::Float(_) => return None,
        SqlParam::Str(s) => format!("'{}'", s.replace('\'', "''")),
        SqlParam::Date(_) => format!("DATE '{}'", param.to_scalar()),
        SqlParam::Timestamp(_) => format!("TIMESTAMP '{}'", param.to_scalar()),
    })
}

/// The table and the `WHERE` conjuncts of a query over one table and nothing else.
fn where_conjuncts(sql: &str) -> Option<(String, Vec<sqlparser::ast::Expr>)> {
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
    use super::{placeholders, pruning_hints, where_conjuncts};
    use crate::plan::sql::SqlParam;

    #[test]
    fn conjuncts_only_of_single_table_queries() {
        let (table, conjuncts) = where_conjuncts(
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
            assert!(where_conjuncts(other).is_none(), "{other}");
        }
        assert_eq!(
            where_conjuncts("SELECT 1 FROM t").map(|(_, c)| c.len()),
            Some(0)
        );
    }

    #[test]
    fn hints_take_the_parameters_the_engine_binds() {
        let hints = |sql: &str, params: &[SqlParam]| {
            pruning_hints(sql, params).map(|(table, hints)| {
                let mut texts: Vec<String> = hints.iter().map(|h| format!("{h:?}")).collect();
                texts.sort();
                (table, texts)
            })
        };
        let (table, got) = hints(
            "SELECT x FROM t WHERE day >= ? AND name = $3 AND id < ? AND f(x) > 1",
            &[
                SqlParam::Date(20089),
                SqlParam::Int(-7),
                SqlParam::Str("it's".into()),
            ],
        )
        .expect("one table");
        assert_eq!(table, "t");
        // `f(x) > 1` is not in the filter language: the engine alone evaluates it.
        assert_eq!(got.len(), 3, "{got:?}");
        let all = got.join(" ");
        assert!(all.contains("2025-01-01"), "{all}");
        assert!(all.contains("Int(-7)"), "{all}");
        assert!(all.contains("it's"), "{all}");
        // A placeholder without a parameter, or a float without a literal: no hints.
        assert!(hints("SELECT x FROM t WHERE id < $2", &[SqlParam::Int(1)]).is_none());
        assert!(hints("SELECT x FROM t WHERE f < ?", &[SqlParam::Float(f64::NAN)]).is_none());
        // A question mark in a string is data, not a placeholder.
        let (_, got) = hints("SELECT x FROM t WHERE name = '?'", &[]).expect("one table");
        assert!(got[0].contains("\"?\""), "{got:?}");
    }

    #[test]
    fn placeholders_are_counted_outside_strings() {
        assert_eq!(placeholders("SELECT 1"), Some(0));
        assert_eq!(placeholders("SELECT ? , '?' , ?"), Some(2));
        assert_eq!(placeholders("SELECT $2, $1, $2"), Some(2));
    }
}
