"""PyTorch data-parallel training: DistributedDataParallel over gloo (NCCL on GPUs), joined
from ``torchrun``'s environment contract (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``), which is also what bertbridge's local launcher sets."""

from __future__ import annotations

import datetime
import os
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

from bertbridge.core.distributed.collective import Collective
from bertbridge.core.errors import DistributedError


class TorchCollective(Collective):
    """A ``torch.distributed`` process group (gloo on CPUs, NCCL when each worker has a GPU)."""

    def __init__(self, timeout: int) -> None:
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
        self.device = torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")
        engine = "nccl" if self.device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(engine, init_method="env://", timeout=datetime.timedelta(seconds=timeout))
        except Exception as exc:  # DistStoreError, RuntimeError: a peer or the master never came
            raise DistributedError(
                f"rank {os.environ.get('RANK')}: could not join the {engine} process group at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within {timeout} s "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Check that every worker started and the port is open."
            ) from None
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def all_reduce_sum(self, values: Sequence[float]) -> np.ndarray:
        tensor = torch.tensor(np.asarray(values, dtype=np.float64), device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().numpy()

    def close(self) -> None:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
