"""WGAN-GP training on images of several sizes (--preprocess none)."""
from cyclegan.training.trainer import Trainer

from conftest import tiny_config, write_images


def test_wgangp_trains_images_of_several_sizes_once_the_image_history_is_full(tmp_path):
    # Each domain holds two sizes; with a history of 2 images the discriminators soon see an
    # older generated image of another size than the real one its gradient penalty pairs it with.
    root = tmp_path / "mixed"
    for index, size in enumerate([(40, 36), (36, 44)]):
        write_images(root / "trainA", 1, size=size, seed=index, prefix=f"a{index}")
        write_images(root / "trainB", 1, size=size, seed=10 + index, prefix=f"b{index}")
    config = tiny_config(root, tmp_path / "runs", max_iters=12)
    config.data.preprocess = "none"
    config.loss.gan_mode, config.loss.pool_size = "wgangp", 2
    config.optim.epochs = config.optim.epochs_decay = 6  # 2 iterations an epoch
    trainer = Trainer(config)
    result = trainer.train()
    assert (result.iteration, result.nonfinite_skipped) == (12, 0)
    assert len(trainer.pool_a.images) == len(trainer.pool_b.images) == 2  # full, so drawing from its history
