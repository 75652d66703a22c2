"""Run under torchrun by tests/test_distributed.py: trains a few steps of a tiny model (CycleGAN, or
the --model given as a sixth argument) and reports, from rank 0, every rank's parameter checksum and
the logged losses of each step."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_config  # noqa: E402

from cyclegan.training.trainer import Trainer  # noqa: E402

data, runs, out, batch_size, steps = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model = sys.argv[6] if len(sys.argv) > 6 else "cyclegan"
config = tiny_config(data, runs, model)
config.data.batch_size, config.loss.pool_size, config.run.device = batch_size, 0, "cpu"
trainer = Trainer(config)
losses = []
loader = iter(trainer._loader())
for _ in range(steps):
    batch = next(loader)
    losses.append(trainer.train_step(batch["A"], batch["B"]))
    trainer.iteration += 1
checksum = torch.stack([p.detach().double().sum() for p in trainer.model.parameters()]).tolist()
# Which networks the checksums cover: each is reached from the model (for CUT: D, G and the projector heads).
networks = sorted({name.split(".")[1] for name, _ in trainer.model.named_parameters()})
projector = getattr(trainer.model, "projector", None)
projector_parameters = sum(p.numel() for p in projector.parameters()) if projector is not None else 0
world = trainer.dist.world_size
checksums = trainer.dist.gather(checksum)
shards = trainer.dist.gather(sorted(trainer.dist.shard(list(range(len(trainer.dataset)))).tolist()
                                    if world > 1 else []))
if trainer.dist.is_main:
    out.write_text(json.dumps({"world": world, "losses": losses, "checksums": checksums, "shards": shards,
                               "iterations_per_epoch": trainer.iterations_per_epoch, "networks": networks,
                               "projector_parameters": projector_parameters}))
trainer.dist.close()
