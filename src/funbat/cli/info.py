"""``funbat info``: describe a saved model, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import MODEL_PATH


def info_dict(est, meta: dict) -> dict:
    """The model's :meth:`~funbat.FunBaT.summary` with the file's class name, versions
    and parameters (``meta``: :func:`funbat.io.read_metadata`)."""
    summary = dict(est.summary())
    del summary["model"]  # the class the file names
    return {
        "model": meta["class"],
        "funbat_version": meta["funbat_version"],
        "format_version": meta["format_version"],
        **summary,
        "params": meta["params"],
    }


def info_range(m: dict) -> str:
    if m["kind"] == "discrete":
        shown = ", ".join(map(str, m["categories"][:4]))
        more = ", ..." if m["n_categories"] > 4 else ""
        text = f"{m['n_categories']} categories: {shown}{more}"
        return text if len(text) <= 40 else text[:37] + "..."
    if m["kind"] == "spatial":
        return "; ".join(
            f"{c} {lo:.4g}..{hi:.4g}" for c, lo, hi in zip(m["columns"], m["min"], m["max"])
        )
    if m["kind"] == "date":
        return f"{m['min']} .. {m['max']}"
    return f"{m['min']:.6g} .. {m['max']:.6g}"


def info_lengthscale(m: dict) -> str:
    if m["kind"] == "discrete":
        return "- (categories are independent)"
    if m["kind"] == "spatial":
        return ", ".join(f"{c} {v:.4g}" for c, v in zip(m["columns"], m["lengthscale"]))
    if m["lengthscale"] is None:
        return "- (no lengthscale part)"
    text = f"{m['lengthscale']:.4g}" + (" days" if m["kind"] == "date" else "")
    if m.get("part_variance") is not None:  # a sum kernel's learned part
        text += f", its variance {m['part_variance']:.4g}"
    if m.get("period") is not None:  # a learned period
        text += f", period {m['period']:.6g}" + (" days" if m["kind"] == "date" else "")
    return text


def info_text(model_path: Path, d: dict) -> str:
    """The text ``funbat info`` prints for the dict :func:`info_dict` gives."""
    ranges = [info_range(m) for m in d["modes"]]
    wn = max([12] + [len(m["name"]) for m in d["modes"]])
    wr = max([27] + [len(r) for r in ranges])
    lines = [
        f"{model_path}: {d['model']} model (saved by funbat {d['funbat_version']}, "
        f"format {d['format_version']})",
        f"  data      {d['n_train']} rows, {len(d['modes'])} modes",
        f"  {'mode':<{wn}} {'kind':<10} {'range':<{wr}} {'unique':>6} {'rank':>4}  "
        f"{'kernel':<8} lengthscale",
    ]
    for m, rng in zip(d["modes"], ranges):
        lines.append(
            f"  {m['name']:<{wn}} {m['kind']:<10} {rng:<{wr}} {m['n_unique']:>6} "
            f"{m['rank']:>4}  {m['kernel']:<8} {info_lengthscale(m)}"
        )
    if d.get("rank_learned"):  # rank="auto": each component's learned precision E[lambda]
        lines.append("  rank      learned (auto); component precisions (small: strong):")
        for m in d["modes"]:
            values = ", ".join(f"{v:.3g}" for v in m["precisions"])
            lines.append(f"    {m['name']:<{wn}} {values}")
    if d.get("intercept_learned"):  # learn_intercept=True (else the targets' mean)
        lines.append(f"  intercept {d['intercept']:.6g} (learned, target units)")
    if d.get("core_prior_variance_learned"):  # core_prior_variance="auto"
        lines.append(f"  core      prior variance {d['core_prior_variance']:.4g} (learned)")
    status = "converged" if d["converged"] else "stopped at max_iter"
    if d["noise_std"] is None:  # counts or yes/no
        disp = "" if d["dispersion"] is None else f", dispersion {d['dispersion']:.4g}"
        lines.append(f"  targets   {d['likelihood']}, offset {d['offset']:.4g}{disp}")
    else:
        lines.append(
            f"  noise std {d['noise_std']:.6g} (target units)"
            if d["noise_dof"] is None
            else f"  noise     Student-t, scale {d['noise_std']:.6g} (target units), "
            f"{d['noise_dof']:.3g} degrees of freedom"
        )
    if d["recalibration"] is not None:
        r = d["recalibration"]
        lines.append(
            f"  predicts  Student-t, {r['dof']:.3g} degrees of freedom, spread x {r['scale']:.3g} "
            f"(recalibrated on {r['n']} leave-one-out residuals)"
        )
    if d["noise_mode"] is not None:
        lo, mid, hi = d["noise_scale_factors"]
        lines.append(
            f"  noise     varies along {d['noise_mode']!r}: x {lo:.3g} .. {hi:.3g} "
            f"(median {mid:.3g}) per coordinate, prior dof {d['noise_group_dof']:.3g}"
        )
    lines += [
        f"  ELBO      {d['elbo']:.6g} after {d['n_iter']} sweeps ({status}), "
        f"fit in {d['fit_time_s']:.1f} s",
    ]
    if len(d.get("init_elbos") or []) > 1:
        starts = ", ".join(f"{e:.6g}" for e in d["init_elbos"])
        lines.append(f"  starts    {len(d['init_elbos'])}, final ELBOs {starts} (the best kept)")
    if d.get("chain_solver") is not None:
        lines.append(f"  solver    {d['chain_solver']} (chains of the continuous modes)")
    return "\n".join(lines)


def info(
    model_path: Annotated[Path, MODEL_PATH],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
):
    """Describe a saved model: modes, ranges, ranks, kernels, noise, ELBO, data size."""
    from funbat import load
    from funbat.io import read_metadata

    est = load(model_path)
    d = info_dict(est, read_metadata(model_path))
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(info_text(model_path, d))
