#!/usr/bin/env python3
"""eval_report.py - the tables of scripts/evaluate.sh (docs/evaluation.md).

  eval_report.py best GRID.tsv GRID.csv OUT_GRID.tsv RANKING.csv
      From the PSNR of every GEGL setting on every image (GRID.csv, written
      by gegl-baselines), pick per class the setting with the highest mean
      PSNR over the whole set (an oracle choice, in the filters' favour).
      Writes OUT_GRID.tsv (that setting per class, for the SSIM pass) and
      RANKING.csv (every setting's mean PSNR per class, best first).

  eval_report.py report SET_DIR BASELINES_DIR RAW_DIR OUTDIR INFO.tsv
      Reads the set's crops, the best GEGL results, and maskdcpt's compare
      and classify CSVs (RAW_DIR/<crop>.compare.csv, <crop>.classify.csv)
      and writes OUTDIR/per-image.csv, forced.csv, summary.csv,
      confusion.csv, goals.csv and report.md.  INFO.tsv holds key<TAB>value
      lines about the run (weights, times) for the report's header.

Standard library only.  Means are arithmetic means of per-image values.
"""
import csv
import math
import os
import sys
from collections import defaultdict

# The network's classes in registry order, then the extra noise benchmark.
CLASSES = ["clean", "noise", "gaussian-blur", "motion-blur", "defocus-blur", "jpeg", "haze",
           "rain", "low-light", "low-resolution", "mixed-realesrgan", "mixed-lowlight"]
SIGMA_CLASS = "noise-s25"
ALL = CLASSES + [SIGMA_CLASS]
SUBSETS = [("all", "all crops"), ("val", "held-out training photos"),
           ("skimage", "scikit-image photos")]


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v) or v >= 99.0:
        return "identical"
    return f"{v:.{digits}f}"


# ------------------------------------------------------------------ best


def read_grid(path):
    grid = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            grid[parts[0]] = parts[2] if len(parts) > 2 else ""
    return grid


def cmd_best(grid_tsv, grid_csv, out_grid, ranking_csv):
    chains = read_grid(grid_tsv)
    scores = defaultdict(list)  # (class, setting) -> PSNRs
    with open(grid_csv) as f:
        for row in csv.DictReader(f):
            if row["setting"] in chains:  # a setting since removed from the grid: ignored
                scores[(row["class"], row["setting"])].append(float(row["psnr"]))
    by_class = defaultdict(list)
    for (cls, setting), values in scores.items():
        by_class[cls].append((mean(values), len(values), setting))
    with open(out_grid, "w") as g, open(ranking_csv, "w", newline="") as r:
        w = csv.writer(r)
        w.writerow(["class", "rank", "setting", "mean_psnr", "n", "chain"])
        for cls in ALL:
            if cls not in by_class:
                continue
            # ties go to the simpler (earlier listed) setting
            order = list(chains)
            ranked = sorted(by_class[cls], key=lambda t: (-t[0], order.index(t[2])))
            for rank, (m, n, setting) in enumerate(ranked, 1):
                w.writerow([cls, rank, setting, f"{m:.4f}", n, chains[setting]])
            best = ranked[0][2]
            g.write(f"{best}\t{cls}\t{chains[best]}\n")


# ---------------------------------------------------------------- report


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def parse_name(path):
    """ID@CLASS.png -> (ID, CLASS, None); ID@CLASS@auto.png -> (.., 'auto');
    ID@CLASS@as-FORCED.png -> (.., 'FORCED')."""
    parts = os.path.basename(path)[:-4].split("@")
    method = parts[2] if len(parts) > 2 else None
    if method and method.startswith("as-"):
        method = method[3:]
    return parts[0], parts[1], method


def load_results(set_dir, base_dir, raw_dir):
    crops = {}
    with open(os.path.join(set_dir, "crops.tsv")) as f:
        for line in f:
            cid, origin = line.split("\t")[:2]
            crops[cid] = origin
    gegl = {}  # (crop, class) -> (setting, psnr, ssim)
    for row in read_csv(os.path.join(base_dir, "best.csv")):
        cid, cls = row["key"].split("@")
        gegl[(cid, cls)] = (row["setting"], float(row["psnr"]), float(row["ssim"]))
    metrics = {}  # (crop, class, method) -> (psnr, ssim); method: input, auto, or a class
    predicted = {}  # (crop, class) -> predicted class
    probs = {}
    for cid in crops:
        for row in read_csv(os.path.join(raw_dir, cid + ".compare.csv")):
            _, cls, method = parse_name(row["file"])
            metrics[(cid, cls, method or "input")] = (float(row["psnr"]), float(row["ssim"]))
        for row in read_csv(os.path.join(raw_dir, cid + ".classify.csv")):
            _, cls, _ = parse_name(row["file"])
            predicted[(cid, cls)] = row["predicted"]
            probs[(cid, cls)] = {c: float(row[c]) for c in CLASSES if c in row}
    return crops, gegl, metrics, predicted, probs


def subset_ids(crops, subset):
    return [c for c, o in crops.items() if subset == "all" or o == subset]


def class_summary(ids, cls, gegl, metrics, predicted):
    forced_cls = "noise" if cls == SIGMA_CLASS else cls
    def avg(method, k):
        return mean(metrics[(c, cls, method)][k] for c in ids if (c, cls, method) in metrics)
    s = {
        "n": sum(1 for c in ids if (c, cls, "input") in metrics),
        "input_psnr": avg("input", 0), "input_ssim": avg("input", 1),
        "auto_psnr": avg("auto", 0), "auto_ssim": avg("auto", 1),
        "forced_psnr": avg(forced_cls, 0), "forced_ssim": avg(forced_cls, 1),
        "gegl_psnr": mean(gegl[(c, cls)][1] for c in ids if (c, cls) in gegl),
        "gegl_ssim": mean(gegl[(c, cls)][2] for c in ids if (c, cls) in gegl),
        "gegl_setting": next((gegl[(c, cls)][0] for c in ids if (c, cls) in gegl), ""),
        "accuracy": mean(1.0 if predicted.get((c, cls)) == forced_cls else 0.0
                         for c in ids if (c, cls) in predicted),
    }
    s["margin"] = s["auto_psnr"] - s["gegl_psnr"]
    return s


def damaged_mean(s):
    """The per-class means averaged over the 11 damaged classes."""
    keys = ["input_psnr", "input_ssim", "gegl_psnr", "gegl_ssim", "auto_psnr", "auto_ssim",
            "forced_psnr", "forced_ssim", "margin", "accuracy"]
    m = {k: mean(s[c][k] for c in CLASSES[1:]) for k in keys}
    m["n"] = sum(s[c]["n"] for c in CLASSES[1:])
    m["gegl_setting"] = "per class"
    return m


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def cmd_report(set_dir, base_dir, raw_dir, outdir, info_path):
    crops, gegl, metrics, predicted, probs = load_results(set_dir, base_dir, raw_dir)
    info = {}
    with open(info_path) as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                info[k] = v
    chains = {}
    ranking = read_csv(os.path.join(base_dir, "ranking.csv"))
    tried = defaultdict(int)
    for row in ranking:
        tried[row["class"]] += 1
        if row["rank"] == "1":
            chains[row["class"]] = row["chain"]

    # per-image and forced CSVs
    with open(os.path.join(outdir, "per-image.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["crop", "origin", "class", "input_psnr", "input_ssim", "gegl_setting",
                    "gegl_psnr", "gegl_ssim", "auto_psnr", "auto_ssim", "forced_psnr",
                    "forced_ssim", "predicted"])
        for cid, origin in crops.items():
            for cls in ALL:
                fc = "noise" if cls == SIGMA_CLASS else cls
                g = gegl.get((cid, cls), ("", float("nan"), float("nan")))
                m = lambda k: metrics.get((cid, cls, k), (float("nan"),) * 2)
                w.writerow([cid, origin, cls, *m("input"), g[0], g[1], g[2], *m("auto"),
                            *m(fc), predicted.get((cid, cls), "")])
    with open(os.path.join(outdir, "forced.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["crop", "origin", "true_class", "forced_class", "psnr", "ssim"])
        for cid, origin in crops.items():
            for t in CLASSES:
                for fc in CLASSES:
                    if (cid, t, fc) in metrics:
                        w.writerow([cid, origin, t, fc, *metrics[(cid, t, fc)]])

    summaries = {sub: {cls: class_summary(subset_ids(crops, sub), cls, gegl, metrics, predicted)
                       for cls in ALL} for sub, _ in SUBSETS}
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        keys = ["n", "input_psnr", "input_ssim", "gegl_setting", "gegl_psnr", "gegl_ssim",
                "auto_psnr", "auto_ssim", "forced_psnr", "forced_ssim", "margin", "accuracy"]
        w = csv.writer(f)
        w.writerow(["subset", "class"] + keys)
        for sub, _ in SUBSETS:
            for cls in ALL:
                w.writerow([sub, cls] + [summaries[sub][cls][k] for k in keys])

    # confusion matrix over the 12 classes at level 0.5 (all crops)
    conf = {t: defaultdict(int) for t in CLASSES}
    for (cid, cls), p in predicted.items():
        if cls in conf:
            conf[cls][p] += 1
    with open(os.path.join(outdir, "confusion.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\predicted"] + CLASSES)
        for t in CLASSES:
            w.writerow([t] + [conf[t][p] for p in CLASSES])
    damaged = [(c, t) for (c, t) in predicted if t in CLASSES[1:]]
    acc_damaged = mean(1.0 if predicted[k] == k[1] else 0.0 for k in damaged)
    clean_keys = [(c, t) for (c, t) in predicted if t == "clean"]
    acc_clean = mean(1.0 if predicted[k] == "clean" else 0.0 for k in clean_keys)

    # forced-class matrix (all crops): mean PSNR per true x forced class
    forced = {t: {fc: mean(metrics[(c, t, fc)][0] for c in crops if (c, t, fc) in metrics)
                  for fc in CLASSES} for t in CLASSES}

    # goals
    a = summaries["all"]
    damaged_classes = CLASSES[1:]
    margins = {c: a[c]["margin"] for c in damaged_classes}
    forced_ok = [t for t in CLASSES if forced[t][t] >= a[t]["auto_psnr"] - 0.05]
    wrong_worse = [t for t in CLASSES
                   if max(v for fc, v in forced[t].items() if fc != t) < forced[t][t]]
    s25_val = summaries["val"][SIGMA_CLASS]["auto_psnr"]
    goals = [
        ("auto-detect top-1 accuracy, 11 damaged classes, level 0.5", ">= 95 %",
         f"{100 * acc_damaged:.1f} % ({len(damaged)} images)", acc_damaged >= 0.95),
        ("clean crops classified clean", ">= 95 %",
         f"{100 * acc_clean:.1f} % ({len(clean_keys)} crops)", acc_clean >= 0.95),
        ("auto mode on a clean crop: PSNR of the output vs the crop", "(< 0.5 dB change)",
         f"{a['clean']['auto_psnr']:.2f} dB (RMS change "
         f"{255 * 10 ** (-a['clean']['auto_psnr'] / 20):.2f}/255)", None),
        ("classes where ours (auto) beats the best GEGL setting by >= 2 dB", "11 of 11",
         f"{sum(1 for v in margins.values() if v >= 2.0)} of {len(margins)} "
         f"(smallest margin {min(margins.values()):+.2f} dB, {min(margins, key=margins.get)})",
         all(v >= 2.0 for v in margins.values())),
        ("Gaussian noise sigma 25, held-out photos, ours (auto)", ">= 30 dB",
         f"{s25_val:.2f} dB (best GEGL {summaries['val'][SIGMA_CLASS]['gegl_psnr']:.2f} dB)",
         s25_val >= 30.0),
        ("forcing the true class restores at least as well as auto (within 0.05 dB)",
         "12 of 12", f"{len(forced_ok)} of 12", len(forced_ok) == 12),
        ("forcing any wrong class is worse than forcing the true one", "12 of 12",
         f"{len(wrong_worse)} of 12", len(wrong_worse) == 12),
    ]
    with open(os.path.join(outdir, "goals.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["goal", "target", "measured", "met"])
        for g in goals:
            w.writerow([g[0], g[1], g[2], "" if g[3] is None else ("yes" if g[3] else "no")])

    # ------------------------------------------------------------ report.md
    out = []
    n_val = len(subset_ids(crops, "val"))
    n_sk = len(subset_ids(crops, "skimage"))
    out.append("# Evaluation report\n")
    out.append(f"Weights: `{info.get('weights', '?')}` (SHA-256 `{info.get('weights_sha256', '?')}`)  ")
    out.append(f"{info.get('arch', '')}  ")
    out.append(f"Set: {len(crops)} crops of {info.get('crop', '256')} px ({n_val} from the held-out "
               f"training photos, {n_sk} from scikit-image), 12 classes at level "
               f"{info.get('level', '0.5')} plus Gaussian noise sigma 25; set key "
               f"`{info.get('set_key', '?')[:16]}`.  ")
    out.append(f"Run: {info.get('date', '')}, {info.get('host', '')}; wall time "
               f"{info.get('seconds_total', '?')} s (set {info.get('seconds_set', '?')} s, GEGL "
               f"baselines {info.get('seconds_baselines', '?')} s, ours "
               f"{info.get('seconds_ours', '?')} s; a step found in the cache takes ~0 s).\n")
    out.append("## Goals\n")
    out.append(md_table(["goal", "target", "measured", "met"],
                        [[g[0], g[1], g[2], "" if g[3] is None else ("yes" if g[3] else "**no**")]
                         for g in goals]))
    for sub, title in SUBSETS:
        s = summaries[sub]
        out.append(f"\n## PSNR (dB) / SSIM per class: {title}\n")
        rows = []
        for cls in ALL + ["mean"]:
            c = s[cls] if cls != "mean" else damaged_mean(s)
            if not c["n"]:
                continue
            label = {SIGMA_CLASS: "noise, Gaussian sigma 25",
                     "mean": "**mean of the 11 damaged classes**"}.get(cls, cls)
            rows.append([label, c["n"], f"{fmt(c['input_psnr'])} / {fmt(c['input_ssim'], 3)}",
                         f"{fmt(c['gegl_psnr'])} / {fmt(c['gegl_ssim'], 3)}",
                         f"`{c['gegl_setting']}`",
                         f"{fmt(c['auto_psnr'])} / {fmt(c['auto_ssim'], 3)}",
                         f"{fmt(c['forced_psnr'])} / {fmt(c['forced_ssim'], 3)}",
                         "—" if cls == "clean" else f"{c['margin']:+.2f}",
                         f"{100 * c['accuracy']:.0f} %"])
        out.append(md_table(["class", "n", "input", "best GEGL", "GEGL setting", "ours auto",
                             "ours forced true class", "auto − GEGL (dB)", "detected"], rows))
    out.append("\n## Best GEGL setting per class\n")
    out.append("Chosen per class by the highest mean PSNR over all crops (an oracle choice in the "
               "filters' favour); `none` = no filter.  Reproduce one with "
               "`gegl in.png -o out.png -- CHAIN`.\n")
    out.append(md_table(["class", "settings tried", "best", "chain"],
                        [[c, tried[c], f"`{a[c]['gegl_setting']}`",
                          f"`{chains.get(c, '') or '(none)'}`"] for c in ALL if c in chains]))
    out.append("\n## Classification (auto mode, all crops, level 0.5)\n")
    out.append(f"Accuracy: damaged classes {100 * acc_damaged:.1f} %, clean {100 * acc_clean:.1f} %, "
               f"Gaussian sigma 25 detected as noise "
               f"{100 * a[SIGMA_CLASS]['accuracy']:.0f} %.  Rows: true class; columns: "
               "predicted (counts).\n")
    short = [c[:8] for c in CLASSES]
    out.append(md_table(["true \\ predicted"] + short,
                        [[t] + [conf[t][p] or "·" for p in CLASSES] for t in CLASSES]))
    out.append("\n## Forced class (mean PSNR, dB, all crops)\n")
    out.append("Rows: true class; columns: the class forced on `maskdcpt restore --type`; "
               "**bold**: the true class; last column: auto mode.\n")
    rows = []
    for t in CLASSES:
        best_wrong = max(v for fc, v in forced[t].items() if fc != t)
        cells = [(f"**{forced[t][fc]:.2f}**" if fc == t else f"{forced[t][fc]:.2f}")
                 for fc in CLASSES]
        rows.append([t] + cells + [f"{a[t]['auto_psnr']:.2f}",
                                   f"{forced[t][t] - best_wrong:+.2f}"])
    out.append(md_table(["true \\ forced"] + short + ["auto", "true − best wrong"], rows))
    out.append("\nFiles: `per-image.csv`, `forced.csv`, `summary.csv`, `confusion.csv`, "
               "`goals.csv`, and the GEGL ranking `gegl-ranking.csv`.\n")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(out))


def main(argv):
    if len(argv) == 6 and argv[1] == "best":
        cmd_best(*argv[2:])
    elif len(argv) == 7 and argv[1] == "report":
        cmd_report(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
