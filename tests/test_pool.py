"""The history of generated images (paper section 4)."""
import torch

from cyclegan.training.pool import ImagePool


def images(start, count):
    return torch.arange(start, start + count, dtype=torch.float32).view(count, 1, 1, 1)


def test_pool_returns_new_images_unchanged_until_it_is_full():
    pool = ImagePool(size=3, seed=0)
    assert torch.equal(pool.query(images(0, 2)), images(0, 2))
    assert torch.equal(pool.query(images(2, 1)), images(2, 1))
    assert [int(i) for i in torch.cat(pool.images).flatten()] == [0, 1, 2]


def test_full_pool_swaps_in_history_about_half_the_time_and_keeps_its_size():
    pool = ImagePool(size=50, seed=0)
    pool.query(images(0, 50))
    returned_old = 0
    for step in range(1000):
        new = images(1000 + step, 1)
        out = pool.query(new)
        if not torch.equal(out, new):
            returned_old += 1
            assert int(out) < 1000 + step  # an older image, and the new one took its slot
            assert any(int(stored) == 1000 + step for stored in pool.images)
        assert len(pool.images) == 50
    assert 430 <= returned_old <= 570


def test_size_zero_disables_the_pool():
    pool = ImagePool(size=0)
    batch = images(0, 4)
    assert pool.query(batch) is batch
    assert pool.images == []


def test_restored_pool_draws_exactly_what_the_original_would():
    original = ImagePool(size=5, seed=7)
    original.query(images(0, 5))
    restored = ImagePool(size=5, seed=999)
    restored.load_state_dict(original.state_dict())
    for step in range(20):
        assert torch.equal(original.query(images(100 + step, 1)), restored.query(images(100 + step, 1)))
