"""Readers for the kit's inputs: DICOM and PNG/JPEG images, MIMIC-CXR report text and Open-i report XML.

Taught in notebook 01 (data preparation). Import the submodules directly
(``cxrkit.io.dicom``, ``cxrkit.io.images``, ``cxrkit.io.reports``, ``cxrkit.io.resize``);
nothing heavy is imported here.
"""
