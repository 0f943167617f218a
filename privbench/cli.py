"""The ``privbench`` command line (a click group).

User errors (:class:`~privbench.errors.PrivbenchError` and click usage errors) print one line on stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from privbench import __version__
from privbench.errors import PrivbenchError

DEFAULT_OUT = Path("results") / "runs"


QUIET_HELP = "no progress bars or step lines (here and in the --jobs workers: sets PRIVBENCH_QUIET=1)"


def _quiet(ctx: click.Context, _param: click.Parameter, quiet: bool) -> bool:
    """``--quiet``: no step lines (:mod:`privbench.progress`) in this process or those it starts, until the command
    ends."""
    if quiet:
        from privbench.progress import configure

        ctx.call_on_close(configure(quiet=True))
    return quiet


def _common(func):
    """Options shared by the commands that run a benchmark."""
    options = [
        click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                     show_default=True, help="folder that receives results/runs/<name>/"),
        click.option("--name", default=None, help="run name (config key: name); the output folder's name"),
        click.option("--seed", type=int, default=None, help="seed for data, initialisation, sampling (config: seed)"),
        click.option("--device", default=None, help="auto | cpu | cuda[:N] (config: device)"),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="cache folder (default $PRIVBENCH_CACHE or ~/.cache/privbench)"),
        click.option("--no-cache", is_flag=True, help="recompute everything and store nothing"),
        click.option("--quiet", is_flag=True, callback=_quiet, help=QUIET_HELP),
        click.option("--keep-going", is_flag=True, help="record a failed grid point in the report and go on "
                     "(exit status 3 at the end); by default the run stops at the first failure"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _overrides(name, seed, device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name is not None:
        out["name"] = name
    if seed is not None:
        out["seed"] = seed
    if device is not None:
        out["device"] = device
    return out


def _execute(config, out_root: Path, cache_dir, no_cache: bool, quiet: bool, config_text: str,
             keep_going: bool = False, executor=None):
    """Run ``config`` (a grid) and publish its outputs as one folder, OUT/NAME.

    The output and cache folders are checked first, so a folder that cannot be written fails before any
    compute. While the sweep runs, each finished point is appended to the journal ``OUT/NAME.partial/``
    (:mod:`privbench.journal`), which a rerun of an interrupted sweep resumes from. When the grid is complete,
    all outputs are written into a temporary folder beside OUT/NAME and moved in together
    (:func:`~privbench.cache.replace_folder`): a crash or a full disk leaves the previous run's complete folder,
    and a rerun leaves no stale file of the earlier one.
    """
    import json

    from privbench.cache import Cache, atomic_write_text, check_writable_folder, replace_folder
    from privbench.html_report import write_html
    from privbench.journal import Journal
    from privbench.rate_plots import rate_plots
    from privbench.report import privacy_utility_plots, reconstruction_grid, save_samples, write_report
    from privbench.results import write_csv
    from privbench.sweep import echo_notes, run_grid

    cache = Cache(cache_dir, enabled=not no_cache)
    run_dir = out_root / config.name
    check_writable_folder(out_root, "--out")
    if (run_dir.exists() or run_dir.is_symlink()) and not run_dir.is_dir():
        raise PrivbenchError(f"{run_dir} exists and is not a folder: remove it or choose another --name")
    if cache.enabled:
        check_writable_folder(cache.root, "--cache-dir")
    started = time.perf_counter()
    journal = Journal(partial_folder(out_root, config.name))
    if executor is None:  # as `run` without --jobs: serial, torch on every core (the same numbers as `run`)
        from privbench.executors import make_executor

        executor = make_executor("serial")
    output = run_grid(config, cache, executor, journal, progress=not quiet, keep_going=keep_going)
    figures = cache if cache.enabled else None
    publishing = time.perf_counter()

    def build(folder: Path) -> None:
        write_csv(output.frame, folder / "results.csv")
        atomic_write_text(folder / "config.yaml", yaml.safe_dump(config.raw, sort_keys=False))  # `eval --run`
        save_samples(output.originals, output.samples, folder)
        plots = privacy_utility_plots(output.frame, folder, cache=figures) + rate_plots(output.frame, folder,
                                                                                         cache=figures)
        grid = reconstruction_grid(output.originals, output.samples, folder, cache=figures)
        manifest = output.manifest
        manifest["stages"].append({"stage": "publish (CSV, plots, reports)",
                                   "seconds": round(time.perf_counter() - publishing, 3)})
        manifest["wall_seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")
        write_report(output.frame, folder, config_text, plots, grid, output.notes, manifest=manifest)
        write_html(output.frame, folder, manifest, plots, grid, output.notes, config_text=config_text)

    replace_folder(run_dir, build)
    journal.remove()
    elapsed = time.perf_counter() - started
    echo_notes(output.notes, lambda text: click.echo(text, err=True))
    return output, run_dir, elapsed, cache


def partial_folder(out_root: Path, name: str) -> Path:
    """Where a running sweep's journal lives: OUT/NAME.partial/ (removed when the run folder is published)."""
    return out_root / f"{name}.partial"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="privbench")
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark model-inversion attacks and defenses for collaborative (split) inference."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    from privbench.progress import configure

    ctx.call_on_close(configure(quiet=False))  # what a long step does, on stderr (a command's --quiet: nothing)


MODEL_HELP = ("model name, or package.module:factory / path/to/file.py:factory for your own (config: model.name; "
              "naming the config's own model keeps its weights)")


def resolve_config(config_file: str | None) -> str | None:
    """A config argument as a path: a bare name without a path or suffix (``quick``) that is not a file
    names a shipped preset, ``presets/<name>.yaml``; anything else is used as given."""
    if config_file is None or Path(config_file).exists() or Path(config_file).name != config_file \
            or Path(config_file).suffix:
        return config_file
    from privbench import presets

    shipped = presets.find(config_file)
    if shipped is None:
        raise PrivbenchError(f"config '{config_file}' is neither a file nor a shipped preset "
                             f"(presets: {', '.join(presets.names())})")
    return str(shipped)


@cli.command()
@click.argument("config_file", required=False)
@click.option("--defense-file", "defense_files", multiple=True, type=click.Path(dir_okay=False),
              help="a defense saved by `privbench defend --save`, added to the config's defenses (repeatable; "
                   "config: defenses: [{file: PATH}])")
@click.option("--model", "model_name", default=None, help=MODEL_HELP)
@click.option("--split", default=None, help="named cut point of the model (default: the model's own)")
@click.option("--jobs", type=click.IntRange(1, 512), default=1, show_default=True,
              help="run the grid's points in N local worker processes (the cache is shared; each shared model "
                   "or defense is trained once)")
@click.option("--executor", "executor_name", type=click.Choice(["serial", "processes", "ray"]), default=None,
              help="where points run (default: serial, or processes with --jobs N > 1); ray: Ray tasks "
                   "(pip install 'privbench[ray]')")
@click.option("--address", default=None, help="Ray cluster address for --executor ray (default: a local instance)")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="torch threads per point (default: the cores shared among the jobs); numbers agree value for "
                   "value between runs with the same --threads")
@click.option("--seeds", "seed_list", default=None, metavar="S1,S2,...",
              help="replicate the whole grid over these seeds (e.g. 0,1,2,3,4); the report then shows each value's "
                   "mean over seeds with an interval over seeds and probes (replaces --seed and the config's seed)")
@click.option("--dry-run", is_flag=True, help="print the expanded grid and which points are finished or cached; "
              "run nothing")
@_common
def run(config_file, defense_files, model_name, split, jobs, executor_name, address, threads, seed_list, dry_run, out_root,
        name, seed, device, cache_dir, no_cache, quiet, keep_going) -> None:
    """Run a benchmark: CONFIG_FILE (YAML, or a shipped preset's name), or the embedded default on synthetic
    data when omitted.

    Trains/loads the task model(s), applies every defense at every strength (and codec quality), fits every
    attack against each defended pipeline, scores every metric, for every model, split and seed the config
    lists, and writes results.csv, plots, report.md and report.html under OUT/NAME/. Each finished point is
    kept (the cache and OUT/NAME.partial/): rerunning an interrupted command resumes it, and a second run
    recomputes nothing it has. A finished run of a config that reads no user file (synthetic data) is recorded in
    the cache: its rerun checks (or re-publishes) OUT/NAME and loads nothing else.
    """
    from privbench import run_record

    config_file = resolve_config(config_file)
    if seed_list is not None:
        from privbench.baseline import parse_seeds

        if seed is not None:
            raise PrivbenchError("--seed and --seeds: give one of them")
        seed = parse_seeds(seed_list, "--seeds")
    # first, before torch: a finished run's record answers a rerun with the same inputs (privbench.run_record)
    request = run_record.Request(config_file, name, seed, device, model_name, split, tuple(defense_files),
                                 executor_name, jobs, address, threads, cache_dir, no_cache, dry_run)
    recorded = run_record.run_key(request)
    if recorded is not None and (warm := run_record.replay(recorded, out_root)) is not None:
        for note in warm.notes:
            click.echo(note, err=True)
        click.echo(warm.summary)
        return

    from privbench.config import config_data, default_config_text, load_grid, parse_grid, read_yaml, with_model
    from privbench.executors import make_executor

    overrides = _overrides(name, seed, device)
    if model_name or split:
        overrides["model"] = with_model(config_data(config_file)["model"], model_name, split)
    config = load_grid(config_file, overrides)
    if defense_files:
        config = parse_grid({**config.raw, "defenses": [*config.raw["defenses"], *({"file": f} for f in defense_files)]})
    if defense_files or model_name or split:
        text = yaml.safe_dump(config.raw, sort_keys=False)
    else:
        text = yaml.safe_dump(read_yaml(config_file), sort_keys=False) if config_file else default_config_text()
    executor = make_executor(executor_name, jobs, address, threads)
    if dry_run:
        _dry_run(config, out_root, cache_dir, no_cache)
        return
    output, run_dir, elapsed, cache = _execute(config, out_root, cache_dir, no_cache, quiet, text, keep_going, executor)
    counts = output.manifest["grid"]
    resumed = f", {counts['resumed']} resumed from {run_dir}.partial" if counts["resumed"] else ""
    click.echo(f"{len(output.frame)} rows -> {run_dir / 'results.csv'} ({elapsed:.1f}s; {counts['points']} points: "
               f"{counts['computed']} computed, {counts['cached']} cached{resumed}; "
               f"cache {cache.hits} hits, {cache.misses} misses)")
    if recorded is not None and not output.failures:  # a run with a failed point is never recorded
        from privbench.sweep import echo_notes

        notes: list[str] = []
        echo_notes(output.notes, notes.append)
        run_record.store(recorded, request, run_dir, len(output.frame), counts["points"], notes)
    _exit_if_failed(output)


def _dry_run(config, out_root: Path, cache_dir, no_cache: bool) -> None:
    from privbench.cache import Cache
    from privbench.grid import codec_problems
    from privbench.journal import Journal
    from privbench.sweep import dry_run, nodes_to_compute

    cache = Cache(cache_dir, enabled=not no_cache)
    table = dry_run(config, cache, Journal(partial_folder(out_root, config.name)))
    click.echo(_aligned(table.astype(str), {"point", "seed"}))
    states = table["state"].value_counts()
    click.echo(f"{len(table)} points ({len(config.groups)} model × split × seed): "
               + ", ".join(f"{states.get(s, 0)} {s}" for s in ("finished", "cached", "to run")))
    nodes = nodes_to_compute(config, cache)
    if len(nodes):
        click.echo("\nnodes to compute (cost: rough units, a setting's own rows = 1):")
        click.echo(_aligned(nodes.astype(str), {"cost"}))
        by_kind = nodes.groupby("node", sort=False)["cost"].agg(["count", "sum"])
        click.echo(f"{len(nodes)} nodes, estimated cost {int(nodes['cost'].sum())}: "
                   + ", ".join(f"{k} {int(r['count'])} ({int(r['sum'])})" for k, r in by_kind.iterrows()))
    for problem in codec_problems(config, cache):
        click.echo(f"privbench: warning: this grid cannot run here yet: {problem}", err=True)


#: exit status of a --keep-going run in which some grid points failed (their rows are missing)
EXIT_POINTS_FAILED = 3


def _exit_if_failed(output) -> None:
    if output.failures:
        listed = "; ".join(f"{step} ({why})" for step, why in output.failures)
        click.echo(f"privbench: error: {len(output.failures)} grid step(s) failed and are missing from the results "
                   f"(also in report.md): {listed}", err=True)
        sys.exit(EXIT_POINTS_FAILED)


@cli.command()
@click.option("--defense", default=None, help="defense name (see `privbench list defenses`)")
@click.option("--defense-file", default=None, type=click.Path(dir_okay=False),
              help="a defense saved by `privbench defend --save` (instead of --defense)")
@click.option("--strength", type=float, default=None, help="value of the defense's strength parameter")
@click.option("--param", "defense_params", multiple=True, metavar="K=V", help="defense parameter (repeatable)")
@click.option("--attack", "attack_name", required=True, help="attack name (see `privbench list attacks`)")
@click.option("--attack-param", "attack_params", multiple=True, metavar="K=V", help="attack parameter (repeatable)")
@click.option("--model", "model_name", default=None, help=MODEL_HELP)
@click.option("--split", default=None, help="named cut point of the model (default: the model's own)")
@click.option("--dataset", "datasets", multiple=True, help="probe dataset name (repeatable; default: the "
              "default run's probes)")
@click.option("--codec", "codec_name", default=None, help="code what crosses the network (see `privbench list "
              "codecs`; default: no codec)")
@click.option("--quality", type=float, default=None, help="value of the codec's quality axis (e.g. a QP)")
@click.option("--codec-param", "codec_params", multiple=True, metavar="K=V",
              help="codec parameter (repeatable), e.g. placement=input")
@click.option("--config", "config_file", default=None, help="YAML config to start from (default: embedded)")
@_common
def attack(defense, defense_file, strength, defense_params, attack_name, attack_params, model_name, split, datasets,
           codec_name, quality, codec_params, config_file, out_root, name, seed, device, cache_dir, no_cache, quiet,
           keep_going) -> None:
    """Run one grid point: one defense setting (optionally coded) against one attack; print a short table."""
    from privbench.components import load_components
    from privbench.config import config_data, configured_params, load_config, with_model
    from privbench.registry import DEFENSES, parse_assignments
    from privbench.report import summary_table

    load_components()
    if (defense is None) == (defense_file is None):
        raise PrivbenchError("give either --defense NAME or --defense-file FILE")
    if defense_file is not None and (strength is not None or defense_params):
        raise PrivbenchError("--strength and --param do not apply to --defense-file (the file holds its setting)")
    data = config_data(config_file)  # the run this point belongs to: its settings are the starting point
    if defense_file is not None:
        entry: dict[str, Any] = {"file": defense_file}
        label = Path(defense_file).stem
    else:
        cls = DEFENSES.get(defense)
        params = {**configured_params(data.get("defenses"), defense), **parse_assignments(defense_params)}
        if strength is not None:
            if not cls.strength_param:
                raise PrivbenchError(f"defense '{defense}' has no strength (--strength does not apply)")
            params[cls.strength_param] = strength
        entry, label = {"name": defense, "params": params}, defense
    attack_entry = {"name": attack_name,
                    "params": {**configured_params(data.get("attacks"), attack_name),
                               **parse_assignments(attack_params)}}
    overrides: dict[str, Any] = {
        "name": name or f"attack-{label}-{attack_name}",
        "defenses": [entry],
        "attacks": [attack_entry],
        **_overrides(None, seed, device),
    }
    if model_name or split:
        overrides["model"] = with_model(data["model"], model_name, split)
    if codec_name is None and (quality is not None or codec_params):
        raise PrivbenchError("--quality and --codec-param need --codec NAME")
    if codec_name is not None:
        codec: dict[str, Any] = {"name": codec_name, "params": parse_assignments(codec_params)}
        if quality is not None:
            codec["qualities"] = [quality]
        overrides["codecs"] = [codec]
    config = load_config(config_file, overrides)
    if datasets:  # generated probes: the test subset at the task data's image size, so they fit the model
        from privbench.registry import DATASETS

        size = config.task_train.params.get("size")

        def probe(dataset: str) -> dict[str, Any]:
            declared = {p.name for p in DATASETS.get(dataset).params}
            params = {"subset": "test"} if "subset" in declared else {}
            if size and "size" in declared:
                params["size"] = size
            return {"name": dataset, "params": params}

        overrides["probes"] = [probe(d) for d in datasets]
        config = load_config(config_file, overrides)
    output, run_dir, elapsed, _ = _execute(config, out_root, cache_dir, no_cache, quiet,
                                           yaml.safe_dump(config.raw, sort_keys=False), keep_going)
    if not output.frame.empty:
        table = summary_table(output.frame)
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    click.echo(f"-> {run_dir / 'results.csv'} ({elapsed:.1f}s)")
    _exit_if_failed(output)


@cli.command()
@click.option("--defense", required=True, help="trained defense name (see `privbench list defenses`)")
@click.option("--param", "defense_params", multiple=True, metavar="K=V", help="defense parameter (repeatable)")
@click.option("--save", "save_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write: name, parameters, task-model key and state (torch weights_only format)")
@click.option("--config", "config_file", default=None, help="YAML config whose task model the defense protects "
              "(default: embedded)")
@click.option("--seed", type=int, default=None, help="seed (config: seed)")
@click.option("--device", default=None, help="auto | cpu | cuda[:N] (config: device)")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="cache folder (default $PRIVBENCH_CACHE or ~/.cache/privbench)")
@click.option("--no-cache", is_flag=True, help="recompute everything and store nothing")
def defend(defense, defense_params, save_path, config_file, seed, device, cache_dir, no_cache) -> None:
    """Fit a trained defense for the config's task model and save it to one self-describing file.

    `privbench run --defense-file FILE` and `privbench attack --defense-file FILE` rebuild the defense from
    that file alone; a file fitted for another task model is refused.
    """
    from privbench.cache import Cache, check_writable_folder, disk_problem
    from privbench.components import load_components
    from privbench.config import load_config
    from privbench.defenses.base import TrainedDefense
    from privbench.defenses.saved import save_defense
    from privbench.engine.inputs import inputs_for
    from privbench.engine.pipelines import fit_node
    from privbench.registry import DEFENSES, parse_assignments

    load_components()
    chosen = DEFENSES.create(defense, **parse_assignments(defense_params))
    if not isinstance(chosen, TrainedDefense):
        trained = ", ".join(n for n, c in DEFENSES.items() if c.trained)
        raise PrivbenchError(f"defense '{defense}' has nothing to fit (trained defenses: {trained})")
    if save_path.is_dir():
        raise PrivbenchError(f"--save {save_path} is a folder; name a file")
    check_writable_folder(save_path.parent, f"--save {save_path}: its folder")  # before the fit, not after it
    config = load_config(config_file, _overrides(None, seed, device))
    inputs = inputs_for(config, Cache(cache_dir, enabled=not no_cache))
    started = time.perf_counter()
    state = inputs.graph.get(fit_node(inputs, chosen))
    try:
        save_defense(save_path, chosen, state, inputs.model_key_hash, inputs.model_summary)
    except OSError as exc:
        raise PrivbenchError(f"--save: {disk_problem(exc)} (the fitted defense is in the cache: the same command "
                             "again only writes the file)") from None
    how = "fitted" if inputs.graph.made["defense"] else "from the cache"
    click.echo(f"{defense} ({how}, {time.perf_counter() - started:.1f}s) -> {save_path}")


@cli.command("list")
@click.argument("what", required=False,
                type=click.Choice(["defenses", "attacks", "metrics", "datasets", "models", "codecs"]))
@click.option("--no-index", is_flag=True, help="import every component instead of reading the component index "
              "(kept in the cache folder, rebuilt when a source file changes); store nothing")
def list_components(what, no_index: bool) -> None:
    """List registered components and their declared parameters."""
    from privbench.component_index import listing_data, render

    click.echo(render(listing_data(use_index=not no_index), what))


@cli.command("eval")
@click.option("--metric", "metric_name", required=True, help="privacy metric (see `privbench list metrics`)")
@click.option("--param", "metric_params", multiple=True, metavar="K=V", help="metric parameter (repeatable)")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="run directory written by `privbench run` (scores every grid point)")
@click.option("--recon", "recon_dir", type=click.Path(path_type=Path), default=None,
              help="folder of reconstructed images (with --orig)")
@click.option("--orig", "orig_dir", type=click.Path(path_type=Path), default=None,
              help="folder of original images, same relative file names as --recon")
@click.option("--labels", "labels_csv", type=click.Path(path_type=Path), default=None,
              help="CSV: file, then identity / label / text / x1,y1,x2,y2 / 0-1 attribute columns")
@click.option("--synthetic", "family", default=None,
              help="the folder images are this synthetic dataset's (built-in recognizers train on it)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed (folders; a run uses its own)")
@click.option("--device", default=None, help="auto | cpu | cuda[:N]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="cache folder (default $PRIVBENCH_CACHE or ~/.cache/privbench)")
@click.option("--no-cache", is_flag=True, help="recompute everything and store nothing")
def eval_command(metric_name, metric_params, run_dir, recon_dir, orig_dir, labels_csv, family, seed, device,
                 cache_dir, no_cache) -> None:
    """Score one privacy metric on a run directory, or on a pair of image folders; print a short table."""
    from privbench.cache import Cache
    from privbench.components import load_components
    from privbench.evaluate import score_folders, score_run
    from privbench.registry import METRICS, parse_assignments

    load_components()
    if (run_dir is None) == (recon_dir is None and orig_dir is None):
        raise PrivbenchError("give either --run RUN_DIR or both --recon DIR and --orig DIR")
    metric = METRICS.create(metric_name, **parse_assignments(metric_params))
    cache = Cache(cache_dir, enabled=not no_cache)
    if run_dir is not None:
        table = score_run(run_dir, metric, cache, device)
    else:
        if recon_dir is None or orig_dir is None:
            raise PrivbenchError("--recon and --orig go together")
        table = score_folders(recon_dir, orig_dir, metric, cache, labels_csv=labels_csv, family=family,
                              seed=seed, device=device or "auto", note=lambda text: click.echo(f"note: {text}", err=True))
    click.echo(table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Redraw the plots, report.md and report.html of RUN_DIR from its results.csv (and manifest.json)."""
    from privbench.cache import check_writable_folder
    from privbench.html_report import write_html
    from privbench.ranking import replication_warnings
    from privbench.rate_plots import rate_plots
    from privbench.report import (
        load_manifest,
        load_results,
        load_samples,
        privacy_utility_plots,
        reconstruction_grid,
        write_report,
    )

    # Every input is read and checked before the first file is written, and each file is replaced atomically:
    # a corrupt input changes nothing, a crash leaves each file either old or new.
    frame = load_results(run_dir / "results.csv")
    originals, samples = load_samples(run_dir)
    manifest = load_manifest(run_dir)
    # The config the run recorded: the manifest's, else config.yaml (runs before manifests), else a pointer.
    config_text = "(see the original run)"
    if manifest is not None and isinstance(manifest.get("config"), dict):
        config_text = yaml.safe_dump(manifest["config"], sort_keys=False, allow_unicode=True)
    elif (run_dir / "config.yaml").is_file():
        try:
            config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PrivbenchError(f"cannot read {run_dir / 'config.yaml'} ({getattr(exc, 'strerror', None) or exc})"
                                 ) from None
    check_writable_folder(run_dir, "RUN_DIR")
    try:
        plots = privacy_utility_plots(frame, run_dir) + rate_plots(frame, run_dir)
        grid = reconstruction_grid(originals, samples, run_dir) if samples else None
        notes = replication_warnings(frame)
        write_report(frame, run_dir, config_text, plots, grid, notes, manifest=manifest)
        write_html(frame, run_dir, manifest, plots, grid, notes, config_text=config_text)
    except OSError as exc:  # a full disk: the files written so far are whole, the others unchanged
        raise PrivbenchError(f"cannot write the report into {run_dir} ({exc.strerror or exc})") from None
    click.echo(f"report -> {run_dir / 'report.md'}, {run_dir / 'report.html'}")


@cli.command()
@click.argument("current", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--baseline", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="committed baseline (from `privbench baseline`, e.g. results/baselines/quick.csv; a plain "
                   "results.csv is read as one run with spread 0)")
@click.option("--tol", "tolerances", multiple=True, metavar="METRIC=X",
              help="absolute floor of a metric's allowance (repeatable); defaults: psnr 0.5, edge-psnr 0.5, "
                   "ssim 0.02, mse 0.002, accuracy 0.02")
@click.option("--default-tol", type=float, default=0.02, show_default=True, help="floor of the other metrics")
@click.option("--use-ci", is_flag=True, hidden=True, help="accepted for old scripts: CIs are always part of the rule")
def regress(current: Path, baseline: Path, tolerances, default_tol: float, use_ci: bool) -> None:
    """CI gate: exit 0 when no point of CURRENT moved the bad way past its allowance, 1 with the points otherwise.

    allowance = max(--tol floor, 1.5 x baseline spread + baseline CI half-width + current CI half-width).
    """
    from privbench.registry import parse_assignments
    from privbench.regress import compare, format_verdict, read_table

    tol = {}
    for key, value in parse_assignments(tolerances).items():
        try:
            tol[key] = float(value)
        except ValueError:
            raise PrivbenchError(f"--tol {key}: expected a number, got {value!r}") from None
    if any(v < 0 or v != v for v in tol.values()) or default_tol < 0:
        raise PrivbenchError("--tol / --default-tol: a floor is a non-negative number")
    verdict = compare(read_table(current, "current results"), read_table(baseline, "baseline"), tol, default_tol)
    click.echo(format_verdict(verdict))
    sys.exit(0 if verdict.ok else 1)


@cli.command("compare")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--metric", default="face-id", show_default=True, help="privacy metric (worst case over attacks)")
@click.option("--utility", default="accuracy", show_default=True, help="utility metric the settings are matched on")
@click.option("--at", "at_utility", type=float, default=None,
              help="compare the curves at this utility level (default: the mean gap over the common utility range)")
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="confidence level of the paired intervals")
def compare_command(run_dir: Path, metric: str, utility: str, at_utility: float | None, level: float) -> None:
    """Which defense leaks less at the same utility: every pair of defenses of RUN_DIR (a run folder or its
    results.csv), paired on the same seeds and probes.

    Two swept defenses: the mean gap of their privacy–utility curves over the utility range both cover (or at
    --at); a curve and a single setting: the curve read at that setting's utility; two single settings: their
    difference with the utility gap beside it. Intervals: two-level bootstrap over seeds and probes. Writes
    compare_<metric>.csv and compare_<metric>.png into the run folder.
    """
    import io

    from privbench.cache import atomic_write_text, check_writable_folder
    from privbench.compare import compare, compare_figure, verdict_text
    from privbench.report import load_results

    csv_path = run_dir / "results.csv" if run_dir.is_dir() else run_dir
    out = csv_path.parent
    frame = load_results(csv_path)
    if {"spread", "seeds"} <= set(frame.columns):
        raise PrivbenchError(f"{csv_path} is a baseline (means over seeds): compare needs the per-seed rows of a run")
    table = compare(frame, metric, utility, at_utility, level)
    if table.empty:
        raise PrivbenchError(f"{csv_path}: fewer than two defenses to compare on {metric}")
    check_writable_folder(out, "RUN_DIR")
    shown = table.assign(utility_a=table["utility_a"].map("{:.3f}".format),
                         utility_b=table["utility_b"].map("{:.3f}".format),
                         verdict=[verdict_text(r) for _, r in table.iterrows()])
    click.echo(f"{metric} (worst case over attacks), a − b at matched {utility}; {100 * level:g} % paired intervals "
               f"over {int(table['n_seeds'].max())} seed(s) and the probes")
    click.echo(_aligned(shown[["dataset", "a", "b", "utility_a", "utility_b", "comparison", "verdict"]],
                        {"utility_a", "utility_b"}))
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g")
    try:
        atomic_write_text(out / f"compare_{metric}.csv", buffer.getvalue())
        compare_figure(table, metric, out / f"compare_{metric}.png")
    except OSError as exc:
        raise PrivbenchError(f"cannot write into {out} ({exc.strerror or exc})") from None
    click.echo(f"-> {out / f'compare_{metric}.csv'}, {out / f'compare_{metric}.png'}")


def _bd_datasets(items) -> str | dict[str, str] | None:
    """--dataset values: one NAME (the privacy metrics' probe set) or METRIC=NAME pairs."""
    if not items:
        return None
    pairs = [i for i in items if "=" in i]
    if not pairs:
        if len(items) > 1:
            raise PrivbenchError(f"--dataset: one NAME, or METRIC=NAME per metric (got {', '.join(items)})")
        return items[0]
    if len(pairs) != len(items):
        raise PrivbenchError("--dataset: give either one NAME or only METRIC=NAME pairs")
    from privbench.registry import parse_assignments

    return parse_assignments(items)


def _aligned(table, right: set[str]) -> str:
    """``table`` (cells already text) as aligned columns: ``right`` ones right-justified, the others left."""
    columns = list(table.columns)
    cells = [[str(c) for c in columns], *([str(v) for v in row] for row in table.itertuples(index=False))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(r, widths, columns, strict=True))
             for r in cells]
    return "\n".join(line.rstrip() for line in lines)


@cli.command("bd")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--anchor", required=True, metavar="SELECTOR",
              help="the reference pipeline: key=value[,key=value] over result columns (defense, codec, quality, "
                   "strength, split, model, dataset, ...) or defense.<param> / codec.<param>, e.g. "
                   "'codec=hevc,codec.placement=input'")
@click.option("--test", "tests", required=True, multiple=True, metavar="SELECTOR",
              help="a pipeline compared with the anchor (repeatable; one table row each)")
@click.option("--rate", default="bpp", show_default=True, help="the kind=rate metric on the rate axis")
@click.option("--metric", "metrics", multiple=True, default=("accuracy",), show_default=True,
              help="utility or privacy metric (repeatable): accuracy, map50, psnr, face-id, plate, ...")
@click.option("--method", default="pchip", show_default=True, type=click.Choice(["pchip", "akima", "cubic"]),
              help="interpolation of bjontegaard (pchip: the JVET sheet's; cubic: VCEG-M33's, needs 4 points)")
@click.option("--attack", default="worst", show_default=True,
              help="attack whose privacy metrics are read (worst: the most revealing per point)")
@click.option("--dataset", "datasets", multiple=True, metavar="NAME|METRIC=NAME",
              help="probe set of the privacy metrics when they are on several (or METRIC=NAME, repeatable)")
@click.option("--min-overlap", type=click.FloatRange(0.0, 1.0), default=0.75, show_default=True,
              help="warn when the two curves share less than this fraction of their range")
@click.option("--log-rate/--linear-rate", default=True, show_default=True, help="rate axis of the plots")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for bd.csv and bd_<metric>.png (default: the CSV's folder)")
def bd_command(csv_path: Path, anchor: str, tests, rate: str, metrics, method: str, attack: str, datasets,
               min_overlap: float, log_rate: bool, out_dir: Path | None) -> None:
    """Bjøntegaard-Delta table of the --test pipelines against the --anchor (paper 000, Tables I and III).

    Each selector's grid points (averaged over seeds) are reduced to their Pareto front — for utility the best
    setting at each rate, for privacy the most revealing — and compared with bjontegaard. BD-rate < 0: the test
    needs fewer bits for the same metric value; BD-metric > 0: the test's metric is higher at the same rate (for
    PSNR, face-id and other leakier-when-higher privacy metrics: it leaks more). Writes bd.csv and one
    bd_<metric>.png per metric. Exit status 0 when at least one BD value was computed, 1 otherwise.
    """
    import io

    from privbench.cache import atomic_write_text, check_writable_folder
    from privbench.metrics.bd import bd_report, metric_column, parse_selector, plot_fronts, prepare, rate_column
    from privbench.results import read_csv

    anchor_sel = parse_selector(anchor)
    test_sels = [parse_selector(t) for t in tests]
    chosen = _bd_datasets(datasets)
    frame = prepare(read_csv(csv_path), str(csv_path))  # every defect of the table is one line, before any compute
    out = out_dir if out_dir is not None else (csv_path.parent if str(csv_path.parent) else Path("."))
    report = bd_report(frame, anchor_sel, test_sels, list(metrics), rate, method, attack, chosen, min_overlap)
    check_writable_folder(out, "--out")

    table = report.table
    shown = table.drop(columns=["anchor", "method", "note"])
    numeric = {c for m in metrics for c in (rate_column(m), metric_column(m))}
    for m in metrics:  # percentages to 0.1 as in paper 000's tables; metric gaps to 4 significant digits
        shown[rate_column(m)] = [f"{v:+.1f}" if v == v else "n/a" for v in shown[rate_column(m)]]
        shown[metric_column(m)] = [f"{v:+.4g}" if v == v else "n/a" for v in shown[metric_column(m)]]
    click.echo(f"BD values against anchor '{anchor_sel}' (rate {rate}, method {method}"
               + (f", privacy metrics at attack={attack}" if any(c[0].kind == "privacy" for c in report.curves.values())
                  else "") + ")")
    click.echo(_aligned(shown, numeric))
    click.echo(f"BD-rate < 0: the test needs fewer {rate} for the same metric value; BD-metric > 0: the test's metric "
               "is higher at the same rate.")
    for metric, curves in report.curves.items():
        if curves[0].kind == "privacy":
            leak = "leaks more" if curves[0].higher_is_better else "leaks less"
            click.echo(f"  {metric} is a privacy metric (on {curves[0].dataset}): BD-{metric} > 0 means the test {leak} "
                       "at the same rate; BD-rate < 0 that it reveals as much with fewer bits")
    for note in report.notes:
        click.echo(f"note: {note}")

    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.6g")
    atomic_write_text(out / "bd.csv", buffer.getvalue())
    written = [out / "bd.csv"]
    for metric, curves in report.curves.items():
        labels = [f"anchor: {curves[0].label}", *(c.label for c in curves[1:])]
        written.append(plot_fronts(curves, out / f"bd_{metric}.png", log_rate=log_rate, labels=labels))
    click.echo(f"-> {', '.join(str(p) for p in written)}")
    if not report.computed:
        reasons = "; ".join(dict.fromkeys(n for r in report.results for n in r.notes)) or "no BD value"
        click.echo(f"privbench: error: no BD value could be computed: {reasons}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("config_file", required=False)
@click.option("--seeds", default="0,1,2", show_default=True, help="comma-separated seeds, one run each")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="baseline CSV to write, e.g. results/baselines/NAME.csv")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="cache folder (default $PRIVBENCH_CACHE or ~/.cache/privbench)")
@click.option("--no-cache", is_flag=True, help="recompute everything and store nothing")
@click.option("--quiet", is_flag=True, callback=_quiet, help=QUIET_HELP)
@click.option("--from-run", "from_run", type=click.Path(path_type=Path), default=None,
              help="aggregate the per-seed rows of a finished run (`privbench run --seeds ...`: its folder or "
                   "results.csv) instead of running CONFIG_FILE again")
def baseline(config_file, seeds: str, out_path: Path, cache_dir, no_cache: bool, quiet: bool, from_run) -> None:
    """Write a regression baseline: CONFIG_FILE (YAML or a shipped name such as `quick`) run once per seed, or the
    rows of a replicated run (--from-run).

    Per grid point and metric: the mean over seeds, the spread (max - min), the number of seeds and the widest
    CI half-width, for `privbench regress --baseline`.
    """
    from privbench.baseline import aggregate, build_baseline, parse_seeds
    from privbench.cache import Cache

    if from_run is not None:
        from privbench.report import load_results
        from privbench.results import write_csv

        if config_file is not None:
            raise PrivbenchError("baseline: give CONFIG_FILE or --from-run, not both")
        source = from_run / "results.csv" if from_run.is_dir() else from_run
        frame = load_results(source)
        by_seed = [rows for _, rows in frame.groupby(frame["seed"].astype(str), sort=True)]
        table = aggregate(by_seed)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(table, out_path)
        click.echo(f"{len(table)} rows ({len(by_seed)} seeds of {source}) -> {out_path}")
        return
    chosen = parse_seeds(seeds)
    cache = Cache(cache_dir, enabled=not no_cache)
    started = time.perf_counter()
    table = build_baseline(resolve_config(config_file), chosen, out_path, cache, progress=not quiet,
                           echo=lambda text: click.echo(text, err=True))
    click.echo(f"{len(table)} rows ({len(chosen)} seeds) -> {out_path} ({time.perf_counter() - started:.1f}s)")


@cli.command("build-recognizers")
@click.argument("configs", nargs=-1)
@click.option("--check", is_flag=True, help="train nothing: list the recognizers that do not ship for today's code "
              "(exit 1 when any is missing)")
def build_recognizers(configs, check: bool) -> None:
    """Train the built-in recognizers (face embedder, plate reader, attribute classifier) that CONFIGS score with
    (default: the shipped presets) and write them into the package, where every run uses them as given.

    A shipped file is keyed by the recognizer's spec and the code of its generator and network: after a change to
    either, run this again (fp32: PRIVBENCH_PRECISION=fp32 on a CPU with native bf16) and commit the new files.
    """
    from privbench.build_recognizers import build, missing_recognizers, preset_paths, stale_files

    paths = [resolve_config(c) for c in configs] or preset_paths()
    if check:
        missing = missing_recognizers(paths)
        for needed in missing:
            click.echo(f"missing: {needed.file} ({needed.kind})")
        for name in stale_files():
            click.echo(f"stale: {name} (its code changed; nothing uses it)")
        click.echo(f"{len(missing)} recognizer(s) missing")
        sys.exit(1 if missing else 0)
    written = build(paths, echo=lambda text: click.echo(text, err=True))
    click.echo(f"{len(written)} recognizer file(s) written")


@cli.group("cache")
def cache_group() -> None:
    """Show or prune the cache (datasets, task models, fitted defenses and attackers, finished points)."""


_CACHE_DIR = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="cache folder (default $PRIVBENCH_CACHE or ~/.cache/privbench)")


@cache_group.command("show")
@_CACHE_DIR
def cache_show(cache_dir) -> None:
    """Entries per kind, their size and age."""
    import datetime

    from privbench.cache import Cache

    cache = Cache(cache_dir)
    rows = cache.summary()
    click.echo(f"cache {cache.root}")
    if not rows:
        click.echo("  (empty)")
        return

    def day(t: float) -> str:
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")

    for row in rows:
        click.echo(f"  {row['kind']:<16} {row['entries']:>6} entries {row['bytes'] / 1e6:>10.1f} MB  "
                   f"{day(row['oldest'])} .. {day(row['newest'])}")
    click.echo(f"  {'total':<16} {sum(r['entries'] for r in rows):>6} entries "
               f"{sum(r['bytes'] for r in rows) / 1e6:>10.1f} MB")


@cache_group.command("prune")
@_CACHE_DIR
@click.option("--kind", "kinds", multiple=True, help="only entries of this kind (repeatable; see `cache show`)")
@click.option("--older-than", type=click.FloatRange(0.0), default=None, metavar="DAYS",
              help="only entries last written more than DAYS days ago")
@click.option("--all", "everything", is_flag=True, help="every entry (needed when neither --kind nor --older-than)")
@click.option("--dry-run", is_flag=True, help="count what would be deleted; delete nothing")
def cache_prune(cache_dir, kinds, older_than, everything: bool, dry_run: bool) -> None:
    """Delete cache entries (and left-over temporary and lock files). Do not prune while a run uses the cache."""
    from privbench.cache import Cache

    if not (kinds or older_than is not None or everything):
        raise PrivbenchError("cache prune: say what to delete: --kind KIND, --older-than DAYS or --all")
    cache = Cache(cache_dir)
    files, freed, skipped = cache.prune(set(kinds) if kinds else None,
                                        older_than * 86400 if older_than is not None else None, dry_run)
    verb = "would delete" if dry_run else "deleted"
    held = f"; skipped {skipped} in use by a running privbench (held locks, writes in progress)" if skipped else ""
    click.echo(f"{verb} {files} files ({freed / 1e6:.1f} MB) from {cache.root}{held}")


INTERRUPTED = ("privbench: interrupted; finished grid points are in the cache, so the same command resumes where "
               "this one stopped")


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's or ``kill``'s stop) ends the run like Ctrl-C: a message, exit status 130, the
    finished points kept in the cache. Only from the main thread (where Python delivers signals)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns user errors into one line on stderr and exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if argv is None:  # the installed command, not an in-process call (tests keep their own handlers)
        _stop_on_sigterm()
    if not debug:
        from privbench.progress import LIBRARY_WARNINGS_ENV, hide_library_warnings

        os.environ.setdefault(LIBRARY_WARNINGS_ENV, "1")
        hide_library_warnings()
    try:
        cli.main(args=args, prog_name="privbench", standalone_mode=False)
    except PrivbenchError as exc:
        if debug:
            raise
        # one line whatever the message holds (an embedded exception text can span lines)
        click.echo(f"privbench: error: {' '.join(str(exc).split()) or type(exc).__name__}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C / SIGTERM into Abort
        click.echo(INTERRUPTED, err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"privbench: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code or 2)
    except OSError as exc:
        # The machine, not privbench: a full disk or a folder that turned read-only mid-run (e.g. while the cache
        # is written). Other OSErrors may be bugs and keep their traceback.
        if debug or exc.errno not in {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}:
            raise
        from privbench.cache import disk_problem

        click.echo(f"privbench: error: {disk_problem(exc)}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
