"""The bench's verdict: which arms differ from the baseline, with what certainty.

Rules (they hold for every bench report and the studies built on it):
- an arm is named only when its paired difference from the baseline holds over at least
  `MIN_SEEDS` common seeds after Holm's correction over the whole family the verdict looked at
  (every judged arm x every verdict metric), at family-wise level `ALPHA`;
- a zero-width interval (the seeds agree exactly) is no evidence and is no test;
- the `base` row of the fine-tune protocol is one evaluation, never a tested arm;
- with nothing named, the verdict says no arm is distinguishable and gives the smallest difference
  the seeds could have detected (from the measured spread of the paired differences), in the
  metric's units and as a share of the baseline's mean.
The tables' intervals stay uncorrected 95% intervals; the report says so.
"""

from __future__ import annotations

from coral_ft.bench.stats import Interval, detectable_difference, holm, pooled_sd
from coral_ft.metrics.registry import format_value, higher_is_better, in_prose

ALPHA = 0.05
MIN_SEEDS = 3
NOISE_SCALES = ("smoke",)  # scales whose numbers check the plumbing only


def verdict_metrics(results: dict) -> list[str]:
    """What the verdict judges: the bench's table metrics that have a direction, and the FID of the
    rarest group (the question the bench exists for)."""
    names = [m for m in results["metrics"] if higher_is_better(m) is not None]
    groups = list(results.get("groups", {}).get("classes", {}))
    if groups:
        names.append(f"{groups[-1]}:fid")
    return names


def judge(results: dict, baseline: str, base_arm: str) -> dict:
    """-> {"text", "family", "tests": [...], "named": [...], "detectable": {...}, "seeds"}."""
    methods = results["methods"]
    arms = [a for a, r in methods.items() if a not in (baseline, base_arm) and r.get("vs_ddpm")]
    out = {"alpha": ALPHA, "min_seeds": MIN_SEEDS, "correction": "holm", "baseline": baseline,
           "tests": [], "named": [], "detectable": {}}
    if results.get("scale") in NOISE_SCALES:
        out["text"] = (f"No verdict: scale `{results['scale']}` checks that the bench runs end to end; its models "
                       "are barely trained and its few samples make every figure noise.")
        return out
    if baseline not in methods or not arms:
        out["text"] = f"No verdict: no arm to compare with {baseline}."
        return out
    metrics = verdict_metrics(results)
    tests = []
    for arm in arms:
        for m in metrics:
            d = methods[arm]["vs_ddpm"].get(m)
            if not d:
                continue
            iv = Interval(d["diff"], tuple(d["ci95"]) if d["ci95"] else None, d["values"])
            tests.append({"arm": arm, "metric": m, "diff": d["diff"], "seeds": len(d["values"]), "p": iv.p_value,
                          "agree_exactly": iv.agree_exactly, "better": d.get("better")})
    seeds = min((t["seeds"] for t in tests), default=0)
    out["seeds"] = seeds
    tested = [t for t in tests if t["p"] is not None]
    for t, p in zip(tested, holm([t["p"] for t in tested])):
        t["p_holm"] = p
    out["tests"], out["family"] = tests, len(tested)
    out["named"] = [t for t in tested if t["seeds"] >= MIN_SEEDS and t["p_holm"] < ALPHA]
    out["detectable"] = _detectable(results, arms, metrics, baseline, seeds, max(len(tested), 1))
    out["text"] = _text(out, arms, metrics, baseline, tests)
    return out


def _detectable(results: dict, arms: list[str], metrics: list[str], baseline: str, n: int, family: int) -> dict:
    """Per metric: the smallest paired difference n seeds could find at Holm's strictest level."""
    methods, found = results["methods"], {}
    for m in metrics:
        spread = pooled_sd([methods[a]["vs_ddpm"][m]["values"] for a in arms if m in methods[a]["vs_ddpm"]])
        if spread is None or n < 2:
            continue
        sd, dof = spread
        value = detectable_difference(sd, n, ALPHA / family)
        mean = methods[baseline]["measured"].get(m, {}).get("mean")
        found[m] = {"value": value, "percent": 100 * value / abs(mean) if mean else None, "sd": sd, "dof": dof}
    return found


def _text(out: dict, arms: list[str], metrics: list[str], baseline: str, tests: list[dict]) -> str:
    family, seeds = out["family"], out["seeds"]
    exact = sorted({t["arm"] for t in tests if t["agree_exactly"]})
    lines = []
    if seeds < MIN_SEEDS:
        lines.append(f"No verdict: {seeds} common seed(s) per arm; naming an arm needs at least {MIN_SEEDS}, after "
                     f"Holm's correction over the {len(arms)} arm(s) x {len(metrics)} metric(s) compared.")
    elif out["named"]:
        found = "; ".join(f"{t['arm']} {in_prose(t['metric'])} {format_value(t['metric'], t['diff'], sign=True)} "
                          f"({'better' if t['better'] else 'worse'}, Holm-adjusted p = {t['p_holm']:.3f})"
                          for t in out["named"])
        lines.append(f"Over {seeds} common seeds, after Holm's correction over {family} comparisons "
                     f"({len(arms)} arm(s) x {len(metrics)} metric(s)): {found}. No other difference from "
                     f"{baseline} is distinguishable from noise.")
    else:
        lines.append(f"No arm is distinguishable from {baseline}: over {seeds} common seeds no paired difference holds "
                     f"after Holm's correction over {family} comparisons ({len(arms)} arm(s) x {len(metrics)} metric(s)).")
    if exact:
        lines.append(f"The seeds agree exactly for {', '.join(exact)} on some metrics (zero-width intervals): "
                     "no evidence either way, left out of the tests.")
    if out["detectable"] and not out["named"]:  # (empty under two seeds)
        parts = [f"{in_prose(m)} {format_value(m, d['value'])}" + (f" ({d['percent']:.0f}% of {baseline}'s mean)" if d["percent"] else "")
                 for m, d in out["detectable"].items()]
        lines.append(f"The smallest differences these {seeds} seeds could have detected (80% power, family-wise "
                     f"{ALPHA:.0%}, from the measured spread of the paired differences): {', '.join(parts)}.")
    return " ".join(lines)
