"""`coral-ft eval --samples S.npz --ref REF` and `coral-ft eval make-ref REF --out STATS.npz`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from coral_ft.cli.app import app
from coral_ft.errors import UserError

eval_app = typer.Typer(help="Evaluate samples: FID, IS, PRD, precision/recall, KID, per-class FID.")
app.add_typer(eval_app, name="eval")

WeightsDir = Annotated[Optional[Path], typer.Option("--weights-dir", help="Folder with inception-2015-12-05.pt / vgg16-397923af.pth (else $CORAL_FT_WEIGHTS_DIR, then the clean-fid and torchvision caches).")]
DataRoot = Annotated[Optional[str], typer.Option("--data-root", help="Folder holding the data set of a DATASET:SPLIT reference.")]
Device = Annotated[str, typer.Option("--device", help="Device of the feature networks and distance blocks: cpu, cuda, cuda:1.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per feature-network batch.")]
RecallNetwork = Annotated[str, typer.Option("--recall-network", help="Features of precision/recall: vgg16 (the original metric) or inception.")]


@eval_app.callback(invoke_without_command=True)
def eval_command(
    ctx: typer.Context,
    samples: Optional[Path] = typer.Option(None, "--samples", help="Samples .npz from `coral-ft sample` (images uint8 NHWC, labels)."),
    ref: Optional[str] = typer.Option(None, "--ref", help="DATASET:SPLIT (e.g. cifar10:train), an image folder, or a stats .npz from make-ref."),
    metrics: str = typer.Option("fid,is", "--metrics", help="Comma list of fid,is,prd,recall,kid,per-class-fid."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    k: int = typer.Option(3, "--k", help="Neighbours of the precision/recall manifolds."),
    recall_network: RecallNetwork = "vgg16",
    weights_dir: WeightsDir = None,
    data_root: DataRoot = None,
    device: Device = "cpu",
    batch_size: BatchSize = 64,
) -> None:
    """Compare generated samples with a balanced reference."""
    if ctx.invoked_subcommand is not None:
        return
    if samples is None or ref is None:
        raise UserError("coral-ft eval needs --samples FILE.npz and --ref REF (or the make-ref command)")
    from coral_ft.metrics.evaluate import evaluate

    result = evaluate(samples, ref, metrics, recall_network=recall_network, weights_dir=weights_dir,
                      batch_size=batch_size, device=device, data_root=data_root, k=k)
    typer.echo(json.dumps(result, indent=2) if as_json else format_result(result))


@eval_app.command("make-ref")
def make_ref_command(
    ref: str = typer.Argument(..., help="DATASET:SPLIT (e.g. cifar10:train) or an image folder."),
    out: Path = typer.Option(..., "--out", help="Statistics file to write (.npz)."),
    metrics: str = typer.Option("fid,per-class-fid,prd,kid", "--metrics", help="Metrics the file must serve (recall adds VGG16 features)."),
    features: bool = typer.Option(True, "--features/--no-features", help="Keep the features (needed by prd, kid, recall)."),
    recall_network: RecallNetwork = "vgg16",
    weights_dir: WeightsDir = None,
    data_root: DataRoot = None,
    image_size: int = typer.Option(None, "--image-size", min=1, help="Read a resizing data set (digits) at this size: the samples' size."),
    device: Device = "cpu",
    batch_size: BatchSize = 64,
) -> None:
    """Compute a reference's features and statistics (overall and per class) once."""
    from coral_ft.metrics.evaluate import make_reference

    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz; got {out}")
    if image_size is not None:
        from coral_ft.data.registry import DATASETS

        spec = DATASETS.get(ref.split(":", 1)[0])
        if spec is None or not spec.resizes:
            raise UserError(f"--image-size applies to a resizing data set (digits-lt:SPLIT); {ref} keeps its own size")
    path = make_reference(ref, out, metrics, recall_network=recall_network, keep_features=features,
                          weights_dir=weights_dir, batch_size=batch_size, device=device, data_root=data_root,
                          image_size=image_size)
    typer.echo(f"reference statistics written to {path}")


def format_result(result: dict) -> str:
    """A few readable lines: one per metric, then the networks used."""
    lines = [f"samples {result['samples']['count']} ({result['samples']['source']}), "
             f"reference {result['reference']['count']} ({result['reference']['source']})"]
    for name, r in result["metrics"].items():
        if name == "fid":
            text = f"FID {r['value']:.3f}"
        elif name == "is":
            text = f"IS {r['mean']:.3f} +- {r['std']:.3f}" if r["available"] else f"IS unavailable: {r['reason']}"
        elif name == "prd":
            text = f"PRD max F_8 (recall) {r['f8_recall']:.4f}, max F_1/8 (precision) {r['f1_8_precision']:.4f}, {r['clusters']} clusters"
            text += f"; {r['balancing']}" if r["balancing"] else ""
        elif name == "recall":
            text = f"precision {r['precision']:.4f}, recall {r['recall']:.4f} (k={r['k']})"
        elif name == "kid":
            text = f"KID {r['value']:.5f} (subsets of {r['subset_size']})"
        else:
            text = f"per-class FID mean {r['mean']:.3f}: " + ", ".join(f"{c} {v:.2f}" for c, v in r["values"].items())
        lines.append(f"{text}  [{r['network']}, sha1 {r['weights_sha1'][:12]}]")
    return "\n".join(lines)
