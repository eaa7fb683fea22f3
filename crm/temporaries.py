"""Temp files of killed writers: a writer names its temp file with its process id, a later writer removes the dead ones."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (this process counts; one we may not signal exists too)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path, *, suffix: str = ".tmp") -> list[Path]:
    """Remove temp files of earlier writes to ``path`` whose process is gone (killed runs); returns them.

    A writer's temp file is ``.<name>.<pid>.<random><suffix>`` beside ``path`` (see ``temporary_for``).
    """
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*{suffix}"):
        pid = candidate.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def temporary_for(path: Path, *, suffix: str = ".tmp") -> Path:
    """A new, empty temp file for a write to ``path``, named with this process's id, beside ``path``; the dead
    writers' ones are removed first."""
    import tempfile

    remove_stale_temporaries(path, suffix=suffix)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=suffix)
    os.close(handle)
    return Path(name)
