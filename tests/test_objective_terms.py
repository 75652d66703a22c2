"""The objectives' typed outputs: loss terms under the names log.jsonl has always used."""
import pytest
import torch

from cyclegan.config import ModelConfig, TrainConfig
from cyclegan.training.model import build_model
from cyclegan.training.objective import GeneratorOutputs, LossTerms, build_objective
from cyclegan.training.plots import ACCURACY_KEYS, LOSS_KEYS


def tiny_objective(model: str):
    config = TrainConfig(model=ModelConfig(model=model))
    config.model.net_g, config.model.ngf, config.model.ndf = "resnet_6blocks", 4, 4
    networks = build_model(config.model)
    return config, build_objective(config, networks.generators, networks.discriminators, networks.judges())


@pytest.mark.parametrize("model, generator_names, discriminator_names, fakes", [
    ("cyclegan", ["loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B"],
     ["loss_D_A", "loss_D_B", "acc_D_A", "acc_D_B"], ["A", "B"]),
    ("pix2pix", ["loss_G_GAN", "loss_G_L1"], ["loss_D", "acc_D"], ["B"]),
])
def test_loss_terms_carry_the_log_names(model, generator_names, discriminator_names, fakes):
    config, objective = tiny_objective(model)
    if model == "cyclegan":
        assert config.loss.lambda_identity > 0  # the identity terms are on by default
    torch.manual_seed(0)
    real_a, real_b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    terms_g, outputs = objective.generator_terms(real_a, real_b)
    assert isinstance(terms_g, LossTerms) and isinstance(outputs, GeneratorOutputs)
    assert list(terms_g.to_record()) == generator_names and list(terms_g.terms) == generator_names
    assert sorted(outputs.fakes) == fakes
    assert torch.equal(terms_g.total, sum(terms_g.terms.values()))
    terms_d = objective.discriminator_terms(real_a, real_b, {domain: fake.detach() for domain, fake in
                                                             outputs.fakes.items()})
    assert [name for name, _value in terms_d.items()] == discriminator_names
    assert list(terms_d.reported) == [name for name in discriminator_names if name.startswith("acc_")]
    assert set(generator_names + discriminator_names) <= set(LOSS_KEYS + ACCURACY_KEYS)


def test_a_step_without_generator_update_translates_each_domain():
    _config, objective = tiny_objective("cyclegan")
    real = torch.zeros(1, 3, 32, 32)
    outputs = objective.translate(real, real)
    assert sorted(outputs.fakes) == ["A", "B"] and outputs.reconstructed == {} and outputs.identity == {}
