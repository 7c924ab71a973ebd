"""Notebook 07's GLoRIA-style local term (cxrkit.models.local_alignment): the word–region similarity against a hand
computation, masking, the global part, gradients, the frozen table, fit, and the chunked whole-set loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrkit.models.alignment import AlignmentModel, contrastive_loss
from cxrkit.models.image import SmallCNN
from cxrkit.models.local_alignment import (LocalAlignmentModel, LocalContrastiveLoss, attention_map,
                                           local_contrastive_loss, local_logits_loss, non_word_ids, phrase_map,
                                           split_local_outputs, word_region_similarity)
from cxrkit.train import BatchLoader, TensorDictDataset, fit

VOCAB, WIDTH, TEXT_DIM, DIM, WORDS = 40, 10, 6, 8, 6
CLS, SEP = 1, 2


def _table() -> torch.Tensor:
    return torch.randn(VOCAB, WIDTH, generator=torch.Generator().manual_seed(3))


def _model(grid: int | None = 2, word_kernel: int = 3) -> LocalAlignmentModel:
    torch.manual_seed(0)
    return LocalAlignmentModel(SmallCNN(num_outputs=1, width=8), _table(), text_dim=TEXT_DIM, dim=DIM, hidden=16,
                               grid=grid, max_words=WORDS, word_kernel=word_kernel, skip_ids=(CLS, SEP)).eval()


def _reports(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random reports: [CLS] 1–4 words [SEP], then padding (id 0)."""
    g = torch.Generator().manual_seed(seed)
    ids, mask = torch.zeros(n, WORDS, dtype=torch.long), torch.zeros(n, WORDS, dtype=torch.long)
    for i in range(n):
        k = int(torch.randint(1, WORDS - 1, (1,), generator=g))
        ids[i, 0], ids[i, 1:k + 1], ids[i, k + 1] = CLS, torch.randint(3, VOCAB, (k,), generator=g), SEP
        mask[i, :k + 2] = 1
    return ids, mask


def _batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids, mask = _reports(n, seed)
    return {"images": torch.rand(n, 1, 32, 32, generator=g), "text_vectors": torch.randn(n, TEXT_DIM, generator=g),
            "input_ids": ids, "attention_mask": mask}


def _hand_z(regions: list, words: list, mask: list, g1: float, g2: float) -> float:
    """GLoRIA's Z for one film and one report, word by word in plain Python."""
    total = 0.0
    for e, real in zip(words, mask):
        if not real:
            continue
        cos = [sum(a * b for a, b in zip(e, v)) for v in regions]
        weights = [math.exp(g1 * c) for c in cos]
        attention = [w / sum(weights) for w in weights]
        context = [sum(a * v[k] for a, v in zip(attention, regions)) for k in range(len(e))]
        r = sum(a * b for a, b in zip(e, context)) / math.sqrt(sum(c * c for c in context))
        total += math.exp(g2 * r)
    return math.log(total) / g2


def test_local_similarity_equals_a_hand_computation_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    regions = F.normalize(torch.randn(2, 4, 3, generator=g), dim=-1)  # 2 films × (2×2 regions) × 3
    words = F.normalize(torch.randn(4, 3, 3, generator=g), dim=-1)  # 4 reports × 3 word slots
    mask = torch.tensor([[True, True, False], [True, True, True], [True, False, False], [True, True, False]])
    words[0, 2] = torch.tensor([5.0, -7.0, 2.0])  # a padding slot holding garbage
    words[3, 0], words[3, 1] = words[1, 2], words[0, 0]  # words shared with other reports (computed once)
    z = word_region_similarity(regions, words, mask, 4.0, 5.0)
    assert z.shape == (2, 4)
    for j in range(2):
        for i in range(4):
            by_hand = _hand_z(regions[j].tolist(), words[i].tolist(), mask[i].tolist(), 4.0, 5.0)
            assert float(z[j, i]) == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
    other = words.clone()
    other[0, 2] = torch.tensor([-1.0, 0.3, 9.0])  # other garbage in the padding slot: the same scores
    torch.testing.assert_close(word_region_similarity(regions, other, mask, 4.0, 5.0), z)
    # a duplicated report scores like its original (identical reports are computed once); a report without words: 0
    dup = torch.cat([words, words[1:2], torch.zeros(1, 3, 3)])
    dup_mask = torch.cat([mask, mask[1:2], torch.zeros(1, 3, dtype=torch.bool)])
    z_dup = word_region_similarity(regions, dup, dup_mask, 4.0, 5.0)
    torch.testing.assert_close(z_dup[:, :4], z)
    torch.testing.assert_close(z_dup[:, 4], z[:, 1])
    assert torch.equal(z_dup[:, 5], torch.zeros(2))
    # a word that matches one region exactly, with sharp attention, scores cosine 1 with its context
    sharp = word_region_similarity(regions[:1], regions[:1, :1], torch.ones(1, 1, dtype=torch.bool), 1e3, 5.0)
    assert float(sharp) == pytest.approx(1.0, abs=1e-5)


def test_model_scores_ignore_padding_and_special_pieces():
    model = _model(word_kernel=5)  # wide enough that the last word's window reaches past [SEP] into the padding
    images = torch.rand(3, 1, 32, 32)
    ids, mask = _reports(3)
    base = model.local_similarity(images, ids, mask)
    garbage = ids.clone()
    garbage[mask == 0] = torch.randint(3, VOCAB, (int((mask == 0).sum()),))  # other ids under the padding
    torch.testing.assert_close(model.local_similarity(images, garbage, mask), base)
    words, word_mask = model.encode_words(ids, mask)
    assert not word_mask[:, 0].any() and (word_mask.sum(1) == mask.sum(1) - 2).all()  # [CLS], [SEP] are no words
    assert torch.equal(words[~word_mask], torch.zeros(int((~word_mask).sum()), DIM))
    with pytest.raises(ValueError, match="max_words=6"):
        model.encode_words(ids[:, :4], mask[:, :4])


def test_the_row_layout_and_the_global_part_equal_alignment_models():
    torch.manual_seed(5)
    plain = AlignmentModel(SmallCNN(num_outputs=1, width=8), text_dim=TEXT_DIM, dim=DIM, hidden=16).eval()
    model = _model()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[0] in {"word_norm", "word_projection", "region_projection"}
                                  for k in missing)
    batch = _batch(4)
    out = model(**batch)
    assert out.shape == (4, 2 * DIM + 1 + 4 * DIM + WORDS * (DIM + 1))
    reference = plain(batch["images"], batch["text_vectors"])
    torch.testing.assert_close(out[:, :2 * DIM + 1], reference)
    parts = split_local_outputs(out, DIM, WORDS)
    assert parts.regions.shape == (4, 4, DIM) and parts.words.shape == (4, WORDS, DIM)
    torch.testing.assert_close(parts.regions, model.encode_regions(batch["images"]))
    torch.testing.assert_close(parts.words, model.encode_words(batch["input_ids"], batch["attention_mask"])[0])
    assert torch.equal(parts.word_mask, model.word_mask(batch["input_ids"], batch["attention_mask"]))
    assert float(parts.scale.detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    torch.testing.assert_close(model.similarity(batch["images"], batch["text_vectors"]),
                               plain.similarity(batch["images"], batch["text_vectors"]))
    with pytest.raises(ValueError, match="one report per film"):
        model(batch["images"][:3], batch["text_vectors"], batch["input_ids"], batch["attention_mask"])
    with pytest.raises(ValueError, match="max_words=7"):
        split_local_outputs(out, DIM, 7)


@torch.no_grad()
def test_the_loss_is_global_plus_weighted_local():
    model = _model()
    out = model(**_batch(5))
    parts = split_local_outputs(out, DIM, WORDS)
    local = local_logits_loss(10.0 * word_region_similarity(parts.regions, parts.words, parts.word_mask, 4.0, 5.0))
    glob = contrastive_loss(out[:, :2 * DIM + 1])
    assert float(model.loss(weight=0.0)(out)) == pytest.approx(float(glob), rel=1e-6)
    assert float(model.loss(weight=0.5)(out)) == pytest.approx(float(glob + 0.5 * local), rel=1e-5)
    assert float(local_contrastive_loss(out, None, dim=DIM, max_words=WORDS)) == pytest.approx(float(glob + local),
                                                                                              rel=1e-5)
    # words that are their own film's regions make a lower local loss than the same words on the wrong films
    regions = F.normalize(torch.randn(4, 4, 3), dim=-1)
    matched, shifted = regions[:, :2], regions[[1, 2, 3, 0], :2]
    mask = torch.ones(4, 2, dtype=torch.bool)
    right = local_logits_loss(10.0 * word_region_similarity(regions, matched, mask))
    wrong = local_logits_loss(10.0 * word_region_similarity(regions, shifted, mask))
    assert float(right) < float(wrong)


def test_gradients_reach_the_word_projection_and_the_trunk_but_not_the_frozen_table():
    model = _model().train()
    out = model(**_batch(6))
    model.loss()(out).backward()
    assert model.word_projection.weight.grad is not None and model.word_projection.weight.grad.abs().sum() > 0
    assert model.region_projection.weight.grad.abs().sum() > 0
    assert model.image_model.stem[0].weight.grad.abs().sum() > 0
    assert not model.word_table.requires_grad and model.word_table.grad is None
    assert all(p is not model.word_table for p in model.parameters())
    model.zero_grad()  # the global term alone reaches the trunk, the local term alone too (through the regions)
    model.loss(weight=0.0)(model(**_batch(6))).backward()
    unused = model.word_projection.weight.grad
    assert model.image_model.stem[0].weight.grad.abs().sum() > 0 and (unused is None or not unused.any())
    model.zero_grad()
    parts = split_local_outputs(model(**_batch(6)), DIM, WORDS)
    local_logits_loss(word_region_similarity(parts.regions, parts.words, parts.word_mask)).backward()
    assert model.image_model.stem[0].weight.grad.abs().sum() > 0 and model.word_norm.weight.grad.abs().sum() > 0


def test_the_frozen_table_is_not_in_the_state_dict():
    model = _model()
    state = model.state_dict()
    assert "word_table" not in state and "skip_ids" not in state
    fresh = LocalAlignmentModel(SmallCNN(num_outputs=1, width=8), _table(), text_dim=TEXT_DIM, dim=DIM, hidden=16,
                                grid=2, max_words=WORDS, skip_ids=(CLS, SEP)).eval()
    fresh.load_state_dict(state)  # strict: the table is the constructor's, not the checkpoint's
    batch = _batch(3)
    torch.testing.assert_close(fresh(**batch), model(**batch))


def test_chunked_whole_set_loss_equals_the_unchunked_one():
    model = _model()
    with torch.no_grad():
        out = model(**_batch(23, seed=4))
    whole = model.loss(max_elements=10 ** 9)(out)
    one_film_at_a_time = model.loss(max_elements=1)(out)
    assert float(one_film_at_a_time) == pytest.approx(float(whole), rel=1e-5)
    parts = split_local_outputs(out, DIM, WORDS)
    z_chunked = word_region_similarity(parts.regions, parts.words, parts.word_mask, max_elements=50)
    by_film = torch.cat([word_region_similarity(parts.regions[j:j + 1], parts.words, parts.word_mask)
                         for j in range(23)])
    by_report = torch.cat([word_region_similarity(parts.regions, parts.words[i:i + 1], parts.word_mask[i:i + 1])
                           for i in range(23)], dim=1)
    torch.testing.assert_close(by_film, by_report, rtol=1e-5, atol=1e-6)
    z_pairwise = by_film
    torch.testing.assert_close(z_chunked, z_pairwise, rtol=1e-5, atol=1e-6)


def test_one_fit_epoch_trains_with_a_finite_whole_set_validation_loss():
    def dataset(n: int, seed: int) -> TensorDictDataset:
        return TensorDictDataset(_batch(n, seed), np.zeros((n, 1), np.float32))

    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model.loss()
    history = fit(model, BatchLoader(dataset(16, 1), batch_size=8, shuffle=True, seed=0, drop_last=True),
                  BatchLoader(dataset(10, 2), batch_size=4), epochs=1, lr=1e-3, loss=loss, monitor="val_loss",
                  early_stopping_patience=None, progress=False, seed=0)
    row = history.table.iloc[0]
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    assert not torch.equal(model.state_dict()["word_projection.weight"], before["word_projection.weight"])
    val = dataset(10, 2)
    with torch.no_grad():
        whole = float(loss(model.eval()(**val.inputs)))
    assert row["val_loss"] == pytest.approx(whole, rel=1e-4)  # fit's validation loss is the loss of the whole set


def test_attention_maps_are_each_words_softmax_over_the_grid():
    model = _model(grid=2)
    image = torch.rand(1, 32, 32)
    ids, mask = _reports(1, seed=7)
    maps = attention_map(model, image, ids[0], mask[0])
    assert maps.shape == (WORDS, 2, 2)
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(WORDS))
    regions = model.encode_regions(image[None])[0]
    words, real = model.encode_words(ids, mask)
    expected = torch.softmax(4.0 * words[0] @ regions.T, dim=-1).reshape(WORDS, 2, 2)
    torch.testing.assert_close(maps[real[0]], expected[real[0]])
    torch.testing.assert_close(phrase_map(model, image, ids[0], mask[0]), expected[real[0]].mean(0))
    assert attention_map(_model(grid=None), image, ids[0], mask[0]).shape == (WORDS, 4, 4)  # 32 px / 8 → 4×4


class _Tokenizer:
    all_special_ids = [0, 1, 2]

    def get_vocab(self) -> dict[str, int]:
        return {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "left": 3, ".": 4, "12": 5, "##ema": 6, "##9": 7, "x-ray": 8}


def test_non_word_ids_are_special_pieces_punctuation_and_numbers():
    assert non_word_ids(_Tokenizer()) == (0, 1, 2, 4, 5, 7)
    with pytest.raises(ValueError, match="gammas"):
        LocalAlignmentModel(SmallCNN(num_outputs=1, width=8), _table(), text_dim=TEXT_DIM, gammas=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="word_kernel"):
        LocalAlignmentModel(SmallCNN(num_outputs=1, width=8), _table(), text_dim=TEXT_DIM, word_kernel=2)
    assert isinstance(_model().loss(), LocalContrastiveLoss)
