"""Explanations for chest X-ray models: saliency, Grad-CAM, integrated gradients (captum underneath),
sanity checks, clustered localization, localization metrics and text attributions.

Notebook 05 teaches saliency, Grad-CAM, IG, truth measures and sanity checks; notebook 06 teaches
clustered IG localization and text attributions. Every image method explains logit ``target`` (an
output index into the model's ``(B, K)`` logits) of the forward function that predicts, in eval mode.
"""
from ._common import LogitOf, eval_mode
from .figures import method_film_explorer, overlay_figure
from .gradcam import gradcam, resolve_layer
from .ig import completeness_error, integrated_gradients, make_baseline
from .localization_metrics import (
    choose_threshold,
    film_table,
    localization_scores,
    match_regions,
    random_regions,
    threshold_sweep,
)
from .localize import Regions, localize
from .saliency import METHODS, attribute, gradient_saliency, gradient_x_input, smoothgrad, vanilla_gradient
from .sanity import (cascading_randomization, data_randomization_test, map_similarity, randomization_test,
                     sanity_verdict)
from .text import text_integrated_gradients, word_attributions, word_heatmap_figure
from .truth import (
    box_to_mask,
    centre_bias_map,
    films_with_finding,
    mass_inside,
    pointing_game,
    random_map,
    read_bbox_list,
    resize_mask,
    synthetic_truth_masks,
)

__all__ = [
    "LogitOf", "eval_mode", "overlay_figure", "method_film_explorer", "gradcam", "resolve_layer", "completeness_error",
    "integrated_gradients", "make_baseline", "choose_threshold", "film_table", "localization_scores",
    "match_regions", "random_regions", "threshold_sweep", "Regions", "localize", "METHODS", "attribute",
    "gradient_saliency", "gradient_x_input", "smoothgrad", "vanilla_gradient", "cascading_randomization",
    "map_similarity", "randomization_test", "sanity_verdict", "data_randomization_test", "text_integrated_gradients", "word_attributions",
    "word_heatmap_figure", "box_to_mask", "centre_bias_map", "mass_inside", "pointing_game", "random_map",
    "read_bbox_list", "resize_mask", "synthetic_truth_masks", "films_with_finding",
]
