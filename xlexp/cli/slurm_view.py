"""SLURM's view of an experiment's jobs for ``xlexp status``: ``squeue`` and ``sacct`` next to the
unit ledger.

The ledger says what each unit's process last wrote; it cannot say what happened to a process on
another node that died without writing (scancel, a time limit, a node failure, out of memory), nor
which array tasks are still waiting in the queue. SLURM knows both. A multirun with
``hydra/launcher=xlexp_slurm`` names its array job ``xlexp-<name>`` (``hydra.launcher.name``), every
planned unit carries its multirun job number (= its array task id) and every started unit the job
running it (``UnitEntry.slurm_job``, from ``SLURM_ARRAY_JOB_ID``/``SLURM_ARRAY_TASK_ID``), so the two
views join by job id:

- a unit the ledger calls *running* whose SLURM job has ended (CANCELLED, TIMEOUT, NODE_FAIL,
  OUT_OF_MEMORY, FAILED, or COMPLETED without its records) is *failed*, with SLURM's state;
- a unit whose job was requeued (``scontrol requeue``, preemption) and waits again is *pending*,
  although its process, killed by the requeue, marked it failed;
- every array task of the newest submission is listed with its state (the reason when pending) and
  its units; earlier submissions are summed up by state.

Nothing here is needed to run: without ``squeue`` on the PATH (a laptop) the section is left out,
and a failing ``squeue``/``sacct`` is one line, never an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace

ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
}
WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}


@dataclass
class SlurmTask:
    job_id: str  # "4_1" for array task 1 of array job 4, else "17"
    state: str  # SLURM's, e.g. RUNNING, PENDING, CANCELLED (the first word of "CANCELLED by 0")
    detail: str = ""  # the pending reason, or "exit 1:0" / "by 0" for an ended job
    array_job: str = ""
    task: int | None = None


def _run(cmd: list[str]) -> tuple[str | None, str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{cmd[0]}: {e}"
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        return None, f"{cmd[0]}: {lines[-1] if lines else f'exit {out.returncode}'}"
    return out.stdout, ""


def _split(job_id: str) -> tuple[str, int | None]:
    m = re.fullmatch(r"(\d+)_(\d+)", job_id)
    return (m.group(1), int(m.group(2))) if m else (job_id.split("_")[0], None)


def query(names: list[str], job_ids: set[str]) -> tuple[dict[str, SlurmTask], list[str]]:
    """The tasks of the jobs named ``names`` and of the array jobs of ``job_ids``, by job id, from
    ``squeue -t all`` (pending, running and recently ended) and ``sacct`` (ended ones, when
    accounting is on); the problems as lines."""
    tasks: dict[str, SlurmTask] = {}
    problems: list[str] = []
    arrays = sorted({_split(j)[0] for j in job_ids})
    selections = [["--name", ",".join(names)]] + ([["--jobs", ",".join(arrays)]] if arrays else [])
    if shutil.which("sacct"):
        for sel in selections:
            out, err = _run(["sacct", "-X", "-n", "-P", "-S", "now-30days", "-o", "JobID,State,ExitCode,Reason", *sel])
            if out is None:
                problems.append(err)
                break
            for line in out.splitlines():
                parts = line.split("|")
                if len(parts) < 4 or not re.fullmatch(r"\d+(_\d+)?", parts[0]):
                    continue  # "4_[2-5]" (pending tasks not yet split) comes from squeue below
                state, *by = parts[1].split()
                detail = " ".join(by) if by else ("" if parts[2] == "0:0" else f"exit {parts[2]}")
                array_job, task = _split(parts[0])
                tasks[parts[0]] = SlurmTask(parts[0], state, detail, array_job, task)
    for sel in selections:
        out, err = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", *sel])
        if out is None:
            problems.append(err)
            break
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) < 3:
                continue
            array_job, task = _split(parts[0])
            reason = parts[2] if parts[1] in WAITING and parts[2] not in ("None", "") else ""
            known = tasks.get(parts[0])
            if known is None or parts[1] in ACTIVE or known.state in ACTIVE:  # squeue is the live view
                tasks[parts[0]] = SlurmTask(
                    parts[0],
                    parts[1],
                    reason or (known.detail if known and parts[1] == known.state else ""),
                    array_job,
                    task,
                )
    return tasks, problems


def job_names(experiment: str) -> list[str]:
    """The launcher's job names an experiment's array jobs can have (``xlexp-<name>``; a LoRA
    experiment ``name+lora-r8`` was submitted under its ``name``)."""
    from xlexp.config.compose import slurm_job_name

    return list(dict.fromkeys([slurm_job_name(experiment, ""), slurm_job_name(experiment.split("+")[0], "")]))


def reconcile(states: list, experiment: str) -> tuple[list, list[str]]:
    """``states`` (``xlexp.results.units.UnitState``) with SLURM's word on running units, and the
    SLURM section of ``xlexp status`` (empty without SLURM here and without SLURM jobs)."""
    names = job_names(experiment)
    ids = {s.entry.slurm_job for s in states if s.entry.slurm_job}
    if not shutil.which("squeue"):
        return states, (
            [
                f"SLURM: squeue is not on this machine's PATH; the ledger names job(s) "
                f"{', '.join(sorted(ids))} (run `xlexp status` where squeue works)"
            ]
            if ids
            else []
        )
    tasks, problems = query(names, ids)
    out = []
    for st in states:
        task = tasks.get(st.entry.slurm_job or "")
        if st.state in ("running", "failed") and task is not None:
            if task.state in WAITING:  # requeued (scontrol requeue, preemption): it runs again
                st = replace(
                    st,
                    state="pending",
                    detail=f"SLURM job {task.job_id} {task.state.lower()} again "
                    f"(requeued{': ' + task.detail if task.detail else ''})",
                )
            elif st.state == "running" and task.state not in ACTIVE:
                st = replace(
                    st,
                    state="failed",
                    detail=f"SLURM job {task.job_id} ended {task.state}"
                    + (f" {task.detail}" if task.detail else "")
                    + " before the unit's records were "
                    "written; re-run the same command to redo the unit",
                )
        out.append(st)
    return out, section(out, tasks, names, problems)


def section(states: list, tasks: dict[str, SlurmTask], names: list[str], problems: list[str]) -> list[str]:
    if not tasks:  # an experiment never run under SLURM gets no section, even where squeue fails
        if not any(s.entry.slurm_job for s in states):
            return []
        return [f"SLURM: {p}" for p in problems] or [f"SLURM: no job named {' or '.join(names)} in squeue/sacct"]
    arrays = sorted({t.array_job for t in tasks.values()}, key=lambda a: int(a) if a.isdigit() else 0)
    newest = arrays[-1]
    mine = sorted((t for t in tasks.values() if t.array_job == newest), key=lambda t: (t.task is None, t.task or 0))
    count: dict[str, int] = {}
    for t in mine:
        count[t.state] = count.get(t.state, 0) + 1
    lines = [
        f"SLURM (squeue/sacct, job name {names[0]}): job {newest}, {len(mine)} task(s): "
        + ", ".join(f"{n} {k}" for k, n in sorted(count.items()))
    ]
    for t in mine:
        units = [s for s in states if s.entry.slurm_job == t.job_id]
        if not units and t.task is not None:  # not started under this job: its planned units by array task id
            units = [s for s in states if s.entry.job_num == t.task and not s.entry.slurm_job]
        what = ", ".join(f"{s.entry.source} (seed {s.entry.seed}): {s.state}" for s in units) or "-"
        state = t.state + (f" ({t.detail})" if t.detail else "")
        lines.append(f"  {t.job_id:<10} {state:<28} {what}")
    for a in arrays[:-1]:
        earlier: dict[str, int] = {}
        for t in tasks.values():
            if t.array_job == a:
                earlier[t.state] = earlier.get(t.state, 0) + 1
        lines.append(f"  earlier job {a}: " + ", ".join(f"{n} {k}" for k, n in sorted(earlier.items())))
    return lines + [f"SLURM: {p}" for p in problems]
