"""scripts/lib/service.sh, the start/stop/wait library of the service scripts, driven through
bash with `sleep` processes standing in for services."""

from __future__ import annotations

import subprocess

from app.settings import REPO_ROOT

LIBRARY = REPO_ROOT / "scripts" / "lib" / "service.sh"


def bash(script: str, tmp_path) -> subprocess.CompletedProcess:
    """Run `script` after sourcing the library (SERVICE=test, PIDFILE in tmp_path)."""
    prelude = f"set -euo pipefail\nSERVICE=test\nPIDFILE={tmp_path}/test.pid\nsource {LIBRARY}\n"
    return subprocess.run(
        ["bash", "-c", prelude + script], capture_output=True, text=True, timeout=30
    )


def test_wait_until_says_why_it_gave_up(tmp_path):
    run = bash(
        """
        (sleep 0.3; exit 1) & s=0; wait_until $! "" 0.05 false || s=$?; echo "exited $s"
        sleep 5 & p=$!; s=0; wait_until $p 1 0.05 false || s=$?; echo "late $s"
        (sleep 0.3; touch "$PIDFILE.flag") &
        s=0; wait_until $p "" 0.05 test -f "$PIDFILE.flag" || s=$?; echo "answered $s"
        kill $p
        """,
        tmp_path,
    )
    assert run.stdout.split("\n")[:3] == ["exited 3", "late 4", "answered 0"], run.stderr


def test_spawn_then_stop_service_leaves_no_process_nor_pid_file(tmp_path):
    run = bash(
        """
        spawn "$PIDFILE.log" sleep 30
        pid=$(running_pid); echo "running $pid"
        stop_service 5 0.05 thing
        kill -0 "$pid" 2>/dev/null && echo "still there" || echo "gone"
        [[ -e "$PIDFILE" ]] && echo "pid file left" || echo "no pid file"
        running_pid || echo "not running"
        """,
        tmp_path,
    )
    lines = run.stdout.split("\n")
    assert lines[0].startswith("running ")
    assert lines[1:4] == ["gone", "no pid file", "not running"], run.stderr
    pid = lines[0].split()[1]
    assert run.stderr.splitlines() == [f"test: stopping thing (pid {pid})"]


def test_stop_service_kills_what_ignores_term(tmp_path):
    run = bash(
        """
        spawn "$PIDFILE.log" bash -c 'trap "" TERM; while :; do sleep 0.1; done'
        sleep 0.2
        stop_service 1 0.1
        """,
        tmp_path,
    )
    messages = run.stderr.splitlines()
    assert messages[0].startswith("test: stopping (pid ")
    assert messages[1] == "test: did not stop in 1s; killing"
    assert run.returncode == 0


def test_status_and_find_program(tmp_path):
    run = bash(
        """
        print_status true; s=0; print_status false || s=$?; echo "rc $s"
        find_program "" no-such-program-here sh
        find_program /nonexistent sh || echo "override missing"
        """,
        tmp_path,
    )
    lines = run.stdout.split("\n")
    assert lines[:3] == ["up", "down", "rc 1"]
    assert lines[3].endswith("/sh")
    assert lines[4] == "override missing"


def test_a_spawned_service_keeps_no_descriptor_of_its_starter(tmp_path):
    """Started under `flock LOCK ... up`, a service must not hold LOCK for as long as it runs."""
    run = bash(
        """
        exec 9>"$PIDFILE.lock"
        flock 9
        spawn "$PIDFILE.log" sleep 30
        sleep 0.2
        ls "/proc/$(running_pid)/fd" | sort -n | tr '\\n' ' '; echo
        exec 9>&-
        flock -n "$PIDFILE.lock" true && echo "lock free"
        stop_service 5 0.05
        """,
        tmp_path,
    )
    assert run.stdout.split("\n")[:2] == ["0 1 2 ", "lock free"], run.stderr
