"""The training loop: outputs of a run, exact resume, update rules, failure handling."""
import json
import math

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import checkpoint as ckpt
from cyclegan.cli import main
from cyclegan.errors import CheckpointError, ConfigError, DatasetError
from cyclegan.training.trainer import NonFiniteLossError, Trainer, epoch_order

from conftest import tiny_config, tiny_train_argv, write_images


def final_weights(run_dir):
    return load_file(str(ckpt.find_checkpoint(run_dir).weights))


@pytest.mark.parametrize("split", [4, 6])  # mid-epoch, and exactly at an epoch end (epochs are 6 iterations)
def test_n_iterations_then_resume_then_m_more_equals_n_plus_m_in_one_go(tiny_dataset, tmp_path, split):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "straight", "--max-iters", "9")) == 0
    assert main(tiny_train_argv(tiny_dataset, runs, "split", "--max-iters", str(split))) == 0
    assert main(["train", "--resume", str(runs / "split"), "--max-iters", "9", "--no-progress"]) == 0

    straight, resumed = final_weights(runs / "straight"), final_weights(runs / "split")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    state_straight = ckpt.load_training_state(ckpt.find_checkpoint(runs / "straight").state)
    state_resumed = ckpt.load_training_state(ckpt.find_checkpoint(runs / "split").state)
    assert (state_resumed["epoch"], state_resumed["iteration"], state_resumed["position"]) == (1, 9, 3)
    for a, b in zip(state_straight["ranks"][0]["pool_a"]["images"], state_resumed["ranks"][0]["pool_a"]["images"]):
        assert torch.equal(a, b)


def test_a_run_writes_config_log_plots_gallery_and_checkpoint(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs", max_iters=8)
    result = Trainer(config).train()
    run = tmp_path / "runs" / "tiny"
    assert result.iteration == 8 and result.epoch == 1
    assert json.loads((run / "config.json").read_text())["model"]["ngf"] == 8
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["epoch"] for r in records] == [1, 1, 1, 1, 1, 1, 2, 2]
    expected_keys = {"loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B",
                     "loss_D_A", "loss_D_B", "acc_D_A", "acc_D_B", "lr_G", "lr_D"}
    assert expected_keys <= set(records[0])
    assert all(0.0 <= r["acc_D_A"] <= 1.0 for r in records)
    for name in ("losses.png", "accuracy.png", "gallery/index.html"):
        assert (run / name).stat().st_size > 0
    assert sorted(p.name for p in (run / "gallery" / "epoch_0001").iterdir()) == [
        "AtoB_0.png", "AtoB_1.png", "BtoA_0.png", "BtoA_1.png"]
    html = (run / "gallery" / "index.html").read_text()
    assert "epoch_0002/AtoB_0.png" in html and "epoch_0001/BtoA_1.png" in html
    assert ckpt.find_checkpoint(run).weights.name == "iter_00000008.safetensors"


def test_checkpoint_holds_model_config_and_all_four_networks(tiny_dataset, tmp_path):
    Trainer(tiny_config(tiny_dataset, tmp_path / "runs", max_iters=2)).train()
    weights = ckpt.find_checkpoint(tmp_path / "runs" / "tiny").weights
    config = ckpt.load_model_config(weights)
    assert (config.net_g, config.ngf, config.ndf) == ("resnet_6blocks", 8, 8)
    prefixes = {key.split(".")[0] for key in load_file(str(weights))}
    assert prefixes == {"G_AB", "G_BA", "D_A", "D_B"}


def test_keep_last_keeps_only_the_newest_checkpoints(tiny_dataset, tmp_path):
    Trainer(tiny_config(tiny_dataset, tmp_path / "runs", max_iters=5, save_every=1, keep_last=2)).train()
    folder = tmp_path / "runs" / "tiny" / "checkpoints"
    assert sorted(p.name for p in folder.glob("iter_*")) == [
        "iter_00000004.safetensors", "iter_00000004.state.pt", "iter_00000005.safetensors", "iter_00000005.state.pt"]


def test_learning_rate_follows_the_linear_schedule_across_epochs(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs")  # 2 + 2 epochs of 6 iterations
    Trainer(config).train()
    records = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "log.jsonl").read_text().splitlines()
               if "lr_G" in line]
    by_epoch = {r["epoch"]: r["lr_G"] for r in records}
    assert by_epoch == {e: pytest.approx(2e-4 * (1 - max(0, e - 2) / 3)) for e in (1, 2, 3, 4)}


def test_generator_updates_only_every_d_steps_iterations(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs")
    config.loss.d_steps = 3
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    generator_before = [p.clone() for p in trainer.model.G_AB.parameters()]
    discriminator_before = [p.clone() for p in trainer.model.D_A.parameters()]
    values = trainer.train_step(batch["A"], batch["B"])
    trainer.iteration += 1
    assert "loss_G_AB" not in values and "loss_D_A" in values
    assert all(torch.equal(a, b) for a, b in zip(generator_before, trainer.model.G_AB.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(discriminator_before, trainer.model.D_A.parameters()))
    trainer.train_step(batch["A"], batch["B"])
    trainer.iteration += 1
    values = trainer.train_step(batch["A"], batch["B"])  # the third iteration updates G
    assert "loss_G_AB" in values
    assert not all(torch.equal(a, b) for a, b in zip(generator_before, trainer.model.G_AB.parameters()))


def test_d_ratio_divides_the_discriminator_loss(tiny_dataset, tmp_path):
    results = {}
    for ratio in (1.0, 4.0):
        config = tiny_config(tiny_dataset, tmp_path / f"runs{ratio}")
        config.loss.d_ratio, config.loss.pool_size = ratio, 0
        trainer = Trainer(config)
        batch = next(iter(trainer._loader()))
        with torch.random.fork_rng():
            results[ratio] = trainer.train_step(batch["A"], batch["B"])
    assert results[4.0]["loss_D_A"] == pytest.approx(results[1.0]["loss_D_A"] / 4, rel=1e-5)


def test_zero_identity_weight_drops_the_identity_terms(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs")
    config.loss.lambda_identity = 0
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    assert "loss_idt_A" not in trainer.train_step(batch["A"], batch["B"])


@pytest.mark.parametrize("gan_mode", ["vanilla", "wgangp", "hinge"])
def test_every_gan_mode_trains_with_finite_losses(tiny_dataset, tmp_path, gan_mode):
    config = tiny_config(tiny_dataset, tmp_path / "runs", max_iters=2)
    config.loss.gan_mode = gan_mode
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    values = trainer.train_step(batch["A"], batch["B"])
    assert all(math.isfinite(v) for v in values.values())


def test_a_non_finite_loss_stops_the_run_before_the_update_and_names_the_term(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs")
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    before = [p.clone() for p in trainer.model.parameters()]
    real_a = batch["A"].clone()
    real_a[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"iteration 1 .*loss_G_AB = nan"):
        trainer.train_step(real_a, batch["B"])
    # Neither the generators nor the discriminators were updated.
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))

    config.run.skip_nonfinite = True
    config.run.name = "skipping"
    trainer = Trainer(config)
    trainer.train_step(batch["A"], batch["B"])
    pool_a_before, pool_b_before = list(trainer.pool_a.images), list(trainer.pool_b.images)
    assert len(pool_a_before) == len(pool_b_before) == 1
    assert trainer.train_step(real_a, batch["B"]) == {"skipped": 1.0}
    assert trainer.nonfinite_skipped == 1
    # The skipped step's NaN images did not enter the discriminators' history.
    assert trainer.pool_a.images == pool_a_before and trainer.pool_b.images == pool_b_before
    assert all(torch.isfinite(image).all() for image in trainer.pool_a.images + trainer.pool_b.images)


def test_an_unreadable_image_is_skipped_and_counted(tiny_dataset, tmp_path):
    (tiny_dataset / "trainA" / "a_001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # broken PNG
    config = tiny_config(tiny_dataset, tmp_path / "runs", max_iters=6)
    with pytest.warns(UserWarning, match="a_001.png"):
        result = Trainer(config).train()
    assert result.skipped_files == [str(tiny_dataset / "trainA" / "a_001.png")]


def test_a_folder_without_images_is_an_error_before_any_model_is_built(tmp_path):
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    (tmp_path / "data" / "trainA" / "notes.txt").write_text("not an image")
    write_images(tmp_path / "data" / "trainB", 2)
    with pytest.raises(DatasetError, match="trainA"):
        Trainer(tiny_config(tmp_path / "data", tmp_path / "runs"))


def test_starting_over_an_existing_run_is_refused(tiny_dataset, tmp_path):
    Trainer(tiny_config(tiny_dataset, tmp_path / "runs", max_iters=1)).train()
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(tiny_config(tiny_dataset, tmp_path / "runs", max_iters=1))


def test_resume_refuses_a_different_architecture_and_names_the_field(tiny_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "r", "--max-iters", "1")) == 0
    assert main(["train", "--resume", str(runs / "r"), "--ngf", "16", "--lambda-A", "5"]) == 2
    error = capsys.readouterr().err
    assert "model.ngf: checkpoint has 8, requested 16" in error
    assert "loss.lambda_a: checkpoint has 10.0, requested 5.0" in error


@pytest.mark.parametrize("damage, problem", [
    ("truncate", "it is truncated or damaged (not a complete PyTorch file)"),
    ("empty", "the file is empty"),
    ("pickle", "it holds objects other than tensors and plain values (not loaded: unpickling them could run code)"),
])
def test_resume_from_a_damaged_training_state_says_what_is_wrong_in_one_line(tiny_dataset, tmp_path, capsys,
                                                                            damage, problem):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "r", "--max-iters", "1")) == 0
    state = ckpt.read_latest(runs / "r" / "checkpoints").state
    whole = state.read_bytes()
    if damage == "truncate":
        state.write_bytes(whole[: len(whole) // 2])
    elif damage == "empty":
        state.write_bytes(b"")
    else:  # a zip archive as torch writes it, but holding an object that weights_only refuses
        torch.save({"optimizer_g": Image.Image}, state)
    capsys.readouterr()
    assert main(["train", "--resume", str(runs / "r"), "--max-iters", "2"]) == 2
    error = capsys.readouterr().err
    assert error == (f"cyclegan train: error: training state {state} cannot be read: {problem}; resume from an "
                     "earlier checkpoint by naming it in latest.json\n")


def test_epoch_order_depends_only_on_seed_and_epoch():
    assert epoch_order(10, 0, 3, shuffle=True).tolist() == epoch_order(10, 0, 3, shuffle=True).tolist()
    assert epoch_order(10, 0, 3, shuffle=True).tolist() != epoch_order(10, 0, 4, shuffle=True).tolist()
    assert sorted(epoch_order(10, 0, 3, shuffle=True).tolist()) == list(range(10))
    assert epoch_order(5, 0, 3, shuffle=False).tolist() == [0, 1, 2, 3, 4]


def test_batched_generator_calls_give_the_same_losses_and_updates_as_separate_calls(tiny_dataset, tmp_path):
    results = {}
    for batched in (True, False):
        config = tiny_config(tiny_dataset, tmp_path / f"runs{batched}")
        config.run.batch_generator_calls = batched
        trainer = Trainer(config)
        batch = next(iter(trainer._loader()))
        with torch.random.fork_rng():
            values = trainer.train_step(batch["A"], batch["B"])
        # After a step every parameter still holds the gradient of its last update.
        results[batched] = (values, [p.grad.clone() for p in trainer.model.parameters()])
    (batched_values, batched_grads), (separate_values, separate_grads) = results[True], results[False]
    assert batched_values.keys() == separate_values.keys()
    for key in batched_values:
        assert batched_values[key] == pytest.approx(separate_values[key], rel=1e-4, abs=1e-6), key
    # Equal up to float rounding, relative to the gradients' scale (biases that feed an instance
    # norm have a true gradient of zero, so their computed values are pure rounding noise).
    scale = max(g.abs().max() for g in separate_grads)
    for a, b in zip(batched_grads, separate_grads):
        assert (a - b).abs().max() <= 1e-4 * scale


def test_no_gan_ablation_trains_with_the_cycle_loss_alone_and_leaves_d_untouched(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "runs")
    config.loss.gan, config.loss.lambda_identity = False, 0.0
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    discriminator_before = [p.clone() for p in trainer.model.D_A.parameters()]
    values = trainer.train_step(batch["A"], batch["B"])
    assert set(values) == {"loss_cycle_A", "loss_cycle_B"}
    assert all(torch.equal(a, b) for a, b in zip(discriminator_before, trainer.model.D_A.parameters()))


@pytest.mark.parametrize("cycle, expected", [("forward", {"loss_cycle_A"}), ("backward", {"loss_cycle_B"}),
                                             ("none", set())])
def test_cycle_option_keeps_only_the_chosen_cycle_terms(tiny_dataset, tmp_path, cycle, expected):
    config = tiny_config(tiny_dataset, tmp_path / "runs")
    config.loss.cycle, config.loss.lambda_identity = cycle, 0.0
    trainer = Trainer(config)
    batch = next(iter(trainer._loader()))
    values = trainer.train_step(batch["A"], batch["B"])
    assert {key for key in values if key.startswith("loss_cycle")} == expected
    assert {"loss_G_AB", "loss_G_BA", "loss_D_A", "loss_D_B"} <= set(values)


def test_pix2pix_trains_on_same_stem_pairs_and_translates(tmp_path):
    from cyclegan.inference import Translator

    root = tmp_path / "paired"
    write_images(root / "trainA", 4, seed=1, prefix="p")
    write_images(root / "trainB", 4, seed=2, prefix="p")  # same stems: p_000 ... p_003
    assert main(["train", "--model", "pix2pix", "--data", str(root), "--runs-dir", str(tmp_path / "runs"),
                 "--name", "p2p", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36",
                 "--crop-size", "32", "--num-workers", "0", "--max-iters", "3", "--no-progress",
                 "--no-tensorboard", "--log-every", "1"]) == 0
    run = tmp_path / "runs" / "p2p"
    saved = json.loads((run / "config.json").read_text())
    assert (saved["model"]["model"], saved["model"]["norm"], saved["loss"]["gan_mode"], saved["loss"]["pool_size"]) == (
        "pix2pix", "batch", "vanilla", 0)  # the pix2pix paper's defaults where none was given
    record = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert {"loss_G_GAN", "loss_G_L1", "loss_D", "acc_D"} <= set(record)
    assert {key.split(".")[0] for key in final_weights(run)} == {"G_AB", "D"}
    out = Translator.from_checkpoint(run, device="cpu")(Image.new("RGB", (40, 28)))
    assert out.size == (40, 28)
    with pytest.raises(CheckpointError, match="G_BA"):
        Translator.from_checkpoint(run, direction="BtoA", device="cpu")


def test_pix2pix_reads_official_side_by_side_pairs(tmp_path):
    from cyclegan.data.datasets import AlignedDataset

    left, right = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    (tmp_path / "train").mkdir()
    combined = Image.new("RGB", (64, 32))
    combined.paste(left, (0, 0))
    combined.paste(right, (32, 0))
    combined.save(tmp_path / "train" / "1.png")
    sample = AlignedDataset(tmp_path / "train", None, preprocess="none", flip=False)[0]
    assert sample["A"][0].mean().item() == pytest.approx(1.0) and sample["A"][2].mean().item() == pytest.approx(-1.0)
    assert sample["B"][2].mean().item() == pytest.approx(1.0) and sample["B"][0].mean().item() == pytest.approx(-1.0)


def test_aligned_pairs_get_the_same_random_crop_and_flip(tmp_path):
    from cyclegan.data.datasets import AlignedDataset

    write_images(tmp_path / "A", 3, size=(50, 40), seed=5, prefix="s")
    write_images(tmp_path / "B", 3, size=(50, 40), seed=5, prefix="s")  # identical pixels
    dataset = AlignedDataset(tmp_path / "A", tmp_path / "B", preprocess="crop", crop_size=24, seed=3)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(3):
            sample = dataset[index]
            assert torch.equal(sample["A"], sample["B"])


def test_a_resumed_run_logs_each_iteration_once(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "log", "--max-iters", "3")) == 0
    with open(runs / "log" / "log.jsonl", "a") as log:  # written after the checkpoint, then the process died
        log.write(json.dumps({"iteration": 4, "epoch": 1, "loss_D_A": 1.0}) + "\n")
    assert main(["train", "--resume", str(runs / "log"), "--max-iters", "5", "--no-progress"]) == 0
    iterations = [json.loads(line)["iteration"] for line in (runs / "log" / "log.jsonl").read_text().splitlines()]
    assert iterations == sorted(iterations) and iterations.count(4) == 1
