"""Segmentation modules (filled in by the segmentation work)."""
