"""Summarise a `py-spy record -f raw` profile (collapsed stacks): inclusive share
of the samples whose stack contains each given frame, and the top self frames.

    python bench/profile_summary.py /tmp/profile.txt write_message create_task open_case
"""

from __future__ import annotations

import sys
from collections import Counter


def main(path: str, needles: list[str]) -> None:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if any(f.startswith(("_worker (concurrent", "Thread.run", "_bootstrap (threading")) for f in frames):
            continue  # idle executor threads (argon2, store): only the event loop's thread counts here
        own[frames[-1].split(" (")[0]] += n
        for needle in needles:
            if any(needle in f for f in frames):
                inclusive[needle] += n
    idle = sum(n for f, n in own.items() if f.startswith(("select", "EpollSelector.select", "poll")))
    print(f"{total} samples ({100 * idle / max(1, total):.0f} % in the selector, i.e. idle)")
    for needle in needles:
        print(f"  {100 * inclusive[needle] / max(1, total):5.1f} %  {needle}")
    print("top self frames:")
    for frame, n in own.most_common(12):
        print(f"  {100 * n / max(1, total):5.1f} %  {frame}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
