"""Options shared by the config-driven commands (train, test, prune, finetune, deploy)."""

from __future__ import annotations

import argparse

__all__ = ["add_overrides", "add_resume"]


def add_overrides(
    parser: argparse.ArgumentParser, example: str = "train.max_epochs=10 data.batch_size=32"
) -> None:
    """`--set KEY=VALUE ...`: one or more pairs, repeatable; values are parsed as YAML."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"override config keys, e.g. --set {example} (YAML values; repeatable)",
    )


def add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue exactly where work_dir/last.pth left")
