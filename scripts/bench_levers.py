"""`make bench`'s lever table: one worker with each hot-path lever turned off alone, against
every lever on, and the table of docs/performance.md that `make bench` rewrites with them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: The hot path's levers (docs/performance.md), each with the settings that turn it off.
LEVERS = {
    "process events in batches (VIGIL_BATCH_MAX)": {"VIGIL_BATCH_MAX": "1"},
    "risk signals in batches (VIGIL_RISK_BATCH_MAX)": {"VIGIL_RISK_BATCH_MAX": "1"},
    "lean Faust sensor (VIGIL_FAUST_SENSOR)": {"VIGIL_FAUST_SENSOR": "full"},
    "uvloop event loop (VIGIL_EVENT_LOOP)": {"VIGIL_EVENT_LOOP": "asyncio"},
    "producer linger 5 ms (VIGIL_PRODUCER_LINGER_MS)": {"VIGIL_PRODUCER_LINGER_MS": "0"},
    "eager delivery (VIGIL_EAGER_DELIVERY)": {"VIGIL_EAGER_DELIVERY": "false"},
    "fetch long poll 100 ms (VIGIL_FETCH_MAX_WAIT_MS)": {"VIGIL_FETCH_MAX_WAIT_MS": "1500"},
    "fetch backoff 5 ms (VIGIL_FETCH_BACKOFF_MS)": {"VIGIL_FETCH_BACKOFF_MS": "100"},
    "garbage collector tuned (VIGIL_GC_TUNING)": {"VIGIL_GC_TUNING": "false"},
    "direct table writes (VIGIL_DIRECT_WRITES)": {"VIGIL_DIRECT_WRITES": "false"},
}
LEVER_RECORDS = int(os.environ.get("BENCH_LEVER_RECORDS", "10000"))
PERFORMANCE_DOC = REPO / "docs" / "performance.md"
LEVERS_BEGIN = "<!-- bench:levers -->"
LEVERS_END = "<!-- /bench:levers -->"


def lever_runs(records, tmp: Path, vigil_run: Callable[..., dict]) -> dict:
    """One worker (`vigil_run(records, workers, tmp, env)`) over the same records with each
    lever off, and with every lever on before the first, after every third and after the last
    (`all on`: a list of runs)."""
    runs: dict = {"all on": [vigil_run(records, 1, tmp)]}
    for i, (lever, env) in enumerate(LEVERS.items(), 1):
        runs[lever] = vigil_run(records, 1, tmp, env)
        if i % 3 == 0 or i == len(LEVERS):
            runs["all on"].append(vigil_run(records, 1, tmp))
    return runs


def _median_run(runs: list[dict]) -> dict:
    """The run of median CPU per record."""
    return sorted(runs, key=lambda run: run["cpu_ms_per_record"])[len(runs) // 2]


def levers_table(runs: dict, day: str) -> str:
    """docs/performance.md's lever table: each lever off against all on (the median of the
    all-on runs interleaved with them), same run."""
    ons = runs["all on"]
    on = _median_run(ons)
    cpus = sorted(run["cpu_ms_per_record"] for run in ons)
    lines = [
        f"`make bench`, {day}, {on['events']:,} raw records, one worker; each lever turned off "
        f"alone against all on, measured in the same run. All on was run {len(ons)} times "
        f"between them ({cpus[0]:.3f}-{cpus[-1]:.3f} ms CPU per record; the median run is "
        "shown): that spread is this machine's noise, and raw/s of so short a run moves in "
        "steps of a commit interval, so CPU per record is the figure:",
        "",
        "| lever | off: raw/s | off: CPU ms/record | on: raw/s | on: CPU ms/record | CPU saved |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lever, run in runs.items():
        if lever == "all on":
            continue
        saved = 1 - on["cpu_ms_per_record"] / run["cpu_ms_per_record"]
        lines.append(
            f"| {lever} | {run['events_per_s']:.0f} | {run['cpu_ms_per_record']:.3f} "
            f"| {on['events_per_s']:.0f} | {on['cpu_ms_per_record']:.3f} | {saved:.0%} |"
        )
    return "\n".join(lines)


def write_levers(table: str, doc: Path = PERFORMANCE_DOC) -> None:
    """Replace the table between the lever markers of docs/performance.md."""
    text = doc.read_text()
    head, found, rest = text.partition(LEVERS_BEGIN)
    _, found_end, tail = rest.partition(LEVERS_END)
    if not (found and found_end):
        raise RuntimeError(f"{doc}: no {LEVERS_BEGIN} ... {LEVERS_END} section")
    doc.write_text(f"{head}{LEVERS_BEGIN}\n{table}\n{LEVERS_END}{tail}")
