"""The tables of docs/sanity.md, printed from the ``sanity.json`` that ``tinyconv sanity`` wrote.

Every number in docs/sanity.md comes from one run (Adebayo et al. 2018, §3.1–3.2; Nie et al.
2018; Petsiuk et al. 2018, §3.2)::

    tinyconv sanity --examples 100 --seed 0 --out tinyconv-sanity
    python scripts/sanity_tables.py tinyconv-sanity/sanity.json

This prints the doc's four tables as Markdown — model randomisation (Spearman of ``|map|``
over the digit, per cascade step), data randomisation, image recovery, deletion and
insertion — and after the first one the numbers the text quotes beside it: the signed and
whole-image Spearman, SSIM, HOG and the independent randomisation, one line per method with
one value per step, and how many digits each mean is over where a map was constant for some.
Means over the digits; a standard error is shown where it is above ``--se`` (default 0.01:
the doc's "s.e. ≤ 0.01 unless given").
"""

import argparse
import json
import sys

from tinyconv.plots.sanity import NAMES

#: (metric, region) of the lines printed after the cascade table, per schedule
QUOTED = {"cascade": [("spearman", "digit"), ("spearman_abs", "whole"), ("ssim", "whole"),
                      ("ssim", "digit"), ("hog", "digit"), ("hog", "whole")],
          "independent": [("spearman_abs", "digit"), ("spearman_abs", "whole")]}


def number(mean, se=None, floor=0.01, digits=2):
    """``0.12``, or ``0.12 ± 0.03`` where the standard error is above ``floor``; a minus
    sign, not a hyphen; ``—`` for an undefined mean (no digit had a defined value)."""
    if mean is None:
        return "—"
    text = f"{mean:.{digits}f}"
    if float(text) == 0:                         # -0.004 is shown as 0.00, not −0.00
        text = f"{0.0:.{digits}f}"
    if se is not None and round(se, digits) > floor:
        text += f" ± {se:.{digits}f}"
    return text.replace("-", "−")


def per_step(stats, floor):
    """One cell per randomisation step of ``{"mean": [...], "se": [...], ...}``."""
    return [number(m, s, floor) for m, s in zip(stats["mean"], stats["se"], strict=True)]


def row(cells):
    return "| " + " | ".join(cells) + " |"


def name(method):
    return NAMES.get(method, method)


def model_randomisation(d, floor):
    layers, order = d["cascade"]["layers"], d["config"]["methods"]
    print("## 1. Model randomisation: cascade, Spearman of |map| over the digit\n")
    print(row(["map", layers[0], *(f"+ {layer}" for layer in layers[1:-1]),
               f"+ {layers[-1]} (untrained)"]))
    print(row(["---"] + ["---:"] * len(layers)))
    for m in order:
        print(row([name(m), *per_step(d["cascade"]["methods"][m]["spearman_abs"]["digit"],
                                      floor)]))
    examples = d["config"]["examples"]
    for schedule, quoted in QUOTED.items():
        methods = d[schedule]["methods"]
        fewer = [f"{name(m)} {methods[m]['spearman_abs']['digit']['n']}" for m in order
                 if min(methods[m]["spearman_abs"]["digit"].get("n", [examples])) < examples]
        if fewer:
            print(f"\n{schedule}: digits with a defined Spearman over the digit, per step (of "
                  f"{examples}): " + "; ".join(fewer))
        for metric, region in quoted:
            print(f"\n{schedule}, {metric}, {region}:")
            for m in order:
                print(f"  {name(m):24s} " + ", ".join(
                    per_step(methods[m][metric][region], floor)))


def data_randomisation(d, floor):
    r = d.get("data_randomization")
    if r is None:
        print("\n(no data randomisation in this run)")
        return
    print(f"\n## 2. Data randomisation: {r['epochs']} epochs, train accuracy "
          f"{100 * r['train_accuracy']:.1f}% on the permuted labels, held out "
          f"{100 * r['held_out_accuracy']:.0f}%, {r['seconds']:.0f} s\n")
    m = r["methods"]
    order = [k for k in d["config"]["methods"] if k not in ("input", "edges")]
    print(row([name(k) for k in order]))
    print(row(["---:"] * len(order)))
    print(row([f"{number(m[k]['spearman_abs']['digit']['mean'])} "
               f"({number(m[k]['spearman']['digit']['mean'])})" for k in order]))
    print("\nstandard errors of |map| and signed, digits with a defined value: " + "; ".join(
        f"{name(k)} {m[k]['spearman_abs']['digit']['se']:.2f}, "
        f"{m[k]['spearman']['digit']['se']:.2f}, {m[k]['spearman_abs']['digit']['n']}"
        for k in order))


def recovery(d, floor):
    r = d["recovery"]
    print("\n## 3. Image recovery: Pearson, mean (± s.e. where above the floor)\n")
    print(row(["map", "with the input: trained", "untrained", "class c vs c + 1: trained",
               "untrained"]))
    print(row(["---", "---:", "---:", "---:", "---:"]))
    for rule in ("gradient", "deconvnet", "guided"):
        print(row([name(rule)] + [number(r[label][rule][what]["mean"],
                                         r[label][rule][what]["se"], floor)
                                  for what in ("input_correlation", "class_correlation")
                                  for label in ("trained", "untrained")]))


def faithfulness(d):
    f = d["faithfulness"]
    print("\n## 4. Deletion and insertion: area under p(c), mean ± s.e., best deletion first\n")
    print(row(["order", "deletion ↓", "insertion ↑"]))
    print(row(["---", "---:", "---:"]))
    for m in sorted(f["deletion"], key=lambda k: f["deletion"][k]["auc"]["mean"]):
        print(row([name(m)] + [f"{f[kind][m]['auc']['mean']:.3f} ± {f[kind][m]['auc']['se']:.3f}"
                               for kind in ("deletion", "insertion")]))
    print(f"\np(c) of the blurred digit alone (every insertion curve's first point): "
          f"{f['insertion']['random']['curve'][0]:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="the sanity.json of a tinyconv sanity run")
    parser.add_argument("--se", type=float, default=0.01,
                        help="show standard errors above this (default: %(default)s)")
    args = parser.parse_args(argv)
    with open(args.json, encoding="utf-8") as fh:
        d = json.load(fh)
    c = d["config"]
    print(f"{c['examples']} digits, seed {c['seed']}, held-out accuracy "
          f"{100 * c['held_out_accuracy']:.0f}%, {c['seconds']:.0f} s; skipped: "
          f"{c['skipped'] or 'none'}\n")
    model_randomisation(d, args.se)
    data_randomisation(d, args.se)
    recovery(d, args.se)
    faithfulness(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
