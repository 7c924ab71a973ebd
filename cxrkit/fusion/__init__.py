"""Fusing the image and text models' predictions, and comparing every model honestly (notebook 04).

Layer-level fusion models (early, joint, cross-attention) live in :mod:`cxrkit.models.fusion` and are
trained by :mod:`cxrkit.recipes.fusion`; this package holds what works on predictions tables:
late fusion (:mod:`cxrkit.fusion.late`) and the comparison (:mod:`cxrkit.fusion.compare`).
"""
from cxrkit.fusion.compare import (align, changed_calls, choose_best, comparison_figure, comparison_table, fusion_gain,
                                   macro_auroc_of, out_of_fold_late)
from cxrkit.fusion.late import LATE_METHODS, LateFusion, fit_late_fusion, late_fusion_predictions, logit

__all__ = ["LATE_METHODS", "LateFusion", "align", "changed_calls", "choose_best", "comparison_figure", "comparison_table",
           "fit_late_fusion", "fusion_gain", "late_fusion_predictions", "logit", "macro_auroc_of", "out_of_fold_late"]
