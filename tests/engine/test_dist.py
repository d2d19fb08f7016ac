"""Two gloo processes under torchrun on CPU: DDP keeps the parameters identical; `-m rtmprune train` works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from rtmprune.engine.config import config_to_dict

pytestmark = pytest.mark.dist

WORKER = textwrap.dedent(
    """
    import sys, torch
    from rtmprune.engine import dist
    from rtmprune.engine.config import load_config
    from rtmprune.engine.recipes import build_from_config
    from rtmprune.engine.train import fit

    cfg = load_config(sys.argv[1])
    info = dist.setup("cpu")
    model = build_from_config(cfg)
    result = fit(model, cfg)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.save({"params": params, "iteration": result.iteration, "world": info.world_size},
               f"{sys.argv[2]}/rank{info.rank}.pt")
    dist.cleanup()
    """
)


def _torchrun(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_ddp_gloo_keeps_ranks_identical(tiny_set, tiny_config, tmp_path):
    cfg = tiny_config(tiny_set, tmp_path / "run", max_iters=3, ema=False)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    (tmp_path / "worker.py").write_text(WORKER)
    _torchrun(["worker.py", str(config), str(tmp_path)], tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["iteration"] == r1["iteration"] == 3
    for key, value in r0["params"].items():
        assert torch.equal(value, r1["params"][key]), f"{key} differs between ranks"
    start = torch.load(tmp_path / "run" / "last.pth", weights_only=True)  # written by rank 0 only
    assert start["iteration"] == 3 and len(start["rng"]) == 2


def test_torchrun_module_cli(tiny_set, tiny_config, tmp_path):
    cfg = tiny_config(tiny_set, tmp_path / "cli", max_iters=2)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    done = _torchrun(["-m", "rtmprune", "train", str(config), "--set", "train.seed=7"], tmp_path)
    assert "2 iterations (max_iters)" in done.stdout
    assert torch.load(tmp_path / "cli" / "last.pth", weights_only=True)["config"]["train"]["seed"] == 7
