"""Several processes with torchrun: one per GPU (or CPU, with gloo), many nodes.

`torchrun --nproc_per_node N -m cyclegan train ...` (or `... translate ...`) sets RANK, WORLD_SIZE,
LOCAL_RANK and LOCAL_WORLD_SIZE; `Distributed.from_environment()` reads them and joins the process group. In
training each rank trains on a disjoint shard of every epoch, DistributedDataParallel averages the
gradients, and only rank 0 writes logs, galleries and checkpoints; in translation each rank
translates its share of the files and rank 0 reports for all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this host, which share its CPU cores

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world_size=max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))

    def device(self, device: torch.device) -> torch.device:
        """Each rank of a node takes its own GPU."""
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's part of an epoch: every world_size-th index, the order padded by wrapping
        around so that all ranks take the same number of steps (or DDP would wait forever)."""
        if not self.enabled:
            return order
        padded_length = -(-len(order) // self.world_size) * self.world_size
        padded = np.concatenate([order, order[: padded_length - len(order)]])
        return padded[self.rank::self.world_size]

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average logged numbers over the ranks (every rank must call this)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[key] for key in keys], dtype=torch.float64, device=_reduce_device())
        dist.all_reduce(tensor)
        return {key: float(value) / self.world_size for key, value in zip(keys, tensor.tolist())}

    def gather(self, obj):
        """Every rank's `obj`, as a list indexed by rank (on every rank)."""
        if not self.enabled:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any (used so that a signal stops all ranks together)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1 if flag else 0], device=_reduce_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self, wait_for_others: bool = True) -> None:
        """Leave the process group. Normally every rank first waits for the others: a rank that tore
        its gloo connections down while another was still finishing made that one abort at exit
        (seen once in the two-rank test). After an error, `wait_for_others=False`: the others may
        never arrive."""
        if self.enabled and dist.is_initialized():
            if wait_for_others:
                dist.barrier()
            dist.destroy_process_group()


def _reduce_device() -> torch.device:
    """Where a tensor must be for the process group's collectives: NCCL reduces only tensors on
    this rank's GPU, gloo only CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
