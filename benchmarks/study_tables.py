"""Regenerate every study number of docs/study.md and README.md from the raw files in docs/measurements/.

The pages hold generated blocks between `<!-- begin: NAME -->` and `<!-- end: NAME -->`; this
script rewrites each block from the checked-in measurements (bench results.json files, selection
sweeps, latents reports), so the pages' tables and the numbers in their sentences cannot drift
from the runs they describe. Prose outside the blocks carries no measured study number.

    python benchmarks/study_tables.py           # rewrite the pages
    python benchmarks/study_tables.py --check   # exit 1 if a page is not what the files give (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

from common import ROOT

from coral_ft.bench.stats import half_width, pooled_sd
from coral_ft.bench.verdict import MIN_SEEDS, judge, verdict_metrics
from coral_ft.metrics.registry import format_value, in_prose

PAGES = (ROOT / "docs" / "study.md", ROOT / "README.md")
MEASURED = ROOT / "docs" / "measurements"
FASHION = MEASURED / "cpu" / "fashion-study"  # sections 1-3: the first runs and their classifier
SCRATCH = MEASURED / "cpu" / "fashion-scratch"  # from scratch again, every method, one classifier
FINETUNE = MEASURED / "cpu" / "fashion-finetune"  # the fine-tuning study: lt/, uncond/, latents/
BLOCK = re.compile(r"(<!-- begin: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)
SEED_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
PAGE_DIGITS = {"kid": 3}  # the report writes 4; the pages' KID cells were written with 3 and stay so


# -- reading ----------------------------------------------------------------------------------------
def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def latents_rows(path: Path) -> list[dict]:
    """The overall table of a `coral-ft latents` text report: model, t, features and the scores."""
    rows, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("model "):
            inside = True
            continue
        if not inside or line.startswith("--"):
            continue
        if not line.strip() or line.startswith("(chance)"):
            break
        model, t, kind, purity, silh, overlap, probe = line.split()
        rows.append({"model": model, "t": int(t), "features": kind, "purity": float(purity), "silhouette": float(silh),
                     "tail_into_head": float(overlap), "probe": float(probe)})
    return rows


def latents_per_class(path: Path, t: int = 100, kind: str = "bottleneck") -> dict[str, dict]:
    """class -> {train, <model>: purity} from the per-class table of a latents text report."""
    lines = path.read_text().splitlines()
    start = lines.index(f"per class, t = {t}, {kind}:")
    header = lines[start + 1].split()
    models = list(dict.fromkeys(h for h in header if h not in ("class", "train", "n", "group", "purity", "tail>head")))
    out = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        name, train = cells[0], int(cells[1])
        values = [c for c in cells[2:] if c not in ("head", "tail")]  # per model: purity, tail>head
        out[name] = {"train": train, **{m: float(values[2 * i]) for i, m in enumerate(models)}}
    return out


# -- formatting -------------------------------------------------------------------------------------
def num(metric: str, value: float, sign: bool = False) -> str:
    digits = PAGE_DIGITS.get(metric.split(":")[-1])
    return format_value(metric, value, sign) if digits is None else f"{value:{'+' if sign else ''}.{digits}f}"


def cell(metric: str, entry: dict) -> str:
    """mean [95% interval] (per-seed values)"""
    lo, hi = entry["ci95"] if entry["ci95"] else (entry["mean"], entry["mean"])
    values = ", ".join(num(metric, v) for v in entry["values"])
    return f"{num(metric, entry['mean'])} [{num(metric, lo)}, {num(metric, hi)}] ({values})"


def diff_cell(metric: str, entry: dict | None) -> str:
    if entry is None:
        return "-"
    lo, hi = entry["ci95"]
    text = f"{num(metric, entry['diff'], True)} [{num(metric, lo, True)}, {num(metric, hi, True)}]"
    return text + (" **excludes 0**" if entry["excludes_zero"] else "")


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def count_words(n: int, of: int) -> str:
    return f"all {SEED_WORDS.get(of, of)}" if n == of else f"{SEED_WORDS.get(n, n)} of {SEED_WORDS.get(of, of)}"


# -- the blocks of the Fashion-MNIST-LT from-scratch study -----------------------------------------
STUDY_METRICS = ["W", "fid", "is", "kid", "precision", "recall", "sample_accuracy", "memorised", "head:fid",
                 "middle:fid", "tail:fid", "head:recall", "tail:recall", "head:sample_accuracy", "tail:sample_accuracy",
                 "tail:memorised"]


def comparison_table(results: dict, methods: list[str], metrics: list[str], baseline: str = "ddpm") -> str:
    """metric rows; a column per method (mean [interval] (seeds)); paired differences from the baseline."""
    rows = []
    for m in metrics:
        row = [m] + [cell(m, results["methods"][k]["measured"][m]) for k in methods]
        row += [diff_cell(m, results["methods"][k].get("vs_ddpm", {}).get(m)) if m != "W" else "-"
                for k in methods if k != baseline]
        rows.append(row)
    head = ["metric", *methods] + [f"{k} - {baseline} (paired)" for k in methods if k != baseline]
    return table(head, rows)


def fashion_results() -> dict:
    return read_json(FASHION / "results.json")


def block_selection() -> str:
    rows, ws = [], []
    for path in sorted(FASHION.glob("selection-w*-tau_r*.json")):
        match = re.fullmatch(r"selection-w([\d.]+)-tau_r([\d.]+)\.json", path.name)
        if match is None:  # a selection run's full results.json
            continue
        sel = read_json(path)
        ws = list(sel["fid"])
        fids = " / ".join(f"{v:.2f}" for v in sel["fid"].values())
        rows.append([*match.groups(), fids, f"{sel['chosen']:g}", f"{min(sel['fid'].values()):.2f}"])
    chosen = read_json(FASHION / "study.json")["selection"]["chosen"]
    head = ["w", "tau_r", f"selection FID at W = {' / '.join(ws)}", "chosen W", "selection FID"]
    return table(head, rows) + f"\n\nChosen: w = {chosen['weight']:g}, tau_r = {chosen['tau_r']:g}.\n"


def block_main() -> str:
    return comparison_table(fashion_results(), ["ddpm", "coral"], STUDY_METRICS) + "\n"


def _per_seed(metric: str, method: str, results: dict) -> list[float]:
    return results["methods"][method]["measured"][metric]["values"]


def block_seeds() -> str:
    r = fashion_results()
    n = len(_per_seed("fid", "ddpm", r))
    lines = []
    for metric, worse_if in (("tail:fid", lambda a, b: b > a), ("tail:recall", lambda a, b: b < a),
                             ("middle:fid", lambda a, b: b > a)):
        a, b = _per_seed(metric, "ddpm", r), _per_seed(metric, "coral", r)
        worse = sum(worse_if(x, y) for x, y in zip(a, b))
        pairs = ", ".join(f"{num(metric, x)} -> {num(metric, y)}" for x, y in zip(a, b))
        verdict = "worse" if worse * 2 > n else "better"
        k = worse if verdict == "worse" else n - worse
        lines.append(f"- {metric}: CORAL {verdict} on {count_words(k, n)} seeds ({pairs}).")
    return "\n".join(lines) + "\n"


def block_tail_accuracy() -> str:
    r = fashion_results()
    groups = r["groups"]["classes"]
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    acc = {m: r["methods"][m]["sample_accuracy_per_class"] for m in ("ddpm", "coral")}
    tail = ", ".join(f"{names[c]} {acc['ddpm'][c]:.3f} (DDPM) / {acc['coral'][c]:.3f} (CORAL)" for c in groups["tail"])
    head = [acc[m][c] for m in acc for c in groups["head"]]
    return (f"Per-class sample accuracy, mean over the seeds, tail classes: {tail}; the head classes are at "
            f"{min(head):.2f}-{max(head):.2f} for both.\n")


def block_tail_gap() -> str:
    r = fashion_results()["methods"]["ddpm"]["measured"]
    tail, head = r["tail:fid"]["mean"], r["head:fid"]["mean"]
    n = len(r["fid"]["values"])
    return (f"DDPM visibly fails the tail ({SEED_WORDS[n]} seeds): tail FID {tail / head:.0f} times the head's "
            f"({tail:.2f} against {head:.2f}), tail sample accuracy {r['tail:sample_accuracy']['mean']:.2f} against "
            f"{r['head:sample_accuracy']['mean']:.2f}, tail recall {r['tail:recall']['mean']:.3f} against "
            f"{r['head:recall']['mean']:.3f}.\n")


def block_power() -> str:
    r = fashion_results()
    diffs = r["methods"]["coral"]["vs_ddpm"]["fid"]["values"]
    sd = pooled_sd([diffs])[0]
    fid = r["methods"]["ddpm"]["measured"]["fid"]["mean"]
    effect = 0.14  # the paper's CIFAR10-LT FID change, 6.17 -> 5.32
    need = seeds_for_half_width(sd, effect * fid)
    return (f"The paired FID differences ({', '.join(f'{d:+.2f}' for d in diffs)}) have a standard deviation of "
            f"{sd:.2f} on a mean DDPM FID of {fid:.2f} ({sd / fid:.0%}); a 95% interval of +-{effect:.0%} "
            f"(+-{effect * fid:.2f}) needs about {need} paired seeds at this scale.\n")


def seeds_for_half_width(sd: float, half: float, max_seeds: int = 100) -> int:
    """The fewest paired seeds n whose 95% interval is at most +-`half`."""
    for n in range(2, max_seeds):
        if half_width(sd, n) <= half:
            return n
    return max_seeds


def block_bottleneck() -> str:
    rows = []
    for labels, suffix in (("null", ""), ("true", "-true-labels")):
        for path in sorted(FASHION.glob(f"latents-seed-*{suffix}.txt")):
            if not suffix and path.name.endswith("-true-labels.txt"):
                continue
            seed = re.search(r"seed-(\d+)", path.name).group(1)
            found = {(x["model"], x["t"]): x for x in latents_rows(path) if x["features"] == "bottleneck"}
            for t in sorted({t for _, t in found}):
                d, c = found[("ddpm", t)], found[("coral", t)]
                rows.append([seed, labels, str(t)] + [f"{d[k]:.3f} / {c[k]:.3f}" for k in
                                                        ("purity", "silhouette", "probe", "tail_into_head")])
    rows.append(["", "", "", "chance 0.099", "0", "0.100", "0.300"])
    return table(["seed", "labels", "t", "purity ddpm / coral", "silhouette ddpm / coral", "probe ddpm / coral",
                  "tail-into-head ddpm / coral"], rows) + "\n"


def block_bottleneck_classes() -> str:
    seeds = sorted(FASHION.glob("latents-seed-?.txt"))
    per = [latents_per_class(p) for p in seeds]
    names = list(per[0])
    rows = [[name, str(per[0][name]["train"]), " / ".join(f"{p[name]['ddpm']:.2f}" for p in per),
             " / ".join(f"{p[name]['coral']:.2f}" for p in per)] for name in names]
    return table(["class", "train n", "ddpm purity (seeds 0 / 1 / 2)", "coral purity (seeds 0 / 1 / 2)"], rows) + "\n"


def block_gpu() -> str:
    r = read_json(MEASURED / "h100" / "c10-small" / "results.json")["methods"]
    rows = [[m, f"{v['measured']['W']['mean']:.1f}", f"{v['measured']['fid']['mean']:.2f}",
             f"{v['measured']['recall']['mean']:.3f}", f"{v['measured']['sample_accuracy']['mean']:.3f}"] for m, v in r.items()]
    return table(["method", "W", "FID (classifier features)", "recall", "sample accuracy"], rows) + "\n"


# -- the five-method from-scratch study and the fine-tuning study ----------------------------------
KEY_METRICS = ["W", "fid", "tail:fid", "middle:fid", "head:fid", "tail:recall", "tail:sample_accuracy", "sample_accuracy"]
TAIL = "tail:fid"
BATCH = 64  # the recipe's batch: SupCon's reference values below depend on it


def short_cell(metric: str, entry: dict | None) -> str:
    """mean [95% interval], the mean alone for one seed, - for none."""
    if not entry or not entry.get("values"):
        return "-"
    if not entry["ci95"]:
        return num(metric, entry["mean"])
    lo, hi = entry["ci95"]
    return f"{num(metric, entry['mean'])} [{num(metric, lo)}, {num(metric, hi)}]"


def seeds_cell(r: dict) -> str:
    """The seeds a row's numbers are over (the common ones), and how many more it has apart."""
    used = len(r.get("common_seeds", r["seeds"]))
    extra = len(r["seeds"]) - used
    return f"{used} (+{extra} apart)" if extra else str(used)


def method_table(results: dict, metrics: list[str]) -> str:
    rows = [[name, seeds_cell(r)] + [short_cell(m, r["measured"].get(m)) for m in metrics]
            for name, r in results["methods"].items()]
    return table(["method", "seeds", *metrics], rows)


def diff_table(results: dict, metrics: list[str]) -> str:
    rows = [[name] + [diff_cell(m, r["vs_ddpm"].get(m)) if r["vs_ddpm"].get(m, {}).get("ci95") else
                      (num(m, r["vs_ddpm"][m]["diff"], True) if m in r["vs_ddpm"] else "-") for m in metrics]
            for name, r in results["methods"].items() if r.get("vs_ddpm")]
    return table(["vs ddpm (paired)", *metrics], rows)


def seeds_line(results: dict) -> str:
    done = {name: len(r["seeds"]) for name, r in results["methods"].items()}
    planned = results["seeds"]
    if all(n >= planned for n in done.values()):
        return f"All {planned} seeds of every {'arm' if results.get('protocol') == 'finetune' else 'method'} ran."
    return (f"Seeds finished when these files were collected (of {planned} planned): "
            + ", ".join(f"{name} {n}" for name, n in done.items()) + ". Means and intervals are over the seeds every "
            "row has (the seeds column; the rest are in results.json's extra_values); one seed gives no interval.")


def optional(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def block_scratch_main() -> str:
    r = read_json(SCRATCH / "results.json")
    metrics = [m for m in KEY_METRICS if m != "sample_accuracy"]
    # judged again, not read from results.json, so the page follows the current verdict's wording
    verdict = [f"The bench's verdict (results.md): {judge(r, 'ddpm', 'base')['text']}"]
    return "\n\n".join([method_table(r, metrics), diff_table(r, metrics[1:]), seeds_line(r), *verdict]) + "\n"


def supcon_floor(counts: list[int], batch: int = BATCH, draws: int = 20_000) -> float:
    """SupCon's value when every class is one point and classes are far apart: the mean over
    anchors with a positive of log |P_i| (the batch's other samples of its class), over batches
    drawn from the long-tailed class frequencies (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    p = np.asarray(counts, dtype=float) / sum(counts)
    values = []
    for _ in range(draws):
        y = rng.choice(len(counts), batch, p=p)
        positives = np.bincount(y, minlength=len(counts))[y] - 1
        keep = positives > 0
        values.append(np.log(positives[keep]).sum() / max(keep.sum(), 1))
    return float(np.mean(values))


def supcon_curve(folder: Path) -> list[tuple[float, float]]:
    """(first logged SupCon, last logged SupCon) of every trial under folder/seed-*/metrics.jsonl."""
    out = []
    for path in sorted(folder.glob("seed-*/metrics.jsonl")):
        values = [json.loads(line)["supcon"] for line in path.read_text().splitlines() if '"supcon"' in line]
        if values:
            out.append((values[0], values[-1]))
    return out


def block_supcon() -> str:
    from coral_ft.data.longtail import longtail_counts

    counts = longtail_counts(6000, 10, 0.01)  # Fashion-MNIST-LT: 6,000 images a class, rho = 0.01
    floor, start = supcon_floor(counts), math.log(BATCH - 1)
    rows = []
    sources = [("from scratch", SCRATCH, ["coral", "coral-null"]),
               ("fine-tuning the LT base", FINETUNE / "lt", ["coral", "coral-null", "coral-lora", "coral-null-lora"]),
               ("fine-tuning the unconditional base", FINETUNE / "uncond", ["coral", "coral-null", "coral-lora", "coral-null-lora"])]
    for where, folder, arms in sources:
        for arm in arms:
            curve = supcon_curve(folder / arm)
            if curve:
                first = sum(a for a, _ in curve) / len(curve)
                last = sum(b for _, b in curve) / len(curve)
                share = (start - last) / (start - floor)
                rows.append([where, arm, str(len(curve)), f"{first:.3f}", f"{last:.3f}", f"{share:.0%}"])
    head = ["run", "arm", "seeds", "SupCon at the first log (step 100)", "at the last step", "of the way from random to clustered"]
    return (table(head, rows) + f"\n\nReference values at batch {BATCH}: random embeddings {start:.3f} (log {BATCH - 1}); every "
            f"class one point, far from the others, {floor:.3f} (the mean log-count of each anchor's positives over batches "
            "drawn from the long-tailed frequencies).\n")


def latents_means(folder: Path, condition: str) -> dict[tuple[str, str, int], dict[str, float]]:
    """(base, model, t) -> mean over the seeds' reports of the bottleneck scores. A report's folder
    is `[<base>-]seed-<k>-<condition>`: the fine-tune study's name their base, the from-scratch
    study's do not (base "")."""
    sums: dict[tuple[str, str, int], list[dict]] = {}
    for path in sorted(folder.glob(f"*seed-*-{condition}/latents.txt")):
        base = path.parent.name.partition("seed-")[0].rstrip("-")
        for row in latents_rows(path):
            if row["features"] == "bottleneck":
                sums.setdefault((base, row["model"], row["t"]), []).append(row)
    return {k: {s: sum(r[s] for r in v) / len(v) for s in ("purity", "silhouette", "probe")} | {"n": len(v)}
            for k, v in sums.items()}


def latents_table(folder: Path) -> str:
    null, true = latents_means(folder, "null"), latents_means(folder, "true")
    with_base = any(base for base, _, _ in null)
    rows = []
    for (base, model, t), v in null.items():
        w = true.get((base, model, t), {})
        rows.append([base] * with_base + [model, str(t), str(v["n"]), f"{v['purity']:.3f}", f"{v['silhouette']:.3f}",
                     f"{v['probe']:.3f}", f"{w['purity']:.3f}" if w else "-", f"{w['silhouette']:.3f}" if w else "-"])
    if not rows:
        return "No latents report collected yet.\n"
    return table(["base"] * with_base + ["model", "t", "reports", "null: purity", "null: silhouette", "null: probe",
                                         "true: purity", "true: silhouette"], rows) + "\n"


def block_scratch_latents() -> str:
    return latents_table(SCRATCH / "latents")


BASES = (("lt", "Long-tailed DDPM base"), ("uncond", "Unconditional balanced base"))  # the fine-tune study's


def finetune_results(base: str) -> dict | None:
    return optional(FINETUNE / base / "results.json")


def cost_table(results: dict) -> str:
    rows = []
    for name, r in results["methods"].items():
        c = r.get("cost") or {}
        if c:
            rows.append([name, f"{c['trainable_parameters']:,.0f}", f"{c['saved_mib']:.1f}",
                         f"{c['step_seconds']:.2f}" if c.get("step_seconds") else "-",
                         f"{c['peak_memory_mib']:.0f}" if c.get("peak_memory_mib") else "-"])
    return table(["arm", "trainable parameters", "saved MiB", "s / step (1 busy core)", "peak MiB"], rows)


def finetune_block(base: str) -> str:
    r = finetune_results(base)
    if r is None:
        return f"Not run yet: `python benchmarks/finetune_study.py --bases {base}` runs it.\n"
    return "\n\n".join([method_table(r, KEY_METRICS), diff_table(r, KEY_METRICS[1:]), cost_table(r), seeds_line(r)]) + "\n"


def block_ft_lt() -> str:
    return finetune_block("lt")


def block_ft_uncond() -> str:
    return finetune_block("uncond")


def block_ft_latents() -> str:
    return latents_table(FINETUNE / "latents")


def paired_sd(results: dict, metric: str) -> tuple[float, int] | None:
    """The pooled standard deviation of the arms' paired differences from ddpm, and its degrees of freedom."""
    return pooled_sd([r.get("vs_ddpm", {}).get(metric, {}).get("values") or []
                      for name, r in results["methods"].items() if name != "base"])


def block_ft_power() -> str:
    r = finetune_results("lt")
    if r is None:
        return "Not run yet.\n"
    spread = paired_sd(r, TAIL)
    if spread is None:
        return "Too few paired seeds yet to measure the spread.\n"
    sd, dof = spread
    tail = r["methods"]["ddpm"]["measured"][TAIL]["mean"]
    # the seeds of the arms that have an interval (arms still at 0 or 1 seed say nothing yet)
    n = min(len(x["seeds"]) for name, x in r["methods"].items() if name != "base" and len(x["seeds"]) > 1)
    need = seeds_for_half_width(sd, 0.10 * tail)
    half = half_width(sd, n) if n > 1 else float("inf")
    rough = "; a rough figure on so few" if dof < 5 else ""
    return (f"The arms' paired tail-FID differences from plain fine-tuning have a pooled standard deviation of {sd:.2f} "
            f"({dof} degree{'s' if dof != 1 else ''} of freedom{rough}) on a plain fine-tuned tail FID of {tail:.2f}: "
            f"a 95% interval of +-10% "
            f"(+-{0.10 * tail:.2f}) needs about {need} paired seeds; with {n} seeds an interval is about "
            f"+-{half:.2f} ({half / tail:.0%} of the tail FID), so smaller changes cannot be told from noise.\n")


def worse_elsewhere(results: dict, arm: str, metrics: list[str]) -> dict[str, float]:
    """metric -> paired difference, for the metrics on which `arm`'s uncorrected interval shows it
    worse than ddpm."""
    vs = results["methods"][arm].get("vs_ddpm", {})
    return {m: d["diff"] for m in metrics if (d := vs.get(m)) and d.get("excludes_zero") and d.get("better") is False}


# The distances between the samples and the real images, overall and in the tail: the study's
# question (are the samples, the tail's above all, better?) is asked of them. Precision and recall
# split fidelity from variety, and a move in one is a cost or a trade, not the answer.
PICK_METRICS = ("fid", "kid", TAIL)


def listed(metrics: list[str]) -> str:
    names = [in_prose(m) for m in metrics]
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def verdict(results: dict) -> str:
    """Which arm a user should pick: the bench's verdict (coral_ft.bench.verdict: 3+ common seeds,
    Holm over arms x metrics, exact agreement no evidence), then what LoRA costs against full. An arm
    is a candidate when a metric is named better and none is worse, even uncorrected, or when a
    distance metric (PICK_METRICS) is named better and none of them is worse; its other worse
    metrics are named as its cost. Any other named gain that comes with a worse metric (precision
    for recall) is reported as the trade it is. Of several candidates the pick is one with a
    distance gain, the most of them, then the smallest Holm-adjusted p: the study asks whether the
    samples come closer to the data, so a recall gain alone never outranks a closer tail."""
    v = judge(results, "ddpm", "base")
    lines = [v["text"]]
    gains: dict[str, list[dict]] = {}
    for t in v["named"]:
        if t["better"]:
            gains.setdefault(t["arm"], []).append(t)
    named_worse = {(t["arm"], t["metric"]): t["p_holm"] for t in v["named"] if not t["better"]}
    candidates, metrics = [], verdict_metrics(results)
    for arm, named in gains.items():
        worse = worse_elsewhere(results, arm, metrics)
        costs = ", ".join(f"{in_prose(m)} ({num(m, d, True)}, "
                          + (f"Holm-adjusted p = {named_worse[arm, m]:.3f})" if (arm, m) in named_worse
                             else "its uncorrected interval excluding 0)") for m, d in worse.items())
        distance = [t["p_holm"] for t in named if t["metric"] in PICK_METRICS]
        if distance and not set(worse) & set(PICK_METRICS):
            candidates.append(((0, -len(distance), min(distance)), arm, named, costs))
        elif not worse:
            candidates.append(((1, -len(named), min(t["p_holm"] for t in named)), arm, named, costs))
        else:
            lines.append(f"{arm}'s better {listed([t['metric'] for t in named])} "
                         f"{'comes' if len(named) == 1 else 'come'} with a worse {costs}: a trade, not a gain.")
    if candidates:
        (_, arm, named, costs), *others = sorted(candidates)
        lines.append(f"Pick: {arm}, on this evidence (better {listed([t['metric'] for t in named])}"
                     + (f"; its cost, a worse {costs})." if costs else ")."))
        for (tier, _, _), other, other_named, other_costs in others:  # tier 0: a distance gain
            lines.append(f"{other} is better too, in {listed([t['metric'] for t in other_named])}"
                         + (f", at the cost of a worse {other_costs}" if other_costs else ", with nothing worse")
                         + ("" if tier == 0 else ", but in no distance to the data") + ".")
    elif v.get("seeds", 0) >= MIN_SEEDS:
        lora = ", or ddpm-lora where its cost matters" if "ddpm-lora" in results["methods"] else ""
        lines.append(f"Pick: plain fine-tuning (ddpm{lora}): on this evidence CORAL adds a head and a loss term "
                     "without a gain these seeds can show.")
    else:
        lines.append("No pick yet.")
    methods = results["methods"]
    cost, full = (methods.get("ddpm-lora") or {}).get("cost") or {}, (methods.get("ddpm") or {}).get("cost") or {}
    if cost and full:
        share = cost["trainable_parameters"] / full["trainable_parameters"]
        steps = (f", and a step takes {cost['step_seconds']:.2f} s against {full['step_seconds']:.2f} s (one busy core)"
                 if cost.get("step_seconds") and full.get("step_seconds") else "")
        lines.append(f"LoRA trains {share:.0%} of the weights and saves {cost['saved_mib']:.1f} MiB against "
                     f"{full['saved_mib']:.1f}{steps}.")
    return " ".join(lines) + "\n"


def block_ft_verdict() -> str:
    out = []
    for base, label in BASES:
        r = finetune_results(base)
        out.append(f"- {label}: " + (verdict(r) if r else "not run yet.\n"))
    return "".join(out)


def readme_ft_table(r: dict) -> str:
    rows = []
    for name, x in r["methods"].items():
        d = x.get("vs_ddpm", {}).get(TAIL)
        paired = "-" if not d else (diff_cell(TAIL, d) if d.get("ci95") else num(TAIL, d["diff"], True))
        cost = x.get("cost") or {}
        rows.append([name, seeds_cell(x), short_cell("fid", x["measured"].get("fid")),
                     short_cell(TAIL, x["measured"].get(TAIL)), paired,
                     f"{cost['trainable_parameters'] / 1e6:.2f}M" if cost else "-",
                     f"{cost['saved_mib']:.1f}" if cost else "-",
                     f"{cost['step_seconds']:.2f}" if cost.get("step_seconds") else "-"])
    return table(["arm", "seeds", "fid", "tail fid", "tail fid vs ddpm (paired)", "trainable", "saved MiB",
                  "s / step"], rows) + "\n"


def block_readme_ft() -> str:
    out = []
    for base, label in BASES:
        r = finetune_results(base)
        out.append(f"{label}:\n\n" + (readme_ft_table(r) if r else "not run yet.\n"))
    return "\n".join(out)


BLOCKS: dict[str, Callable[[], str]] = {
    "selection": block_selection,
    "main": block_main,
    "seeds": block_seeds,
    "tail-accuracy": block_tail_accuracy,
    "tail-gap": block_tail_gap,
    "power": block_power,
    "bottleneck": block_bottleneck,
    "bottleneck-classes": block_bottleneck_classes,
    "gpu": block_gpu,
    "scratch-main": block_scratch_main,
    "supcon": block_supcon,
    "scratch-latents": block_scratch_latents,
    "ft-lt": block_ft_lt,
    "ft-uncond": block_ft_uncond,
    "ft-power": block_ft_power,
    "ft-latents": block_ft_latents,
    "ft-verdict": block_ft_verdict,
    "readme-ft": block_readme_ft,
}


def render(page: str, blocks: dict[str, Callable[[], str]] = BLOCKS) -> str:
    """The page with every generated block rewritten; an unknown block name is an error."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in blocks:
            raise SystemExit(f"no generator for the block {name!r} (known: {', '.join(blocks)})")
        return match.group(1) + blocks[name]() + match.group(4)

    return BLOCK.sub(replace, page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a page differs from what the files give")
    args = parser.parse_args(argv)
    stale = []
    for path in PAGES:
        page = path.read_text()
        fresh = render(page)
        if fresh != page:
            stale.append(path)
            if not args.check:
                path.write_text(fresh)
    if args.check and stale:
        print(f"{', '.join(map(str, stale))} out of date with docs/measurements: run python benchmarks/study_tables.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
