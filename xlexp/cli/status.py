"""``xlexp status [--experiment E]``: where a big matrix stands, from the store and the unit ledger.

Done units come from the records (the authority: a unit's records file is written whole, last);
planned, running and failed ones from the ledger (``xlexp.results.units``), which ``xlexp run`` keeps
up to date and a multirun fills before it submits its jobs. A running unit whose process is gone from
this host (kill -9, out of memory) is failed. The ETA is measured, never guessed: the mean wall time of
the finished units, times the units left, over the processes running now.
"""

from __future__ import annotations

import argparse
import time

from xlexp.cli.registry import Verb, add_results_dir, register
from xlexp.errors import XlexpError


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def status_lines(
    results_dir: str, experiment: str | None, show_all: bool = False, now: float | None = None, slurm: bool = True
) -> list[str]:
    """The status report; with ``slurm`` (and ``squeue`` on the PATH) SLURM's view of the
    experiment's jobs joins the ledger (:mod:`xlexp.cli.slurm_view`)."""
    from xlexp.cli.slurm_view import reconcile
    from xlexp.results import units as ledger
    from xlexp.results.store import load_records

    records = load_records(results_dir)
    if experiment is None:  # the same "latest" as `xlexp matrix`: the newest record or ledger change
        experiment = ledger.latest_activity(results_dir, records)
        if experiment is None:
            raise XlexpError(
                f"no units and no records under {results_dir}: run `xlexp run ...` first "
                f"(or set XLEXP_RESULTS_DIR / --results-dir)"
            )
    states = ledger.unit_states(results_dir, experiment, records)
    if not states:
        raise XlexpError(
            f"experiment '{experiment}' has no units in {results_dir} (records written before unit keys "
            f"existed carry none); `xlexp matrix --experiment {experiment}` shows its records"
        )
    states, slurm_lines = reconcile(states, experiment) if slurm else (states, [])
    now = time.time() if now is None else now
    count = {k: sum(s.state == k for s in states) for k in ledger.STATES}
    lines = [
        f"experiment {experiment}: {len(states)} unit(s): {count['done']} done, {count['running']} running, "
        f"{count['failed']} failed, {count['pending']} pending"
    ]
    mean, eta = ledger.eta_seconds(states, now)
    if mean is None:
        lines.append("ETA: unknown until a unit has finished (no measured unit time yet)")
    elif count["pending"] + count["running"] + count["failed"] == 0:
        lines.append(f"complete; mean unit time {_duration(mean)}")
    else:
        measured = sum(1 for s in states if s.state == "done" and s.entry.elapsed_s)
        if count["running"]:
            lines.append(
                f"ETA {_duration(eta)}: mean unit time {_duration(mean)} over {measured} measured unit(s), "
                f"{count['pending']} pending + {count['running']} running over "
                f"{count['running']} process(es) running now"
            )
        else:  # nothing runs: the work left when the same command is run again (failed units redone too)
            left = eta + mean * count["failed"]
            lines.append(
                f"nothing running: {_duration(left)} of work left for one process (mean unit time "
                f"{_duration(mean)} over {measured} measured unit(s); {count['pending']} pending, "
                f"{count['failed']} failed)"
            )
    order = {"failed": 0, "running": 1, "pending": 2, "done": 3}
    for st in sorted(states, key=lambda s: (order[s.state], s.entry.source, s.entry.seed)):
        e = st.entry
        if st.state == "done" and not show_all:
            continue
        if st.state == "pending" and not show_all and count["pending"] > 20:
            continue
        where = f"{e.source} (seed {e.seed})"
        if st.state == "failed":
            lines.append(f"  failed   {where}: {st.detail}" + (f" [host {e.host}, run {e.run_id}]" if e.host else ""))
        elif st.state == "running":
            lines.append(
                f"  running  {where}: for {_duration(now - e.started) if e.started else '-'} on {e.host} "
                f"(pid {e.pid}"
                + (f", SLURM job {e.slurm_job}" if e.slurm_job else "")
                + (f", run {e.run_id})" if e.run_id else ")")
            )
        elif st.state == "pending":
            lines.append(f"  pending  {where}" + (f": {st.detail}" if st.detail else ""))
        else:
            lines.append(
                f"  done     {where}: {_duration(e.elapsed_s)}" + (f" ({e.records_file})" if e.records_file else "")
            )
    if count["pending"] > 20 and not show_all:
        pending = [f"{s.entry.source}/s{s.entry.seed}" for s in states if s.state == "pending"]
        lines.append(f"  pending  {', '.join(pending[:20])} ... and {len(pending) - 20} more (--all lists every unit)")
    lines += slurm_lines
    if count["failed"]:
        lines.append(
            "re-run the same command (or re-submit the multirun) to redo failed and pending units; "
            "finished ones are skipped"
        )
    return lines


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", help="experiment name (default: the one whose units changed last)")
    p.add_argument("--all", action="store_true", help="list every unit, done ones too")
    add_results_dir(p)


def run(args: argparse.Namespace) -> int:
    print("\n".join(status_lines(args.results_dir, args.experiment, args.all)))
    return 0


VERB = register(
    Verb(
        "status",
        "done / running / failed / pending training units, their errors, ETA from unit times",
        run=run,
        arguments=arguments,
        description="Done / running / failed / pending training units of an experiment, with errors and an ETA.",
    )
)
