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
        "os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)\n"
        "wall = time.perf_counter() - t\n"
        "io = dict(l.split(': ') for l in open(f'/proc/{pid}/io').read().split('\\n') if l)\n"
        "_, status, ru = os.wait4(pid, 0)\n"
        "sys.stderr.write('\\n@@' + json.dumps({'wall': wall, 'rss': ru.ru_maxrss * 1024,"
        " 'rchar': int(io['rchar']), 'status': os.waitstatus_to_exitcode(status)}) + '\\n')\n"
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
    return {"wall_s": round(stats["wall"], 3), "peak_rss_mb": round(stats["rss"] / 2**20, 1),
            "read_mb": round(stats["rchar"] / 2**20, 1)}, proc.stdout


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


def pristine_dataset(work, fsk, rows, files, per_file, layout):
    """The source file and the dataset fsk wrote from it (partitioned by day, `per_file`
    rows per file), each made once and kept under `work`."""
    src = generate(work, rows, layout)
    pristine = os.path.join(work, f"ds-{layout}-{rows}-{files}")
    if not os.path.exists(pristine):
        fsk_json(fsk, ["write", src, pristine, "--partition-by", "day",
                       "--max-rows-per-file", str(per_file)])
    return src, pristine


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


B7_COLUMNS = {
    "uniform": ("x", "y"),
    "skewed": ("px", "py"),
    "long_prefix_strings": ("sx", "sy"),
}


def b7_source(work, rows):
    """Unclustered points: uniform ints, Pareto floats, strings sharing a 29-byte prefix."""
    path = os.path.join(work, f"b7-source-{rows}.parquet")
    if os.path.exists(path):
        return path
    h = lambda k: f"(hash(i * {k} + {k * 7 + 1}) % 1000000)"
    sql = f"""
    COPY (
      SELECT i::BIGINT AS id,
        {h(3)}::BIGINT AS x, {h(5)}::BIGINT AS y,
        1.0 / pow(1.0 - {h(11)} / 1000000.0, 1 / 1.16) AS px,
        1.0 / pow(1.0 - {h(13)} / 1000000.0, 1 / 1.16) AS py,
        'customer-account-region-emea-' || lpad({h(17)}::VARCHAR, 6, '0') AS sx,
        'customer-account-region-emea-' || lpad({h(19)}::VARCHAR, 6, '0') AS sy,
        repeat('p', 24) AS payload
      FROM range({rows}) t(i)
    ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 500000)
    """
    subprocess.run(duckdb_sql(sql), check=True)
    return path


# Files a 1% slice opens, from footer min/max, over the hundred percentile slices of a
# 200,000-row sample of the source (numpy; strings compare as their bytes).
B7_MEASURE = r"""
import json, sys
import numpy as np
import pyarrow.parquet as pq
source, c1, c2 = sys.argv[1], sys.argv[2], sys.argv[3]
files = json.loads(sys.stdin.read())
def bounds(col):
    lo, hi = [], []
    for f in files:
        md = pq.ParquetFile(f).metadata
        idx = md.schema.to_arrow_schema().get_field_index(col)
        mins = [md.row_group(g).column(idx).statistics.min for g in range(md.num_row_groups)]
        maxs = [md.row_group(g).column(idx).statistics.max for g in range(md.num_row_groups)]
        lo.append(min(mins)); hi.append(max(maxs))
    return np.array(lo), np.array(hi)
table = pq.read_table(source, columns=[c1, c2])
step = max(1, table.num_rows // 200000)
def slices(col):
    v = np.sort(np.array(table.column(col).to_numpy(zero_copy_only=False)[::step]))
    n = len(v)
    return [(v[i * n // 100], v[max(i * n // 100, (i + 1) * n // 100 - 1)]) for i in range(100)]
def opened(col):
    lo, hi = bounds(col)
    return np.array([(lo <= b) & (hi >= a) for a, b in slices(col)], dtype=np.int64)
o1, o2 = opened(c1), opened(c2)
n = len(files)
print(json.dumps({"files": n, "x": o1.mean(), "y": o2.mean(),
                  "both": float((o1 @ o2.T).sum()) / (100 * 100 * n)}))
"""


def b7(work, fsk, rows, no_delta, engine):
    """B7: cluster on two columns, then count the files a min/max-pruned 1% slice opens."""
    src = b7_source(work, rows)
    per_file = max(1, rows // 100)
    results = {}

    def measure(files, c1, c2):
        proc = subprocess.run(py(B7_MEASURE) + [src, c1, c2],
                              input=json.dumps(files), capture_output=True, text=True, check=True)
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in json.loads(proc.stdout).items()}

    def parquet_files(folder):
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                      if f.endswith(".parquet") and "_fsk" not in d and "_delta_log" not in d)

    pristine = os.path.join(work, f"b7-ds-{rows}")
    if not os.path.exists(pristine):
        fsk_json(fsk, ["write", src, pristine, "--max-rows-per-file", str(rows // 20)])
    for data, (c1, c2) in B7_COLUMNS.items():
        entry = {"columns": [c1, c2], "unclustered": measure(parquet_files(pristine), c1, c2)}
        # fsk's files are between half and all of --target-rows: asked for 1.4x the others'
        # file size, it writes about as many files as they do (the counts are reported).
        for label, extra in [("fsk_zorder", []), ("fsk_hilbert", ["--curve", "hilbert"]),
                             ("fsk_unaligned_morton", ["--unaligned-cuts"])]:
            target = os.path.join(work, f"b7-{label}")
            copy_dataset(pristine, target)
            size = per_file if label == "fsk_unaligned_morton" else per_file * 14 // 10
            fig, rep = fsk_json(fsk, ["--engine", engine, "optimize", target, "--zorder",
                                      f"{c1},{c2}", "--target-rows", str(size), *extra])
            entry[label] = {**fig, **measure(parquet_files(target), c1, c2),
                            "execution": rep["execution"]}
        # A linear sort on (c1, c2) cut every per_file rows (DuckDB).
        linear = os.path.join(work, "b7-linear")
        if os.path.exists(linear):
            shutil.rmtree(linear)
        os.makedirs(linear)
        fig, _ = run_measured(py(
            "import pyarrow.parquet as pq, pyarrow.dataset as ds\n"
            f"t = pq.read_table({src!r}).sort_by([({c1!r}, 'ascending'), ({c2!r}, 'ascending')])\n"
            f"ds.write_dataset(t, {linear!r}, format='parquet', max_rows_per_file={per_file},"
            f" max_rows_per_group={per_file}, existing_data_behavior='overwrite_or_ignore')\n"))
        entry["linear_sort"] = {**fig, **measure(parquet_files(linear), c1, c2)}
        if not no_delta:
            table = os.path.join(work, "b7-delta")
            if os.path.exists(table):
                shutil.rmtree(table)
            src_bytes = os.path.getsize(src)
            fig, out = run_measured(py(
                "import pyarrow.parquet as pq, json\n"
                "from deltalake import write_deltalake, DeltaTable\n"
                f"write_deltalake({table!r}, pq.read_table({src!r}))\n"
                f"dt = DeltaTable({table!r})\n"
                f"dt.optimize.z_order([{c1!r}, {c2!r}], target_size={max(1, src_bytes // 100)})\n"
                "print(json.dumps(DeltaTable(" + repr(table) + ").file_uris()))\n"))
            files = [f.replace("file://", "") for f in json.loads(out.strip().splitlines()[-1])]
            entry["delta_rs_zorder"] = {**fig, **measure(files, c1, c2)}
        results[data] = entry
        print(f"B7 {data}: {json.dumps(entry)}", flush=True)
    return results


def b6(work, fsk, small_files, no_delta, engine):
    """B6: compact many ~100 KB files into 128 MiB ones, against delta-rs optimize.compact on
    the same files (converted in place to a Delta table, untimed)."""
    rows_per_file = 1700
    rows = small_files * rows_per_file
    src = b7_source(work, rows)
    pristine = os.path.join(work, f"b6-ds-{small_files}")
    if not os.path.exists(pristine):
        fsk_json(fsk, ["write", src, pristine, "--max-rows-per-file", str(rows_per_file)])
    target = os.path.join(work, "b6-fsk")
    copy_dataset(pristine, target)
    fig, rep = fsk_json(fsk, ["--engine", engine, "compact", target,
                              "--target-file-size", "128MiB"])
    sizes = [f["size_bytes"] for f in rep["added_files"]]
    entry = {
        "small_files": small_files,
        "input_bytes": rep["before_total_bytes"],
        "fsk": {**fig, "files_after": rep["after_file_count"],
                "largest_output_mb": round(max(sizes) / 2**20, 1) if sizes else 0,
                "execution": rep["execution"]},
    }
    if not no_delta:
        table = os.path.join(work, "b6-delta")
        copy_dataset(pristine, table)
        subprocess.run(py("from deltalake import convert_to_deltalake\n"
                          f"convert_to_deltalake({table!r})\n"), check=True)
        dfig, out = run_measured(py(
            "import json\nfrom deltalake import DeltaTable\n"
            f"m = DeltaTable({table!r}).optimize.compact(target_size={128 << 20})\n"
            "print(json.dumps(m))\n"))
        metrics = json.loads(out.strip().splitlines()[-1])
        entry["delta_rs_compact"] = {**dfig, "files_added": metrics.get("numFilesAdded")}
        entry["ratio_vs_delta_rs"] = round(fig["wall_s"] / dfig["wall_s"], 3)
    print(f"B6: {json.dumps(entry)}", flush=True)
    return entry


def merge_workload(args, fsk, rows, name, layout, shape, strategy, dataset):
    """One merge workload (B2-B5, B8): a change set of `shape` built from the `layout`
    dataset of `rows` rows, merged by fsk on each engine asked for, against DuckDB's full
    rewrite (and delta-rs's merge unless --no-delta)."""
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
    return entry


def result_digest(dataset):
    """Rows and an order-free digest of every column of a dataset (DuckDB)."""
    code = (
        "import duckdb, json\n"
        "con = duckdb.connect()\n"
        "con.execute('SET enable_progress_bar = false')\n"
        f"r = con.execute(\"SELECT count(*), sum(hash(id, tenant, amount, note, ts, x, y, "
        f"day::DATE)) FROM read_parquet('{dataset}/**/*.parquet', hive_partitioning = true, "
        f"hive_types = {{'day': DATE}})\").fetchone()\n"
        "print(json.dumps([int(r[0]), str(r[1])]))\n"
    )
    out = subprocess.run(py(code), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def b9(args, fsk, rows, dataset):
    """B9: upsert a source of 2/5 of the dataset's rows (20M for 50M: a third updates of ids
    spread over every file, two thirds new ids) into the B2 dataset with --memory-limit 1GiB,
    on each engine asked for, against DuckDB's full rewrite of the same merge; the in-memory
    path (--source-spill never) on the first engine; every result's digest compared with
    DuckDB's."""
    _, pristine = dataset("clustered")
    size = rows * 2 // 5
    updates = size // 3
    step = max(1, rows // updates)
    select = f"""
      SELECT * FROM (SELECT {UPDATE_COLUMNS} FROM ds WHERE id % {step} = 1 ORDER BY id
                     LIMIT {updates})
      UNION ALL {new_rows(rows, size - updates, rows)}
    """
    change_path = os.path.join(args.work, f"changes-B9-{rows}.parquet")
    if not os.path.exists(change_path):
        changes(args.work, f"B9-{rows}", pristine, select)
    ddb_out = os.path.join(args.work, "B9-duckdb")
    ddb_fig = duckdb_full_rewrite(pristine, change_path, ddb_out)
    expected = result_digest(ddb_out)
    entry = {"source_rows": parquet_rows(change_path), "duckdb_full_rewrite": ddb_fig,
             "engines": {}}
    engines = args.engines.split(",")
    runs = [(e, "auto") for e in engines] + [(engines[0], "never")]
    for engine, spill in runs:
        target = os.path.join(args.work, "B9-fsk")
        copy_dataset(pristine, target)
        fig, rep = fsk_json(fsk, ["--engine", engine, "--memory-limit", "1GiB", "merge",
                                  change_path, target, "--key", "id", "--strategy", "upsert",
                                  "--source-spill", spill])
        digest = result_digest(target)
        figure = {
            **fig,
            "ratio_vs_duckdb": round(fig["wall_s"] / ddb_fig["wall_s"], 3),
            "source_spilled_mb": round(rep["source_spilled_bytes"] / 2**20, 1),
            "execution": rep["execution"],
            "inserted": rep["inserted"],
            "updated": rep["updated"],
            "files_rewritten": len(rep["rewritten_files"]),
            "same_result_as_duckdb": digest == expected,
        }
        if not figure["same_result_as_duckdb"]:
            raise SystemExit(f"B9 on {engine} ({spill}): {digest} != DuckDB's {expected}")
        if spill == "auto":
            entry["engines"][engine] = figure
        else:
            entry["in_memory_path"] = {"engine": engine, **figure}
    first = entry["engines"][engines[0]]
    entry["fsk"] = {"wall_s": first["wall_s"], "peak_rss_mb": first["peak_rss_mb"]}
    entry["ratio_vs_duckdb"] = first["ratio_vs_duckdb"]
    return entry


SQL_RUNS = 5


def median_of(run, runs=SQL_RUNS):
    """The run (a figures dict) with the median wall time of `runs` runs."""
    figures = sorted((run() for _ in range(runs)), key=lambda f: f["wall_s"])
    fig = dict(figures[len(figures) // 2])
    fig["runs"] = runs
    fig["min_wall_s"] = figures[0]["wall_s"]
    return fig


def timed_inside(cmd):
    """Runs a Python command that prints its own timing last: that timing as wall_s, the
    process's as process_wall_s."""
    fig, out = run_measured(cmd)
    fig["process_wall_s"] = fig["wall_s"]
    fig["wall_s"] = round(float(out.strip().splitlines()[-1]), 3)
    return fig


def same_version_duckdb(work, fsk):
    """A Python with the DuckDB version fsk bundles (asked of fsk itself), in a venv under
    `work` made once; None when fsk has no DuckDB engine or the version cannot be installed."""
    proc = subprocess.run([fsk, "--engine", "duckdb", "sql", "SELECT version() AS v",
                           "--format", "csv"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    version = proc.stdout.split()[-1].lstrip("v")
    venv = os.path.join(work, f"duckdb-{version}-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = subprocess.run([python, "-m", "pip", "install", "-q", f"duckdb=={version}"])
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return None
    return version, python


def parquet_rows(path):
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


def in_process(code, out):
    """Runs Python `code` timed inside its process (the import and start left out): the
    figure, with the whole process's wall time kept as process_wall_s."""
    fig = timed_inside(py("import time\n" + code + "\nprint(time.perf_counter() - t)\n"))
    fig["rows_out"] = parquet_rows(out)
    return fig


def b10(work, fsk, rows, engines, dataset):
    """B10: `fsk read --filter` at 0.1% selectivity on non-partition columns of the clustered
    dataset, written as parquet, against DuckDB and Polars on the same folder. `id_range`
    is a range of the clustered id (file statistics and the page index prune); `x_uniform`
    selects x < 10 of a uniform 0..9999 column (nothing prunes: the filter column is read
    whole and the others only where rows match)."""
    _, pristine = dataset("clustered")
    dataset_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(pristine)
                     for f in fs if f.endswith(".parquet")) / 2**20
    lo = rows // 2
    hi = lo + rows // 1000 - 1
    cases = {
        "id_range": (f"id >= {lo} AND id <= {hi}", f"pl.col('id').is_between({lo}, {hi})"),
        "x_uniform": ("x < 10", "pl.col('x') < 10"),
    }
    glob = f"{pristine}/**/*.parquet"
    entry = {"dataset_mb": round(dataset_mb, 1)}
    for case, (sql, polars) in cases.items():
        out = os.path.join(work, f"b10-{case}.parquet")
        ddb = in_process(
            "import duckdb\nt = time.perf_counter()\ncon = duckdb.connect()\n"
            f"con.execute(\"COPY (SELECT * FROM read_parquet('{glob}', hive_partitioning = true) "
            f"WHERE {sql}) TO '{out}' (FORMAT parquet)\")", out)
        pol = in_process(
            "import polars as pl\nt = time.perf_counter()\n"
            f"pl.scan_parquet({glob!r}, hive_partitioning=True).filter({polars})"
            f".sink_parquet({out!r})", out)
        figures = {"duckdb": ddb, "polars": pol, "engines": {}}
        for engine in engines:
            fig, _ = run_measured([fsk, "--engine", engine, "read", pristine, "--filter", sql,
                                   "--format", "parquet", "--output", out])
            fig["rows_out"] = parquet_rows(out)
            if fig["rows_out"] != ddb["rows_out"]:
                raise SystemExit(f"B10 {case} on {engine}: {fig['rows_out']} rows, "
                                 f"DuckDB {ddb['rows_out']}")
            fig["read_fraction"] = round(fig["read_mb"] / dataset_mb, 4)
            fig["ratio_vs_duckdb"] = round(fig["wall_s"] / ddb["wall_s"], 3)
            fig["ratio_vs_polars"] = round(fig["wall_s"] / pol["wall_s"], 3)
            figures["engines"][engine] = fig
        entry[case] = figures
        print(f"B10 {case}: {json.dumps(figures)}", flush=True)
    first = entry["id_range"]["engines"][engines[0]]
    entry["fsk"] = {"wall_s": first["wall_s"], "peak_rss_mb": first["peak_rss_mb"]}
    return entry


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsk", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--only", default="B1,B2,B3,B4,B5,B6,B7,B8,B9,B10,SQL")
    parser.add_argument("--no-delta", action="store_true")
    parser.add_argument("--b6-files", type=int, default=10_000,
                        help="small files B6 compacts (about 100 KB each)")
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
        return pristine_dataset(args.work, fsk, rows, args.files, per_file, layout)

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
        if name in only:
            record(name, merge_workload(args, fsk, rows, name, layout, shape, strategy, dataset))

    if "B8" in only:
        # B2 at three sizes, files of the same size (rows / files rows each): merge time
        # should follow the affected bytes, peak RSS stay flat.
        entry = {}
        for size in (5_000_000, 20_000_000, 50_000_000):
            files = max(1, size // per_file)

            def sized(layout, size=size, files=files):
                return pristine_dataset(args.work, fsk, size, files, per_file, layout)

            no_delta, args.no_delta = args.no_delta, True
            entry[str(size)] = merge_workload(args, fsk, size, f"B8-{size}", "clustered",
                                              "ten_files", "upsert", sized)
            args.no_delta = no_delta
        first = entry[str(50_000_000)]["fsk"]
        entry["fsk"] = {"wall_s": first["wall_s"], "peak_rss_mb": first["peak_rss_mb"]}
        record("B8", entry)

    if "B9" in only:
        record("B9", b9(args, fsk, rows, dataset))

    if "B6" in only:
        record("B6", b6(args.work, fsk, args.b6_files, args.no_delta, args.engines.split(",")[0]))

    if "B7" in only:
        engine = args.engines.split(",")[0]
        entry = b7(args.work, fsk, rows, args.no_delta, engine)
        first = entry["uniform"]
        entry["fsk"] = {"wall_s": first["fsk_zorder"]["wall_s"],
                        "peak_rss_mb": first["fsk_zorder"]["peak_rss_mb"]}
        record("B7", entry)

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
        # DuckDB as a library in the version fsk bundles, beside the pinned baseline: the
        # difference between the two is DuckDB's, not fsk's.
        same = same_version_duckdb(args.work, fsk)
        for qname, sql in queries.items():
            glob = sql.replace(
                "FROM t", f"FROM read_parquet('{pristine}/**/*.parquet', hive_partitioning = true)")
            # DuckDB is timed inside its process (connect, query, fetch), without Python's
            # start and import (~0.17 s here); fsk is timed as a whole process, planning
            # included: a comparison against fsk, not for it. Each figure is the median of
            # SQL_RUNS runs.
            code = ("import duckdb, time\nt = time.perf_counter()\ncon = duckdb.connect()\n"
                    f"con.execute({glob!r}).fetchall()\n"
                    "print(time.perf_counter() - t)\n")
            entry = {"duckdb_read_parquet": median_of(lambda: timed_inside(py(code)))}
            baseline = entry["duckdb_read_parquet"]["wall_s"]
            if same:
                version, python = same
                fig = median_of(lambda: timed_inside([python, "-c", code]))
                fig["version"] = version
                entry["duckdb_same_version"] = fig
            entry["engines"] = {}
            for engine in args.engines.split(","):
                if engine == "arrow":
                    continue
                fig = median_of(lambda: run_measured(
                    [fsk, "--engine", engine, "sql", pristine, sql,
                     "--format", "csv", "--output", os.devnull])[0])
                fig["ratio_vs_duckdb"] = round(fig["wall_s"] / baseline, 3)
                if same:
                    fig["ratio_vs_duckdb_same_version"] = round(
                        fig["wall_s"] / entry["duckdb_same_version"]["wall_s"], 3)
                entry["engines"][engine] = fig
            entry["fsk"] = next(iter(entry["engines"].values()), {"wall_s": 0, "peak_rss_mb": 0})
            record(qname, entry)

    if "B10" in only:
        record("B10", b10(args.work, fsk, rows, args.engines.split(","), dataset))

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
