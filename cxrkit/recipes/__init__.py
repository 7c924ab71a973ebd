"""Recipes: train-or-load the kit's models for a profile, so each notebook runs on its own.

A notebook that needs notebook 02's image model calls ``trained_image_model(P)``: the checkpoint and
predictions are loaded from ``CXRKIT_HOME`` when present (keyed by the parameters that made them) and
rebuilt with the same recipe when absent.
"""
