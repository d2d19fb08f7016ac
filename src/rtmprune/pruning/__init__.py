"""Generic GroupFisher channel pruning for PyTorch models (knows nothing of RTMPose).

channels.py (shared types: union-find, members, channel graph) <- rules_shape.py, rules_modules.py,
rules_methods.py, rules_functions.py (op rule tables) <- graph.py (fx trace + propagation) -> units.py
(channel units) + index.py (global ids, the fixed column) -> masks.py (soft masks) -> importance.py (Fisher)
-> cost.py (normalisers) -> schedule.py (what to prune) -> pruner.py (GroupFisherPruner) -> subnet.py
(export / apply / slim).
"""

from rtmprune.pruning.pruner import GroupFisherPruner, apply_subnet, slim_from_subnet
from rtmprune.pruning.subnet import SUBNET_FORMAT, read_subnet
from rtmprune.pruning.units import Unit, analyze_model

__all__ = ["GroupFisherPruner", "apply_subnet", "slim_from_subnet", "SUBNET_FORMAT", "read_subnet", "Unit",
           "analyze_model"]
