"""One rank of test_memory_hook's 2-process gloo run (CPU).

Usage (env RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set):
    python tests/engine/dist_memory_worker.py WORK_DIR KEEP_MIB
Rank 1 keeps a KEEP_MIB buffer from iteration 3 on; rank 0 allocates nothing.

mmengine 0.11's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` even
for gloo, which fails without CUDA, and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules. So the worker
initializes the gloo process group itself (the Runner then skips
``init_dist``) and wraps with ``device_ids=None``.
"""
import gc
import os
import os.path as osp
import sys

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.engine.memory_hook_toy import ToyModel, train_toy
from tools.train import close_process_group

if __name__ == '__main__':
    work_dir, keep_mib = sys.argv[1], int(sys.argv[2])
    keep = {3: keep_mib} if int(os.environ['RANK']) == 1 else {}
    dist.init_process_group(backend='gloo')  # env:// from RANK, WORLD_SIZE..
    train_toy(
        work_dir,
        ToyModel(keep=keep),
        max_iters=6,
        interval=2,
        launcher='pytorch',
        model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=None))
    close_process_group()  # as tools/train.py ends a finished run: wait for both ranks, then tear down
    # the DDP model holds the gloo group: it must be gone by now, not left for the interpreter's exit
    print('DDP models alive after teardown:', sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
