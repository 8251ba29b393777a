"""Where sweep cells run: parallel local processes (one device each), or cluster jobs through ``submitit``.

``local``: ``--jobs N`` child processes, each ``maw-bench sweep FILE --output OUT --only
CELL`` (with ``CUDA_VISIBLE_DEVICES`` set to one GPU each when there are GPUs).
``slurm``: one ``submitit`` job per unfinished cell (partition, time, GPUs per cell
from the sweep file's ``slurm:`` section or the options); job ids are kept in
``OUT/jobs.json``, and rerunning the command collects finished cells and resubmits
only failed or missing ones. ``submitit-local`` runs the same jobs on this machine
and waits for them (what the tests use).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maw_bench.errors import UserError
from maw_bench.runtime.atomic import write_json
from maw_bench.runtime.console import console

log = logging.getLogger("maw_bench")
SLURM_KEYS = ("partition", "time_min", "gpus_per_cell", "cpus_per_cell", "mem_gb")


def _devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_local(file: Path, output: Path, names: list[str], jobs: int) -> None:
    """Run cells in ``jobs`` parallel processes; a failed cell is reported and the others go on."""
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: give at least 1.")
    gpus = _devices()
    slots = list(range(jobs))

    def one(args: tuple[int, str]) -> tuple[str, int, str]:
        index, name = args
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slots[index % jobs] % gpus)
        proc = subprocess.run([sys.executable, "-m", "maw_bench", "sweep", str(file), "--output", str(output),
                               "--only", name], capture_output=True, text=True, env=env)
        return name, proc.returncode, proc.stderr[-2000:]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name, code, err in pool.map(one, enumerate(names)):
            if code == 0:
                console.print(f"{name}: done")
            else:
                console.print(f"[red]{name}: failed (exit {code}); rerun to retry it[/red]")
                log.debug(err)


def _executor(output: Path, options: dict, cluster: str):
    import submitit

    unknown = [k for k in options if k not in SLURM_KEYS]
    if unknown:
        raise UserError(f"slurm option {unknown[0]!r} is unknown; use {', '.join(SLURM_KEYS)}.")
    executor = submitit.AutoExecutor(folder=str(output / "jobs" / "%j"), cluster="local" if cluster != "slurm" else None)
    params = {"timeout_min": int(options.get("time_min", 240)), "gpus_per_node": int(options.get("gpus_per_cell", 1)),
              "cpus_per_task": int(options.get("cpus_per_cell", 8))}
    if cluster == "slurm":
        if options.get("partition"):
            params["slurm_partition"] = options["partition"]
        if options.get("mem_gb"):
            params["mem_gb"] = int(options["mem_gb"])
    else:
        params["gpus_per_node"] = 0
    executor.update_parameters(**params)
    return executor


def _still_running(output: Path, job_id: str, cluster: str) -> bool:
    if cluster != "slurm":
        return False
    try:
        import submitit

        return submitit.SlurmJob(folder=str(output / "jobs" / "%j"), job_id=job_id).state in ("PENDING", "RUNNING")
    except Exception:  # noqa: BLE001 - no scheduler to ask: treat the job as gone
        return False


def submit(file: Path, output: Path, names: list[str], options: dict, run_cell, cluster: str = "slurm") -> list[str]:
    """Submit one job per cell not finished and not already queued; return the cells still pending.

    ``run_cell(file, output, name)`` is the sweep's cell function, passed in so this module
    imports nothing of the sweep (the sweep imports this one).
    """
    jobs_file = output / "jobs.json"
    known = json.loads(jobs_file.read_text()) if jobs_file.is_file() else {}
    executor = _executor(output, options, cluster)
    pending, submitted = [], []
    for name in names:
        if name in known and _still_running(output, known[name], cluster):
            pending.append(name)
            continue
        job = executor.submit(run_cell, str(Path(file).resolve()), str(Path(output).resolve()), name)
        known[name] = str(job.job_id)
        submitted.append((name, job))
        console.print(f"{name}: submitted as job {job.job_id}")
    write_json(jobs_file, known)
    if cluster == "slurm":
        return pending + [n for n, _ in submitted]
    for name, job in submitted:  # submitit-local: wait, so the summary below sees every cell
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001 - a failed cell is reported; the rerun resubmits it
            console.print(f"[red]{name}: failed ({type(exc).__name__}); rerun to resubmit it[/red]")
    return pending
