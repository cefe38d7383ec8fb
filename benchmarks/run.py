"""Run every benchmark once, round-robin where it compares, and write the report.

``benchmarks/run`` (the one command) installs the benchmark tools (matplotlib, the
``bench`` extra, in ``.venv-bench``) and calls this module, which runs:

- ``throughput``: Ruby's worker, the raw PyMySQL loop, djmw and djmw with prefetch 20,
  at 1, 4 and 8 processes, round-robin, 3 repetitions (jobs/s, worker CPU per job,
  server CPU per job, duplicates and deadlock retries);
- ``latency``: enqueue-to-start on an idle worker, immediate and scheduled jobs;
- ``memory``: RSS over 100,000 jobs;
- ``enqueue_rate``: Ruby's ``Delayed::Job.enqueue`` against ``djmw.enqueue_many``;

then writes ``docs/benchmarks.md`` (tables, targets, the machine), ``docs/benchmarks.png``
(jobs/s per contender and process count), ``docs/benchmarks.json`` (every run) and the
ratios between the markers of the README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymysql

from benchmarks import enqueue_rate, latency, memory, throughput
from benchmarks.throughput import ROOT, SERVER, drop_database

DOCS = ROOT / "docs"
README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"
NAMES = {
    "ruby": "Ruby delayed_job 4.1.9",
    "raw": "raw PyMySQL loop (SKIP LOCKED claim, then DELETE; no decoding)",
    "djmw-sql": "djmw's SQL alone (its finish-and-claim round trip; no decoding, chain or log)",
    "djmw": "djmw (default: prefetch 1)",
    "djmw-k20": "djmw, `prefetch=20`",
}


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    os_name = "unknown"
    release = Path("/etc/os-release")
    if release.exists():
        match = re.search(r'PRETTY_NAME="([^"]+)"', release.read_text())
        os_name = match.group(1) if match else os_name
    conn = pymysql.connect(**SERVER)
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@innodb_buffer_pool_size, "
            "@@thread_handling"
        )
        version, flush, pool, threads = cursor.fetchone() or ("?", "?", 0, "?")
    conn.close()
    ruby_gems = _run(
        [
            "ruby",
            "-e",
            'require "delayed_job"; require "delayed_job_active_record"; '
            'puts "Ruby #{RUBY_VERSION}, ActiveRecord #{Gem.loaded_specs["activerecord"]&.version}"',
        ]
    )
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "ruby": ruby_gems,
        "mariadb": (
            f"{version} (innodb_flush_log_at_trx_commit={flush}, "
            f"buffer pool {int(pool) // 1024 // 1024} MiB, {threads})"
        ),
        "pymysql": pymysql.__version__,
        "load": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "commit": _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    rate = throughput.medians(runs, "jobs_per_s")
    cpu = throughput.medians(runs, "cpu_ms_per_job")

    def r(a: tuple[str, int], b: tuple[str, int], table: dict[tuple[str, int], float]) -> float:
        return table.get(a, float("nan")) / table.get(b, float("nan"))

    out = {
        "cpu_djmw_vs_raw_w1": r(("djmw", 1), ("raw", 1), cpu),
        "cpu_k20_vs_raw_w1": r(("djmw-k20", 1), ("raw", 1), cpu),
    }
    for w in sorted({int(run["processes"]) for run in runs}):
        out[f"djmw_vs_ruby_w{w}"] = r(("djmw", w), ("ruby", w), rate)
        out[f"djmw_vs_raw_w{w}"] = r(("djmw", w), ("raw", w), rate)
        out[f"k20_vs_ruby_w{w}"] = r(("djmw-k20", w), ("ruby", w), rate)
        out[f"k20_vs_raw_w{w}"] = r(("djmw-k20", w), ("raw", w), rate)
        out[f"sql_vs_raw_w{w}"] = r(("djmw-sql", w), ("raw", w), rate)
        out[f"djmw_vs_sql_w{w}"] = r(("djmw", w), ("djmw-sql", w), rate)
    if ("djmw", 8) in rate and ("djmw", 4) in rate:
        out["djmw_w8_vs_w4"] = r(("djmw", 8), ("djmw", 4), rate)
        out["k20_w8_vs_w4"] = r(("djmw-k20", 8), ("djmw-k20", 4), rate)
    return out


def chart(runs: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: median jobs/s per contender at each process count, min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({int(run["processes"]) for run in runs})
    contenders = [c for c in throughput.CONTENDERS if any(r["contender"] == c for r in runs)]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    width = 0.8 / len(contenders)
    for i, contender in enumerate(contenders):
        meds, lows, highs = [], [], []
        for count in counts:
            values = [
                float(r["jobs_per_s"])
                for r in runs
                if r["contender"] == contender and r["processes"] == count
            ]
            med = statistics.median(values) if values else 0.0
            meds.append(med)
            lows.append(med - min(values, default=0.0))
            highs.append(max(values, default=0.0) - med)
        xs = [x + (i - (len(contenders) - 1) / 2) * width for x in range(len(counts))]
        bars = ax.bar(xs, meds, width, yerr=[lows, highs], capsize=3, label=NAMES[contender])
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax.set_xticks(range(len(counts)), [f"{c} process{'es' if c > 1 else ''}" for c in counts])
    ax.set_ylabel("jobs per second (median; whiskers: min and max)")
    ax.set_title("No-op delayed_job jobs drained from one MariaDB")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pass(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _bounds(
    ratio: dict[str, float],
    cpu: dict[tuple[str, int], float],
    server: dict[tuple[str, int], float],
    counts: list[int],
) -> list[str]:
    """The paragraph on what bounds the default worker at W=4: its SQL, measured alone."""
    if 4 not in counts or "sql_vs_raw_w4" not in ratio:
        return []

    def total(contender: str) -> float:
        return cpu.get((contender, 4), float("nan")) + server.get((contender, 4), float("nan"))

    return [
        "**What bounds the default worker with four processes.** On 2 cores the workers "
        "and the server share the CPU, so jobs/s is about 2 cores over the CPU a job "
        "costs, worker and server together: "
        f"{total('raw'):.2f} ms for the raw loop, {total('djmw-sql'):.2f} ms for djmw's "
        f"SQL alone, {total('djmw'):.2f} ms for djmw. djmw's statements alone, with no "
        f"decoding, chain or log around them, run at {ratio['sql_vs_raw_w4']:.2f}× the "
        f"raw loop at W=4 ({ratio['sql_vs_raw_w1']:.2f}× at W=1, where one round trip "
        "instead of five wins); the worker then runs at "
        f"{ratio['djmw_vs_sql_w4']:.2f}× its SQL alone. So with every job decoded, run "
        "through the chain and logged, the default worker cannot reach the raw loop's "
        "rate at W=4 on this machine; on a database server of its own the worker's CPU "
        "and the server's stop competing.",
        "",
    ]


def report(results: dict[str, Any]) -> str:
    runs = results["throughput"]
    rate = throughput.medians(runs, "jobs_per_s")
    cpu = throughput.medians(runs, "cpu_ms_per_job")
    server = throughput.medians(runs, "server_cpu_ms_per_job")
    ratio = results["ratios"]
    counts = sorted({int(run["processes"]) for run in runs})
    contenders = [c for c in throughput.CONTENDERS if (c, counts[0]) in rate]
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `benchmarks/run` on {m['date']} at commit `{m['commit']}`. Every figure "
        "comes from this one run: contenders ran round-robin, "
        f"{results['reps']} repetitions, medians reported. Absolute figures move by ±30 % "
        "from run to run on a shared machine; compare the ratios.",
        "",
        "![jobs per second per contender and process count](benchmarks.png)",
        "",
        "## Throughput",
        "",
        f"{results['jobs']:,} no-op Struct jobs (the handler Ruby writes for "
        "`NoopJob.new(1)`) in a fresh table; W worker processes boot and connect, then "
        "start together; the run ends when the last one finds the table empty. djmw and "
        "Ruby log their INFO lines to a file; the raw loop logs nothing.",
        "",
        "| contender | " + " | ".join(f"W={w}, jobs/s" for w in counts) + " |",
        "| --- | " + " | ".join("---:" for _ in counts) + " |",
    ]
    for c in contenders:
        cells = " | ".join(f"{rate.get((c, w), float('nan')):.0f}" for w in counts)
        lines.append(f"| {NAMES[c]} | {cells} |")
    lines += [
        "",
        "CPU per job, from the go signal to the end (worker processes, all threads; the "
        "MariaDB server process beside it):",
        "",
        "| contender | " + " | ".join(f"W={w}: worker / server, ms" for w in counts) + " |",
        "| --- | " + " | ".join("---:" for _ in counts) + " |",
    ]
    for c in contenders:
        cells = " | ".join(
            f"{cpu.get((c, w), float('nan')):.3f} / {server.get((c, w), float('nan')):.3f}"
            for w in counts
        )
        lines.append(f"| {NAMES[c]} | {cells} |")
    dup = sum(int(r.get("duplicates", 0)) for r in runs)
    dead = sum(int(r.get("deadlock_retries", 0)) for r in runs)
    errors = sum(int(r.get("reserve_errors", 0)) for r in runs)
    workers = ("djmw", "djmw-k20")
    left = sum(int(r["left"]) for r in runs if r["contender"] in workers)
    ruby_left = [int(r["left"]) for r in runs if r["contender"] == "ruby"]
    ruby_deadlocks = sum(int(r.get("escaped_deadlocks", 0)) for r in runs)
    djmw_runs = sum(1 for r in runs if r["contender"] in workers)
    lat = results["latency"]
    mem = results["memory"]
    enq = results["enqueue"]
    enq_ratio = enq["djmw.enqueue_many"] / enq["ruby"]
    w_hi = max(counts)
    targets = [
        (
            "worker CPU per job, djmw / raw loop, W=1",
            "≤ 1.5×",
            f"{ratio['cpu_djmw_vs_raw_w1']:.2f}× ({ratio['cpu_k20_vs_raw_w1']:.2f}× with prefetch 20)",
            ratio["cpu_djmw_vs_raw_w1"] <= 1.5,
        ),
        (
            "djmw / Ruby, W=1",
            "≥ 3×",
            f"{ratio['djmw_vs_ruby_w1']:.2f}×",
            ratio["djmw_vs_ruby_w1"] >= 3,
        ),
    ]
    if 4 in counts:
        targets += [
            (
                "djmw / raw loop, W=4",
                "≥ 1.0×",
                f"{ratio['djmw_vs_raw_w4']:.2f}×",
                ratio["djmw_vs_raw_w4"] >= 1.0,
            ),
            (
                "djmw / Ruby, W=4",
                "≥ 3×",
                f"{ratio['djmw_vs_ruby_w4']:.2f}×",
                ratio["djmw_vs_ruby_w4"] >= 3,
            ),
            (
                "prefetch 20 / Ruby, W=1 and W=4",
                "≥ 5× each",
                f"{ratio['k20_vs_ruby_w1']:.2f}× and {ratio['k20_vs_ruby_w4']:.2f}×",
                min(ratio["k20_vs_ruby_w1"], ratio["k20_vs_ruby_w4"]) >= 5,
            ),
        ]
    if 8 in counts and 4 in counts:
        targets.append(
            (
                "8 processes on 2 cores: throughput / 4 processes",
                "≥ 1.0×",
                f"{ratio['djmw_w8_vs_w4']:.2f}× (prefetch 20: {ratio['k20_w8_vs_w4']:.2f}×)",
                ratio["djmw_w8_vs_w4"] >= 1.0,
            )
        )
    targets += [
        (
            f"duplicate runs / deadlocks, every djmw run up to W={w_hi}",
            "none",
            f"{dup} duplicates, {dead} deadlock retries, {errors} reserve errors, {left} rows left ({djmw_runs} runs)",
            dup == 0 and left == 0,
        ),
        (
            "scheduled job: start − run_at, p99",
            "≤ 100 ms",
            f"{lat['scheduled']['p99_ms']:.0f} ms (p50 {lat['scheduled']['p50_ms']:.0f} ms)",
            lat["scheduled"]["p99_ms"] <= 100,
        ),
        (
            f"RSS growth over {mem['jobs']:,} jobs",
            "≤ 5 MiB",
            f"{mem['growth_mib']:.2f} MiB",
            mem["growth_mib"] <= 5,
        ),
        (
            "djmw.enqueue_many / Ruby's Delayed::Job.enqueue",
            "≥ 10×",
            f"{enq_ratio:.1f}×",
            enq_ratio >= 10,
        ),
    ]
    lines += [
        "",
        "## Targets",
        "",
        "| target | wanted | this run | |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {want} | {got} | {_pass(ok)} |" for name, want, got, ok in targets]
    lines += [
        "",
        *(
            [
                f"Ruby's workers left {sum(ruby_left)} rows behind over {len(ruby_left)} runs "
                "(delayed_job reschedules a job whose success DELETE deadlocks, so it runs "
                f"again later; djmw retries that write instead), and {ruby_deadlocks} "
                "deadlocks escaped `work_off` (a real Ruby worker process dies of those and "
                "is restarted; the benchmark's loop goes on).",
                "",
            ]
            if sum(ruby_left) or ruby_deadlocks
            else []
        ),
        *_bounds(ratio, cpu, server, counts),
        "## Latency",
        "",
        "One idle djmw worker, default `sleep_delay` (5 s). Immediate jobs: from the INSERT "
        "returning to the perform function starting; MariaDB cannot notify a worker, so "
        "this is the poll interval's wait. Scheduled jobs: start minus the stored run_at "
        "(the worker sleeps until the earliest run_at it knows of).",
        "",
        "| jobs | samples | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in ("immediate", "scheduled"):
        s = lat[kind]
        lines.append(
            f"| {kind} | {s['samples']} | {s['p50_ms']:.0f} ms | {s['p99_ms']:.0f} ms | {s['max_ms']:.0f} ms |"
        )
    lines += [
        "",
        "A lower `sleep_delay` shortens the immediate case at the cost of one empty "
        "claim per worker per interval.",
        "",
        "## Memory",
        "",
        f"One djmw worker process, default chain, INFO lines to a file, prefetch "
        f"{mem['prefetch']} (to shorten the run), {mem['jobs']:,} jobs in "
        f"{mem['seconds']:.0f} s: RSS {mem['rss_first_mib']:.1f} MiB after 1,000 jobs, "
        f"{mem['rss_warm_mib']:.1f} MiB after 5,000, {mem['rss_end_mib']:.1f} MiB at the "
        f"end: {mem['growth_mib']:+.2f} MiB. `tests/unit/test_memory_growth.py` guards "
        "against a per-job leak with and without prefetch.",
        "",
        "## Bulk enqueue",
        "",
        "| how | rows/s |",
        "| --- | ---: |",
        f"| Ruby `Delayed::Job.enqueue`, one at a time | {enq['ruby']:.0f} |",
        f"| `djmw.enqueue`, one at a time | {enq['djmw.enqueue']:.0f} |",
        f"| `djmw.enqueue_many`, 1,000 rows per INSERT | {enq['djmw.enqueue_many']:.0f} |",
        "",
        "## Sizing",
        "",
        "- **Connections**: one per worker (a `--threads N` process holds N); `Heartbeat` "
        "adds one per worker while a job runs; `enqueue`/`enqueue_many` with a URL hold one "
        "for the call. Size `max_connections` for workers × threads on every machine, "
        "plus the app's pools.",
        "- **Round trips and commits per job** (MariaDB ≥ 10.6): default, one round trip "
        "of six statements (the previous job's DELETE, the claim's SET/UPDATE/SELECT, in "
        "one transaction) and one commit; prefetch K, one round trip with the DELETE (and, "
        "once a second has passed since the claim, the next job's locked_at refresh) plus "
        "two round trips per K jobs for the claim: about one commit per job either way.",
    ]
    for c, label in (("djmw", "default"), ("djmw-k20", "prefetch 20")):
        if (c, 4) in server:
            cores = server[(c, 4)]
            lines.append(
                f"- **Database CPU**, {label}: {server[(c, 4)]:.3f} ms of MariaDB server CPU "
                f"per job at W=4, so about {cores:.2f} cores per 1,000 jobs/s (this "
                "machine's cores, the whole server process: other load on it counts too)."
            )
    lines += [
        "- **Scale-out**: workers on more machines against one database; the server's "
        "CPU per job above and its commit rate (one redo-log flush per job with "
        "`innodb_flush_log_at_trx_commit=1`) bound the fleet. Past one core's worth of "
        "Python per machine, add processes, not threads.",
        "",
        "## The machine",
        "",
    ]
    lines += [f"- **{key}**: {value}" for key, value in m.items()]
    lines += [
        "",
        "Other test suites ran on the same 2 cores and the same MariaDB server during the "
        "run; the ratios, taken from interleaved runs, are what to compare.",
        "",
        "## Reproduce",
        "",
        "```sh",
        "benchmarks/run                      # everything, 6 to 12 minutes",
        "benchmarks/run --quick              # fewer jobs and repetitions, for a smoke test",
        "benchmarks/run --resume             # after an interruption: keep the finished phases",
        "python -m benchmarks.throughput --processes 1,4 --reps 3   # one part (in .venv)",
        "```",
        "",
    ]
    return "\n".join(lines)


def readme_block(results: dict[str, Any]) -> str:
    ratio = results["ratios"]
    enq = results["enqueue"]
    lat = results["latency"]["scheduled"]
    parts = [
        f"Latest run ({results['machine']['date']}, 2 shared cores, MariaDB "
        f"{results['machine']['mariadb'].split('-')[0]}; details in "
        "[docs/benchmarks.md](docs/benchmarks.md)):",
        "",
        f"- djmw runs {ratio['djmw_vs_ruby_w1']:.1f}× Ruby delayed_job's jobs/s with one "
        f"process and {ratio.get('djmw_vs_ruby_w4', float('nan')):.1f}× with four "
        f"({ratio.get('djmw_vs_raw_w4', float('nan')):.2f}× a raw PyMySQL claim-and-delete "
        "loop);",
        f"- with `prefetch=20`: {ratio['k20_vs_ruby_w1']:.1f}× and "
        f"{ratio.get('k20_vs_ruby_w4', float('nan')):.1f}× Ruby;",
        f"- worker CPU per job: {ratio['cpu_djmw_vs_raw_w1']:.2f}× the raw loop's "
        f"({ratio['cpu_k20_vs_raw_w1']:.2f}× with prefetch 20);",
        f"- a scheduled job starts {lat['p50_ms']:.0f} ms after its run_at (p99 "
        f"{lat['p99_ms']:.0f} ms); `djmw.enqueue_many` inserts "
        f"{enq['djmw.enqueue_many'] / enq['ruby']:.0f}× as many rows per second as "
        "Ruby's `Delayed::Job.enqueue`.",
    ]
    return "\n".join(parts)


def update_readme(block: str) -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0:
        return
    text = text[: start + len(README_START)] + "\n" + block + "\n" + text[end:]
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer jobs and repetitions")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--processes", default="1,4,8")
    parser.add_argument("--memory-jobs", type=int, default=100_000)
    parser.add_argument(
        "--resume", action="store_true", help="keep the phases an interrupted run finished"
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.reps, args.memory_jobs = 600, 1, 10_000
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "jobs": args.jobs,
        "reps": args.reps,
    }
    counts = [int(n) for n in args.processes.split(",")]
    partial = DOCS / "benchmarks.partial.json"
    if args.resume and partial.exists():
        results.update(json.loads(partial.read_text()))

    def phase(name: str, measure: Any) -> None:
        # A phase that a server restart (someone else's test) breaks runs once more; each
        # finished phase is saved, so that --resume skips it.
        if name in results:
            return
        print(f"{name} ...", flush=True)
        for attempt in range(2):
            try:
                results[name] = measure()
                break
            except (RuntimeError, OSError, pymysql.err.MySQLError) as exc:
                if attempt:
                    raise
                print(f"  {name}: {exc}; again", flush=True)
                time.sleep(10)
        partial.write_text(json.dumps(results, indent=1, default=str))

    def latencies() -> dict[str, Any]:
        immediate = latency.immediate(10 if args.quick else 30)
        scheduled = latency.scheduled(5 if args.quick else 20)
        return {
            "immediate": latency.summary(immediate),
            "scheduled": latency.summary(scheduled),
            "samples_s": {"immediate": immediate, "scheduled": scheduled},
        }

    try:
        phase("throughput", lambda: throughput.matrix(args.jobs, counts, args.reps))
        phase("latency", latencies)
        phase("memory", lambda: memory.measure(args.memory_jobs, 20))
        phase("enqueue", lambda: enqueue_rate.measure(1 if args.quick else 3))
    finally:
        drop_database()
    results["ratios"] = ratios(results["throughput"])
    partial.unlink(missing_ok=True)
    results["machine"]["load"] += " → " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    results["seconds"] = time.monotonic() - started
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str))
    chart(results["throughput"], DOCS / "benchmarks.png")
    (DOCS / "benchmarks.md").write_text(report(results))
    update_readme(readme_block(results))
    print(f"wrote docs/benchmarks.md in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
