"""Command-line entry point: `rtmprune COMMAND ...`.

The four steps of the product, on one GPU, several GPUs or CPU::

    rtmprune prune    configs/group_fisher/group_fisher_act_prune_rtmpose-s_coco-256x192.yaml
    rtmprune finetune configs/group_fisher/group_fisher_act_finetune_rtmpose-s_coco-256x192.yaml
    rtmprune test     CONFIG work_dirs/.../best.pth
    rtmprune deploy   CONFIG work_dirs/.../best.pth --divisor 16 --out model.onnx

    torchrun --nproc_per_node 8 -m rtmprune prune CONFIG          # one node, 8 GPUs
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m rtmprune finetune CONFIG

Each command lives in `rtmprune/commands/<name>.py` with `HELP`, `EXAMPLES`, `add_arguments(parser)` and
`run(args) -> int`. Errors print as one line; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "COMMANDS", "error_line"]

# Command name -> module under rtmprune.commands. A literal table, imported lazily so that `--help` and
# light commands (evaluate, predict --onnx) do not pay for torch.
COMMANDS: dict[str, str] = {
    "info": "info",
    "predict": "predict",
    "synth": "synth",
    "evaluate": "evaluate",
    "train": "train",
    "test": "test",
    "analyze": "analyze",
    "prune": "prune",
    "finetune": "finetune",
    "deploy": "deploy",
    "quantize": "quantize",
    "bench": "bench",
    "report": "report",
    "demo": "demo",
}


def _load(name: str):
    return importlib.import_module(f"rtmprune.commands.{COMMANDS[name]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtmprune",
        description="GroupFisher channel pruning for RTMPose: prune, finetune, test, deploy.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `rtmprune COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if command is not None and name != command:
            sub.add_parser(name, help=argparse.SUPPRESS)
            continue
        module = _load(name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog="examples:\n" + module.EXAMPLES.strip("\n"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting make torch 10-20x slower whenever another process shares the
    # cores (measured: 10.2 s vs 0.56 s per RTMPose-S step); must be set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only build the chosen command's parser: the others' modules are never imported.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("rtmprune: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for users; the traceback with --debug
        if getattr(args, "debug", False):
            raise
        print(f"rtmprune {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 1


def error_line(err: BaseException) -> str:
    """What the user sees of an error: an ``RtmpruneError``'s message, else ``Type: message``, on one line.

    An error re-raised from a DataLoader worker carries the worker's traceback as its message; the line is
    then the one of the worker's own exception, the same as with ``num_workers: 0``.
    """
    from rtmprune.errors import RtmpruneError
    from rtmprune.tracebacks import unfold

    folded = unfold(str(err))
    if folded is None:
        name, message = type(err).__name__, " ".join(str(err).split())
        name = "" if isinstance(err, RtmpruneError) else name
    else:
        name, message = folded.type_name, folded.message
        name = "" if name == RtmpruneError.__name__ else name
    if not message:
        return name or RtmpruneError.__name__
    return f"{name}: {message}" if name else message
