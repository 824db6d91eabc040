//! Checks of SQL over datasets (`SqlSession`, the engines' `sql` primitive). Results are
//! asserted exactly, so every SQL engine gives the same rows; an engine without SQL answers
//! each check with the typed `NotSupported` error.

use arrow::array::RecordBatch;

use fsk_core::Operations;
use fsk_core::engine::DatasetBackend;
use fsk_core::error::Error;
use fsk_core::ops::sql::SqlSession;
use fsk_core::plan::sql::SqlParam;
use fsk_core::write::WriteOptions;

use crate::Fixture;
use crate::data::{batches, data_files, evolved_int64, rows, sample, small_int64};

fn session(backend: &dyn DatasetBackend) -> SqlSession<'_> {
    SqlSession::on(backend)
}

/// Runs `sql` and returns its sorted rows, or the error.
async fn query(
    session: &SqlSession<'_>,
    sql: &str,
    params: &[SqlParam],
) -> Result<Vec<String>, Error> {
    let batches: Vec<RecordBatch> = session.query(sql, params).await?.collect().await?;
    Ok(rows(&batches))
}

/// Whether the engine has SQL; without it, asserts the typed error and returns false.
async fn has_sql(backend: &dyn DatasetBackend, fx: &Fixture) -> bool {
    if backend.capabilities().sql {
        return true;
    }
    let loc = fx.location("nosql");
    backend
        .write(&loc, batches(vec![sample(0, 2)]), &WriteOptions::default())
        .await
        .expect("write");
    let mut s = session(backend);
    s.register("t", loc).expect("register");
    match s.query("SELECT 1", &[]).await {
        Err(Error::NotSupported { operation, .. }) => assert_eq!(operation, "sql"),
        Err(other) => panic!("expected NotSupported, got {other}"),
        Ok(_) => panic!("sql is not a capability but answered"),
    }
    false
}

/// Aggregations over a hive-partitioned dataset: the partition column is typed (a date) for
/// filters, grouping and output, on every SQL engine alike.
pub async fn sql_aggregates_with_typed_partition_columns(
    backend: &dyn DatasetBackend,
    fx: &Fixture,
) {
    if !has_sql(backend, fx).await {
        return;
    }
    let loc = fx.location("sales");
    backend
        .write(
            &loc,
            batches(vec![sample(0, 30)]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let mut s = session(backend);
    s.register("sales", loc).expect("register");
    let got = query(
        &s,
        "SELECT day, CAST(count(*) AS BIGINT) AS n, CAST(sum(id) AS BIGINT) AS ids \
         FROM sales WHERE day >= DATE '2025-01-02' GROUP BY day",
        &[],
    )
    .await
    .expect("query");
    // Days cycle by id % 3: 2025-01-02 holds ids 1, 4, ..., 28; 2025-01-03 holds 2, ..., 29.
    assert_eq!(
        got,
        vec![
            "day=2025-01-02|n=10|ids=145".to_string(),
            "day=2025-01-03|n=10|ids=155".to_string(),
        ]
    );
    // A subquery over the same table sees all of it, whatever the outer WHERE prunes.
    let got = query(
        &s,
        "SELECT CAST((SELECT count(*) FROM sales) AS BIGINT) AS total, \
         CAST(count(*) AS BIGINT) AS n FROM sales WHERE day = DATE '2025-01-02'",
        &[],
    )
    .await
    .expect("query");
    assert_eq!(got, vec!["total=30|n=10".to_string()]);
    // Partition columns compare as dates, not text.
    let got = query(
        &s,
        "SELECT CAST(count(*) AS BIGINT) AS n FROM sales WHERE day > DATE '2025-01-01' + 1",
        &[],
    )
    .await;
    match got {
        Ok(rows) => assert_eq!(rows, vec!["n=10".to_string()]),
        // Date arithmetic differs between engines; the comparison below is the same.
        Err(_) => {
            let rows = query(
                &s,
                "SELECT CAST(count(*) AS BIGINT) AS n FROM sales WHERE day > DATE '2025-01-02'",
                &[],
            )
            .await
            .expect("query");
            assert_eq!(rows, vec!["n=10".to_string()]);
        }
    }
}

/// Parameters bind by position through the engine, typed; a quote in a string is data.
pub async fn sql_binds_typed_parameters(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let loc = fx.location("t");
    backend
        .write(&loc, batches(vec![sample(0, 10)]), &WriteOptions::default())
        .await
        .expect("write");
    let mut s = session(backend);
    s.register("t", loc).expect("register");
    let got = query(
        &s,
        "SELECT id FROM t WHERE id >= ? AND day = ? AND name <> ?",
        &[
            SqlParam::Int(3),
            SqlParam::Date(20090),
            SqlParam::Str("name-4".into()),
        ],
    )
    .await
    .expect("query");
    assert_eq!(
        got,
        vec!["id=7".to_string()],
        "ids 4 (null name) and 7 hold day 2"
    );
    let got = query(
        &s,
        "SELECT id FROM t WHERE amount > $1 AND id < $2",
        &[SqlParam::Float(10.0), SqlParam::Int(9)],
    )
    .await
    .expect("query");
    assert_eq!(got, vec!["id=7".to_string(), "id=8".to_string()]);
    // The quote is data: no row has that name, and nothing else runs.
    let got = query(
        &s,
        "SELECT id FROM t WHERE name = ?",
        &[SqlParam::Str("x' OR '1'='1".into())],
    )
    .await
    .expect("query");
    assert!(got.is_empty(), "{got:?}");
    let got = query(
        &s,
        "SELECT CAST(count(*) AS BIGINT) AS n FROM t WHERE name IS NOT DISTINCT FROM ?",
        &[SqlParam::Null],
    )
    .await
    .expect("query");
    assert_eq!(got, vec!["n=2".to_string()], "names 4 and 9 are null");
    // As many parameters as placeholders, on every engine alike.
    for params in [vec![], vec![SqlParam::Int(1), SqlParam::Int(2)]] {
        let err = query(&s, "SELECT id FROM t WHERE id = ?", &params)
            .await
            .expect_err("a parameter count that does not match");
        assert_eq!(err.kind(), "invalid_argument", "{err}");
    }
    // Multi-byte text is a string parameter.
    let p: SqlParam = "東京".parse().expect("param");
    assert_eq!(p, SqlParam::Str("東京".into()));
}

/// A join between two registered datasets.
pub async fn sql_joins_two_datasets(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let a = fx.location("a");
    let b = fx.location("b");
    backend
        .write(&a, batches(vec![sample(0, 6)]), &WriteOptions::default())
        .await
        .expect("write a");
    backend
        .write(
            &b,
            batches(vec![small_int64(&[1, 3, 5, 7], "b")]),
            &WriteOptions::default(),
        )
        .await
        .expect("write b");
    let mut s = session(backend);
    s.register("a", a).expect("register a");
    s.register("b", b).expect("register b");
    let got = query(
        &s,
        "SELECT a.id, a.name, b.v FROM a JOIN b ON a.id = b.id",
        &[],
    )
    .await
    .expect("query");
    assert_eq!(
        got,
        vec![
            "id=1|name=name-1|v=b1".to_string(),
            "id=3|name=name-3|v=b3".to_string(),
            "id=5|name=name-5|v=b5".to_string(),
        ]
    );
    let err = s
        .register("A", fx.location("c"))
        .map(|_| ())
        .expect_err("a second table named A");
    assert_eq!(err.kind(), "invalid_argument", "{err}");
}

/// Files written before a column was added read with nulls for it, as `read` unifies them.
pub async fn sql_reads_evolved_schemas(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let loc = fx.location("t");
    // An older file with int32 ids and no `extra`, a newer one with both.
    crate::data::copy_in(
        backend,
        &fx.location("scratch-old"),
        &loc,
        "old",
        crate::data::small_int32(&[1, 2]),
        &WriteOptions::default(),
    )
    .await;
    crate::data::copy_in(
        backend,
        &fx.location("scratch-new"),
        &loc,
        "new",
        evolved_int64(&[3]),
        &WriteOptions::default(),
    )
    .await;
    let mut s = session(backend);
    s.register("t", loc).expect("register");
    let got = query(&s, "SELECT id, extra FROM t", &[])
        .await
        .expect("query");
    assert_eq!(
        got,
        vec![
            "id=1|extra=NULL".to_string(),
            "id=2|extra=NULL".to_string(),
            "id=3|extra=e".to_string(),
        ]
    );
}

/// Each class of error keeps its category, names the table or column where known, and
/// changes nothing.
pub async fn sql_errors_are_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let loc = fx.location("t");
    backend
        .write(&loc, batches(vec![sample(0, 5)]), &WriteOptions::default())
        .await
        .expect("write");
    let before = crate::data::all_objects(&loc).await;
    let mut s = session(backend);
    s.register("t", loc.clone()).expect("register");
    let kind = |r: Result<Vec<String>, Error>| match r {
        Ok(rows) => panic!("expected an error, got {rows:?}"),
        Err(e) => (e.kind(), e),
    };
    let (k, e) = kind(query(&s, "SELEC id FROM t", &[]).await);
    assert_eq!(k, "sql_syntax", "{e}");
    let (k, e) = kind(query(&s, "SELECT id FROM nope", &[]).await);
    assert_eq!(k, "sql_unknown_table", "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
    let (k, e) = kind(query(&s, "SELECT nope FROM t", &[]).await);
    assert_eq!(k, "sql_unknown_column", "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
    let (k, e) = kind(query(&s, "SELECT sum(name) AS s FROM t", &[]).await);
    assert_eq!(k, "sql_type", "{e}");
    let (k, e) = kind(query(&s, "", &[]).await);
    assert_eq!(k, "invalid_argument", "{e}");
    // Only queries: no statement may change anything.
    let r = query(&s, "CREATE TABLE x AS SELECT 1", &[]).await;
    assert!(r.is_err(), "DDL must be refused: {r:?}");
    // A second statement hidden where the parsers disagree (DuckDB nests block comments) is
    // refused, and nothing runs.
    let smuggled = "SELECT 1 /* /* */ '*/; CREATE TABLE y AS SELECT 1; SELECT 2 --'";
    // An engine whose parser reads one statement here runs just that one query.
    match query(&s, smuggled, &[]).await {
        Err(e) => assert_eq!(e.kind(), "sql_syntax", "{e}"),
        Ok(rows) => assert_eq!(rows.len(), 1, "{rows:?}"),
    }
    let err = s
        .register("bad-name", loc.clone())
        .map(|_| ())
        .expect_err("bad name");
    assert_eq!(err.kind(), "invalid_argument", "{err}");
    // A missing dataset is NotFound before the engine runs.
    let mut missing = session(backend);
    missing
        .register("m", fx.location("missing"))
        .expect("register");
    let (k, e) = kind(query(&missing, "SELECT * FROM m", &[]).await);
    assert_eq!(k, "not_found", "{e}");
    assert_eq!(crate::data::all_objects(&loc).await, before);
}

/// A dataset whose data pages (not its footer) are damaged fails a query that reads them
/// with an error naming the file; a query whose filter rules the file out (by partition
/// value, or by footer statistics) never reads its pages and succeeds. This is pruning
/// observed on every engine, whichever reader it uses.
pub async fn sql_prunes_before_reading(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let Some(_) = fx.local_dir() else {
        // The damage is done in place on local disk; other stores run the other checks.
        return;
    };
    let loc = fx.location("t");
    let mut first = sample(0, 2000);
    first = first.slice(0, 2000);
    backend
        .write(
            &loc,
            batches(vec![first]),
            &WriteOptions::default().with_partition_by(["day"]),
        )
        .await
        .expect("write");
    let files = data_files(&loc).await;
    let victim = files
        .iter()
        .find(|f| f.contains("day=2025-01-03"))
        .expect("a file of 2025-01-03")
        .clone();
    damage_pages(fx, &loc, &victim);
    let mut s = session(backend);
    s.register("t", loc.clone()).expect("register");
    let got = query(
        &s,
        "SELECT CAST(count(*) AS BIGINT) AS n FROM t WHERE day = DATE '2025-01-01' AND name IS NOT NULL",
        &[],
    )
    .await
    .expect("partition pruning keeps the damaged file unread");
    assert_eq!(got, vec!["n=534".to_string()]);
    let err = query(&s, "SELECT CAST(sum(amount) AS BIGINT) AS s FROM t", &[])
        .await
        .expect_err("a full scan reads the damaged pages");
    // The I/O error class: the file at fault is named.
    assert!(
        ["corrupt_file", "parquet"].contains(&err.kind()),
        "a file's error, not {}: {err}",
        err.kind()
    );
    assert!(err.to_string().contains(&victim), "{err} names {victim}");

    // Footer statistics: two files of disjoint id ranges, the second damaged; a filter on
    // the first's range never reads the second's pages.
    let loc = fx.location("s");
    crate::data::copy_in(
        backend,
        &fx.location("scratch-low"),
        &loc,
        "low",
        sample(0, 1000),
        &WriteOptions::default(),
    )
    .await;
    crate::data::copy_in(
        backend,
        &fx.location("scratch-high"),
        &loc,
        "high",
        sample(5000, 1000),
        &WriteOptions::default(),
    )
    .await;
    damage_pages(fx, &loc, "high.parquet");
    let mut s = session(backend);
    s.register("s", loc).expect("register");
    let got = query(
        &s,
        "SELECT CAST(count(*) AS BIGINT) AS n FROM s WHERE id < ? AND name IS NOT NULL",
        &[SqlParam::Int(100)],
    )
    .await
    .expect("statistics pruning keeps the damaged file unread");
    assert_eq!(got, vec!["n=80".to_string()]);
    query(&s, "SELECT CAST(sum(amount) AS BIGINT) AS t FROM s", &[])
        .await
        .expect_err("a full scan reads the damaged pages");
}

/// A query whose state cannot spill (one list of millions of strings) under a small budget
/// fails with the out-of-memory class, on every SQL engine, and leaves the dataset as it was.
pub async fn sql_out_of_memory_is_typed(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let loc = fx.location("t");
    backend
        .write(
            &loc,
            batches(vec![sample(0, 2000)]),
            &WriteOptions::default(),
        )
        .await
        .expect("write");
    let before = crate::data::all_objects(&loc).await;
    let spill = tempfile::tempdir().expect("spill folder");
    let mut s = session(backend).with_memory(fsk_core::plan::sort::MemoryBudget {
        bytes: 32 << 20,
        spill_dir: Some(spill.path().to_path_buf()),
    });
    s.register("t", loc.clone()).expect("register");
    // 4 million names, about 100 MB in one aggregate state.
    let err = query(&s, "SELECT array_agg(a.name) AS l FROM t a, t b", &[])
        .await
        .expect_err("a 100 MB list in 32 MiB");
    assert_eq!(err.kind(), "sql_out_of_memory", "{err}");
    assert_eq!(crate::data::all_objects(&loc).await, before);
}

/// Requests and bytes read per data file (by path in the store) in `log`; a read of the
/// whole object counts its listed size.
fn reads_per_file(
    log: &[crate::store::Request],
    sizes: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, (usize, u64)> {
    let mut per_file = std::collections::BTreeMap::new();
    for request in log {
        let Some(&size) = sizes.get(&request.path) else {
            continue;
        };
        if request.kind != crate::store::Kind::Get {
            continue;
        }
        let bytes = if request.ranges.is_empty() {
            size
        } else {
            request
                .ranges
                .iter()
                .map(|r| r.end.min(size).saturating_sub(r.start.min(size)))
                .sum()
        };
        let entry = per_file.entry(request.path.clone()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += bytes;
    }
    per_file
}

/// Pruning counted through a logging store, on every store: a query sees every file's
/// footer only when it needs it, and opens beyond the footer only the files its `WHERE`
/// can match. A partition filter (literal or parameter) leaves other folders unread (their
/// footers too, but the first file's, which gives the schema); a filter on a column with
/// footer statistics reads the other files' footers and nothing more.
pub async fn sql_opens_only_what_pruning_allows(backend: &dyn DatasetBackend, fx: &Fixture) {
    if !has_sql(backend, fx).await {
        return;
    }
    let (counting, loc) = fx.counted("t");
    let options = WriteOptions::default().with_partition_by(["day"]);
    // Each day folder holds a file of low ids and a file of high ids.
    for start in [0, 1_000_000] {
        backend
            .write(&loc, batches(vec![sample(start, 3000)]), &options)
            .await
            .expect("write");
    }
    let files = fsk_core::dataset::listing::data_files(&loc)
        .await
        .expect("list");
    assert_eq!(files.len(), 6, "two files per day");
    let sizes: std::collections::BTreeMap<String, u64> =
        files.iter().map(|f| (f.path.to_string(), f.size)).collect();
    let mut low = std::collections::BTreeSet::new();
    for file in &files {
        let meta = fsk_core::dataset::footer::read_footer(&loc, file.clone())
            .await
            .expect("footer");
        let max = meta.column_stats["id"].max.clone().expect("max id");
        if max.to_string().parse::<i64>().expect("an id") < 1_000_000 {
            low.insert(file.path.to_string());
        }
    }
    assert_eq!(low.len(), 3);
    // What planning alone reads of each file: its footer.
    counting.take();
    fsk_core::plan::scan::plan_scan(&loc, &Default::default())
        .await
        .expect("plan");
    let footers = reads_per_file(&counting.take(), &sizes);
    assert_eq!(footers.len(), 6, "planning reads every footer: {footers:?}");

    let mut s = session(backend);
    s.register("t", loc.clone()).expect("register");
    let run = async |sql: &str, params: &[SqlParam]| {
        counting.take();
        let rows = query(&s, sql, params).await.expect("query");
        (rows, reads_per_file(&counting.take(), &sizes))
    };
    let total = |reads: &std::collections::BTreeMap<String, (usize, u64)>| -> u64 {
        reads.values().map(|(_, b)| b).sum()
    };
    let beyond_footer = |reads: &std::collections::BTreeMap<String, (usize, u64)>| {
        reads
            .iter()
            .filter(|(path, read)| footers.get(*path).is_none_or(|f| f != *read))
            .map(|(path, _)| path.clone())
            .collect::<std::collections::BTreeSet<String>>()
    };
    let select = "SELECT CAST(count(name) AS BIGINT) AS n, CAST(sum(amount) AS BIGINT) AS s FROM t";
    let (rows, full) = run(select, &[]).await;
    assert_eq!(rows, vec!["n=4800|s=4513495500".to_string()]);
    assert_eq!(
        beyond_footer(&full).len(),
        6,
        "a full scan reads every file: {full:?}"
    );

    // Partition pruning, by a literal and by a parameter.
    let day2 = |path: &String| path.contains("day=2025-01-02");
    let first = sizes.keys().next().expect("a file").clone();
    for (sql, params) in [
        (format!("{select} WHERE day = DATE '2025-01-02'"), vec![]),
        (
            format!("{select} WHERE day = ?"),
            vec![SqlParam::Date(20090)],
        ),
    ] {
        let (rows, reads) = run(&sql, &params).await;
        assert_eq!(rows, vec!["n=1600|s=1504497000".to_string()], "{sql}");
        let elsewhere: Vec<&String> = reads.keys().filter(|p| !day2(p)).collect();
        assert!(
            elsewhere.is_empty() || (elsewhere == [&first] && reads[&first] == footers[&first]),
            "{sql}: other folders read: {reads:?}"
        );
        assert!(
            total(&reads) < total(&full) / 2,
            "{sql}: {reads:?} against {full:?}"
        );
        eprintln!(
            "sql pruning on {}: {sql}: {} of {} files, {} of {} bytes",
            backend.name(),
            reads.len(),
            full.len(),
            total(&reads),
            total(&full)
        );
    }

    // Statistics pruning: every footer, but only high-id files beyond it.
    let sql = format!("{select} WHERE id >= 1000000 AND day <> ?");
    let (rows, reads) = run(&sql, &[SqlParam::Date(20091)]).await;
    assert_eq!(rows, vec!["n=1600|s=3004498500".to_string()], "{sql}");
    let opened = beyond_footer(&reads);
    assert!(
        !opened.is_empty()
            && opened
                .iter()
                .all(|p| !low.contains(p) && !p.contains("2025-01-03")),
        "{sql}: low-id files or day 3 read beyond their footer: {reads:?}"
    );
    assert!(
        total(&reads) < total(&full),
        "{sql}: {reads:?} against {full:?}"
    );
    eprintln!(
        "sql pruning on {}: {sql}: {} files opened of {}, {} of {} bytes",
        backend.name(),
        opened.len(),
        full.len(),
        total(&reads),
        total(&full)
    );
}

/// Overwrites the middle of a local file (its data pages), leaving the magic and the footer.
fn damage_pages(fx: &Fixture, loc: &fsk_core::Location, relative: &str) {
    let dir = fx.local_dir().expect("local");
    let root = loc.to_string();
    let path = match root.strip_prefix("file://") {
        Some(p) => std::path::PathBuf::from(p).join(relative),
        None => dir.join(relative),
    };
    let path = if path.exists() {
        path
    } else {
        let name = root.rsplit('/').next().unwrap_or_default().to_string();
        dir.join(name).join(relative)
    };
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let footer_len =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let data_end = bytes.len() - 8 - footer_len as usize;
    for b in &mut bytes[4..data_end] {
        *b = 0xAB;
    }
    std::fs::write(&path, bytes).expect("damage");
}
