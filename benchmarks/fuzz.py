"""Fuzz the real entry points: `maccbudget profile` (valid graphs checked against their closed
forms, mutated ONNX files under and over 4 MB), `load_budget` (mutated budget files) and
`maccbudget merge` (mutated shard reports). Prints the outcome table per family and saves a
reproducer of every case that is not ok or a clean error.

    python benchmarks/fuzz.py                        # 10,000 cases, seed 1, 2 jobs
    python benchmarks/fuzz.py --cases 2000 --seed 7 --keep /tmp/fuzz-findings
    python benchmarks/fuzz.py --cases 100000 --time 3600          # as many as an hour allows
    python benchmarks/fuzz.py --family onnx-wire --index 123 --seed 1   # one case again

Each case is the `index`-th of its family for the seed (tests/robustness/fuzz_cases.py,
make_case): the same on every run. Outcomes: ok, clean error (exit 2 with one line
"maccbudget: error: FILE: ...", or a BudgetError naming the file), wrong output (a broken
invariant or closed form, or a valid graph refused), internal error, crash (the process the user
runs died of a signal), hang (no answer within --case-timeout). Findings already recorded in
tests/robustness/findings.py are told apart from new ones. docs/robustness.md has the figures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).absolute().parents[1]))  # the checkout this script is in

from tests.robustness.findings import known_finding  # noqa: E402
from tests.robustness.fuzz_cases import (  # noqa: E402
    BUDGET, CLEAN, FAMILIES, HARNESS, MERGE, MODEL_FILE, OUTCOMES, PROFILE, Case, CaseRef, CaseRunner,
    Limits, Result, is_finding, make_case, plan_cases,
)

CONTAINED = {"the ONNX library crashed": "onnx aborted (contained)", "did not finish within": "timed out (contained)"}


@dataclass
class Tally:
    """Outcome counts per family, and what is kept of each finding."""

    outcomes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    contained: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    known: Counter = field(default_factory=Counter)
    new: list[tuple[CaseRef, Result, Path]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, ref: CaseRef, result: Result, keep: Path) -> None:
        self.outcomes[ref.family][result.outcome] += 1
        self.seconds[ref.family] += result.seconds
        for marker, name in CONTAINED.items():
            if result.outcome == CLEAN and marker in result.detail:
                self.contained[ref.family][name] += 1
        if not is_finding(result.outcome) and result.outcome != HARNESS:
            return
        try:
            case = result.case or make_case(ref.family, ref.seed, ref.index)
        except Exception as error:  # noqa: BLE001  (the harness cannot build the case: keep what is known)
            directory = keep / f"{ref.family}-{ref.index:05d}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "case.txt").write_text(
                f"the case could not be built: {type(error).__name__}: {error}\noutcome: {result.outcome}\n"
                f"{result.detail}\nmake it again:\n  python benchmarks/fuzz.py --family {ref.family} --index {ref.index} "
                f"--seed {ref.seed}\n", encoding="utf-8")
            self.new.append((ref, result, directory))
            return
        finding = known_finding(case, result)
        if finding is not None:
            self.known[finding.key] += 1
            return
        self.new.append((ref, result, save_reproducer(keep, ref, case, result)))


def save_reproducer(keep: Path, ref: CaseRef, case: Case, result: Result) -> Path:
    """The case's files, with how it was made, what happened and the commands that run it again."""
    directory = keep / f"{ref.family}-{ref.index:05d}"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in case.files:
        (directory / name).write_bytes(data)
    (directory / "case.txt").write_text(
        f"{case.label}\noutcome: {result.outcome}\n{result.detail}\n\nrun it:\n  {entry_command(case)}\n"
        f"make it again:\n  python benchmarks/fuzz.py --family {ref.family} --index {ref.index} --seed {ref.seed}\n",
        encoding="utf-8")
    return directory


def entry_command(case: Case) -> str:
    if case.entry == PROFILE:
        return " ".join(["maccbudget", "--debug", "profile", MODEL_FILE, *case.args])
    if case.entry == MERGE:
        shards = " ".join(name for name, _ in case.files if name.endswith(".json"))
        return f"maccbudget --debug merge {shards} --budget macc_budget.yaml --json merged.json"
    assert case.entry == BUDGET
    return "python -c \"from pathlib import Path; from pytest_maccbudget.budget import load_budget; " \
           "print(load_budget(Path('macc_budget.yaml')))\""


def run_all(refs: list[CaseRef], jobs: int, limits: Limits, keep: Path, progress_every: int = 500,
            seconds: Optional[float] = None) -> Tally:
    """Every case through `jobs` worker processes (each case built in its worker); with
    `seconds`, no case is started after that much wall time (the table counts what ran)."""
    tally = Tally()
    runners = [CaseRunner(limits, start_method="forkserver") for _ in range(jobs)]
    busy: dict[int, CaseRef] = {}
    pending = list(reversed(refs))
    done, started = 0, time.monotonic()
    try:
        while pending or busy:
            if seconds is not None and pending and time.monotonic() - started > seconds:
                print(f"  --time {seconds:g} s reached: {len(pending):,} cases not run", file=sys.stderr, flush=True)
                pending.clear()
            for number, runner in enumerate(runners):
                if number not in busy and pending:
                    busy[number] = pending.pop()
                    runner.submit(busy[number])
            ready = wait([runners[n].connection for n in busy], timeout=1.0)
            for number in list(busy):
                runner = runners[number]
                if runner.connection in ready:
                    result = runner.result()
                elif time.monotonic() > runner.deadline:
                    result = runner.expire()
                else:
                    continue
                tally.add(busy.pop(number), result, keep)
                done += 1
                if done % progress_every == 0:
                    print(f"  {done:,} / {len(refs):,} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        for runner in runners:
            runner.close()
    return tally


def outcome_table(tally: Tally, families: list[str]) -> str:
    headers = ["family", "cases", *OUTCOMES, "of which known findings", "new"]
    rows = []
    totals: Counter = Counter()
    for family in families:
        counts = tally.outcomes[family]
        new = sum(1 for ref, _, _ in tally.new if ref.family == family)
        findings = sum(counts[o] for o in OUTCOMES if is_finding(o)) + counts[HARNESS]
        row = [family, sum(counts.values()), *(counts[o] for o in OUTCOMES), findings - new, new]
        totals.update(dict(zip(headers[1:], row[1:])))
        rows.append(row)
    rows.append(["total", *(totals[h] for h in headers[1:])])
    lines = ["| " + " | ".join(headers) + " |", "| --- |" + " ---: |" * (len(headers) - 1)]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else v for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(tally: Tally, families: list[str], seconds: float, keep: Path) -> None:
    print(outcome_table(tally, families))
    harness = sum(tally.outcomes[f][HARNESS] for f in families)
    if harness:
        print(f"\nharness errors (a bug of the fuzzer, not of the product): {harness}")
    contained = {f: dict(c) for f, c in tally.contained.items() if c}
    if contained:
        print("\nclean errors that isolation contained:", "; ".join(
            f"{family}: " + ", ".join(f"{name} {count}" for name, count in counts.items()) for family, counts in contained.items()))
    if tally.known:
        print("\nknown findings met again (tests/robustness/findings.py):")
        for key, count in tally.known.most_common():
            print(f"  {key}: {count}")
    print(f"\nnew findings: {len(tally.new)}" + (f", reproducers under {keep}" if tally.new else ""))
    for ref, result, directory in tally.new[:50]:
        print(f"  {directory.name}: {result.outcome}: {result.detail[:160]}")
    print(f"\nwall time {seconds:.0f} s; time in cases per family: "
          + ", ".join(f"{family} {tally.seconds[family]:.0f} s" for family in families))


def run_one(family: str, index: int, seed: int, limits: Limits, keep: Path) -> int:
    ref = CaseRef(family, seed, index)
    case = make_case(family, seed, index)
    runner = CaseRunner(limits)
    try:
        result = runner.run(case)
    finally:
        runner.close()
    directory = save_reproducer(keep, ref, case, result)
    print(f"{case.label}\n{result.outcome}: {result.detail}\nfiles: {directory}\nrun it: (cd {directory} && {entry_command(case)})")
    return 0 if result.outcome in ("ok", CLEAN) else 1


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="number of cases over all families (default 10,000)")
    parser.add_argument("--seed", type=int, default=1, help="which cases: the same seed gives the same cases (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--time", type=float, metavar="SECONDS",
                        help="start no case after this much wall time (default: run every case)")
    parser.add_argument("--keep", type=Path, help="directory for the reproducers (default: a new temporary directory)")
    parser.add_argument("--family", choices=sorted(FAMILIES), help="only this family (with --index: one case)")
    parser.add_argument("--index", type=int, help="with --family: run this one case and save it")
    parser.add_argument("--profile-timeout", type=float, default=Limits().profile_timeout_s,
                        help="maccbudget profile --timeout of each case (default %(default)s s)")
    parser.add_argument("--case-timeout", type=float, default=Limits().case_timeout_s,
                        help="beyond this a case is a hang (default %(default)s s)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    limits = Limits(profile_timeout_s=args.profile_timeout, case_timeout_s=args.case_timeout)
    keep = args.keep or Path(tempfile.mkdtemp(prefix="maccbudget-fuzz-findings-"))
    if args.family and args.index is not None:
        return run_one(args.family, args.index, args.seed, limits, keep)
    plan = plan_cases(args.cases) if not args.family else {args.family: args.cases}
    refs = [CaseRef(family, args.seed, index) for family, count in plan.items() for index in range(count)]
    refs.sort(key=lambda ref: (ref.index, ref.family))  # families interleaved: progress is representative
    print(f"{len(refs):,} cases, seed {args.seed}, {args.jobs} jobs; reproducers go to {keep}", file=sys.stderr, flush=True)
    started = time.monotonic()
    tally = run_all(refs, args.jobs, limits, keep, seconds=args.time)
    report(tally, list(plan), time.monotonic() - started, keep)
    return 1 if tally.new else 0


if __name__ == "__main__":
    sys.exit(main())
