"""`ray-unlearn`: one entry point, subcommands. Argument parsing and error reporting only.

A user's mistake (UnlearnError) is printed in one or two lines with exit
code 2 and no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import __version__
from .errors import UnlearnError, printable

EPILOG = {
    "main": """examples:
  ray-unlearn tune search_spaces/digits_mixunlearn.yaml           # a sweep on the embedded digits data
  ray-unlearn prepare search_spaces/digits_amun.yaml              # train + cache the reference models
  ray-unlearn run search_spaces/digits_amun.yaml --set fixed.lr=0.02   # fixing a searched value
  ray-unlearn best digits-mixunlearn --top 5 --export best.yaml
  ray-unlearn methods amun
  ray-unlearn ui
""",
    "prepare": """examples:
  ray-unlearn prepare search_spaces/digits_amun.yaml
  ray-unlearn prepare my.yaml --set data.dataset=mnist --data-dir /data --set model.arch=mlp
""",
    "run": """One unlearning run with fixed hyperparameters, no Ray: the file's `fixed:` values, the
`start:` value of each searched hyperparameter (its method default where it has none), the method
defaults for the rest. Prints metrics and logs one MLflow run (kind run: `best` does not rank it).

examples:
  ray-unlearn run search_spaces/digits_amun.yaml
  ray-unlearn run search_spaces/digits_salun.yaml --set search.lr.start=0.05
  ray-unlearn run best.yaml                        # a config written by `best --export`
""",
    "tune": """The sweep: Ray Tune schedules trials, Optuna samples `search:`, MLflow records.

examples:
  ray-unlearn tune search_spaces/digits_mixunlearn.yaml
  ray-unlearn tune search_spaces/mnist1d_amun.yaml --num-samples 32 --set tune.repeats=3
  ray-unlearn tune search_spaces/digits_amun.yaml --recheck 3        # the 3 best re-run on tune.recheck.seeds
  ray-unlearn tune cifar.yaml --address auto --storage s3://bucket/sweeps --tracking-uri http://mlflow:5000
  ray-unlearn tune search_spaces/digits_amun.yaml --resume            # after an interruption
  ray-unlearn tune search_spaces/digits_amun.yaml --resume --num-samples 32   # extend the newest sweep to 32 trials

Ctrl-C, SIGTERM or SIGHUP stop the sweep: running trials end KILLED (status interrupted), the
exit code is 130 / 143 / 129, and the command prints how to resume it; a second signal exits at once.
""",
    "best": """Rank finished trials of an MLflow experiment (name, or a config file naming it).

examples:
  ray-unlearn best digits-mixunlearn
  ray-unlearn best search_spaces/digits_amun.yaml --top 5 --metric avg_gap --method amun
  ray-unlearn best digits-amun --export best.yaml && ray-unlearn run best.yaml
""",
    "audit": """Audit the K best configurations of an experiment's newest sweep (docs/metrics.md#the-audit): per
configuration N unlearned models on method seeds the sweep never used against N retrained models,
the NeurIPS 2023 challenge's forgetting quality F (beside its ceiling at this N: the retrain recipe
audited the same way), its final score and a per-example LiRA AUC. Population models are trained as
Ray tasks and cached, so a second audit trains only what is new. Metrics go onto the audited runs.

examples:
  ray-unlearn audit search_spaces/mnist1d_amun.yaml                  # top 3, 32 models each
  ray-unlearn audit digits-mixunlearn --top 5 --models 16
  ray-unlearn audit search_spaces/mnist1d_salun.yaml --forget-seeds 1,2,3  # plus held-out confirmation
  ray-unlearn tune search_spaces/mnist1d_salun.yaml --audit 3         # audit at the end of the sweep
  ray-unlearn best digits-mixunlearn --metric audit_score
""",
    "methods": """examples:
  ray-unlearn methods
  ray-unlearn methods amun
""",
    "ui": """Start the MLflow UI on the store (bound to 127.0.0.1) and print a link to the runs table.

examples:
  ray-unlearn ui
  ray-unlearn ui search_spaces/digits_mixunlearn.yaml --port 5001   # opens on its newest sweep
""",
}


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        p.add_argument("config", help="experiment YAML file (see search_spaces/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a YAML key, e.g. --set train.epochs=5 (repeatable)")
        p.add_argument("--data-dir", help="dataset directory (same as --set data.root=DIR)")
        p.add_argument("--cache-dir", help="reference cache (default: $RAY_UNLEARN_CACHE, else tune's <--storage path>/cache, "
                                           "else ~/.cache/ray_unlearn)")
        p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
        p.add_argument("--threads", type=int, help="torch CPU threads of this process (default 1: fastest for small nets)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the YAML's tracking.uri, else sqlite:///mlflow.db)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ray-unlearn",
        description="Tune machine-unlearning methods at scale: Ray Tune + Optuna + MLflow.",
        epilog=EPILOG["main"],
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("prepare", help="train and cache the original and retrain reference models",
                       epilog=EPILOG["prepare"], formatter_class=fmt)
    _common(p)
    p = sub.add_parser("run", help="one unlearning run with fixed hyperparameters, no Ray",
                       description=EPILOG["run"].split("\n\n")[0], epilog=EPILOG["run"].split("\n\n", 1)[1], formatter_class=fmt)
    _common(p)
    p.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    p = sub.add_parser("tune", help="the sweep", description=EPILOG["tune"].split("\n\n")[0],
                       epilog=EPILOG["tune"].split("\n\n", 1)[1], formatter_class=fmt)
    _common(p)
    p.add_argument("--num-samples", type=int, help="number of trials (overrides tune.num_samples)")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: start a local instance)")
    p.add_argument("--storage", help="Ray Tune storage path or URI (default: ./ray_results); a path (e.g. NFS) also holds "
                                     "the reference cache, in <path>/cache, unless --cache-dir or $RAY_UNLEARN_CACHE says otherwise")
    p.add_argument("--name", help="sweep name (default: <experiment>-<time>; with --resume: the newest sweep)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep: its finished trials (in MLflow) are "
                                                         "kept and never run again, the rest run; with --num-samples N "
                                                         "above its count, extend it to N trials")
    p.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                   help="how long --address may take to answer before the command gives up (default 30)")
    p.add_argument("--recheck", type=int, metavar="K", help="re-run the K best configurations on tune.recheck.seeds after the "
                                                            "sweep and rank by the mean score over all seeds "
                                                            "(sets tune.recheck.top; 0: off)")
    p.add_argument("--audit", type=int, default=0, metavar="K", help="audit the K best configurations when the sweep ends")
    p.add_argument("--audit-models", type=int, default=32, metavar="N", help="models per audit population (default 32)")
    p = sub.add_parser("best", help="rank finished trials from MLflow; export the winner",
                       description=EPILOG["best"].split("\n\n")[0], epilog=EPILOG["best"].split("\n\n", 1)[1], formatter_class=fmt)
    p.add_argument("experiment", help="MLflow experiment name, or an experiment YAML file")
    _common(p, config=False)
    p.add_argument("--top", type=int, default=10, help="how many to show (default 10)")
    p.add_argument("--metric", help="metric to rank by (default: recheck_score_mean where the sweep re-checked its best, "
                                    "else score)")
    p.add_argument("--method", help="only runs of this method")
    p.add_argument("--export", metavar="FILE", help="write the best run's config as a runnable YAML")
    p = sub.add_parser("audit", help="many-model audit of a sweep's best configurations",
                       description=EPILOG["audit"].split("\n\n")[0], epilog=EPILOG["audit"].split("\n\n", 1)[1], formatter_class=fmt)
    p.add_argument("experiment", help="MLflow experiment name, or an experiment YAML file")
    _common(p, config=False)
    p.add_argument("--top", type=int, default=3, help="how many of the best configurations (default 3)")
    p.add_argument("--models", type=int, default=32, help="models per population, N (default 32; the challenge used 512)")
    p.add_argument("--forget-seeds", metavar="S,S,...", help="also re-run each configuration on these held-out seeds "
                                                             "(data split, forget set, models, method) and report test-split "
                                                             "mean ± spread, e.g. 1,2,3")
    p.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    p.add_argument("--cache-dir", help="reference and population cache (default: $RAY_UNLEARN_CACHE, else ~/.cache/ray_unlearn)")
    p.add_argument("--device", help="torch device of the driver (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads of this process (default 1)")
    p = sub.add_parser("methods", help="list methods, their hyperparameters, defaults and ranges",
                       epilog=EPILOG["methods"], formatter_class=fmt)
    p.add_argument("name", nargs="?", help="show one method in detail")
    p = sub.add_parser("ui", help="start the MLflow UI on the store, bound to 127.0.0.1",
                       description=EPILOG["ui"].split("\n\n")[0], epilog=EPILOG["ui"].split("\n\n", 1)[1], formatter_class=fmt)
    p.add_argument("config", nargs="?", help="experiment YAML (for its tracking.uri and experiment)")
    _common(p, config=False)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from . import commands, interrupt

    interrupt.install()  # SIGINT, SIGTERM, SIGHUP: exit 128 + signal, the sweep stopped gracefully (interrupt.py)
    try:
        return getattr(commands, f"cmd_{args.command}")(args) or 0
    except UnlearnError as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return err.exit_code
    except interrupt.Interrupted as stop:
        print(f"interrupted ({stop})", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
