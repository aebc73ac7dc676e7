"""Reading telemetry files in bounded memory: one document, lines, lines over the size limit."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

import orjson

from app.model.outputs import Origin
from app.pipeline import Pipeline
from app.replay import offline_replay
from app.settings import REPO_ROOT, Settings
from app.sources.files import OVERSIZE_HEAD_BYTES, OversizeRecord, file_records

LIMIT = 1000


def test_a_small_json_document_is_one_record(tmp_path):
    path = tmp_path / "report.json"
    path.write_bytes(b'\n  {\n  "a": [1,\n 2]\n}\n\n')
    assert list(file_records(path, LIMIT)) == [(0, b'{\n  "a": [1,\n 2]\n}')]


def test_lines_within_the_limit_are_held_and_stripped(tmp_path):
    path = tmp_path / "lines.jsonl"
    exact = b"x" * LIMIT
    path.write_bytes(b'{"a": 1}\r\n\n  ' + exact + b"  \t\n" + b"y" * 10)
    assert list(file_records(path, LIMIT)) == [(0, b'{"a": 1}'), (2, exact), (3, b"y" * 10)]


def test_a_line_over_the_limit_is_measured_and_hashed_not_held(tmp_path):
    big = b'{"k": "' + b"z" * 300_000 + b' \t z"}'
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"  " + big + b"   \n" + b'{"b": 2}\n')
    (first, oversize), second = file_records(path, LIMIT)
    assert first == 0 and second == (1, b'{"b": 2}')
    assert oversize == OversizeRecord(big, len(big), hashlib.sha256(big).hexdigest())


def test_an_oversize_record_keeps_the_head_a_dead_letter_keeps(tmp_path):
    big = os.urandom(OVERSIZE_HEAD_BYTES).hex().encode()  # 1 MiB, no whitespace
    path = tmp_path / "big.jsonl"
    path.write_bytes(big)
    ((_, oversize),) = file_records(path, LIMIT)
    assert oversize.head == big[:OVERSIZE_HEAD_BYTES] and oversize.size == len(big)


def test_a_pretty_printed_document_over_the_limit_is_one_oversize_record(tmp_path):
    doc = orjson.dumps({"Records": [{"n": n} for n in range(200)]}, option=orjson.OPT_INDENT_2)
    path = tmp_path / "trail.json"
    path.write_bytes(doc + b"\n")
    ((index, oversize),) = file_records(path, LIMIT)
    assert index == 0 and isinstance(oversize, OversizeRecord)
    assert oversize.sha256 == hashlib.sha256(doc).hexdigest()


def test_offline_and_topic_dead_letters_of_a_too_large_record_agree(tmp_path):
    big = b'{"k": "' + b"z" * 2_000 + b'"}'
    path = tmp_path / "big.jsonl"
    path.write_bytes(big + b"\n")
    settings = Settings(max_record_bytes=LIMIT)
    (offline,) = list(offline_replay([path], settings, family="falco"))
    origin = Origin(topic="telemetry.falco", partition=None, offset=0)
    (held,) = Pipeline(settings).ingest(big, "falco", origin)
    assert offline["value"] == held.value
    assert offline["value"]["error_code"] == "too_large"
    assert base64.b64decode(offline["value"]["raw_b64"]) == big


def _write_big_file(path, megabytes: int) -> None:
    """~1 MB lines: valid JSON of no known format, broken JSON, and lines over the 1 MiB limit."""
    body = b"q" * 1_000_000
    lines = (
        b'{"blob": "' + body + b'"}\n',
        b'{"blob": "' + body + b"\n",
        b'{"blob": "' + body + b"w" * 200_000 + b'"}\n',
    )
    with open(path, "wb") as handle:
        for n in range(megabytes):
            handle.write(lines[n % 3])


#: Runs `vigil normalize` and writes the process's peak RSS (VmHWM, kB) to a file. The
#: child reads its own VmHWM: a forked child's `ru_maxrss` (wait4, RUSAGE_CHILDREN) counts the
#: parent's memory from before `exec`, the whole pytest process.
PEAK_RSS_CHILD = """
import sys
from app.cli import main
status = main(["normalize", sys.argv[1]])
with open("/proc/self/status") as f:
    peak = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
with open(sys.argv[2], "w") as out:
    out.write(peak)
sys.exit(status)
"""


def test_normalize_of_a_200_mb_file_stays_under_150_mb_rss(tmp_path):
    path = tmp_path / "big.jsonl"
    _write_big_file(path, 200)
    assert path.stat().st_size > 200_000_000
    peak_file, errors = tmp_path / "peak_kb", tmp_path / "stderr"
    with open(errors, "wb") as stderr:
        status = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_CHILD, str(path), str(peak_file)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            check=False,
        ).returncode
    codes = [line["error_code"] for line in map(orjson.loads, errors.open("rb"))]
    assert status == 1
    assert len(codes) == 200
    assert set(codes) == {"unknown_format", "malformed_json", "too_large"}
    peak_mb = int(peak_file.read_text()) / 1024
    assert peak_mb < 150, f"vigil normalize peaked at {peak_mb:.0f} MB RSS on a 200 MB file"
