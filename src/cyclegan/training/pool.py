"""The history of generated images shown to the discriminators (Shrivastava et al. 2017)."""
from __future__ import annotations

import random

import torch


class ImagePool:
    """Keeps up to `size` previously generated images.

    `query(images)` returns, for each image, either the image itself or (with probability 1/2,
    once the pool is full) a stored older image, which the new one then replaces. This is the
    paper's "history of 50 generated images" (section 4). Size 0 returns the input unchanged.

    The pool owns its random generator and both go into checkpoints, so a resumed run draws
    exactly what an uninterrupted one would have.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self._random = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        chosen = []
        for image in images.detach():
            image = image.unsqueeze(0)
            slot, returns_stored = self.choose(len(self.images))
            if slot is None:
                chosen.append(image)
            elif returns_stored:
                chosen.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                self.images.append(image.clone())
                chosen.append(image)
        return torch.cat(chosen, 0)

    def choose(self, filled: int) -> tuple[int | None, bool]:
        """The rule of `query` for one new image, given how many are stored: (slot, returns_stored).
        While the pool fills, the image goes into the next slot and is returned itself; once full,
        with probability 1/2 it replaces a random slot's image, which is returned instead (True),
        else it is returned and not kept (slot None). Draws from the pool's own random stream, so a
        captured training step (training.captured_step) that applies the choice on the GPU draws
        what `query` would."""
        if filled < self.size:
            return filled, False
        if self._random.uniform(0, 1) > 0.5:
            return self._random.randint(0, self.size - 1), True
        return None, False

    def snapshot(self) -> tuple:
        """What `restore` needs to undo the queries made since: cheap (the list of stored images is
        copied, not the images, which `query` replaces rather than modifies)."""
        return list(self.images), self._random.getstate()

    def restore(self, snapshot: tuple) -> None:
        images, random_state = snapshot
        self.images = list(images)
        self._random.setstate(random_state)

    def state_dict(self) -> dict:
        return {
            "size": self.size,
            "images": [image.cpu() for image in self.images],
            "random_state": _random_state_to_tensor(self._random.getstate()),
        }

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.images = [image.to(device) for image in state["images"]]
        self._random.setstate(_random_state_from_tensor(state["random_state"]))


# random.Random's state is a tuple of Python ints; stored as a tensor so that checkpoints load with
# torch.load(weights_only=True).
def _random_state_to_tensor(state: tuple) -> torch.Tensor:
    version, internal, gauss = state
    gauss_code = -1 if gauss is None else 0  # random.uniform/randint never leave a cached gauss
    return torch.tensor([version, *internal, gauss_code], dtype=torch.int64)


def _random_state_from_tensor(tensor: torch.Tensor) -> tuple:
    values = [int(v) for v in tensor.tolist()]
    return (values[0], tuple(values[1:-1]), None)
