"""The functions a py-spy profile spent its samples in, by share: `self` (the innermost
frame) and `inclusive` (anywhere on the stack).

`py-spy record -f raw -o prof.raw -- python scripts/bench_logic.py --part process`, then
`python scripts/spy_frames.py prof.raw --under run_process`: frames are named by function and
file (line numbers dropped, paths made relative to the repository or site-packages);
`--under` keeps only the stacks through a frame whose name holds that text (the timed part
of a benchmark, not its setup).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_PREFIX = re.compile(r"\((?:[^()]*/site-packages/|" + re.escape(str(Path.cwd())) + r"/)")


def frame_name(frame: str) -> str:
    """`func (path:line)` -> `func (relative path)`."""
    return _PREFIX.sub("(", _LINE.sub(")", frame))


def shares(lines: list[str], under: str | None) -> tuple[int, Counter, Counter]:
    """(samples kept, samples by innermost frame, samples by any frame on the stack)."""
    innermost: Counter = Counter()
    anywhere: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        if under is not None and not any(under in f for f in frames):
            continue
        samples = int(count)
        total += samples
        innermost[frames[-1]] += samples
        for frame in set(frames):
            anywhere[frame] += samples
    return total, innermost, anywhere


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="a py-spy `-f raw` file")
    parser.add_argument("--under", help="only stacks through a frame holding this text")
    parser.add_argument("--top", type=int, default=30, help="rows per table")
    args = parser.parse_args(argv)
    total, innermost, anywhere = shares(args.raw.read_text().splitlines(), args.under)
    if not total:
        sys.stdout.write("no samples\n")
        return 1
    sys.stdout.write(f"{total} samples\n")
    for title, counts in (("self", innermost), ("inclusive", anywhere)):
        sys.stdout.write(f"== {title}\n")
        for frame, samples in counts.most_common(args.top):
            sys.stdout.write(f"{100 * samples / total:5.1f}% {frame}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
