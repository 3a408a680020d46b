"""The bench report: every trial's numbers, their means with 95% intervals over seeds, and each
arm's paired difference from DDPM, as Markdown (also printed), CSV and JSON, with the figures.

results.json:
    methods.<arm>.measured.<metric> = {"mean", "ci95": [lo, hi] or null, "values": [per seed]}
    methods.<arm>.vs_ddpm.<metric>  = {"diff", "ci95", "values", "excludes_zero", "better"}
    methods.<arm>.cost              = {"trainable_parameters", "saved_mib", "peak_memory_mib",
                                       "step_seconds"}: means over seeds (the fine-tune protocol's LoRA/full)
Arms are the methods of the scratch protocol, and `base` plus `<method>` / `<method>-lora` of the
fine-tune protocol. Metric names: the bench's table metrics (fid, is, recall, ...), `per-class-fid`,
the bench's own (`sample_accuracy`, `memorised`), `W` (the guidance weight used), and per group
`<group>:<metric>` for the registry's per-group metrics.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from coral_ft.bench.context import reference_split
from coral_ft.bench.cost import PEAK_MEMORY_LABELS
from coral_ft.bench.plan import BASE_ARM, BASELINE
from coral_ft.bench.stats import Interval, paired_difference, t_interval
from coral_ft.bench.verdict import NOISE_SCALES, judge
from coral_ft.metrics.registry import format_value, group_metrics, higher_is_better, value_of

RESULTS_MD, RESULTS_CSV, RESULTS_JSON = "results.md", "results.csv", "results.json"
PER_CLASS_PNG, SWEEP_PNG = "per_class_fid.png", "guidance_sweep.png"
BENCH_EXTRAS = ("sample_accuracy", "memorised")  # the bench's own metrics, shown beside the table's
COST_FIELDS = ("trainable_parameters", "saved_mib", "peak_memory_mib", "step_seconds")


def trial_values(plan, evaluation: dict, groups) -> dict[str, float | None]:
    """The named scalars of one trial's eval.json."""
    out: dict[str, float | None] = {m: value_of(evaluation, m) for m in plan.metrics}
    out["per-class-fid"] = value_of(evaluation, "per-class-fid")
    out["W"] = evaluation.get("guidance")
    found = {**{m: value_of(evaluation, m) for m in BENCH_EXTRAS},
             **{f"{group}:{m}": value_of(evaluation, m, group) for group in groups.classes for m in group_metrics()}}
    return {**out, **{name: value for name, value in found.items() if value is not None}}


def _interval_dict(iv) -> dict:
    return {"mean": iv.mean, "ci95": list(iv.ci95) if iv.ci95 else None, "values": iv.values}


def common_seeds(plan, values: dict[str, dict]) -> list[int]:
    """The seed indices every arm with a finished trial has (the fine-tune protocol's `base`, one
    trial per base, aside): every mean and paired difference is taken over these, so arms are
    compared on the same seeds."""
    held = [{t.seed_index for t in plan.trials if t.arm == arm and t.name in values}
            for arm in plan.arms if arm != BASE_ARM or plan.protocol != "finetune"]
    held = [h for h in held if h]
    return sorted(set.intersection(*held)) if held else []


def collect(ctx, evaluations: dict[str, dict]) -> dict:
    """evaluations: trial name -> eval.json. -> the results.json document."""
    plan, groups = ctx.plan, ctx.groups
    values = {t.name: trial_values(plan, evaluations[t.name], groups) for t in plan.trials if t.name in evaluations}
    names = list(dict.fromkeys(k for row in values.values() for k in row))
    common = common_seeds(plan, values)
    single_base = plan.protocol == "finetune"
    methods, judged_rows = {}, {}
    for arm in plan.arms:
        trials = sorted((t for t in plan.trials if t.arm == arm and t.name in values), key=lambda t: t.seed_index)
        judged = trials if arm == BASE_ARM and single_base else [t for t in trials if t.seed_index in common]
        judged_rows[arm] = {t.seed_index: values[t.name] for t in judged}
        extra = [t for t in trials if t not in judged]
        methods[arm] = {"seeds": [t.seed_index for t in trials], "common_seeds": [t.seed_index for t in judged],
                        "extra_seeds": [t.seed_index for t in extra],
                        "extra_values": {n: [values[t.name].get(n) for t in extra] for n in names} if extra else {},
                        "measured": {n: _interval_dict(t_interval([r.get(n) for r in judged_rows[arm].values()]))
                                     for n in names},
                        "paper": next((t.paper for t in trials), {}),
                        "paper_note": getattr(plan.config.bench.methods.get(arm), "paper_note", ""),
                        "per_class_fid": _per_class_mean(evaluations, judged),
                        "sample_accuracy_per_class": _accuracy_mean(evaluations, judged),
                        "sweep": _sweeps(judged), "cost": _cost(judged)}
    for arm, vs in _vs_baseline(judged_rows, names, single_base, plan.config.bench.seeds).items():
        methods[arm]["vs_ddpm"] = vs
    network = "bench classifier (penultimate layer)" if plan.use_classifier else (
        f"TF-Inception pool3, {plan.config.eval.resize} resize (recall: {plan.config.eval.recall_network})")
    results = {"bench": plan.name, "title": plan.title, "scale": plan.scale, "protocol": plan.protocol,
               "seeds": plan.config.bench.seeds, "common_seeds": common, "num_samples": plan.num_samples,
               "metrics": plan.metrics, "skipped_metrics": plan.skipped, "metric_network": network,
               "reference_split": reference_split(plan), "guidance_sweep": plan.sweep,
               "selection_samples": plan.config.bench.selection_samples if plan.sweep else None,
               "finetune": _finetune_setup(plan) if plan.protocol == "finetune" else None,
               "groups": {"rule": groups.rule, "description": groups.describe(), "classes": groups.classes},
               "methods": methods}
    results["verdict"] = judge(results, BASELINE, BASE_ARM)
    return results


def _vs_baseline(rows: dict[str, dict[int, dict]], names: list[str], single_base: bool, per_base: int) -> dict:
    """Each arm's paired differences from the baseline, by seed index. The fine-tune protocol's base
    (one evaluation per base) is paired with the baseline's fine-tune seeds of that base: its interval
    spans the arm's seed spread only (the base was sampled once), so it is labelled and never called
    significant."""
    base = rows.get(BASELINE)
    if base is None:
        return {}
    vs = {}
    for arm, mine in rows.items():
        if arm == BASE_ARM and single_base:
            pairs = [(mine[k // per_base], row) for k, row in sorted(base.items()) if k // per_base in mine]
            vs[arm] = _differences(pairs, names, single_evaluation=True)
        elif arm != BASELINE:
            vs[arm] = _differences([(mine[k], base[k]) for k in sorted(mine) if k in base], names)
    return vs


def _differences(pairs: list[tuple[dict, dict]], names: list[str], single_evaluation: bool = False) -> dict:
    """Per metric with a direction: the paired difference (first - second) over the pairs of rows."""
    vs = {}
    for n in names:
        if higher_is_better(n) is None:
            continue
        iv = paired_difference([a.get(n) for a, _ in pairs], [b.get(n) for _, b in pairs])
        if iv.values:
            vs[n] = _difference_dict(n, iv)
            if single_evaluation:
                vs[n].update(excludes_zero=False, single_evaluation=True)
    return vs


def _difference_dict(name: str, iv: Interval) -> dict:
    better = (iv.mean > 0) == higher_is_better(name) if iv.mean != 0 else None
    return {"diff": iv.mean, "ci95": list(iv.ci95) if iv.ci95 else None, "values": iv.values,
            "excludes_zero": iv.excludes_zero(), "agree_exactly": iv.agree_exactly, "p": iv.p_value, "better": better}


def _cost(trials) -> dict | None:
    """Means over the arm's trials of what training cost (train.done.json); None for a given base."""
    costs = [json.loads(m.read_text()).get("cost") for t in trials if (m := t.folder / "train.done.json").is_file()]
    costs = [c for c in costs if c]
    if not costs:
        return None
    mean = {f: (float(np.mean([c[f] for c in costs])) if all(c.get(f) is not None for c in costs) else None)
            for f in COST_FIELDS}
    # peak memory measured two ways (runs from before the kind was recorded measured the rise of the
    # resident set): the mean of the recorded kind's runs only
    kind = next((c["peak_memory_of"] for c in costs if c.get("peak_memory_of") is not None), None)
    same = [c["peak_memory_mib"] for c in costs if c.get("peak_memory_of") == kind and c.get("peak_memory_mib") is not None]
    mean["peak_memory_mib"] = float(np.mean(same)) if same else None
    mean["peak_memory_of"] = kind
    return mean


def _finetune_setup(plan) -> dict:
    ft = plan.config.bench.finetune
    arm = next((t for t in plan.trials if t.role == "arm"), None)
    t = arm.config.train if arm else None
    return {"base": ft.base or f"trained by the bench ({ft.base_kind})", "base_kind": ft.base_kind,
            "base_seeds": ft.base_seeds, "arms": ft.arms,
            "budget": {"steps": t.max_steps, "batch_size": t.batch_size, "lr": t.lr, "warmup_steps": t.warmup_steps}
            if t else None}


def _per_class_mean(evaluations, trials) -> dict[int, float]:
    rows = [evaluations[t.name]["metrics"].get("per-class-fid") for t in trials]
    rows = [dict(zip(r["classes"], r["values"].values())) for r in rows if r]
    if not rows:
        return {}
    return {c: float(np.mean([r[c] for r in rows])) for c in rows[0]}


def _accuracy_mean(evaluations, trials) -> list[float] | None:
    rows = [evaluations[t.name].get("sample_accuracy", {}).get("per_class") for t in trials]
    rows = [r for r in rows if r]
    return np.nanmean(np.asarray(rows, dtype=float), axis=0).tolist() if rows else None


def _sweeps(trials) -> list[dict]:
    paths = [t.folder / "selection" / "selection.json" for t in trials]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


# -- formatting -----------------------------------------------------------------------------------
def fmt_interval(name: str, entry: dict) -> str:
    if entry is None or not entry["values"]:
        return "-"
    half = (entry["ci95"][1] - entry["ci95"][0]) / 2 if entry["ci95"] is not None else 0.0
    if half <= 1e-9 * max(1.0, abs(entry["mean"])):  # one seed, or one value at every seed (W without a sweep)
        return format_value(name, entry["mean"])
    return f"{format_value(name, entry['mean'])} ± {format_value(name, half)}"


def fmt_diff(name: str, entry: dict | None) -> str:
    if entry is None:
        return "-"
    text = format_value(name, entry["diff"], sign=True)
    if entry.get("agree_exactly"):
        return f"{text} (same on every seed: no evidence)"
    if entry["ci95"] is not None:
        text += f" [{format_value(name, entry['ci95'][0])}, {format_value(name, entry['ci95'][1])}]"
    if entry.get("single_evaluation"):
        return f"{text} (one base evaluation)"
    if entry["excludes_zero"]:
        text = f"**{text} {'better' if entry['better'] else 'worse'}**"
    return text


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _spread(results: dict) -> str:
    """What the table's intervals are taken over: the common seeds, those so far of a bench in progress."""
    kind = "fine-tune" if results.get("protocol") == "finetune" else "training"
    done = {name: len(row.get("seeds", [])) for name, row in results["methods"].items()}
    planned = planned_trials(results)
    common = len(results.get("common_seeds", []))
    over = "mean ± half-width of the 95% interval (Student t) over " + (
        f"the {common} {kind} seed(s) every arm has" if common else f"{kind} seeds")
    if done and done != planned:  # a report of a bench in progress (`--report`)
        so_far = ", ".join(f"{name} {n}" for name, n in done.items())
        return f"{over}; {kind} seeds so far ({so_far}); planned {results['seeds']}"
    seeds = max(planned.values(), default=results["seeds"])
    return over if seeds > 1 else f"one {kind} seed: no interval (run with --seeds N for one)"


def summary_lines(results: dict) -> list[str]:
    """The main table and the paired differences: what the bench prints in the terminal too."""
    metrics, rows = results["metrics"], results["methods"]
    has_paper = results["scale"] == "paper" and any(v is not None for r in rows.values() for v in r["paper"].values())
    cols = metrics + [m for m in BENCH_EXTRAS if any(m in r["measured"] for r in rows.values())]
    head = ["method", "W"] + [(f"{m} (paper)" if has_paper and m in metrics else m) for m in cols]

    def cell(row: dict, m: str) -> str:
        text = fmt_interval(m, row["measured"].get(m))
        return text + f" ({format_value(m, row['paper'].get(m))})" if has_paper and m in metrics else text

    body = [[name, fmt_interval("W", row["measured"].get("W"))] + [cell(row, m) for m in cols] for name, row in rows.items()]
    spread = _spread(results)
    lines = [f"{results['title']}, scale `{results['scale']}`: {spread}; {results['num_samples']} samples per trial.", ""]
    if results["scale"] in NOISE_SCALES:
        lines += [f"Scale `{results['scale']}` is a check that every stage runs: barely trained models and a few "
                  "samples, so these numbers are noise and mean nothing about the methods.", ""]
    lines += _table(head, body)
    extra = [f"{name} {', '.join(map(str, r['extra_seeds']))}" for name, r in rows.items() if r.get("extra_seeds")]
    if extra:
        lines += ["", f"Seeds outside the common set, left out of every mean and difference: {'; '.join(extra)} "
                      f"(their values: {RESULTS_JSON}, methods.<arm>.extra_values)."]
    diffs = {m: r.get("vs_ddpm") for m, r in rows.items() if r.get("vs_ddpm")}
    if diffs:
        lines += ["", f"Paired difference from {BASELINE} (same seed index; 95% intervals, each uncorrected for the "
                      "others; bold: the interval excludes 0):", ""]
        lines += _table(["method"] + cols, [[m] + [fmt_diff(c, d.get(c)) for c in cols] for m, d in diffs.items()])
    if results.get("verdict"):
        lines += ["", f"Verdict: {results['verdict']['text']}"]
    return lines


def markdown(results: dict, figures: dict[str, Path | None]) -> str:
    rows = results["methods"]
    g = results["groups"]
    lines = [f"# {results['title']}: bench at scale `{results['scale']}`", "",
             f"Metric network: {results['metric_network']}; real images: the `{results.get('reference_split', 'train-full')}` split."]
    if results["guidance_sweep"]:
        lines.append(f"W chosen per trial from {results['guidance_sweep']} by FID on {results['selection_samples']} "
                     "selection samples drawn with their own sampling seed; the reported samples are drawn afterwards.")
    if results.get("skipped_metrics"):
        lines.append(f"Not computed at this scale (too few samples): {', '.join(results['skipped_metrics'])}.")
    if results.get("finetune"):
        lines += [""] + finetune_lines(results)
    lines += [""] + summary_lines(results)
    notes = [f"- {name}: {row['paper_note']}" for name, row in rows.items() if row.get("paper_note")]
    if notes and results["scale"] == "paper":
        lines += ["", "Published numbers and their protocols:", "", *notes]
    group_names = list(g["classes"])
    present = [m for m in group_metrics() if any(f"{n}:{m}" in r["measured"] for r in rows.values() for n in group_names)]
    if present:
        lines += ["", f"## Groups of classes: {g['description']}", "",
                  "; ".join(f"{n}: {_class_list(c)}" for n, c in g["classes"].items()), ""]
        head = ["method"] + [f"{n} {m}" for n in group_names for m in present]
        lines += _table(head, [[name] + [fmt_interval(m, r["measured"].get(f"{n}:{m}")) for n in group_names for m in present]
                               for name, r in rows.items()])
        diffs = {m: r["vs_ddpm"] for m, r in rows.items() if r.get("vs_ddpm")}
        if diffs:
            lines += ["", f"Paired difference from {BASELINE} per group:", ""]
            lines += _table(head, [[m] + [fmt_diff(k, d.get(f"{n}:{k}")) for n in group_names for k in present]
                                   for m, d in diffs.items()])
    acc = {m: r["sample_accuracy_per_class"] for m, r in rows.items() if r.get("sample_accuracy_per_class")}
    n = len(next(iter(acc.values()), []))
    if acc and n <= 10:
        lines += ["", "Per-class sample accuracy (does the classifier see class c in class c's samples?), mean over seeds:", ""]
        lines += _table(["method"] + [str(c) for c in range(n)], [[m] + [format_value("sample_accuracy", a) for a in v] for m, v in acc.items()])
    for key, caption in (("per_class", "per-class FID"), ("sweep", "FID against W")):
        if figures.get(key) is not None:
            lines += ["", f"![{caption}]({figures[key].name})"]
    trials = [f"{m}/seed-{i}" for m, r in rows.items() for i in r["seeds"]]
    lines += ["", "Per trial: " + ", ".join(f"[{t}]({t}/grid.png)" for t in trials),
              "", f"Every trial's values: {RESULTS_CSV} and {RESULTS_JSON}.", ""]
    return "\n".join(lines)


def planned_trials(results: dict) -> dict[str, int]:
    """Trials each row of a finished bench has: the seeds; under the fine-tune protocol an arm has
    one per (base, fine-tune seed) and the base row one per base."""
    ft = results.get("finetune")
    if not ft:
        return {name: results["seeds"] for name in results["methods"]}
    return {name: ft["base_seeds"] * (1 if name == "base" else results["seeds"]) for name in results["methods"]}


def finetune_lines(results: dict) -> list[str]:
    """The fine-tune protocol: the base, the budget every arm had, and what each arm cost."""
    ft = results["finetune"]
    budget = ft["budget"] or {}
    lines = [f"Fine-tune protocol: base {ft['base']}, {ft['base_seeds']} base(s) x {results['seeds']} fine-tune seed(s); "
             f"every arm {budget.get('steps')} steps at batch {budget.get('batch_size')}, lr {budget.get('lr')} "
             f"({budget.get('warmup_steps')} warm-up steps). Arm `base`: the base as it is (for an unconditional base, "
             "with the zero-initialised class embedding the arms start from); `-lora`: LoRA adapters, else every weight.",
             "", "What each arm's training cost (mean over its runs):", ""]
    rows, kinds = [], {}
    for arm, r in results["methods"].items():
        c = r.get("cost")
        if c:
            rows.append([arm, f"{c['trainable_parameters'] / 1e6:.3f}M", f"{c['saved_mib']:.2f}",
                         "-" if c["peak_memory_mib"] is None else f"{c['peak_memory_mib']:.0f}",
                         "-" if c["step_seconds"] is None else f"{c['step_seconds'] * 1000:.0f}"])
            kinds.setdefault(c.get("peak_memory_of"), []).append(arm)
    table = _table(["arm", "trainable parameters", "saved MiB", "peak memory MiB", "ms / step"], rows)
    which = "; ".join(f"{PEAK_MEMORY_LABELS.get(k, k)}" + (f" ({', '.join(arms)})" if len(kinds) > 1 else "")
                      for k, arms in kinds.items())
    return lines + table + (["", f"Peak memory: {which}."] if kinds else [])


def _class_list(classes: list[int]) -> str:
    return f"classes {', '.join(map(str, classes))}" if len(classes) <= 12 else f"{len(classes)} classes"


def write_report(ctx, evaluations: dict) -> tuple[Path, str]:
    """results.md / .csv / .json and the figures; -> (results.md, the summary text for the terminal)."""
    from coral_ft.bench.figures import per_class_chart, sweep_plot

    plan = ctx.plan
    results = collect(ctx, evaluations)
    out = plan.out
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=1, default=float))
    with open(out / RESULTS_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "metric", "value", "paper"])
        for trial in plan.trials:
            if trial.name in evaluations:
                for name, value in trial_values(plan, evaluations[trial.name], ctx.groups).items():
                    writer.writerow([trial.arm, trial.seed_index, name, value, trial.paper.get(name)])
    methods = results["methods"]
    figures = {
        "per_class": per_class_chart({m: r["per_class_fid"] for m, r in methods.items()}, ctx.counts, ctx.groups,
                                     f"{plan.title} ({plan.scale}): per-class FID, mean over seeds", out / PER_CLASS_PNG),
        "sweep": sweep_plot({m: [{float(w): v for w, v in s["fid"].items()} for s in r["sweep"]] for m, r in methods.items()},
                            {m: [s["chosen"] for s in r["sweep"]] for m, r in methods.items()},
                            f"{plan.title}: FID against W (selection set)", out / SWEEP_PNG),
    }
    (out / RESULTS_MD).write_text(markdown(results, figures))
    return out / RESULTS_MD, "\n".join(summary_lines(results))
