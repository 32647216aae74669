"""Sphinx directive ``benchmark-table``: a table read from a benchmark's JSON result.

The numbers on the Benchmarks pages are never typed by hand: each table is rendered at
build time from a JSON file written by a script under ``benchmarks/``, followed by the
file's provenance (the command, the commit, the machine and the date, stored in the
data under ``"provenance"``). In MyST::

    ```{benchmark-table} ../../benchmarks/results/paper_size.json
    :records: results
    :columns: rank=R, first_fit_s=first fit (s), rmse.mean=RMSE
    :where: dataset=beijing_pm25, model=tucker
    :digits: 3
    ```

``records`` is the dotted path to a list of objects in the file (``.``: the whole file
as one record); each ``columns`` entry
is ``key[=Header]`` with a dotted key into a record. A value ``{"mean": m, "std": s}``
is shown as ``m ± s`` (``s`` to the precision of ``m``); a missing value as a dash.
Numbers get ``digits`` significant digits (default 3), or ``decimals`` fixed ones;
a column written ``key=Header@N`` gets ``N`` decimals of its own. ``where`` keeps the records whose
keys equal the given text (``a|b``: either); ``sort`` orders them by the given keys. A file without provenance, a missing file or an empty
selection is a build warning (so ``sphinx -W`` fails on it).
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.util import logging

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkTable", "setup"]


def _lookup(record, dotted: str):
    value = record
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _sort_key(value):
    """Numbers before text before missing values, each in natural order."""
    if isinstance(value, dict) and "mean" in value:
        value = value["mean"]
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value)) if value is not None else (2, 0, "")


def _number(x: float, digits: int) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if x != x:  # NaN
        return "—"
    if digits < 0:  # a fixed number of decimals, -digits
        return f"{x:,.{-digits}f}"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    text = f"{x:.{digits}g}"
    if "e" in text:  # a very small number: fixed point reads better in a table
        text = f"{x:.{digits}e}"
    return text


def _cell(value, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and "mean" in value:
        std, mean = value.get("std"), _cell(value["mean"], digits)
        if std is None or not isinstance(std, (int, float)) or "e" in mean:
            return mean if std is None else f"{mean} ± {_cell(std, digits)}"
        decimals = len(mean.partition(".")[2])  # the spread to the mean's precision
        return f"{mean} ± {std:.{decimals}f}"
    if isinstance(value, (int, float)):
        return _number(value, digits)
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v, digits) for v in value)
    return str(value)


def _machine(machine) -> str:
    if not isinstance(machine, dict):
        return str(machine)
    parts = []
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} CPU cores")
    if machine.get("device") and machine["device"] != "cpu":
        parts.append(str(machine["device"]))
    for key in ("platform", "python", "jax"):
        if machine.get(key):
            label = {"python": "Python ", "jax": "JAX "}.get(key, "")
            parts.append(f"{label}{machine[key]}")
    return ", ".join(parts)


def _literal_paragraph(items: list[tuple[str, str, bool]]) -> nodes.paragraph:
    para = nodes.paragraph(classes=["benchmark-provenance"])
    for i, (label, text, literal) in enumerate(items):
        if i:
            para += nodes.Text(" · ")
        para += nodes.emphasis(text=f"{label}: ")
        para += nodes.literal(text=text) if literal else nodes.Text(text)
    return para


class BenchmarkTable(Directive):
    """``benchmark-table PATH``: render records of a benchmark JSON with its provenance."""

    required_arguments = 1
    has_content = False
    option_spec = {
        "records": directives.unchanged_required,
        "columns": directives.unchanged_required,
        "where": directives.unchanged,
        "digits": directives.nonnegative_int,
        "caption": directives.unchanged,
        "sort": directives.unchanged,
        "decimals": directives.nonnegative_int,
    }

    def _warn(self, text: str):
        logger.warning(text, location=(self.state.document.current_source, self.lineno))
        return []

    def run(self):
        env = self.state.document.settings.env
        source = Path(self.state.document.current_source).parent
        path = (source / self.arguments[0]).resolve()
        if not path.is_file():
            return self._warn(f"benchmark-table: no such file {self.arguments[0]}")
        env.note_dependency(str(path))
        data = json.loads(path.read_text())
        key = self.options["records"]
        records = [data] if key == "." else _lookup(data, key)
        if not isinstance(records, list):
            return self._warn(f"benchmark-table: {self.options['records']!r} is not a list in {path.name}")
        for cond in filter(None, (c.strip() for c in self.options.get("where", "").split(","))):
            key, _, want = cond.partition("=")
            allowed = {w.strip() for w in want.split("|")}
            records = [r for r in records if str(_lookup(r, key.strip())) in allowed]
        if "sort" in self.options:
            keys = [k.strip() for k in self.options["sort"].split(",")]
            records = sorted(records, key=lambda r: [_sort_key(_lookup(r, k)) for k in keys])
        if not records:
            return self._warn(f"benchmark-table: no records of {path.name} match {self.options.get('where')!r}")
        digits = self.options.get("digits", 3)
        if "decimals" in self.options:  # encoded as a negative digit count
            digits = -self.options["decimals"]
        columns = []
        for spec in self.options["columns"].split(","):
            key, _, header = spec.strip().partition("=")
            header, _, own = header.partition("@")  # "Header@4": 4 decimals here
            own_digits = -int(own) if own.strip().isdigit() else digits
            columns.append((key.strip(), header.strip() or key.strip(), own_digits))

        table = nodes.table(classes=["benchmark-table"])
        if "caption" in self.options:
            table += nodes.title(text=self.options["caption"])
        group = nodes.tgroup(cols=len(columns))
        table += group
        group.extend(nodes.colspec(colwidth=1) for _ in columns)
        head = nodes.thead()
        row = nodes.row()
        for _, header, _ in columns:
            row += nodes.entry("", nodes.paragraph(text=header))
        head += row
        group += head
        body = nodes.tbody()
        for record in records:
            row = nodes.row()
            for key, _, col_digits in columns:
                row += nodes.entry("", nodes.paragraph(text=_cell(_lookup(record, key), col_digits)))
            body += row
        group += body

        prov = data.get("provenance")
        if not isinstance(prov, dict):
            return self._warn(f"benchmark-table: {path.name} has no provenance record")
        items = [("command", str(prov.get("command", "not recorded")), True),
                 ("commit", str(prov.get("commit", "not recorded")), True)]
        if prov.get("machine"):
            items.append(("machine", _machine(prov["machine"]), False))
        items.append(("date", str(prov.get("date", "not recorded")), False))
        if prov.get("note"):
            items.append(("note", str(prov["note"]), False))
        items.append(("data", f"benchmarks/results/{path.name}", True))
        return [table, _literal_paragraph(items)]


def setup(app):
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
