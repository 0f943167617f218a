"""Attack strength against budget on the embedded default benchmark (issue 15, "Convergence, measured").

Every attack of the default run is fitted against the undefended default task model (vgg-small, relu12) at
increasing budgets, through the engine itself (:func:`privbench.grid.rows_of`: the same attacker views,
caches and metrics as ``privbench run``), and scored by PSNR over all probes and face-id on the faces:

- ``rmle``: Adam iterations;
- ``inverse-net``: training epochs (all attacker data), and attacker-data size (``attacker_samples``) at the
  default epochs — the attacker's data here is the default config's, ``--data-scale`` times larger (cheap:
  it is generated);
- ``shadow`` / ``fora``: epochs of the substitute front, and its task-kind data size (``task_samples``).

Writes ``results/convergence/convergence.csv`` and ``convergence.png`` (one panel per budget axis) and prints a
markdown table with each default's distance from the best point of its curve.

    .venv/bin/python benchmarks/attack_convergence.py [--data-scale 4] [--axes rmle-iterations,...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from privbench.cache import Cache, default_cache_dir
from privbench.config import ComponentConfig, config_data, load_config
from privbench.results import write_csv

#: (axis name, attack, swept parameter, values, fixed params): the budgets measured
AXES = (
    ("rmle-iterations", "rmle", "iterations", (25, 50, 100, 200, 400, 800, 1600), {}),
    ("inverse-net-epochs", "inverse-net", "epochs", (2, 4, 8, 16, 32), {}),
    ("inverse-net-data", "inverse-net", "attacker_samples", (250, 500, 1000, 2000, 4000), {}),
    ("shadow-epochs", "shadow", "epochs", (5, 10, 20, 40), {}),
    ("fora-epochs", "fora", "epochs", (10, 20, 40, 80, 160), {}),
    ("fora-data", "fora", "task_samples", (75, 150, 300, 600, 1200), {}),
)

#: (name, params): what the literature does to strengthen the inverse network (a residual decoder, an edge
#: loss, more data and epochs), at the default run's budget unless said
VARIANTS = (
    ("mirror, mse (He et al.)", {"decoder": "mirror"}),
    ("residual, mse", {"decoder": "residual"}),
    ("mirror, l1+edge", {"decoder": "mirror", "loss": "l1+edge"}),
    ("mirror, mse, 4× data, 4× epochs", {"decoder": "mirror", "epochs": 32, "attacker_samples": 0}),
    ("residual, mse, 4× data, 4× epochs", {"decoder": "residual", "epochs": 32, "attacker_samples": 0}),
    ("residual, l1+edge, 4× data, 4× epochs", {"decoder": "residual", "loss": "l1+edge", "epochs": 32,
                                              "attacker_samples": 0}),
)


def convergence_config(data_scale: int) -> dict:
    """The default config, no defense, with the attacker's data ``data_scale`` times larger."""
    data = config_data(None)
    for item in data["attacker_data"]:
        params = item["params"]
        if "n" in params:
            params["n"] = params["n"] * data_scale
        elif "identities" in params:
            params["identities"] = params["identities"] * data_scale
    data.update(name="attack-convergence", defenses=[{"name": "none"}], metrics=["psnr", "face-id"])
    return data


def load_benchmark_data(cache_dir: str):
    """The default run's attacker images (to express its data size)."""
    from privbench.engine.inputs import inputs_for

    return inputs_for(load_config(), Cache(cache_dir)).attacker_images[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    parser.add_argument("--data-scale", type=int, default=4)
    parser.add_argument("--axes", default=",".join(a[0] for a in AXES) + ",variants")
    parser.add_argument("--out", default="results/convergence")
    args = parser.parse_args()

    from privbench.engine.inputs import inputs_for
    from privbench.grid import group_settings, rows_of

    start = time.perf_counter()
    default_attacks = {a.name: a.params for a in load_config().attacks}
    config = load_config(None, convergence_config(args.data_scale))
    bench = inputs_for(config, Cache(args.cache_dir))
    (setting,) = group_settings(bench)
    data, task_data, _ = bench.attacker_images
    print(f"default task model ({config.model.split}), no defense; attacker data {len(data)} images "
          f"({len(task_data)} of the task's kind)", flush=True)
    rows = []
    wanted = args.axes.split(",")
    for axis, attack, param, values, fixed in AXES:
        if axis not in wanted:
            continue
        base = {**default_attacks.get(attack, {}), **fixed}
        for value in values:
            t0 = time.perf_counter()
            frame = pd.DataFrame(rows_of(bench, setting, ComponentConfig(attack, {**base, param: value}))["rows"])
            psnr = frame[frame.metric == "psnr"].value.mean()
            face = frame[(frame.metric == "face-id")].value
            rows.append({"axis": axis, "attack": attack, "param": param, "value": value,
                         "default": base.get(param), "psnr": psnr,
                         "face_id": face.mean() if len(face) else float("nan"),
                         "seconds": time.perf_counter() - t0})
            print(f"  {axis:20s} {param}={value:<6} PSNR {psnr:6.2f} dB  face-id {rows[-1]['face_id']:.3f}  "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    variants = []
    if "variants" in wanted:
        base = default_attacks.get("inverse-net", {})
        # the default budget uses the default run's attacker-data size
        default_size = len(load_benchmark_data(args.cache_dir))
        for name, params in VARIANTS:
            attack = "inverse-net"
            full = {**base, "attacker_samples": default_size, **params}
            t0 = time.perf_counter()
            frame = pd.DataFrame(rows_of(bench, setting, ComponentConfig(attack, full))["rows"])
            face = frame[frame.metric == "face-id"].value
            variants.append({"variant": name, "params": full, "psnr": frame[frame.metric == "psnr"].value.mean(),
                             "face_id": face.mean() if len(face) else float("nan"),
                             "seconds": time.perf_counter() - t0})
            print(f"  {name:40s} PSNR {variants[-1]['psnr']:6.2f} dB  face-id {variants[-1]['face_id']:.3f}  "
                  f"({variants[-1]['seconds']:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if len(table):
        write_csv(table, out / "convergence.csv")
        plot(table, out / "convergence.png")
    if len(table):
        print("\n| budget axis | values | PSNR (dB) | face-id | default | default vs best PSNR |")
        print("| --- | --- | --- | --- | --- | --- |")
    for axis, group in (table.groupby("axis", sort=False) if len(table) else ()):
        default = group["default"].iloc[0]
        at_default = group[group.value == default]
        gap = (f"{at_default.psnr.iloc[0] - group.psnr.max():+.2f} dB" if len(at_default)
               else f"default {default} not on the curve")
        print(f"| {axis} | {', '.join(str(v) for v in group.value)} | "
              f"{', '.join(f'{p:.2f}' for p in group.psnr)} | {', '.join(f'{f:.2f}' for f in group.face_id)} | "
              f"{default} | {gap} |")
    if variants:
        frame = pd.DataFrame(variants)
        write_csv(frame, out / "inverse_net_variants.csv")
        print("\n| inverse-net variant | PSNR (dB) | face-id | fit + reconstruct (s) |")
        print("| --- | --- | --- | --- |")
        for v in variants:
            print(f"| {v['variant']} | {v['psnr']:.2f} | {v['face_id']:.3f} | {v['seconds']:.0f} |")
    print(f"\n(total {time.perf_counter() - start:.0f} s; {out / 'convergence.csv'}, {out / 'convergence.png'})")


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = list(dict.fromkeys(table.axis))
    fig, panels = plt.subplots(1, len(axes_names), figsize=(3.2 * len(axes_names), 3.0), squeeze=False)
    for panel, axis in zip(panels[0], axes_names, strict=True):
        group = table[table.axis == axis]
        panel.plot(group.value, group.psnr, "o-", color="C0")
        panel.set_xscale("log", base=2)
        panel.set_title(axis, fontsize=9)
        panel.set_xlabel(group.param.iloc[0], fontsize=8)
        panel.set_ylabel("PSNR (dB)", fontsize=8, color="C0")
        default = group["default"].iloc[0]
        if default in set(group.value):
            panel.axvline(default, color="grey", linestyle=":", linewidth=1)
        twin = panel.twinx()
        twin.plot(group.value, group.face_id, "s--", color="C1")
        twin.set_ylabel("face-id", fontsize=8, color="C1")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    main()
