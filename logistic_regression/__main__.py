"""`python -m logistic_regression COMMAND`: train, reproduce a run, inspect runs.

    python -m logistic_regression train [hydra overrides]
    python -m logistic_regression sweep "model.C=0.1,1 model.penalty=l1,l2" [more overrides]
    python -m logistic_regression reproduce RUN_ID [--tolerance 1e-9] [--env recorded]
    python -m logistic_regression inspect RUN_ID
    python -m logistic_regression inspect --experiment NAME
    python -m logistic_regression baseline RUN_ID [--allow-reproduction]
    python -m logistic_regression compare RUN_A RUN_B|--baseline [--all] [--html FILE]
    python -m logistic_regression import FILE.csv|FILE.xlsx [--experiment NAME]
    python -m logistic_regression sync [--all] [storage overrides, e.g. storage.spool_dir=...]
    python -m logistic_regression best --metric cv_roc_auc_mean [--experiment NAME]
                                       [--filter "params.model.penalty = 'l2'"] [--top N]
                                       [--include-reproductions]

The tracking store is MLFLOW_TRACKING_URI when set, else `tracking.uri` from conf/.
Every command follows one error policy (cli.py): a user error is one line and exit
code 2, anything else a bug reported in one line with exit code 1. Everything a command
prints or logs goes through the kit's one redaction (`uris.install`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from logistic_regression import cli, environment
from logistic_regression.config import compose_config
from logistic_regression.errors import KitError
from logistic_regression.uris import absolute_tracking_uri, install, redact

STORE_HELP = "tracking store (default: MLFLOW_TRACKING_URI, else tracking.uri from conf/: sqlite:///mlflow.db)"

SWEEP_HELP = """\
usage: python -m logistic_regression sweep "SWEEP OVERRIDES" [more overrides ...]
       mlflow run . -e sweep -P sweep="SWEEP OVERRIDES" [-P resume=PARENT_RUN_ID]

Every combination of the sweep overrides as a child run of one parent run, e.g.
  python -m logistic_regression sweep "model.C=0.01,0.1,1,10 model.penalty=l1,l2" \\
      model.solver=liblinear
A comma list sweeps a key; any other key=value holds for every configuration.
  hydra/launcher=joblib hydra.launcher.n_jobs=2   configurations in parallel
  sweep.metric=cv_f1_mean sweep.direction=maximize  how the best child is chosen
  sweep.resume=PARENT_RUN_ID   resume that sweep (give its own overrides): finished
                               configurations are reused, the others run
The parent gets the best child's id, the counts and sweep_summary.html. The same as
`python -m logistic_regression.train -m SWEEP OVERRIDES`; every key and its default:
`python -m logistic_regression.train --cfg job`; more in docs/running.md.
"""


def _use_tracking_store(uri: str | None) -> None:
    """Use `--tracking-uri`, else `tracking.uri` (MLFLOW_TRACKING_URI when set, conf/),
    and refuse a store that does not answer within `tracking.timeout_s`."""
    from logistic_regression.tracking import runs, store

    tracking = compose_config([]).tracking
    chosen = uri or tracking.uri
    runs.use_uri(chosen)
    store.check(absolute_tracking_uri(chosen), tracking.timeout_s)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors follow the kit's policy: one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise KitError(f"{message} (see {self.prog} --help)")


def _warn_abandoned() -> None:
    """One line on stderr when runs of this store lost their process (see spool.py)."""
    import mlflow

    from logistic_regression.storage.abandoned import abandoned_notice
    from logistic_regression.storage.spool import spool_root

    line = abandoned_notice(spool_root(compose_config([]).storage), mlflow.get_tracking_uri())
    if line:
        print(line, file=sys.stderr)


def _yes(text: str) -> bool:
    """`true`/`false` (and yes/no, 1/0, empty for false) as a flag's value."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="python -m logistic_regression", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train one run (Hydra overrides follow)", add_help=False)
    commands.add_parser(
        "sweep", help="a sweep: one string of Hydra sweep overrides", add_help=False
    )
    reproduce = commands.add_parser("reproduce", help="re-run a recorded run and compare")
    reproduce.add_argument("run_id")
    reproduce.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="allowed absolute difference per metric (default: exact)",
    )
    reproduce.add_argument(
        "--env",
        choices=("current", "recorded"),
        default="current",
        help="re-run in this environment (current, the default) or in the one the run "
        "recorded, rebuilt with uv and cached (recorded)",
    )
    reproduce.add_argument(
        "--python",
        default="",
        metavar="X.Y",
        help="with --env recorded: this Python instead of the recorded version",
    )
    reproduce.add_argument(
        "--env-cache",
        type=Path,
        metavar="DIR",
        help="with --env recorded: where rebuilt environments are kept (default: "
        "$XDG_CACHE_HOME/logistic-regression-kit/environments, else ~/.cache/...; "
        "deleting it clears the cache)",
    )
    reproduce.add_argument("--tracking-uri", help=STORE_HELP)
    reproduce.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="URL",
        help="a repository whose code you trust to run, besides this checkout's own and "
        "its remotes (repeatable; a space-separated list is split)",
    )
    sync = commands.add_parser("sync", help="upload artifacts left in the spool")
    sync.add_argument(
        "--all",
        action="store_true",
        help="every tracking store's runs in the spool, each against its own store "
        "(default: only this store's, MLFLOW_TRACKING_URI else tracking.uri)",
    )
    sync.add_argument("overrides", nargs="*", help="Hydra overrides (storage.*, tracking.uri)")
    importing = commands.add_parser("import", help="past results from a CSV/.xlsx as runs")
    importing.add_argument("file")
    importing.add_argument("--experiment", default="imported", help="default: imported")
    importing.add_argument("--tracking-uri", help=STORE_HELP)
    baseline = commands.add_parser("baseline", help="make a run its experiment's baseline")
    baseline.add_argument("run_id")
    baseline.add_argument(
        "--allow-reproduction",
        action="store_true",
        help="mark a run made by `reproduce` (refused by default: mark its original)",
    )
    baseline.add_argument("--tracking-uri", help=STORE_HELP)
    compare = commands.add_parser("compare", help="what differs between two runs")
    compare.add_argument("run_a")
    compare.add_argument("run_b", nargs="?", default="", help="(empty: none, with --baseline)")
    for flag, said in (
        ("--baseline", "compare RUN_A with its experiment's baseline (instead of RUN_B)"),
        ("--all", "show every row, not only what differs"),
    ):  # `--flag`, or `--flag=true|false` (how the MLproject entry passes it)
        compare.add_argument(flag, nargs="?", const=True, default=False, type=_yes, help=said)
    compare.add_argument("--html", default="", metavar="FILE", help="also write an HTML page")
    compare.add_argument("--tracking-uri", help=STORE_HELP)
    best = commands.add_parser("best", help="the best finished runs by a metric")
    best.add_argument("--metric", default="cv_roc_auc_mean")
    best.add_argument("--experiment", help="default: tracking.experiment_name from conf/")
    best.add_argument(
        "--filter", default="", help="MLflow search filter, e.g. \"params.model.penalty = 'l2'\""
    )
    best.add_argument("--top", type=int, default=5)
    best.add_argument(
        "--include-reproductions",
        action="store_true",
        help="also rank runs made by `reproduce` (left out by default)",
    )
    best.add_argument("--tracking-uri", help=STORE_HELP)
    inspect = commands.add_parser("inspect", help="show a run as a tree, or an experiment's runs")
    inspect.add_argument("run_id", nargs="?")
    inspect.add_argument("--experiment", help="list the runs of this experiment instead")
    inspect.add_argument("--tracking-uri", help=STORE_HELP)
    return top


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    environment.hold_thread_pools()  # before numpy loads: the worker forks single-threaded
    install()
    if args_list[:1] == ["train"]:
        from logistic_regression import train

        return train.main(args_list[1:])
    if args_list[:1] == ["sweep"]:  # `mlflow run . -e sweep -P sweep="..."`: one string
        if {"-h", "--help"} & set(args_list[1:]):
            print(SWEEP_HELP, end="")
            return 0
        from logistic_regression import train

        return train.main(["-m", *[part for arg in args_list[1:] for part in shlex.split(arg)]])
    environment.quiet_mlflow_downloads()  # reproduce and inspect read a run's files
    with environment.private_files():
        code = cli.guarded(lambda: command(parser().parse_args(args_list)))
    if code > 128 and argv is None:
        stop_now(code)
    return code


def stop_now(code: int) -> NoReturn:
    """A command stopped by a signal has said so and recorded what it could; threads still
    blocked in the network (an upload to a store that stopped answering, which boto3
    would wait minutes for) must not keep the process alive. What they were doing is not
    recorded as done, so its files stay in the spool for the next `sync`."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a reader that went away (SIGPIPE)
            stream.flush()
    os._exit(code)


def command(args: argparse.Namespace) -> int:
    if args.command == "sync":
        from logistic_regression.storage.sync import sync

        # `mlflow run -e sync` passes its spool_dir parameter even when it was not given:
        # empty, it leaves the setting to conf/ ($LOGREG_SPOOL_DIR, else the default).
        given = [
            o for o in args.overrides if o not in ("storage.spool_dir=", "storage.spool_dir=''")
        ]
        return sync(compose_config(given), every_store=args.all)
    if args.command == "reproduce" and not 0 <= args.tolerance < math.inf:
        raise KitError(
            f"--tolerance={args.tolerance} is not allowed; it must be a finite number >= 0"
        )
    if args.command == "reproduce" and args.env == "current" and (args.python or args.env_cache):
        raise KitError(
            "--python and --env-cache choose the rebuilt environment: add --env recorded"
        )
    _use_tracking_store(args.tracking_uri)
    if args.command == "inspect":
        _warn_abandoned()
    if args.command == "reproduce":
        from logistic_regression.reproduce import RerunIn, reproduce

        trusted = tuple(url for given in args.trust for url in given.split())
        rerun_in = RerunIn(args.env == "recorded", args.python, args.env_cache)
        return reproduce(args.run_id, args.tolerance, trusted, rerun_in)
    if args.command == "import":
        from logistic_regression.importer import import_file

        added, present = import_file(Path(args.file), args.experiment)
        print(
            f"imported {added} runs into experiment {args.experiment!r}"
            + (f" ({present} rows were already imported)" if present else "")
        )
        return 0
    if args.command == "baseline":
        from logistic_regression.tracking.baselines import mark_baseline

        experiment = mark_baseline(args.run_id, args.allow_reproduction)
        print(f"run {args.run_id} is now the baseline of experiment {experiment!r}")
        return 0
    if args.command == "compare":
        return _compare(args.run_a, args.run_b, args.baseline, args.all, args.html)
    from logistic_regression import inspection

    if args.command == "best":
        experiment = args.experiment or compose_config([]).tracking.experiment_name
        print(
            inspection.best_runs(
                args.metric,
                experiment,
                args.filter,
                args.top,
                include_reproductions=args.include_reproductions,
            )
        )
        return 0
    if bool(args.run_id) == bool(args.experiment):
        raise KitError("inspect takes a RUN_ID or --experiment NAME (one of the two)")
    print(
        inspection.run_tree(args.run_id)
        if args.run_id
        else inspection.experiment_table(args.experiment)
    )
    return 0


def _compare(run_a: str, run_b: str, baseline: bool, show_all: bool, html: str) -> int:
    """Print what differs between two runs (and write the HTML page). Under `mlflow run
    -e compare`, the run it made is named after the two runs and keeps the text and the
    page as its artifacts (comparison.txt, comparison.html)."""
    from mlflow.tracking import MlflowClient

    from logistic_regression import comparison, comparison_page, run_facts
    from logistic_regression.tracking import runs

    if bool(run_b) == baseline:
        raise KitError("compare takes RUN_A and either RUN_B or --baseline (one of the two)")
    if baseline:
        run_a, run_b = run_facts.baseline_for(MlflowClient(), run_a), run_a  # B - baseline
    result = comparison.compare_runs(run_a, run_b)
    said = comparison_page.text(result, show_all)
    print(said)
    own = runs.run_id_from_mlflow_run()
    page = redact(comparison_page.html(result, show_all)) if html or own else ""
    if html:
        try:
            Path(html).write_text(page, encoding="utf-8")
        except OSError as exc:
            raise KitError(f"--html {html}: cannot write it: {exc.strerror or exc}") from None
        print(f"HTML page: {Path(html).resolve()}")
    if own:
        runs.rename(own, f"compare {run_a[:8]} {run_b[:8]}")
        runs.log_tags(own, {"kit.compare.a": run_a, "kit.compare.b": run_b})
        runs.log_text(own, said + "\n", "comparison.txt")
        runs.log_text(own, page, "comparison.html")
    return 0


if __name__ == "__main__":
    sys.exit(cli.exit_without_teardown(main))
