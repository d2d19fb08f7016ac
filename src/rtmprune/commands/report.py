"""`rtmprune report WORK_DIR`: the seed's results table (markdown) and PNG plots of a pruning run.

Reads ``results.json`` (written by ``test`` and ``finetune``), ``prune_log.jsonl`` and ``fix_subnet.json``
from the work dir (see `rtmprune.deploy.report`); ``--with`` adds other work dirs' results (e.g. the
prune run's and the finetune run's side by side).
"""

from __future__ import annotations

import argparse

__all__ = ["HELP", "EXAMPLES", "add_arguments", "run"]

HELP = "markdown results table (AP, AP50, AP75, AR, AR50, GFLOPs, Params) and pruning plots of a work dir"
EXAMPLES = """
  rtmprune report work_dirs/group_fisher_act_finetune_rtmpose-s_coco-256x192
  rtmprune report work_dirs/prune --with work_dirs/finetune --reference rtmpose-s --divisor 16 --out report/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("work_dir", help="a prune or finetune work dir")
    parser.add_argument(
        "--with", dest="others", nargs="*", default=[], help="more work dirs whose results to add"
    )
    parser.add_argument("--out", help="write report.md and the PNGs here (default: the work dir)")
    parser.add_argument("--reference", help="model name whose FLOPs/params are 100 %% (default: the first)")
    parser.add_argument("--target", type=float, default=None, help="target FLOPs ratio line in the plot")
    parser.add_argument("--divisor", type=int, default=None, help="show widths padded to this divisor")


def run(args: argparse.Namespace) -> int:
    from rtmprune.deploy.report import load_results, write_report

    models = {}
    for folder in [args.work_dir, *args.others]:
        models.update(load_results(folder))
    reference = args.reference or next(iter(models), None)
    written = write_report(
        args.work_dir, args.out, reference=reference, target=args.target, divisor=args.divisor, models=models
    )
    print(written["markdown"].read_text(encoding="utf-8"), end="")
    for key in ("flops_plot", "widths_plot"):
        if key in written:
            print(f"wrote {written[key]}")
    missing = {"flops_plot": "prune_log.jsonl", "widths_plot": "fix_subnet.json"}
    for key, source in missing.items():
        if key not in written:
            print(f"no {source} in {args.work_dir}: {key.replace('_', ' ')} skipped")
    return 0
