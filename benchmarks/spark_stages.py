"""Where a Spark run's time went, from its event log: one line per stage, for ``make bench-spark --event-log``.

Spark writes every listener event as one JSON object per line when ``spark.eventLog.enabled`` is set
(the file the history server reads). Per stage it gives the wall time (submission to completion), the
tasks' summed executor run time and CPU, and the rows read, shuffled and written, enough to tell the
read, the shuffle to buckets, the Python work of a bucket and the write apart.
"""

from __future__ import annotations

import json
from pathlib import Path

_NANOS = 1e-9


def stage_table(event_log: Path) -> list[dict]:
    """One dict per completed stage of an uncompressed event log (``spark.eventLog.compress=false``), in order."""
    tasks: dict[tuple, dict] = {}
    stages, job_of_stage = [], {}
    for line in _event_lines(Path(event_log)):
        event = json.loads(line)
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            description = (event.get("Properties") or {}).get("spark.job.description") or ""
            for stage in event.get("Stage IDs", []):
                job_of_stage[stage] = (event["Job ID"], description)
        elif kind == "SparkListenerTaskEnd":
            metrics = event.get("Task Metrics") or {}
            key = (event["Stage ID"], event["Stage Attempt ID"])
            total = tasks.setdefault(key, {"run": 0.0, "cpu": 0.0, "read_rows": 0, "shuffle_write_rows": 0,
                                           "shuffle_write_mb": 0.0, "shuffle_read_rows": 0, "written_rows": 0})
            total["run"] += metrics.get("Executor Run Time", 0) / 1000
            total["cpu"] += metrics.get("Executor CPU Time", 0) * _NANOS
            total["read_rows"] += (metrics.get("Input Metrics") or {}).get("Records Read", 0)
            shuffle_write = metrics.get("Shuffle Write Metrics") or {}
            total["shuffle_write_rows"] += shuffle_write.get("Shuffle Records Written", 0)
            total["shuffle_write_mb"] += shuffle_write.get("Shuffle Bytes Written", 0) / 2**20
            shuffle_read = metrics.get("Shuffle Read Metrics") or {}
            total["shuffle_read_rows"] += shuffle_read.get("Total Records Read", 0)
            total["written_rows"] += (metrics.get("Output Metrics") or {}).get("Records Written", 0)
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            key = (info["Stage ID"], info["Stage Attempt ID"])
            job, description = job_of_stage.get(info["Stage ID"], (None, ""))
            stages.append({"stage": info["Stage ID"], "job": job, "name": info["Stage Name"],
                           "description": description, "tasks": info["Number of Tasks"],
                           "wall": (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000,
                           **tasks.get(key, {})})
    return stages


def _event_lines(event_log: Path):
    """The JSON lines of an uncompressed event log: a file, or the folder holding one application's log."""
    if event_log.is_dir():
        # One file per application; Spark 4's rolling logs are a folder of events_<n>_<app> parts.
        parts = sorted((path for path in event_log.rglob("*")
                        if path.is_file() and not path.name.startswith((".", "appstatus"))),
                       key=lambda path: int(path.name.split("_")[1]) if path.name.startswith("events_") else 0)
        if not parts:
            raise ValueError(f"{event_log}: no event log found (is spark.eventLog.enabled set?).")
    else:
        parts = [event_log]
    for part in parts:
        yield from part.read_text().splitlines()


def format_stages(stages: list[dict]) -> str:
    """The stage table as aligned text lines."""
    lines = [f"    {'stage':>5} {'job':>3} {'tasks':>5} {'wall s':>7} {'run s':>7} {'cpu s':>7} {'read rows':>11} "
             f"{'shuffled rows':>13} {'MB':>6} {'shuffle-read':>12} {'written':>9}  call site"]
    for stage in stages:
        lines.append(f"    {stage['stage']:>5} {stage['job'] if stage['job'] is not None else '-':>3} "
                     f"{stage['tasks']:>5} {stage['wall']:7.2f} {stage.get('run', 0):7.2f} {stage.get('cpu', 0):7.2f} "
                     f"{stage.get('read_rows', 0):>11,} {stage.get('shuffle_write_rows', 0):>13,} "
                     f"{stage.get('shuffle_write_mb', 0):6.1f} {stage.get('shuffle_read_rows', 0):>12,} "
                     f"{stage.get('written_rows', 0):>9,}  {stage['name'][:60]}")
    return "\n".join(lines)
