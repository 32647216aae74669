"""Where a benchmark result came from, stored inside its JSON.

Every script under ``benchmarks/`` that writes JSON puts ``provenance()`` under the key
``"provenance"``: the command that produced it, the commit of the code it ran (with
``-dirty`` when the working tree had uncommitted changes), the machine and the date.
The documentation renders it next to each table (``docs/_ext/benchdata.py``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Where the committed results live (rendered by the docs' Benchmarks pages).
RESULTS = ROOT / "benchmarks" / "results"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> str:
    """The checked-out commit, ``-dirty`` if tracked files differ from it, or "unknown".
    ``$FUNBAT_BENCH_COMMIT``, when set, wins: a copy of the tree sent to another machine
    may carry no git checkout, or a stale one."""
    if os.environ.get("FUNBAT_BENCH_COMMIT"):
        return os.environ["FUNBAT_BENCH_COMMIT"]
    head = _git("rev-parse", "--short=12", "HEAD")
    if head is None:
        return "unknown"
    # the code, not the results a run (re)writes
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src", "benchmarks",
                 ":(exclude)benchmarks/results")  # fmt: skip
    return head + ("-dirty" if dirty else "")


def machine() -> dict:
    """CPU count, load, platform, Python and the numerical libraries' versions."""
    info = dict(
        host=platform.node(),
        cpus=os.cpu_count(),
        platform=platform.platform(),
        python=platform.python_version(),
    )
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    try:
        import jax

        info["jax"] = jax.__version__
        info["device"] = str(jax.devices()[0].device_kind)
    except Exception:  # noqa: BLE001 - provenance must never stop a benchmark
        pass
    return info


def provenance(argv: list[str] | None = None) -> dict:
    """The ``provenance`` record of a result: command, commit, machine, date (UTC)."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return dict(
        command=" ".join(["python", shlex.quote(str(script)), *map(shlex.quote, argv[1:])]),
        commit=commit(),
        machine=machine(),
        date=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
