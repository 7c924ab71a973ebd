"""Words against regions: a GLoRIA-style local term beside the global film–report alignment (notebook 07).

Huang et al. (2021, GLoRIA) add to the global contrastive loss a *local* one: each word of a report looks for the
regions of a film it describes, and a film and a report match when their words find good regions. Written here from
the paper's equations, for the kit's CNN and frozen MiniLM word pieces:

* **words** — a report's word pieces (``input_ids``/``attention_mask`` from
  :func:`cxrkit.text.pretrained.encode_wordpieces`, padded to ``max_words``) looked up in MiniLM's frozen word-piece
  table, layer-normalised and projected to ``dim`` by a trainable 1-D convolution over the word positions (kernel
  ``word_kernel``; 3 lets "no" reach the word after it, 1 is a plain per-word linear map), then L2-normalised.
  Padding and the pieces ``skip_ids`` are never scored as words: [CLS] and [SEP] by default, also punctuation and
  numbers with :func:`non_word_ids` (what notebook 07 uses: "1." or ";" point at no region).
* **regions** — the image trunk's last feature map, average-pooled to ``grid × grid`` cells and projected to
  ``dim`` by a 1×1 convolution, L2-normalised.
* **local similarity** of film *j* and report *i*: with ``s_wr`` the cosine of word *w* and region *r*, word *w*
  attends over the regions, ``a_wr = softmax_r(γ1 · s_wr)``; its region context is ``c_w = Σ_r a_wr v_r``; the word
  scores ``R_w = cos(e_w, c_w)``; the report's real words are pooled by log-sum-exp,
  ``Z = (1/γ2) · log Σ_w exp(γ2 · R_w)``, and ``γ3 · Z`` are the local logits (GLoRIA's γ1 = 4, γ2 = 5, γ3 = 10).
* **loss** — the global InfoNCE of :func:`cxrkit.models.alignment.contrastive_loss` plus ``weight`` × the symmetric
  cross-entropy over the ``B × B`` local logits (:class:`LocalContrastiveLoss`).

So that :func:`cxrkit.train.fit` trains it unchanged, :meth:`LocalAlignmentModel.forward` returns ONE row per pair::

    [film emb (dim) | report emb (dim) | log scale (1) | regions (R·dim) | words (max_words·dim) | word mask (max_words)]

— the first ``2·dim + 1`` columns are exactly :class:`~cxrkit.models.alignment.AlignmentModel`'s row, so its
scorers (:func:`~cxrkit.models.alignment.split_outputs`, zero-shot, retrieval) read them as before;
:func:`split_local_outputs` takes the rest apart (``R = grid²`` is inferred from the width). The local matrix is
computed film-chunk by film-chunk over the real words only, each distinct word vector once, so the whole
validation set (hundreds of pairs) scores at once in bounded memory. :func:`attention_map` and :func:`phrase_map` give each word's
attention over the ``grid × grid`` regions, for grounding a phrase against the synthetic masks.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cxrkit.models.alignment import AlignmentModel, contrastive_loss
from cxrkit.text.pretrained import pretrained_embedding_matrix

__all__ = ["LocalAlignmentModel", "LocalOutputs", "LocalContrastiveLoss", "local_contrastive_loss",
           "split_local_outputs", "word_region_similarity", "local_logits_loss", "attention_map", "phrase_map",
           "non_word_ids", "GLORIA_GAMMAS", "MINILM_SPECIAL_IDS", "DEFAULT_MAX_ELEMENTS"]

#: GLoRIA's (γ1, γ2, γ3): attention sharpness over regions, word pooling sharpness, local logit scale.
GLORIA_GAMMAS = (4.0, 5.0, 10.0)
#: MiniLM's [CLS] and [SEP] word-piece ids: in the report, never scored as words.
MINILM_SPECIAL_IDS = (101, 102)
#: How many floats one intermediate (films × words × regions) of the local matrix may hold: 2²³ ≈ 32 MB.
DEFAULT_MAX_ELEMENTS = 2 ** 23


def non_word_ids(tokenizer: Any) -> tuple[int, ...]:
    """Return a word-piece tokenizer's special ids and the ids of pieces without a letter (punctuation, numbers), the ``skip_ids`` notebook 07 uses."""
    ids = {int(i) for i in tokenizer.all_special_ids}
    ids.update(int(i) for piece, i in tokenizer.get_vocab().items()
               if not any(ch.isalpha() for ch in piece.removeprefix("##")))
    return tuple(sorted(ids))


class LocalOutputs(NamedTuple):
    """The parts of one :meth:`LocalAlignmentModel.forward` row block (:func:`split_local_outputs`)."""

    films: Tensor  # B × dim, unit rows (global)
    reports: Tensor  # B × dim, unit rows (global)
    scale: Tensor  # the global logit scale
    regions: Tensor  # B × R × dim, unit rows
    words: Tensor  # B × max_words × dim, unit rows (zero where masked)
    word_mask: Tensor  # B × max_words, bool: the real words


def _first_conv_channels(module: nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    raise TypeError(f"{type(module).__name__} has no Conv2d: cannot tell its input channels")


class LocalAlignmentModel(AlignmentModel):
    """:class:`~cxrkit.models.alignment.AlignmentModel` plus a word side and a region side for GLoRIA's local term (notebook 07).

    ``word_table`` is the frozen ``vocab × width`` word-piece table (default: MiniLM's 30522 × 384,
    :func:`cxrkit.text.pretrained.pretrained_embedding_matrix`); it is a non-persistent buffer, never in the
    ``state_dict`` and never trained. ``grid`` pools the last feature map to ``grid × grid`` regions (``None``: keep
    the map's own size). ``max_words`` is the padded length of ``input_ids``; ``word_kernel`` the width of the word
    projection's convolution; ``gammas`` GLoRIA's (γ1, γ2, γ3); ``skip_ids`` word pieces never scored as words.
    """

    def __init__(self, image_model: nn.Module, word_table: Tensor | None = None, *, text_dim: int = 384,
                 dim: int = 64, temperature: float = 0.07, hidden: int = 256, grid: int | None = 8,
                 max_words: int = 64, word_kernel: int = 3, gammas: Sequence[float] = GLORIA_GAMMAS,
                 skip_ids: Sequence[int] = MINILM_SPECIAL_IDS):
        super().__init__(image_model, text_dim=text_dim, dim=dim, temperature=temperature, hidden=hidden)
        if grid is not None and (int(grid) != grid or grid < 1):
            raise ValueError(f"grid must be a positive int or None, got {grid!r}")
        if max_words < 1 or word_kernel < 1 or word_kernel % 2 == 0:
            raise ValueError(f"need max_words >= 1 and an odd word_kernel >= 1, got {max_words}, {word_kernel}")
        if len(gammas) != 3 or any(g <= 0 for g in gammas):
            raise ValueError(f"gammas must be three positive numbers (γ1, γ2, γ3), got {tuple(gammas)!r}")
        if word_table is None:
            word_table = pretrained_embedding_matrix()  # the bundled MiniLM's table, loaded offline
        if word_table.ndim != 2:
            raise ValueError(f"word_table must be vocab × width, got shape {tuple(word_table.shape)}")
        self.register_buffer("word_table", word_table.detach().float().clone(), persistent=False)
        self.grid, self.max_words, self.word_kernel = (None if grid is None else int(grid)), int(max_words), int(word_kernel)
        self.gammas = tuple(float(g) for g in gammas)
        self.register_buffer("skip_ids", torch.as_tensor(list(skip_ids), dtype=torch.long), persistent=False)
        width = int(word_table.shape[1])
        self.word_norm = nn.LayerNorm(width)
        self.word_projection = nn.Conv1d(width, dim, word_kernel, padding=word_kernel // 2)
        self.region_projection = nn.Conv2d(self._feature_channels(), dim, 1)

    # --------------------------------------------------------------------------------------- image side
    def _feature_module(self) -> nn.Module:
        """The module whose output is the trunk's last feature map (SmallCNN: its blocks; else ``last_conv``)."""
        blocks = getattr(self.image_model, "blocks", None)
        return blocks if hasattr(self.image_model, "feature_map") and isinstance(blocks, nn.Module) else self.last_conv

    def _feature_channels(self) -> int:
        channels = getattr(self.image_model, "feature_channels", None)
        if channels is not None:
            return int(channels)
        was_training = self.image_model.training
        self.image_model.eval()
        try:
            with torch.no_grad():
                _, fmap = self._trunk(torch.zeros(1, _first_conv_channels(self.image_model), 64, 64))
        finally:
            self.image_model.train(was_training)
        return int(fmap.shape[1])

    def _trunk(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """One pass through the image trunk: ``(image_model.embed(images), last feature map B×C×h×w)``."""
        store: dict[str, Tensor] = {}
        handle = self._feature_module().register_forward_hook(lambda _m, _i, out: store.__setitem__("map", out))
        try:
            embedding = self.image_model.embed(images)
        finally:
            handle.remove()
        return embedding, store["map"]

    def _region_grid(self, fmap: Tensor) -> Tensor:
        """Return the unit region features ``B × dim × gh × gw`` of a feature map."""
        if self.grid is not None and tuple(fmap.shape[-2:]) != (self.grid, self.grid):
            fmap = F.adaptive_avg_pool2d(fmap, self.grid)
        return F.normalize(self.region_projection(fmap), dim=1)

    def encode_regions(self, images: Tensor) -> Tensor:
        """Return the films' unit region features, ``B × R × dim`` (R = grid², row-major over the grid)."""
        return self._region_grid(self._trunk(images)[1]).flatten(2).transpose(1, 2)

    # ---------------------------------------------------------------------------------------- word side
    def word_mask(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Return the real words of each report (``B × max_words`` bool): attended and not a special piece."""
        return attention_mask.bool() & ~torch.isin(input_ids, self.skip_ids)

    def _word_features(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Unit features of every word-piece position (``B × L × dim``); padding enters the convolution as zeros."""
        attended = attention_mask.to(self.word_table.dtype).unsqueeze(-1)
        pieces = self.word_norm(F.embedding(input_ids, self.word_table)) * attended
        return F.normalize(self.word_projection(pieces.transpose(1, 2)).transpose(1, 2), dim=-1)

    def encode_words(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(unit word features B × max_words × dim, zero where masked; word mask B × max_words)``."""
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids and attention_mask must be the same B × L, got {tuple(input_ids.shape)} "
                             f"and {tuple(attention_mask.shape)}")
        if input_ids.shape[1] != self.max_words:
            raise ValueError(f"reports have {input_ids.shape[1]} word pieces but the model takes max_words="
                             f"{self.max_words}: encode them with encode_wordpieces(tokenizer, texts, max_len="
                             f"{self.max_words})")
        words = self._word_features(input_ids, attention_mask)
        mask = self.word_mask(input_ids, attention_mask)
        return words * mask.unsqueeze(-1).to(words.dtype), mask

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, images: Tensor, text_vectors: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Return one row per pair: ``[film emb, report emb, log scale, regions R·dim, words max_words·dim, word mask]``."""
        n = images.shape[0]
        if not n == text_vectors.shape[0] == input_ids.shape[0] == attention_mask.shape[0]:
            raise ValueError(f"{n} films, {text_vectors.shape[0]} report vectors and {input_ids.shape[0]} word-piece "
                             "rows: give one report per film")
        embedding, fmap = self._trunk(images)
        films = F.normalize(self.image_projection(embedding), dim=-1)
        regions = self._region_grid(fmap).flatten(2).transpose(1, 2)
        words, mask = self.encode_words(input_ids, attention_mask)
        log_scale = self.scale().log().expand(n, 1)
        return torch.cat([films, self.encode_texts(text_vectors), log_scale, regions.flatten(1), words.flatten(1),
                          mask.to(films.dtype)], dim=1)

    def local_similarity(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor,
                         max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
        """Return the local logits ``γ3 · Z`` of each film with each report (``N_films × N_reports``)."""
        words, mask = self.encode_words(input_ids, attention_mask)
        z = word_region_similarity(self.encode_regions(images), words, mask, self.gammas[0], self.gammas[1],
                                   max_elements)
        return self.gammas[2] * z

    def loss(self, weight: float = 1.0, max_elements: int = DEFAULT_MAX_ELEMENTS) -> "LocalContrastiveLoss":
        """Return the :class:`LocalContrastiveLoss` that reads this model's rows (its ``dim``, ``max_words``, γs)."""
        return LocalContrastiveLoss(self.dim, self.max_words, weight=weight, gammas=self.gammas,
                                    max_elements=max_elements)


# ------------------------------------------------------------------------------------------- outputs
def split_local_outputs(outputs: Tensor, dim: int, max_words: int) -> LocalOutputs:
    """Take :meth:`LocalAlignmentModel.forward`'s rows apart into :class:`LocalOutputs` (notebook 07)."""
    width = outputs.shape[1] if outputs.ndim == 2 else -1
    rest = width - (2 * dim + 1) - max_words * (dim + 1)
    if outputs.ndim != 2 or rest <= 0 or rest % dim:
        raise ValueError(f"outputs must be B × (2·dim + 1 + R·dim + max_words·(dim + 1)) rows of "
                         f"LocalAlignmentModel.forward with dim={dim}, max_words={max_words}; got {tuple(outputs.shape)}")
    n, regions = outputs.shape[0], rest // dim
    at = 2 * dim + 1
    word_at = at + regions * dim
    mask_at = word_at + max_words * dim
    return LocalOutputs(outputs[:, :dim], outputs[:, dim:2 * dim], outputs[:, 2 * dim].mean().exp(),
                        outputs[:, at:word_at].reshape(n, regions, dim),
                        outputs[:, word_at:mask_at].reshape(n, max_words, dim), outputs[:, mask_at:] > 0.5)


# ---------------------------------------------------------------------------------- local similarity
def _distinct_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Return (one index per distinct row, which distinct row each row is): identical rows are computed once."""
    _, inverse = torch.unique(rows.detach(), dim=0, return_inverse=True)
    positions = torch.arange(len(inverse), device=inverse.device)
    first = torch.full((int(inverse.max()) + 1,), len(inverse), dtype=torch.long, device=inverse.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin"), inverse


def word_region_similarity(regions: Tensor, words: Tensor, word_mask: Tensor, gamma1: float = GLORIA_GAMMAS[0],
                           gamma2: float = GLORIA_GAMMAS[1], max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Return GLoRIA's local similarity ``Z`` of every film with every report, ``N_films × N_reports`` (notebook 07).

    ``regions`` are ``N_films × R × d`` and ``words`` ``N_reports × W × d`` unit vectors, ``word_mask`` marks the
    real words (others never count). Per word: attention ``softmax_r(γ1 · cos)`` over a film's regions, the context
    ``Σ_r a_r v_r``, the word–context cosine; per report: ``(1/γ2) · log Σ_words exp(γ2 · cosine)`` (0 for a report
    with no real word). A word's cosine depends only on its own vector and the film, so it is computed once per
    distinct word vector (a report set's vocabulary in context is far smaller than its words), for the real words
    only, in chunks of films so no intermediate holds more than about ``max_elements`` floats.
    """
    if regions.ndim != 3 or words.ndim != 3 or regions.shape[2] != words.shape[2] or word_mask.shape != words.shape[:2]:
        raise ValueError(f"need regions N × R × d, words M × W × d and word_mask M × W; got {tuple(regions.shape)}, "
                         f"{tuple(words.shape)}, {tuple(word_mask.shape)}")
    n_films, n_reports = regions.shape[0], words.shape[0]
    word_mask = word_mask.bool()
    if n_films == 0 or not word_mask.any():
        return regions.new_zeros(n_films, n_reports)
    reports, report_of = _distinct_rows(torch.cat([words.flatten(1), word_mask.to(words.dtype)], dim=1))
    mask = word_mask[reports]
    owner = mask.nonzero()[:, 0]  # which distinct report each of its real words belongs to
    has_words = mask.any(dim=1)
    vocabulary, word_of = _distinct_rows(words[reports][mask])  # the distinct word vectors, and each real word's
    distinct = words[reports][mask][vocabulary]  # U × d
    per_film = max(len(distinct) * max(regions.shape[1], regions.shape[2]), len(owner))
    step = max(1, int(max_elements) // per_film)
    sharpened = gamma1 * distinct
    blocks = []
    for start in range(0, n_films, step):
        v = regions[start:start + step]  # f × R × d
        attention = torch.softmax(torch.matmul(sharpened, v.transpose(1, 2)), dim=-1)  # f × U × R: softmax_r(γ1·cos)
        context = torch.matmul(attention, v)  # f × U × d: each word's attention-weighted region context
        score = torch.einsum("fud,ud->fu", context, distinct) / torch.linalg.vector_norm(context, dim=-1).clamp_min(1e-8)
        sums = score.new_zeros(len(v), len(reports)).index_add(1, owner, torch.exp(gamma2 * score)[:, word_of])
        blocks.append(torch.where(has_words, torch.log(torch.where(has_words, sums, torch.ones_like(sums))) / gamma2,
                                  torch.zeros_like(sums)))
    return torch.cat(blocks)[:, report_of]


def local_logits_loss(logits: Tensor) -> Tensor:
    """Symmetric cross-entropy over square film × report logits whose diagonal holds the true pairs (notebook 07)."""
    truth = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, truth) + F.cross_entropy(logits.T, truth)) / 2


def local_contrastive_loss(outputs: Tensor, targets: Any = None, *, dim: int, max_words: int, weight: float = 1.0,
                           gammas: Sequence[float] = GLORIA_GAMMAS,
                           max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Global InfoNCE plus ``weight`` × GLoRIA's local loss over the rows of a batch (or of a whole validation set) (notebook 07).

    ``targets`` is ignored: the pairing is the supervision. ``dim`` and ``max_words`` are the model's.
    """
    parts = split_local_outputs(outputs, dim, max_words)
    total = contrastive_loss(outputs[:, :2 * dim + 1])
    if weight == 0:
        return total
    z = word_region_similarity(parts.regions, parts.words, parts.word_mask, gammas[0], gammas[1], max_elements)
    return total + weight * local_logits_loss(gammas[2] * z)


class LocalContrastiveLoss:
    """``fit``'s ``loss=`` for :class:`LocalAlignmentModel`: holds ``dim``, ``max_words``, ``weight`` and the γs (notebook 07).

    Build it with :meth:`LocalAlignmentModel.loss`; ``weight = 0`` trains the global term alone on the same rows.
    """

    def __init__(self, dim: int, max_words: int, weight: float = 1.0, gammas: Sequence[float] = GLORIA_GAMMAS,
                 max_elements: int = DEFAULT_MAX_ELEMENTS):
        if weight < 0 or max_elements < 1:
            raise ValueError(f"need weight >= 0 and max_elements >= 1, got {weight}, {max_elements}")
        self.dim, self.max_words, self.weight = int(dim), int(max_words), float(weight)
        self.gammas, self.max_elements = tuple(float(g) for g in gammas), int(max_elements)

    def __call__(self, outputs: Tensor, targets: Any = None) -> Tensor:
        return local_contrastive_loss(outputs, targets, dim=self.dim, max_words=self.max_words, weight=self.weight,
                                      gammas=self.gammas, max_elements=self.max_elements)

    def __repr__(self) -> str:
        return (f"LocalContrastiveLoss(dim={self.dim}, max_words={self.max_words}, weight={self.weight}, "
                f"gammas={self.gammas})")


# ------------------------------------------------------------------------------------------ grounding
@torch.no_grad()
def attention_map(model: LocalAlignmentModel, image: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Return each word piece's attention over one film's regions, ``L × gh × gw`` (each row sums to 1) (notebook 07).

    ``image`` is ``C × H × W`` or ``1 × C × H × W``; ``input_ids``/``attention_mask`` one report (``L`` or
    ``1 × L``). Rows of padding and special pieces are computed too; :meth:`LocalAlignmentModel.word_mask` tells
    which are words. Puts the model in eval mode.
    """
    model.eval()
    image = image.unsqueeze(0) if image.ndim == 3 else image
    input_ids = input_ids.reshape(1, -1)
    attention_mask = attention_mask.reshape(1, -1)
    if image.shape[0] != 1:
        raise ValueError(f"attention_map takes one film, got {image.shape[0]}")
    grid = model._region_grid(model._trunk(image)[1])[0]  # dim × gh × gw
    dim, gh, gw = grid.shape
    features = model._word_features(input_ids, attention_mask)[0]  # L × dim, every position
    cos = features @ grid.reshape(dim, gh * gw)  # W × R
    return torch.softmax(model.gammas[0] * cos, dim=-1).reshape(-1, gh, gw)


@torch.no_grad()
def phrase_map(model: LocalAlignmentModel, image: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Return the mean of :func:`attention_map` over a phrase's real words, one ``gh × gw`` map (notebook 07)."""
    maps = attention_map(model, image, input_ids, attention_mask)
    real = model.word_mask(input_ids.reshape(1, -1), attention_mask.reshape(1, -1))[0]
    if not real.any():
        raise ValueError("the phrase has no real word (only padding and special pieces)")
    return maps[real].mean(dim=0)
