"""`coral-ft eval --samples S.npz --ref REF` and `coral-ft eval make-ref REF --out STATS.npz`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from coral_ft.cli import options as o
from coral_ft.cli.app import app
from coral_ft.devices import use_runtime
from coral_ft.errors import UserError

eval_app = typer.Typer(help="Evaluate samples: FID, IS, PRD, precision/recall, KID, per-class FID.")
app.add_typer(eval_app, name="eval")
DATA_ROOT = {"data_root": o.DATA["data_root"]}


@eval_app.callback(invoke_without_command=True)
@o.takes(o.EVAL, DATA_ROOT, o.DEVICE)
def eval_command(
    ctx: typer.Context,
    samples: Annotated[Path | None, typer.Option("--samples", help="Samples .npz from `coral-ft sample` (images uint8 NHWC, labels), or an image folder (class sub-folders as `sample --png-dir` writes them, or images alone).")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="DATASET:SPLIT (e.g. cifar10:train), an image folder, or a stats .npz from make-ref.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object.")] = False,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    progress: o.Progress = True,
    *,
    flags: dict,
) -> None:
    """Compare generated samples with a balanced reference."""
    if ctx.invoked_subcommand is not None:
        return
    if samples is None or ref is None:
        raise UserError("coral-ft eval needs --samples (a .npz or an image folder) and --ref REF (or the make-ref command)")
    from coral_ft.api import evaluate
    from coral_ft.config import config_from_dict

    # samples carry no data set name: no recipe unless one is given (the digits default's one thread
    # would slow Inception features on a CPU)
    given = o.layered(recipe=recipe, sets=sets, flags=flags, default_recipe=False)
    config = config_from_dict(given)
    result = evaluate(samples, ref, config, metrics_given="metrics" in given.get("eval", {}), progress=progress)
    typer.echo(json.dumps(result, indent=2) if as_json else format_result(result))


def _say(text: str) -> None:
    typer.secho(text, err=True)


@eval_app.command("make-ref")
@o.takes(o.EVAL, DATA_ROOT, o.DEVICE)
def make_ref_command(
    ref: Annotated[str, typer.Argument(help="DATASET:SPLIT (e.g. cifar10:train) or an image folder.")],
    out: Annotated[Path, typer.Option("--out", help="Statistics file to write (.npz).")],
    features: Annotated[bool, typer.Option("--features/--no-features", metavar="", help="Keep the features (needed by prd, kid, recall, per-class-fid).")] = True,
    image_size: Annotated[int | None, typer.Option("--image-size", min=8, help="Read a resizing data set at this size (default: its recipe's, e.g. digits-lt 8).")] = None,
    recipe: o.Recipe = None,
    sets: o.Sets = None,
    progress: o.Progress = True,
    *,
    flags: dict,
) -> None:
    """Compute a reference's features and statistics once (metrics: the networks it must serve)."""
    from coral_ft.bench.eval_network import metric_network
    from coral_ft.data.registry import DATASETS
    from coral_ft.metrics.evaluation import load_reference, make_reference

    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz; got {out}")
    dataset = ref.split(":", 1)[0] if ":" in ref else None
    spec = DATASETS.get(dataset)
    if image_size is not None and (spec is None or not spec.resizes):
        raise UserError(f"--image-size applies to a resizing data set (digits-lt:SPLIT); {ref} keeps its own size")
    flags.setdefault("eval.metrics", ["fid", "prd", "kid", "per-class-fid"])
    if spec is not None:  # the data set's name brings its recipe's data settings (its image size)
        flags.setdefault("data.dataset", dataset)
    config = o.resolve_config(recipe=recipe, sets=sets, flags=flags, default_recipe=False)
    if spec is not None and spec.resizes and image_size is None and config.data.dataset == dataset:
        image_size = config.data.image_size  # e.g. the digits-lt recipe's 8x8
    images = load_reference(ref, config.data.root, image_size)
    _, extractor = metric_network(config.eval, images, images.images.shape[1], lambda: out.with_suffix(".classifier.pt"),
                                  ref, _say)
    path = make_reference(images, out, config.eval, extractor=extractor, keep_features=features,
                          device=use_runtime(config.runtime), progress=progress)
    typer.echo(f"reference statistics written to {path}")


def format_result(result: dict) -> str:
    """A few readable lines: one per computation, its values named from the metric registry."""
    from coral_ft.metrics.registry import METRICS, format_value, group_metrics, metrics_of

    lines = [f"samples {result['samples']['count']} ({result['samples']['source']}), "
             f"reference {result['reference']['count']} ({result['reference']['source']})"]
    for computation, r in result["metrics"].items():
        if r.get("available") is False:
            text = f"{computation}: unavailable ({r['reason']})"
        else:
            text = ", ".join(f"{m.label} {format_value(m.name, r.get(m.field))}" for m in metrics_of(computation))
            if computation == "is":
                text += f" +- {r['std']:.2f}"
            if computation == "recall":
                text += f" (k={r['k']})"
            if computation == "per-class-fid":
                text += ": " + ", ".join(f"{c} {v:.2f}" for c, v in r["values"].items())
        resize = f", {r['resize']} resize" if r.get("resize") else ""
        lines.append(f"{text}  [{r['network']}{resize}, sha1 {r['weights_sha1'][:12]}]")
    shown = [m for m in group_metrics() if METRICS[m].computation]  # the bench adds the others
    for name, g in result.get("groups", {}).items():
        lines.append(f"{name}: " + ", ".join(f"{m} {format_value(m, g.get(m))}" for m in shown))
    return "\n".join(lines)
