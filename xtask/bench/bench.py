"""The benchmark driver behind `cargo xtask bench` (see ../../../shared/WORKLOADS.md).

Generates the workload data deterministically with DuckDB, runs each workload with the fsk
release binary and the baselines (DuckDB, delta-rs) in the same run, each as its own process
so wall time and peak RSS are its own, and writes a JSON file of figures plus a table of
ratios. Run through `cargo xtask bench`, which builds fsk and prepares the venv.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

# Pseudo-random but deterministic column values from the row number (no RNG state).
MIX = "((i * 2654435761 + 40503) % 4294967296)"


def run_measured(cmd):
    """Runs cmd under a tiny wrapper that reports its own child's peak RSS (wait4)."""
    wrapper = (
        "import os, sys, time, json\n"
        "t = time.perf_counter()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.execvp(sys.argv[1], sys.argv[1:])\n"
        "_, status, ru = os.wait4(pid, 0)\n"
        "wall = time.perf_counter() - t\n"
        "sys.stderr.write('\\n@@' + json.dumps({'wall': wall, 'rss': ru.ru_maxrss * 1024,"
        " 'status': os.waitstatus_to_exitcode(status)}) + '\\n')\n"
        "sys.exit(0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True
    )
    marker = proc.stderr.rfind("@@")
    stats = json.loads(proc.stderr[marker + 2 :].strip())
    if stats["status"] != 0:
        sys.stderr.write(proc.stderr[:marker])
        raise SystemExit(f"command failed ({stats['status']}): {' '.join(cmd)}")
    return {"wall_s": round(stats["wall"], 3), "peak_rss_mb": round(stats["rss"] / 2**20, 1)}, proc.stdout


def py(code):
    return [sys.executable, "-c", code]


def duckdb_sql(sql):
    return py(
        "import duckdb\ncon = duckdb.connect()\n"
        "con.execute('SET enable_progress_bar = false')\n"
        f"con.execute({sql!r})\n"
    )


def generate(work, rows, layout):
    """The source table as one parquet file (DuckDB), clustered or shuffled ids."""
    path = os.path.join(work, f"source-{layout}-{rows}.parquet")
    if os.path.exists(path):
        return path
    if layout == "clustered":
        id_expr = "i"
    else:
        # A bijection on 0..rows: multiply by a prime coprime to rows.
        id_expr = f"(i * 2654435761) % {rows}"
    sql = f"""
    COPY (
      SELECT
        {id_expr}::BIGINT AS id,
        'tenant-' || ({MIX} % 100)::VARCHAR AS tenant,
        (DATE '2025-01-01' + (i * 30 // {rows})::INTEGER) AS day,
        ({MIX} % 1000000) / 100.0 AS amount,
        'note-' || lpad(({MIX} % 1000000007)::VARCHAR, 25, '0') AS note,
        make_timestamp(1735689600000000 + (i * 30 // {rows}) * 86400000000
          + (i * 30 % {rows}) * 86400000000 // {rows}) AS ts,
        ({MIX} % 10000)::INTEGER AS x,
        (((i * 40503 + 2654435761) % 4294967296) % 10000)::INTEGER AS y
      FROM range({rows}) t(i)
    ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 500000)
    """
    subprocess.run(duckdb_sql(sql), check=True)
    return path


def fsk_json(fsk, args):
    figures, out = run_measured([fsk, "--json", *args])
    return figures, json.loads(out)


def changes(work, name, dataset, select_sql):
    """A change set parquet built by DuckDB from the dataset (with hive `day`)."""
    path = os.path.join(work, f"changes-{name}.parquet")
    sql = f"""
    COPY (
      WITH ds AS (
        SELECT *, filename FROM read_parquet('{dataset}/**/*.parquet',
          hive_partitioning = true, filename = true)
      )
      {select_sql}
    ) TO '{path}' (FORMAT parquet)
    """
    subprocess.run(duckdb_sql(sql), check=True)
    return path


UPDATE_COLUMNS = (
    "id, tenant, day::DATE AS day, amount + 1.0 AS amount, 'updated-' || note AS note, ts, x, y"
)


def new_rows(rows, count, start):
    return f"""
      SELECT (i + {start})::BIGINT AS id, 'tenant-' || (i % 100)::VARCHAR AS tenant,
        (DATE '2025-01-01' + (i % 30)::INTEGER) AS day, (i % 1000) / 10.0 AS amount,
        'inserted-' || lpad(i::VARCHAR, 21, '0') AS note,
        make_timestamp(1735689600000000 + (i % 30) * 86400000000) AS ts,
        (i % 10000)::INTEGER AS x, ((i * 7) % 10000)::INTEGER AS y
      FROM range({count}) t(i)
    """


def copy_dataset(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def duckdb_full_rewrite(dataset, change_path, out_dir, insert_only=False):
    """DuckDB's whole-table rewrite: anti-join the dataset with the changes, union them,
    write the partitioned result (what a user without fsk does)."""
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    keep = "SELECT d.* FROM ds d"
    if not insert_only:
        keep += " ANTI JOIN ch c ON d.id = c.id"
        added = "SELECT * FROM ch"
    else:
        added = "SELECT c.* FROM ch c ANTI JOIN ds d ON d.id = c.id"
    sql = f"""
    COPY (
      WITH ds AS (SELECT * FROM read_parquet('{dataset}/**/*.parquet', hive_partitioning = true,
                  hive_types = {{'day': DATE}})),
           ch AS (SELECT * FROM read_parquet('{change_path}'))
      SELECT id, tenant, amount, note, ts, x, y, day FROM ({keep})
      UNION ALL
      SELECT id, tenant, amount, note, ts, x, y, day FROM ({added})
    ) TO '{out_dir}' (FORMAT parquet, PARTITION_BY (day))
    """
    figures, _ = run_measured(duckdb_sql(sql))
    return figures


def delta_setup(source, table):
    if os.path.exists(table):
        return
    code = f"""
import pyarrow.dataset as pads
from deltalake import write_deltalake
data = pads.dataset({source!r})
write_deltalake({table!r}, data.scanner().to_reader(), partition_by=['day'])
"""
    subprocess.run(py(code), check=True)


def delta_merge(table, change_path, insert_only=False):
    action = (
        ".when_not_matched_insert_all()"
        if insert_only
        else ".when_matched_update_all().when_not_matched_insert_all()"
    )
    code = f"""
import pyarrow.parquet as pq
from deltalake import DeltaTable
source = pq.read_table({change_path!r})
DeltaTable({table!r}).merge(source=source, predicate='t.id = s.id', source_alias='s',
    target_alias='t'){action}.execute()
"""
    figures, _ = run_measured(py(code))
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsk", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--only", default="B1,B2,B3,B4,B5,SQL")
    parser.add_argument("--no-delta", action="store_true")
    parser.add_argument("--engines", default="arrow",
                        help="comma-separated engines to run the merges (B2-B5) on")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    only = set(args.only.split(","))
    os.makedirs(args.work, exist_ok=True)
    rows = args.rows
    per_file = max(1, rows // args.files)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
        "files_target": args.files,
        "machine": {"cpus": os.cpu_count()},
        "workloads": {},
    }
    fsk = args.fsk

    def dataset(layout):
        src = generate(args.work, rows, layout)
        pristine = os.path.join(args.work, f"ds-{layout}-{rows}-{args.files}")
        if not os.path.exists(pristine):
            fsk_json(fsk, ["write", src, pristine, "--partition-by", "day",
                           "--max-rows-per-file", str(per_file)])
        return src, pristine

    def record(name, entry):
        results["workloads"][name] = entry
        print(f"{name}: {json.dumps(entry)}", flush=True)

    if "B1" in only:
        src = generate(args.work, rows, "clustered")
        out = os.path.join(args.work, "b1-fsk")
        if os.path.exists(out):
            shutil.rmtree(out)
        fsk_fig, report = fsk_json(fsk, ["write", src, out, "--partition-by", "day"])
        ddb_out = os.path.join(args.work, "b1-duckdb")
        if os.path.exists(ddb_out):
            shutil.rmtree(ddb_out)
        ddb_fig, _ = run_measured(duckdb_sql(
            f"COPY (SELECT * FROM read_parquet('{src}')) TO '{ddb_out}' "
            "(FORMAT parquet, PARTITION_BY (day))"))
        record("B1", {
            "fsk": {**fsk_fig, "files_added": len(report["files"])},
            "duckdb_copy": ddb_fig,
            "ratio_vs_duckdb": round(fsk_fig["wall_s"] / ddb_fig["wall_s"], 3),
        })

    merges = [
        ("B2", "clustered", "ten_files", "upsert"),
        ("B3", "shuffled", "ten_files", "upsert"),
        ("B4", "clustered", "every_file", "upsert"),
        ("B5", "clustered", "insert_only", "insert"),
    ]
    for name, layout, shape, strategy in merges:
        if name not in only:
            continue
        src, pristine = dataset(layout)
        updates = rows // 100
        if shape == "ten_files":
            # 1% updates confined to 10 files spread over the dataset, plus 0.1% new ids.
            select = f"""
              , files AS (SELECT filename FROM (SELECT DISTINCT filename FROM ds)
                          ORDER BY filename),
                chosen AS (SELECT filename FROM (SELECT filename, row_number() OVER () AS n
                           FROM files) WHERE n % (SELECT greatest(count(*) // 10, 1) FROM files) = 0
                           LIMIT 10)
              SELECT {UPDATE_COLUMNS} FROM ds WHERE filename IN (SELECT filename FROM chosen)
                AND id % (SELECT greatest(count(*) // {updates}, 1) FROM ds
                          WHERE filename IN (SELECT filename FROM chosen)) = 0
              UNION ALL {new_rows(rows, rows // 1000, rows)}
            """
        elif shape == "every_file":
            select = f"""
              SELECT {UPDATE_COLUMNS} FROM ds WHERE id % 100 = 7
              UNION ALL {new_rows(rows, rows // 1000, rows)}
            """
        else:
            select = f"SELECT * FROM ({new_rows(rows, rows // 10, rows)})"
        change_path = changes(args.work, name, pristine, select)
        engine_figures = {}
        for engine in args.engines.split(","):
            target = os.path.join(args.work, f"{name}-fsk")
            copy_dataset(pristine, target)
            fig, rep = fsk_json(fsk, ["--engine", engine, "merge", change_path, target,
                                      "--key", "id", "--strategy", strategy])
            engine_figures[engine] = {**fig, "execution": rep["execution"]}
            if engine == args.engines.split(",")[0]:
                fsk_fig, report = fig, rep
        entry = {
            "layout": layout,
            "source_rows": report["source_count"],
            "engines": engine_figures,
            "fsk": {
                **fsk_fig,
                "files_considered": report["files_considered"],
                "files_rewritten": len(report["rewritten_files"]),
                "files_added": len(report["inserted_files"]),
                "files_pruned_by_statistics": report["files_pruned_by_statistics"],
                "files_key_scanned": report["files_key_scanned"],
                "bytes_written": sum(f["size_bytes"] for f in report["files"]
                                     if f["operation"] != "preserved"),
                "inserted": report["inserted"],
                "updated": report["updated"],
            },
        }
        ddb_fig = duckdb_full_rewrite(pristine, change_path,
                                      os.path.join(args.work, f"{name}-duckdb"),
                                      insert_only=(strategy == "insert"))
        entry["duckdb_full_rewrite"] = ddb_fig
        entry["ratio_vs_duckdb"] = round(fsk_fig["wall_s"] / ddb_fig["wall_s"], 3)
        for engine, fig in engine_figures.items():
            fig["ratio_vs_duckdb"] = round(fig["wall_s"] / ddb_fig["wall_s"], 3)
        if not args.no_delta:
            table = os.path.join(args.work, f"delta-{layout}-{rows}")
            delta_setup(src, table + "-pristine")
            copy_dataset(table + "-pristine", table)
            delta_fig = delta_merge(table, change_path, insert_only=(strategy == "insert"))
            entry["delta_rs_merge"] = delta_fig
            entry["ratio_vs_delta_rs"] = round(fsk_fig["wall_s"] / delta_fig["wall_s"], 3)
        record(name, entry)

    if "SQL" in only:
        # Three analytic queries on the clustered dataset: `fsk sql` on each SQL engine asked
        # for, against DuckDB's own read_parquet over the same folder's glob.
        _, pristine = dataset("clustered")
        queries = {
            "Q1_full_aggregate": "SELECT tenant, count(*) AS n, sum(amount) AS total "
                                 "FROM t GROUP BY tenant ORDER BY tenant",
            "Q2_partition_pruned": "SELECT day, avg(amount) AS a FROM t "
                                   "WHERE day >= DATE '2025-01-28' GROUP BY day ORDER BY day",
            "Q3_statistics_pruned": f"SELECT x % 10 AS k, count(*) AS n FROM t WHERE id BETWEEN "
                                    f"{rows // 2} AND {rows // 2 + rows // 1000} GROUP BY k ORDER BY k",
        }
        for qname, sql in queries.items():
            glob = sql.replace(
                "FROM t", f"FROM read_parquet('{pristine}/**/*.parquet', hive_partitioning = true)")
            # DuckDB is timed inside its process (connect, query, fetch), without Python's
            # start and import (~0.17 s here); fsk is timed as a whole process, planning
            # included: a comparison against fsk, not for it.
            ddb_fig, out = run_measured(py(
                "import duckdb, time\nt = time.perf_counter()\ncon = duckdb.connect()\n"
                f"con.execute({glob!r}).fetchall()\n"
                "print(time.perf_counter() - t)\n"))
            ddb_fig["process_wall_s"] = ddb_fig["wall_s"]
            ddb_fig["wall_s"] = round(float(out.strip().splitlines()[-1]), 3)
            entry = {"duckdb_read_parquet": ddb_fig, "engines": {}}
            for engine in args.engines.split(","):
                if engine == "arrow":
                    continue
                fig, _ = run_measured([fsk, "--engine", engine, "sql", pristine, sql,
                                       "--format", "csv", "--output", os.devnull])
                fig["ratio_vs_duckdb"] = round(fig["wall_s"] / ddb_fig["wall_s"], 3)
                entry["engines"][engine] = fig
            entry["fsk"] = next(iter(entry["engines"].values()), {"wall_s": 0, "peak_rss_mb": 0})
            record(qname, entry)

    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print()
    print(f"{'id':<4} {'fsk s':>8} {'fsk RSS MB':>11} {'rewritten':>9} {'vs DuckDB':>10} {'vs delta-rs':>12}")
    for name, e in results["workloads"].items():
        f = e["fsk"]
        print(f"{name:<4} {f['wall_s']:>8.2f} {f['peak_rss_mb']:>11.0f} "
              f"{f.get('files_rewritten', '-'):>9} {e.get('ratio_vs_duckdb', '-'):>10} "
              f"{e.get('ratio_vs_delta_rs', '-'):>12}")
    print(f"\nfigures written to {args.out}")


if __name__ == "__main__":
    main()
