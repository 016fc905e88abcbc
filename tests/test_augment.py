"""Random crop (Appendix D): replicate-padded random crops as inputs, the originals as targets."""

import copy
import dataclasses

import numpy as np
import torch

from slac.agent import SLACAgent
from slac.augment import crop_batch, random_crop
from slac.replay import Batch


def test_each_image_is_a_crop_of_its_replicate_padded_original():
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (3, 4, 64, 64, 3), dtype=np.uint8))
    out = random_crop(frames, np.random.default_rng(1))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    padded = np.pad(frames.numpy(), ((0, 0), (0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    offsets = set()
    for b in range(3):
        for t in range(4):
            found = [(y, x) for y in range(9) for x in range(9)
                     if np.array_equal(padded[b, t, y:y + 64, x:x + 64], out[b, t].numpy())]
            assert found, (b, t)
            offsets.add(found[0])
    assert len(offsets) > 6  # each image takes its own offset
    assert torch.equal(random_crop(frames, np.random.default_rng(1), pad=0), frames)


def batch(seed=0, b=4, steps=5, action_dim=1):
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(b, steps + 1, dtype=torch.bool)
    first[:, 0] = True
    return Batch(
        frames=torch.randint(0, 256, (b, steps + 1, 64, 64, 3), generator=g, dtype=torch.uint8),
        actions=torch.rand(b, steps, action_dim, generator=g) * 2 - 1,
        rewards=torch.rand(b, steps, generator=g), terminals=torch.zeros(b, steps),
        first=first, valid=torch.ones(b, steps + 1, dtype=torch.bool))


def test_the_model_sees_cropped_inputs_and_reconstructs_the_originals(small_cfg):
    cfg = dataclasses.replace(small_cfg, sequence_length=5, conv_width=4, feature_dim=32)
    agent = SLACAgent(cfg, 1, torch.device("cpu"))
    twin = copy.deepcopy(agent)
    original = batch()
    cropped = crop_batch(original, np.random.default_rng(0))
    assert torch.equal(cropped.images, original.frames)
    assert not torch.equal(cropped.frames, original.frames)
    stats = agent.update_model(cropped)
    m = twin.model
    post = m.filter(m.encoder(cropped.frames), cropped.actions, cropped.first, twin.rng_model)
    _, expected = m.loss(original.frames, cropped.actions, cropped.rewards, cropped.first, post)
    torch.testing.assert_close(stats["image_nll"], expected["image_nll"], rtol=0, atol=0)
    # against the cropped frames as targets, the likelihood differs: the test can tell them apart
    _, wrong = m.loss(cropped.frames, cropped.actions, cropped.rewards, cropped.first, post)
    assert not torch.equal(wrong["image_nll"], expected["image_nll"])
