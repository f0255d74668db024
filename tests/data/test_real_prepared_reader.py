"""The prepared-data reader: caption policies, order, nested size cap, ranks, exact resume; its empty caption
is what caption dropout trains on."""

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from safetensors.torch import load_file

from t2iscale.data.prepare import PrepareConfig, prepare
from t2iscale.data.prepared import PreparedDataset
from t2iscale.data.vae import save_tiny_random_vae
from t2iscale.errors import UserError
from t2iscale.text.tiny import save_tiny_clip_text_encoder

N_SAMPLES = 24
NO_SYNTHETIC = {0, 9}  # alt-text only


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: with other test workers on the 2 cores, two intra-op threads oversubscribe them
    (a tiny conv ran ~100x slower under load), so these tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    (root / "raw").mkdir()
    with wds.ShardWriter(str(root / "raw" / "%06d.tar"), maxcount=12, verbose=0) as writer:
        for index in range(N_SAMPLES):
            pixels = np.random.default_rng(index).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            sample = {"__key__": f"{index:06d}", "png": Image.fromarray(pixels), "txt": f"a cat {index}"}
            if index not in NO_SYNTHETIC:
                sample["json"] = {"synthetic_captions": [f"the dog {rank}" for rank in range(6)]}
            writer.write(sample)
    config = PrepareConfig(
        shards=str(root / "raw" / "{000000..000001}.tar"),
        vae=save_tiny_random_vae(root / "vae"),
        text_encoder=save_tiny_clip_text_encoder(root / "clip"),
        out=root / "out",
        resolution=16,
        batch_size=8,
        shard_size=10,
        progress=False,
    )
    prepare(config)
    return root / "out"


def stored_rows(prepared) -> dict:
    """Every stored caption embedding, by its bytes -> (sample key index, caption rank)."""
    rows = {}
    for shard_index in range(3):
        shard = load_file(str(prepared / f"shard-{shard_index:06d}.safetensors"))
        offsets = shard["caption_offsets"].tolist()
        for local in range(len(offsets) - 1):
            for rank, row in enumerate(range(offsets[local], offsets[local + 1])):
                rows[shard["text_ctx"][row].float().numpy().tobytes()] = (shard_index * 10 + local, rank)
    return rows


def caption_ranks(dataset, rows, epochs=1) -> list[int]:
    ranks = []
    for _ in range(epochs):
        ranks += [rows[text_ctx.numpy().tobytes()][1] for _, text_ctx, _ in dataset]
    return ranks


def test_samples_and_batches_have_the_training_shapes(prepared):
    dataset = PreparedDataset(prepared, caption_policy="alt")
    assert len(dataset) == dataset.images_per_epoch == N_SAMPLES
    latent, text_ctx, text_mask = next(iter(dataset))
    assert latent.shape == (4, 8, 8) and latent.dtype == torch.float32
    assert text_ctx.shape == (16, 32) and text_mask.shape == (16,) and text_mask.dtype == torch.bool
    latents, contexts, masks = next(dataset.batches(5))
    assert latents.shape == (5, 4, 8, 8) and contexts.shape == (5, 16, 32) and masks.shape == (5, 16)
    empty_ctx, empty_mask = dataset.empty_caption
    assert empty_ctx.shape == (16, 32) and empty_mask.sum() == 2
    assert dataset.counters.as_metrics()["data/good_samples"] == N_SAMPLES


def test_caption_policies(prepared):
    rows = stored_rows(prepared)
    assert set(caption_ranks(PreparedDataset(prepared, caption_policy="alt"), rows)) == {0}
    assert set(
        caption_ranks(PreparedDataset(prepared, caption_policy="syn1", max_bad_fraction=0.1), rows)
    ) == {1}
    syn5 = caption_ranks(
        PreparedDataset(prepared, caption_policy="syn5", max_bad_fraction=0.1), rows, epochs=4
    )
    assert set(syn5) == {1, 2, 3, 4, 5}  # the top 5 of 6 synthetic captions
    mix = caption_ranks(PreparedDataset(prepared, caption_policy="mix", max_bad_fraction=0.1), rows, epochs=8)
    assert 0.35 < mix.count(0) / len(mix) < 0.65 and set(mix) - {0} == {1, 2, 3, 4, 5}


def test_synthetic_policies_drop_and_count_samples_without_synthetic_captions(prepared):
    dataset = PreparedDataset(prepared, caption_policy="syn5", max_bad_fraction=0.1)
    assert dataset.images_per_epoch == N_SAMPLES - len(NO_SYNTHETIC)
    assert dataset.counters.bad["missing_synthetic_captions"] == 2
    with pytest.raises(UserError, match=r"2 of 24 prepared samples have no synthetic captions.*'000000'"):
        PreparedDataset(prepared, caption_policy="syn1", max_bad_fraction=0.05)


def latent_ids(samples) -> list[bytes]:
    return [latent.numpy().tobytes() for latent, _, _ in samples]


def test_each_epoch_is_a_seeded_permutation(prepared):
    dataset = PreparedDataset(prepared, caption_policy="alt", seed=5)
    epoch0, epoch1 = latent_ids(dataset), latent_ids(dataset)
    assert len(set(epoch0)) == N_SAMPLES and set(epoch0) == set(epoch1) and epoch0 != epoch1
    assert latent_ids(PreparedDataset(prepared, caption_policy="alt", seed=5)) == epoch0
    assert latent_ids(PreparedDataset(prepared, caption_policy="alt", seed=6)) != epoch0


def test_size_cap_is_nested(prepared):
    subsets = {
        size: set(latent_ids(PreparedDataset(prepared, caption_policy="alt", size=size)))
        for size in (5, 11, 24)
    }
    assert [len(s) for s in subsets.values()] == [5, 11, 24]
    assert subsets[5] < subsets[11] < subsets[24]
    assert set(latent_ids(PreparedDataset(prepared, caption_policy="alt", size=11, seed=9))) == subsets[11]
    # a synthetic-caption policy uses the same images, minus those without synthetic captions
    syn1 = PreparedDataset(prepared, caption_policy="syn1", size=11, max_bad_fraction=0.5)
    dropped = syn1.counters.bad["missing_synthetic_captions"]
    assert set(latent_ids(syn1)) <= subsets[11] and syn1.images_per_epoch == 11 - dropped
    with pytest.raises(UserError, match="dataset size 25"):
        PreparedDataset(prepared, caption_policy="alt", size=25)


def test_ranks_split_each_epoch(prepared):
    full = latent_ids(PreparedDataset(prepared, caption_policy="alt", seed=1))
    ranks = [PreparedDataset(prepared, caption_policy="alt", seed=1, rank=r, world_size=5) for r in range(5)]
    parts = [latent_ids(rank) for rank in ranks]
    assert [len(part) for part in parts] == [4] * 5  # 24 // 5 each; the tail of 4 is dropped
    assert [part[step] for step in range(4) for part in parts] == full[:20]
    with pytest.raises(UserError, match="rank 5"):
        PreparedDataset(prepared, rank=5, world_size=5)


def test_resume_from_a_saved_position_is_exact(prepared):
    def reader(**kwargs):
        return PreparedDataset(prepared, caption_policy="mix", seed=2, max_bad_fraction=0.1, **kwargs)

    def take(batches, n):
        return [tuple(t.numpy().tobytes() for t in next(batches)) for _ in range(n)]

    reference = take(reader().batches(4), 12)  # 2 epochs of 22 samples and then some
    first = reader()
    batches = first.batches(4)
    head = take(batches, 7)
    state = first.state_dict()
    assert state["epoch"] == 1 and state["consumed_in_epoch"] == 28 - 22
    resumed = reader()
    resumed.load_state_dict(state)
    assert head + take(resumed.batches(4), 5) == reference

    # the same position can be resumed by 2 ranks: together they read what 1 rank would have
    two = [reader(rank=rank, world_size=2) for rank in range(2)]
    for rank in two:
        rank.load_state_dict(state)
    iterators = [iter(rank) for rank in two]
    tails = [latent_ids([next(iterator) for _ in range(3)]) for iterator in iterators]
    single = reader()
    single.load_state_dict(state)
    iterator = iter(single)
    expected = latent_ids([next(iterator) for _ in range(6)])
    assert [tails[rank][step] for step in range(3) for rank in range(2)] == expected

    with pytest.raises(UserError, match="saved seed=2"):
        PreparedDataset(prepared, caption_policy="mix", seed=3, max_bad_fraction=0.1).load_state_dict(state)


def test_caption_dropout_uses_the_empty_caption(prepared):
    # Caption dropout is the training step's: the prepared-data conditioner swaps a dropped caption's embedding
    # for the reader's stored empty caption.
    from t2iscale.train.model import PrecomputedTextConditioner

    dataset = PreparedDataset(prepared, caption_policy="alt")
    empty_ctx, empty_mask = dataset.empty_caption
    latents, text_ctx, text_mask = next(dataset.batches(6))
    conditioner = PrecomputedTextConditioner(empty_ctx, empty_mask)
    always, _ = conditioner(torch.ones(6, dtype=torch.bool), text_ctx=text_ctx, text_mask=text_mask)
    assert all(torch.equal(row, empty_ctx) for row in always)
    drop = torch.tensor([True, False, True, False, False, True])
    ctx, mask = conditioner(drop, text_ctx=text_ctx, text_mask=text_mask)
    for row in range(6):
        expected = (empty_ctx, empty_mask) if drop[row] else (text_ctx[row], text_mask[row])
        assert torch.equal(ctx[row], expected[0]) and torch.equal(mask[row], expected[1])
