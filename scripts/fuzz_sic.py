#!/usr/bin/env python
"""Long fuzzing run over mutated .sic files (the short run is tests/fuzz/test_fuzz.py).

    scripts/fuzz_sic.py --cases 100000 --workers 2 -o results/fuzz.json
    scripts/fuzz_sic.py --seed 1 --replay 12345 --save case.sic     # one case again, alone

Cases come from tests/fuzz/sic_fuzz.py: valid files made with the tiny test models, mutated (bit
flips, truncation, splicing, huge fields, identity, corrupt payloads with valid CRCs, random bytes)
and fed to the parser, the decoder, `truncate` and, every --cli-every cases, the CLI. Each case runs
under a time bound inside its worker (--timeout seconds of CPU time, 6x that of wall-clock time:
the shared machine may make a worker wait); a worker that does not answer within
--hard-timeout is killed and the case counted as a hang, and a worker that dies is counted as a
crash, so nothing can stop the run. The JSON summary has the seed, the number of cases, the
outcome counts (overall and per mutation), the failures, the slowest case and the peak memory.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))


def _setup(max_pixels: int):
    import torch

    torch.set_num_threads(1)
    import sic_fuzz
    from sicodec.image import set_max_pixels

    set_max_pixels(max_pixels)
    return sic_fuzz


def worker(args) -> None:
    """Read case indices on stdin, answer one JSON line per case on stdout."""
    F = _setup(args.max_pixels)
    with tempfile.TemporaryDirectory(prefix="sicfuzz-") as tmp:
        corpus = F.build_corpus(tmp)
        out = sys.stdout
        sys.stdout = sys.stderr  # nothing but answers on the pipe
        print("ready", file=out, flush=True)
        for line in sys.stdin:
            i = int(line)  # the parent closes stdin when done; a killed parent ends the loop too
            if os.environ.get("SICFUZZ_TEST_HANG") == str(i):  # for the test of this script: a hang that
                time.sleep(3600)  # no in-process time bound can interrupt (outside run_case)
            if os.environ.get("SICFUZZ_TEST_DIE") == str(i):
                os._exit(9)
            case = F.make_case(i, args.seed, corpus, cli_every=args.cli_every)
            r = F.run_case(case, corpus, time_limit=args.timeout, tmpdir=tmp)
            print(json.dumps({"i": i, "outcome": r.outcome, "failures": r.failures, "seconds": r.seconds,
                              "wall": r.wall, "memory": r.memory, "peak_rss": F.peak_rss_bytes(), "pixels": r.pixels,
                              "mutations": case.mutations, "seed_file": case.seed_file, "cli": case.cli,
                              "describe": case.describe()}), file=out, flush=True)


class Worker:
    def __init__(self, args, sel):
        cmd = [sys.executable, __file__, "--worker", "--seed", str(args.seed), "--timeout", str(args.timeout),
               "--cli-every", str(args.cli_every), "--max-pixels", str(args.max_pixels)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     cwd=ROOT)
        self.sel, self.case, self.since, self.ready = sel, None, time.monotonic(), False
        sel.register(self.proc.stdout, selectors.EVENT_READ, self)

    def send(self, i: int) -> None:
        self.case, self.since = i, time.monotonic()
        self.proc.stdin.write(f"{i}\n")
        self.proc.stdin.flush()

    def stop(self, kill: bool = False) -> None:
        self.sel.unregister(self.proc.stdout)
        if kill:
            self.proc.kill()
        else:
            self.proc.stdin.close()
        self.proc.wait()


def run(args) -> dict:
    cases = list(range(args.start, args.start + args.cases))
    todo = collections.deque(cases)
    sel = selectors.DefaultSelector()
    workers = [Worker(args, sel) for _ in range(args.workers)]
    outcomes, by_mutation = collections.Counter(), collections.defaultdict(collections.Counter)
    failures, done, total_seconds = [], 0, 0.0
    slowest = {"seconds": 0.0}
    max_wall = 0.0
    max_memory = {"bytes": 0}
    peak_rss, cli_cases, decoded_pixels = 0, 0, 0
    t0 = time.monotonic()
    next_report = args.report_every

    def record(res: dict) -> None:
        nonlocal done, total_seconds, peak_rss, cli_cases, decoded_pixels, max_wall
        done += 1
        outcomes[res["outcome"]] += 1
        for m in set(res["mutations"]):
            by_mutation[m][res["outcome"]] += 1
        if res["failures"]:
            failures.append({"case": res["i"], "describe": res.get("describe", ""), "failures": res["failures"][:5]})
        total_seconds += res["seconds"]
        max_wall = max(max_wall, res.get("wall", res["seconds"]))
        if res["seconds"] > slowest["seconds"]:
            slowest.update(seconds=res["seconds"], case=res["i"], describe=res.get("describe", ""),
                           outcome=res["outcome"])
        if res["memory"] > max_memory["bytes"]:
            max_memory.update(bytes=res["memory"], case=res["i"], describe=res.get("describe", ""), pixels=res["pixels"])
        peak_rss = max(peak_rss, res.get("peak_rss", 0))
        cli_cases += bool(res.get("cli"))
        if res["outcome"] == "decoded":
            decoded_pixels += res["pixels"]

    def lost(w: Worker, why: str) -> None:
        record({"i": w.case, "outcome": "failure", "failures": [why], "seconds": time.monotonic() - w.since,
                "memory": 0, "pixels": 0, "mutations": ["?"], "describe": f"case {w.case} (replay with --replay)"})

    def summary() -> dict:
        return {
            "tool": "scripts/fuzz_sic.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "sicodec_commit": _git_commit(),
            "seed": args.seed, "first_case": args.start, "cases": done, "cases_requested": len(cases),
            "workers": args.workers,
            "limits": {"cpu_time_per_case_s": args.timeout, "wall_time_per_case_s": 6 * args.timeout,
                       "hard_timeout_s": args.hard_timeout,
                       "max_pixels": args.max_pixels, "memory_bound": _memory_bound_text()},
            "cli_every": args.cli_every, "cli_cases": cli_cases,
            "wall_s": round(time.monotonic() - t0, 1),
            "outcomes": dict(outcomes.most_common()),
            "outcomes_by_mutation": {m: dict(c.most_common()) for m, c in sorted(by_mutation.items())},
            "failures": len(failures), "failure_examples": failures[:50],
            "mean_case_cpu_s": round(total_seconds / max(done, 1), 4),
            "max_case_cpu_s": round(slowest["seconds"], 3), "slowest_case": slowest,
            "max_case_wall_s": round(max_wall, 3),
            "max_case_memory_growth_mib": round(max_memory["bytes"] / 2**20, 1), "largest_memory_case": max_memory,
            "peak_rss_mib": round(peak_rss / 2**20, 1),
            "decoded_megapixels": round(decoded_pixels / 1e6, 1),
        }

    while done < len(cases):
        for w in workers:
            if w.ready and w.case is None and todo:
                w.send(todo.popleft())
        for key, _ in sel.select(timeout=1.0):
            w = key.data
            line = w.proc.stdout.readline()
            if not line:  # the worker died
                code = w.proc.wait()
                if w.case is not None:
                    lost(w, f"worker died (exit status {code}) during the case")
                w.stop()
                workers[workers.index(w)] = Worker(args, sel)
                continue
            if line.strip() == "ready":
                w.ready = True
                continue
            res = json.loads(line)
            w.case = None
            record(res)
        now = time.monotonic()
        for k, w in enumerate(workers):
            if w.case is not None and now - w.since > args.hard_timeout:
                lost(w, f"hang: no answer within {args.hard_timeout} s (worker killed)")
                w.stop(kill=True)
                workers[k] = Worker(args, sel)
        if done >= next_report:
            next_report += args.report_every
            rate = done / (now - t0)
            print(f"{done}/{len(cases)} cases, {len(failures)} failures, {rate:.1f} cases/s, "
                  f"{dict(outcomes.most_common())}", file=sys.stderr, flush=True)
            if args.output:
                _write(args, summary())

    for w in workers:
        w.stop()
    return summary()


def _memory_bound_text() -> str:
    import sic_fuzz as F

    return f"{F.MEMORY_BASE >> 20} MiB + {F.MEMORY_PER_PIXEL} bytes x header width x height (peak RSS growth per case)"


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _write(args, summary: dict) -> None:
    path = Path(args.output)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)


def replay(args) -> int:
    F = _setup(args.max_pixels)
    with tempfile.TemporaryDirectory(prefix="sicfuzz-") as tmp:
        corpus = F.build_corpus(tmp)
        case = F.make_case(args.replay, args.seed, corpus, cli_every=args.cli_every)
        print(case.describe())
        if args.save:
            Path(args.save).write_bytes(case.data)
            print(f"{args.save}: {len(case.data)} bytes")
        r = F.run_case(case, corpus, time_limit=args.timeout, tmpdir=tmp)
        print(f"outcome {r.outcome}, {r.seconds:.3f} s CPU, {r.wall:.3f} s wall, memory +{r.memory >> 20} MiB")
        for f in r.failures:
            print("  " + f)
        return 1 if r.failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--start", type=int, default=0, help="first case index (to continue a run)")
    p.add_argument("--seed", type=int, default=int(time.time()) % 2**31, help="run seed (default: the time)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--timeout", type=float, default=5.0,
                   help="CPU-time bound per case (and 6x that of wall-clock time), enforced in the worker")
    p.add_argument("--hard-timeout", type=float, default=60.0, help="a worker silent this long is killed (hang)")
    p.add_argument("--cli-every", type=int, default=50, help="also run `sicodec info` and `decompress` every N cases")
    p.add_argument("--max-pixels", type=int, default=None, help="pixel limit of the run (default: the harness's)")
    p.add_argument("--report-every", type=int, default=5000)
    p.add_argument("-o", "--output", help="JSON summary (also rewritten at every progress report)")
    p.add_argument("--replay", type=int, help="run this one case in this process and print it")
    p.add_argument("--save", help="with --replay: write the case's bytes to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.max_pixels is None:
        import sic_fuzz

        args.max_pixels = sic_fuzz.FUZZ_MAX_PIXELS
    if args.worker:
        try:
            worker(args)
        except (BrokenPipeError, KeyboardInterrupt):  # the parent is gone
            pass
        return 0
    if args.replay is not None:
        return replay(args)
    summary = run(args)
    if args.output:
        _write(args, summary)
        print(f"{args.output}: written", file=sys.stderr)
    print(json.dumps({k: summary[k] for k in ("seed", "cases", "outcomes", "failures", "max_case_cpu_s", "max_case_wall_s", "peak_rss_mib",
                                              "wall_s")}, indent=1))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
