"""One training loop for every model in the kit, with its data loading, augmentation, losses, sanity
checks and throughput benchmark, run on one device or under ``torchrun`` (:mod:`.distributed`) and resumable
(:mod:`.resume`). Taught in notebook 02 (image CNN).
"""
from .augment import ImageAugment
from .bench import bare_loop_images_per_s, benchmark_throughput, kit_loop_images_per_s
from .checks import overfit_one_batch, shuffled_labels
from .data import BatchLoader, BatchSource, ImageDataset, TensorDictDataset
from .distributed import World, init_distributed, is_main, world
from .loop import HISTORY_COLUMNS, SCHEDULES, History, fit, load_checkpoint, lr_schedule, predict, refresh_batch_norm
from .losses import UNCERTAINTY_POLICIES, apply_uncertainty_policy, balanced_pos_weight, masked_bce_with_logits
from .resume import TrainingPaused, TrainingStateMismatch

__all__ = [
    "ImageAugment",
    "ImageDataset",
    "TensorDictDataset",
    "BatchLoader",
    "BatchSource",
    "fit",
    "lr_schedule",
    "SCHEDULES",
    "predict",
    "load_checkpoint",
    "refresh_batch_norm",
    "History",
    "HISTORY_COLUMNS",
    "masked_bce_with_logits",
    "apply_uncertainty_policy",
    "balanced_pos_weight",
    "UNCERTAINTY_POLICIES",
    "overfit_one_batch",
    "shuffled_labels",
    "benchmark_throughput",
    "bare_loop_images_per_s",
    "kit_loop_images_per_s",
    "World",
    "init_distributed",
    "is_main",
    "world",
    "TrainingPaused",
    "TrainingStateMismatch",
]
