"""Run `rlhf` under FSDP2 or DeepSpeed ZeRO on CPU processes over gloo (a test launcher).

accelerate enters FSDP and DeepSpeed only on GPUs: with ACCELERATE_USE_CPU=1 it makes a plain
MULTI_CPU (DDP over gloo) state and drops the plugins that `accelerate launch --config_file
configs/accelerate/<engine>.yaml` put in the environment. This shim, run in each launched process
in rlhf.cli's place, switches that state into the engine the environment asks for, exactly as
accelerate's GPU path would set it (distributed_type, the plugin, DeepSpeed's comm layer on the
existing process group), so that the project's own code runs under real FSDP2 sharding
(torch.distributed.fsdp.fully_shard) and real ZeRO partitioning. Nothing in src/ knows about it.

    accelerate launch --config_file configs/accelerate/zero3.yaml --num_processes 2 \\
        -m tests.recipes.cpu_engines sft model.path=... (with ACCELERATE_USE_CPU=1)
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ENGINE_FLAGS = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def install() -> None:
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def __init__(self, mixed_precision=None, cpu=False, dynamo_plugin=None, deepspeed_plugin=None,
                 fsdp_plugin=None, *args, **kwargs):  # fmt: skip
        fresh = not AcceleratorState._shared_state  # a new state, not a handle on the current one
        original(self, mixed_precision, cpu, dynamo_plugin, deepspeed_plugin, fsdp_plugin, *args, **kwargs)
        # a later Accelerator in the same process (several runs in one launch) finds the type
        # already switched in PartialState's shared state: switch its fresh state again
        switchable = (DistributedType.MULTI_CPU, DistributedType.DEEPSPEED, DistributedType.FSDP)
        if not fresh or self.distributed_type not in switchable:
            return
        if deepspeed_plugin is None and fsdp_plugin is None:  # a DDP run after a sharded one
            self.distributed_type = DistributedType.MULTI_CPU
        if deepspeed_plugin is not None:
            import deepspeed

            # DeepSpeed's CPU accelerator would JIT-compile a shared-memory allreduce with g++;
            # gloo's collectives are what the test needs (CUDA never builds it)
            importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
            deepspeed.init_distributed(dist_backend="gloo")  # wraps the existing process group
            self.distributed_type = DistributedType.DEEPSPEED
            self._mixed_precision = "no"  # as accelerate's DeepSpeed path: DeepSpeed's config holds it
            deepspeed_plugin.set_mixed_precision(mixed_precision or "no")
            # a tiny test model's tensors are all under DeepSpeed's persistence threshold (1e5
            # elements), which ZeRO-3 would keep whole; partition every one, as for a large model
            deepspeed_plugin.deepspeed_config.setdefault("zero_optimization", {})[
                "stage3_param_persistence_threshold"
            ] = 0
            deepspeed_plugin.select(_from_accelerator_state=True)
            self.deepspeed_plugins = deepspeed_plugin
        elif fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
        PartialState._shared_state["distributed_type"] = self.distributed_type

    AcceleratorState.__init__ = __init__


def local_state_dict(accelerator, model):
    """What a save that skips the gather writes: each process's own shards (ZeRO-3: empty
    tensors; FSDP2: the local rows of each DTensor). For the test that such a save fails loudly."""
    state = accelerator.unwrap_model(model).state_dict()
    out = {k: (v.to_local() if hasattr(v, "to_local") else v).detach().clone() for k, v in state.items()}
    return out if accelerator.is_main_process else None


def run_plan(plan: list[dict], results_path: Path) -> None:
    """Several runs in one launch (each launch costs tens of seconds of start-up): every entry is
    ``{"args": [verb, overrides...]}``, optionally with ``"break_gather": true`` (save without
    gathering; the run must raise SaveError) or ``"ddp": true`` (this run on plain DDP), or
    ``{"resume_copy": [src, dst, step]}`` (dst =
    src as if the run had died after its step-``step`` checkpoint)."""
    import torch.distributed as dist

    from rlhf import cli
    from rlhf.config import ConfigError, load_config
    from rlhf.recipes import saving

    outcomes = []
    rank = int(os.environ.get("RANK", "0"))
    for entry in plan:
        if "resume_copy" in entry:
            src, dst, step = entry["resume_copy"]
            if rank == 0:
                shutil.copytree(src, dst)
                shutil.rmtree(Path(dst) / "final")
                for ckpt in (Path(dst) / "checkpoints").glob("step-*"):
                    if int(ckpt.name.split("-")[1]) > step:
                        shutil.rmtree(ckpt)
                for cache in Path(dst).glob("*.safetensors"):  # DPO's reference cache: recompute
                    cache.unlink()
            dist.barrier()
            continue
        verb, *overrides = entry["args"]
        saved_env = {k: os.environ.get(k) for k in ENGINE_FLAGS}
        if entry.get("ddp"):  # this run on plain DDP, for comparison within the same launch
            os.environ.update(dict.fromkeys(ENGINE_FLAGS, "false"))
        recipe = importlib.import_module(cli.CONFIG_VERBS[verb][0])
        gather = saving.gather_state_dict
        if entry.get("break_gather"):
            saving.gather_state_dict = local_state_dict
        t0 = time.perf_counter()
        try:
            recipe.train(load_config(recipe.Config, None, overrides))
            outcomes.append({"args": entry["args"], "ok": True, "seconds": time.perf_counter() - t0})
        except (saving.SaveError, ConfigError) as err:
            outcomes.append({"args": entry["args"], "ok": False, "error": f"{type(err).__name__}: {err}"})
        finally:
            saving.gather_state_dict = gather
            for k, v in saved_env.items():
                if v is not None:
                    os.environ[k] = v
    results_path.with_name(f"{results_path.name}.rank{rank}").write_text(json.dumps(outcomes, indent=1))


def main() -> int:
    if not _flag("ACCELERATE_USE_CPU"):
        raise SystemExit("cpu_engines: set ACCELERATE_USE_CPU=1 (this shim is for CPU test runs only)")
    install()
    from rlhf import cli

    if sys.argv[1:2] == ["--plan"]:
        plan_path = Path(sys.argv[2])
        run_plan(json.loads(plan_path.read_text()), plan_path.with_suffix(".results"))
        cli._finish_processes()
        return 0
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    from rlhf.cli import exit_process

    exit_process(main())
