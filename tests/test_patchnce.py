"""Specification of CUT's pieces: the ResNet encoder's features (cyclegan.networks) and PatchNCE,
its projection head, patch sampling and flip-equivariance (cyclegan.training.patchnce).

The losses are checked against values worked out by hand from the logits the features make.
"""
import math

import pytest
import torch
from torch import nn

from cyclegan.errors import ConfigError
from cyclegan.networks import (
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    encode_features,
    feature_channels,
    generate_with_features,
    paper_nce_layers,
)
from cyclegan.training.patchnce import (
    FlipDraw,
    PatchProjector,
    draw_flip,
    gather_patches,
    patch_nce,
    patch_nce_loss,
    sample_locations,
)

T = 0.07


def tiny_generator(n_blocks=9, antialias=False, norm="instance"):
    torch.manual_seed(0)
    return ResnetGenerator(3, 3, ngf=8, norm=norm, n_blocks=n_blocks, antialias=antialias)


def one_hot_rows(count, dim):
    """`count` orthonormal vectors of length `dim` (rows of the identity)."""
    return torch.eye(dim)[:count]


def perfect_classifier_loss(patches, temperature):
    """Cross-entropy when the positive's similarity is 1 and every negative's is 0:
    -log(e^(1/T) / (e^(1/T) + (P - 1) e^0)) = log(1 + (P - 1) e^(-1/T))."""
    return math.log1p((patches - 1) * math.exp(-1 / temperature))


# --- the encoder's features ---------------------------------------------------------------------

@pytest.mark.parametrize("n_blocks, antialias, expected", [
    (9, False, (0, 4, 7, 10, 14)),
    (9, True, (0, 4, 8, 12, 16)),  # CUT's own --nce_layers on its anti-aliased generator
    (6, False, (0, 4, 7, 10, 13)),
    (6, True, (0, 4, 8, 12, 15)),
])
def test_paper_nce_layers_are_input_both_downsampling_convs_first_and_middle_block(n_blocks, antialias, expected):
    generator = tiny_generator(n_blocks, antialias)
    layers = paper_nce_layers(generator)
    assert layers == expected
    model = generator.model
    assert isinstance(model[layers[0]], nn.ReflectionPad2d)
    assert [model[i].out_channels for i in layers[1:3]] == [16, 32]  # the two down-samplings' convs
    blocks = [i for i, layer in enumerate(model) if isinstance(layer, ResnetBlock)]
    assert len(blocks) == n_blocks
    assert layers[3] == blocks[0] and layers[4] == blocks[n_blocks // 2]


def by_hand(generator, x, layers):
    """Each layer's activation from running the Sequential's prefix up to it, afresh."""
    with torch.no_grad():
        return [generator.model[:index + 1](x.clone()) for index in layers]


@pytest.mark.parametrize("n_blocks", [6, 9])
@pytest.mark.parametrize("antialias", [False, True])
def test_encode_features_returns_the_activations_of_the_listed_layers(n_blocks, antialias):
    generator = tiny_generator(n_blocks, antialias)
    x = torch.randn(2, 3, 32, 32)
    layers = paper_nce_layers(generator)
    with torch.no_grad():
        features = encode_features(generator, x, layers)
    expected = by_hand(generator, x, layers)
    assert [tuple(f.shape) for f in features] == [tuple(e.shape) for e in expected]
    # Anti-aliased, a down-sampling's convolution has stride 1 and its blur pool halves the size.
    down_1, down_2 = ((32, 32), (16, 16)) if antialias else ((16, 16), (8, 8))
    assert [tuple(f.shape) for f in features] == [(2, 3, 38, 38), (2, 16, *down_1), (2, 32, *down_2),
                                                  (2, 32, 8, 8), (2, 32, 8, 8)]
    for feature, truth in zip(features, expected):
        torch.testing.assert_close(feature, truth, rtol=0, atol=0)


def test_encode_features_keeps_the_order_the_layers_are_given_in():
    generator = tiny_generator(6)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        features = encode_features(generator, x, (7, 0, 4))
    for feature, truth in zip(features, by_hand(generator, x, (7, 0, 4))):
        torch.testing.assert_close(feature, truth, rtol=0, atol=0)


def test_encode_features_stops_after_the_last_layer_asked_for():
    generator = tiny_generator(9)
    ran = []
    for index, layer in enumerate(generator.model):
        layer.register_forward_hook(lambda module, inputs, output, index=index: ran.append(index))
    with torch.no_grad():
        encode_features(generator, torch.randn(1, 3, 16, 16), (0, 4, 7, 10, 14))
    assert ran == list(range(15))


def test_a_layer_before_an_in_place_relu_is_returned_as_it_was_before_the_relu():
    generator = tiny_generator(6)
    x = torch.randn(1, 3, 16, 16)
    assert isinstance(generator.model[3], nn.ReLU) and generator.model[3].inplace
    with torch.no_grad():
        normed, activated = encode_features(generator, x, (2, 3))
    torch.testing.assert_close(normed, by_hand(generator, x, (2,))[0], rtol=0, atol=0)
    assert normed.min() < 0  # the norm's output, not overwritten by the ReLU after it
    torch.testing.assert_close(activated, normed.clamp(min=0), rtol=0, atol=0)


def test_generate_with_features_gives_the_translation_and_the_same_features():
    generator = tiny_generator(6)
    x = torch.randn(2, 3, 16, 16)
    layers = paper_nce_layers(generator)
    with torch.no_grad():
        output, features = generate_with_features(generator, x, layers)
        torch.testing.assert_close(output, generator(x), rtol=0, atol=0)
        for feature, alone in zip(features, encode_features(generator, x, layers)):
            torch.testing.assert_close(feature, alone, rtol=0, atol=0)


@pytest.mark.parametrize("n_blocks, antialias", [(9, False), (9, True), (6, False)])
def test_feature_channels_are_the_channels_of_the_activations(n_blocks, antialias):
    generator = tiny_generator(n_blocks, antialias)
    layers = paper_nce_layers(generator)
    assert feature_channels(generator, layers) == (3, 16, 32, 32, 32)
    every = tuple(range(len(generator.model)))
    with torch.no_grad():
        shapes = [f.shape[1] for f in encode_features(generator, torch.randn(1, 3, 16, 16), every)]
    assert feature_channels(generator, every) == tuple(shapes)


def test_encode_features_refuses_a_unet_and_layers_the_generator_lacks():
    with pytest.raises(ConfigError, match="ResNet generator"):
        encode_features(UnetGenerator(3, 3, 5, ngf=8), torch.randn(1, 3, 32, 32), (0,))
    generator = tiny_generator(6)
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ConfigError, match="outside this generator's layers 0 to 24"):
        encode_features(generator, x, (0, 25))
    with pytest.raises(ConfigError, match="lists a layer twice"):
        encode_features(generator, x, (4, 4))
    with pytest.raises(ConfigError, match="at least one layer"):
        encode_features(generator, x, ())
    with pytest.raises(ConfigError, match="has none"):
        paper_nce_layers(ResnetGenerator(3, 3, ngf=8, n_blocks=0))


# --- patch sampling -----------------------------------------------------------------------------

def test_locations_are_distinct_in_range_and_as_many_as_asked():
    features = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 5, 4, 4)]
    locations = sample_locations(features, 10, torch.Generator().manual_seed(0))
    assert [tuple(where.shape) for where in locations] == [(10,), (10,)]
    assert [len(set(where.tolist())) for where in locations] == [10, 10]
    assert max(locations[0].tolist()) < 64 and max(locations[1].tolist()) < 16


def test_a_layer_with_fewer_locations_than_asked_gives_all_of_them():
    locations = sample_locations([torch.zeros(1, 1, 3, 3)], 256, torch.Generator().manual_seed(0))
    assert sorted(locations[0].tolist()) == list(range(9))


def test_sampling_repeats_for_a_seed_differs_for_another_and_leaves_the_global_rng_alone():
    features = [torch.zeros(1, 1, 16, 16)]
    torch.manual_seed(1)
    global_before = torch.get_rng_state()
    first = sample_locations(features, 32, torch.Generator().manual_seed(7))[0]
    torch.manual_seed(2)  # a different global state must not matter
    again = sample_locations(features, 32, torch.Generator().manual_seed(7))[0]
    other = sample_locations(features, 32, torch.Generator().manual_seed(8))[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    torch.manual_seed(1)
    sample_locations(features, 32, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), global_before)


def index_encoding_features(images, height, width):
    """N x (H W) x H x W maps whose vector at location (h, w) is one-hot at h * W + w."""
    grid = height * width
    return torch.eye(grid).reshape(grid, height, width).expand(images, grid, height, width).clone()


def test_gathered_patches_are_the_vectors_at_the_sampled_locations():
    features = index_encoding_features(2, 4, 6)
    locations = sample_locations([features], 5, torch.Generator().manual_seed(3))
    patches = gather_patches([features], locations)[0]
    assert patches.shape == (2, 5, 24)
    assert patches.argmax(dim=-1).tolist() == [locations[0].tolist()] * 2


# --- the projection head ------------------------------------------------------------------------

def test_projector_maps_each_layer_to_unit_vectors_of_256():
    torch.manual_seed(0)
    projector = PatchProjector((3, 16, 32))
    patches = [torch.randn(2, 7, 3), torch.randn(2, 7, 16), torch.randn(2, 7, 32)]
    projected = projector(patches)
    assert [tuple(p.shape) for p in projected] == [(2, 7, 256)] * 3
    for p in projected:
        torch.testing.assert_close(p.norm(dim=-1), torch.ones(2, 7))


def test_projector_has_two_linear_layers_per_layer_with_stable_names():
    projector = PatchProjector((3, 16))
    assert {name: tuple(t.shape) for name, t in projector.state_dict().items()} == {
        "heads.0.0.weight": (256, 3), "heads.0.0.bias": (256,),
        "heads.0.2.weight": (256, 256), "heads.0.2.bias": (256,),
        "heads.1.0.weight": (256, 16), "heads.1.0.bias": (256,),
        "heads.1.2.weight": (256, 256), "heads.1.2.bias": (256,),
    }
    assert isinstance(projector.heads[0][1], nn.ReLU)


def test_projector_built_later_has_its_parameters_once_initialised():
    projector = PatchProjector()
    assert not projector.initialised and list(projector.parameters()) == []
    with pytest.raises(ValueError, match="call initialise"):
        projector([torch.randn(1, 2, 3)])
    projector.initialise((3, 16, 32))
    assert projector.channel_counts == (3, 16, 32)
    assert len(list(projector.parameters())) == 12
    with pytest.raises(ValueError, match="already built"):
        projector.initialise((3,))


def test_projector_state_loads_into_a_projector_built_for_the_same_channels():
    torch.manual_seed(0)
    trained = PatchProjector((3, 16))
    torch.manual_seed(1)
    restored = PatchProjector()
    restored.initialise((3, 16))
    restored.load_state_dict(trained.state_dict())
    patches = [torch.randn(1, 4, 3), torch.randn(1, 4, 16)]
    for a, b in zip(trained(patches), restored(patches)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_projector_initialisation_draws_weights_with_the_gain_and_zero_biases():
    torch.manual_seed(0)
    normal = PatchProjector((256,), init_type="normal", init_gain=0.02)
    xavier = PatchProjector((256,))  # CUT's default: xavier_normal with gain 0.02
    for head in (normal.heads[0], xavier.heads[0]):
        assert torch.count_nonzero(head[0].bias) == 0 and torch.count_nonzero(head[2].bias) == 0
    assert normal.heads[0][2].weight.std().item() == pytest.approx(0.02, rel=0.01)
    # xavier_normal's std is gain * sqrt(2 / (fan_in + fan_out)) = 0.02 * sqrt(2 / 512).
    assert xavier.heads[0][2].weight.std().item() == pytest.approx(0.02 / 16, rel=0.01)


# --- the PatchNCE loss --------------------------------------------------------------------------

# At the paper's temperature the perfect classifier's loss (~1e-5) lies within a few float32 steps
# of the logits (~1 / T) from 0; a larger temperature checks the same formula to full precision.
FLOAT32_STEPS_AT_1_OVER_T = 4 * (1 / T) * torch.finfo(torch.float32).eps


@pytest.mark.parametrize("temperature", [T, 0.5])
def test_identical_orthonormal_queries_and_keys_give_the_perfect_classifiers_loss(temperature):
    keys = one_hot_rows(8, 16).expand(3, 8, 16)
    loss = patch_nce_loss(keys.clone(), keys, temperature)
    assert loss.item() == pytest.approx(perfect_classifier_loss(8, temperature), rel=1e-6,
                                        abs=FLOAT32_STEPS_AT_1_OVER_T)


def test_a_query_orthogonal_to_every_key_gives_log_n():
    keys = one_hot_rows(16, 17).expand(2, 16, 17)
    queries = torch.zeros(2, 16, 17)
    queries[..., 16] = 1.0  # every similarity is 0
    assert patch_nce_loss(queries, keys, T).item() == pytest.approx(math.log(16), rel=1e-6)


def test_all_keys_equal_gives_log_n_whatever_the_queries():
    keys = torch.nn.functional.normalize(torch.ones(1, 32, 8), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(1, 32, 8), dim=-1)
    assert patch_nce_loss(queries, keys, T).item() == pytest.approx(math.log(32), rel=1e-6)


def test_queries_matching_other_locations_give_the_loss_of_picking_the_wrong_key():
    keys = one_hot_rows(5, 5).unsqueeze(0)
    shuffled = keys[:, [1, 2, 3, 4, 0]]  # query p equals key p + 1: its positive has similarity 0
    # -log(e^0 / (e^(1/T) + 4 e^0))
    assert patch_nce_loss(shuffled, keys, T).item() == pytest.approx(math.log(math.exp(1 / T) + 4), rel=1e-6)


def test_negatives_come_from_the_same_image_only():
    # Image 1's queries equal image 0's keys: across images they would match perfectly, but each
    # image only sees its own keys, all of which its queries are orthogonal to.
    keys = torch.stack([one_hot_rows(4, 8), one_hot_rows(8, 8)[4:]])
    queries = keys.flip(0).clone()
    assert patch_nce_loss(queries, keys, T).item() == pytest.approx(math.log(4), rel=1e-6)


def test_the_loss_is_the_mean_cross_entropy_over_images_and_locations_written_out():
    torch.manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(2, 5, 3, dtype=torch.float64), dim=-1)
    keys = torch.nn.functional.normalize(torch.randn(2, 5, 3, dtype=torch.float64), dim=-1)
    q, k = queries.tolist(), keys.tolist()
    total = 0.0
    for n in range(2):
        for p in range(5):
            logits = [sum(a * b for a, b in zip(q[n][p], k[n][j])) / T for j in range(5)]
            total += -logits[p] + math.log(sum(math.exp(v) for v in logits))
    assert patch_nce_loss(queries.float(), keys.float(), T).item() == pytest.approx(total / 10, rel=1e-5)


def test_the_loss_is_computed_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(1, 16, 8), dim=-1)
    keys = torch.nn.functional.normalize(torch.randn(1, 16, 8), dim=-1)
    full = patch_nce_loss(queries, keys, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = patch_nce_loss(queries, keys, T)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, full, rtol=0, atol=0)


def test_the_loss_sends_no_gradient_into_the_keys():
    keys = torch.nn.functional.normalize(torch.randn(1, 6, 4), dim=-1).requires_grad_()
    queries = torch.nn.functional.normalize(torch.randn(1, 6, 4), dim=-1).requires_grad_()
    patch_nce_loss(queries, keys, T).backward()
    assert keys.grad is None and queries.grad is not None


def identity_projector(channels):
    """A projector whose heads pass non-negative C-vectors through unchanged (as the first C of 256)."""
    projector = PatchProjector((channels,))
    with torch.no_grad():
        first, second = projector.heads[0][0], projector.heads[0][2]
        first.weight.zero_()
        first.weight[:channels] = torch.eye(channels)
        second.weight.copy_(torch.eye(256))
    return projector


def test_patch_nce_compares_query_and_key_at_the_same_sampled_locations():
    features = index_encoding_features(2, 4, 4)
    loss = patch_nce(identity_projector(16), [features.clone()], [features], torch.Generator().manual_seed(0),
                     num_patches=6, temperature=T)
    assert loss.item() == pytest.approx(perfect_classifier_loss(6, T), abs=FLOAT32_STEPS_AT_1_OVER_T)
    assert loss.item() < math.log(2)  # far from what any mismatched location would give


def test_patch_nce_is_the_mean_over_layers():
    small, large = index_encoding_features(1, 2, 2), index_encoding_features(1, 3, 3)
    query_small = torch.zeros_like(small)  # orthogonal to everything: log of the patches
    projector = PatchProjector((4, 9))
    for head, channels in zip(projector.heads, (4, 9)):
        with torch.no_grad():
            head[0].weight.zero_()
            head[0].weight[:channels] = torch.eye(channels)
            head[0].bias.zero_()
            head[0].bias[255] = 1.0  # a constant unit direction, so a zero patch still projects
            head[2].weight.copy_(torch.eye(256))
    # Layer 1: queries orthogonal to keys but for the shared constant direction: all similarities
    # equal (1 / sqrt 2), so log 4. Layer 2: identical queries and keys, one-hot plus the constant.
    loss = patch_nce(projector, [query_small, large.clone()], [small, large], torch.Generator().manual_seed(0),
                     num_patches=9, temperature=T)
    # Layer 2's similarities: 1 on the diagonal, 1/2 elsewhere (unit vectors (e_p + e_255) / sqrt 2).
    layer_two = math.log1p(8 * math.exp(-0.5 / T))
    assert loss.item() == pytest.approx((math.log(4) + layer_two) / 2, rel=1e-5)


def test_mirrored_features_match_only_once_the_flip_is_undone():
    features = index_encoding_features(1, 4, 4)
    mirrored = FlipDraw(True)(features)
    projector = identity_projector(16)
    mismatched = patch_nce(projector, [mirrored], [features], torch.Generator().manual_seed(0), 16, T)
    undone = patch_nce(projector, FlipDraw(True).each([mirrored]), [features], torch.Generator().manual_seed(0), 16, T)
    # Mirrored, no location of a 4-wide map stays where it was: each query's positive has
    # similarity 0 and one negative (its mirror image) similarity 1.
    assert mismatched.item() == pytest.approx(math.log(math.exp(1 / T) + 15), rel=1e-6)
    assert undone.item() == pytest.approx(perfect_classifier_loss(16, T), abs=FLOAT32_STEPS_AT_1_OVER_T)


def test_patch_nce_refuses_features_of_different_shapes():
    projector = PatchProjector((3,))
    with pytest.raises(ValueError, match="differ in shape"):
        patch_nce(projector, [torch.zeros(1, 3, 4, 4)], [torch.zeros(1, 3, 2, 2)], torch.Generator())
    with pytest.raises(ValueError, match="2 query layers but 1 key layers"):
        patch_nce(projector, [torch.zeros(1, 3, 4, 4)] * 2, [torch.zeros(1, 3, 4, 4)], torch.Generator())


def test_patch_nce_on_a_generator_trains_the_generator_and_the_projector():
    generator = tiny_generator(6)
    layers = paper_nce_layers(generator)
    projector = PatchProjector(feature_channels(generator, layers))
    real = torch.randn(1, 3, 16, 16)
    keys = encode_features(generator, real, layers)
    queries = encode_features(generator, generator(real), layers)
    loss = patch_nce(projector, queries, keys, torch.Generator().manual_seed(0), num_patches=8)
    loss.backward()
    assert all(p.grad is not None for p in projector.parameters())
    assert generator.model[1].weight.grad is not None
    assert math.isfinite(loss.item()) and loss.item() > 0


# --- flip-equivariance --------------------------------------------------------------------------

def test_a_flip_mirrors_the_width_and_no_flip_returns_the_tensor_itself():
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    assert FlipDraw(True)(x).tolist() == x[..., [3, 2, 1, 0]].tolist()
    assert FlipDraw(False)(x) is x
    assert FlipDraw(True)(FlipDraw(True)(x)).tolist() == x.tolist()


def test_flips_follow_the_probability_and_the_seed():
    assert all(draw_flip(torch.Generator().manual_seed(s), probability=1.0).flipped for s in range(20))
    assert not any(draw_flip(torch.Generator().manual_seed(s), probability=0.0).flipped for s in range(20))
    rng = torch.Generator().manual_seed(5)
    draws = [draw_flip(rng).flipped for _ in range(2000)]
    # Binomial(2000, 0.5) lies within 1000 +- 100 with probability 1 - 1e-5.
    assert 900 <= sum(draws) <= 1100
    again = torch.Generator().manual_seed(5)
    assert [draw_flip(again).flipped for _ in range(2000)] == draws
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        draw_flip(rng, probability=1.5)
