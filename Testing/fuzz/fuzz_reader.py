"""Long mutation fuzzing of the reading side (reader, ``inspect``, ``validate``), outside the suite.

    python Testing/fuzz/fuzz_reader.py --count 100000 --seed 1 [--workdir DIR] [--processes N] [--seconds S]

Prints how many inputs were tried, the outcome counts per code path, and every crash (an exception
that is not a DicomRegSave error) with the mutation that reproduces it. Exit status 1 if any crashed.
``--seconds`` stops earlier (the summary then says how many of the inputs were tried); each worker
prints its progress every 500 inputs and every crash at once.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import fuzz_mutations as fm  # noqa: E402


def _mutations(rng: random.Random) -> list[tuple[str, int, int]]:
    return [
        (rng.choice(fm.OPERATORS), rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.choice((1, 1, 2, 3, 5)))
    ]


def _work(arguments: tuple[int, int, int, str, float]) -> tuple[collections.Counter, list[str], int]:
    seed, start, count, workdir, deadline = arguments
    folder = Path(workdir) / f"worker{start}"
    seeds, images = fm.seed_files(folder / "seeds")
    rng = random.Random(seed * 1_000_003 + start)
    counts: collections.Counter = collections.Counter()
    crashes: list[str] = []
    target = folder / "mutated.dcm"
    tried = 0
    for number in range(start, start + count):
        if time.time() > deadline:
            break
        if tried % 500 == 0 and tried:
            print(f"worker {start}: {tried} of {count} inputs, {counts['crash']} crash(es)", flush=True)
        tried += 1
        seed_index = rng.randrange(len(seeds))
        mutations = _mutations(rng)
        target.write_bytes(fm.mutate(seeds[seed_index], mutations))
        try:
            for path, outcome in fm.exercise(target, images).items():
                counts[f"{path}: {outcome}"] += 1
        except Exception as error:  # noqa: BLE001 - a crash is what we are counting
            counts["crash"] += 1
            frame = traceback.extract_tb(error.__traceback__)[-1]
            crashes.append(
                f"input {number} seed {seed_index} mutations {mutations}: {type(error).__name__}: {error} "
                f"at {Path(frame.filename).name}:{frame.lineno}"
            )
            print(f"worker {start}: CRASH {crashes[-1]}", flush=True)
    return counts, crashes, tried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--seconds", type=float, default=float("inf"), help="stop after this long")
    args = parser.parse_args()
    started = time.perf_counter()
    deadline = time.time() + args.seconds
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        share = -(-args.count // args.processes)
        jobs = [
            (args.seed, start, min(share, args.count - start), workdir, deadline)
            for start in range(0, args.count, share)
        ]
        with multiprocessing.Pool(args.processes) as pool:
            results = pool.map(_work, jobs)
    counts: collections.Counter = collections.Counter()
    crashes: list[str] = []
    tried = 0
    for worker_counts, worker_crashes, worker_tried in results:
        counts.update(worker_counts)
        crashes.extend(worker_crashes)
        tried += worker_tried
    print(f"{tried} of {args.count} mutated inputs in {time.perf_counter() - started:.0f} s (seed {args.seed})")
    for outcome, number in sorted(counts.items()):
        print(f"  {outcome}: {number}")
    print(f"{len(crashes)} unhandled exception(s)")
    for crash in crashes[:50]:
        print("  " + crash)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
