"""Segmentation with a frozen DeepLabV3 body and per-task 1x1 heads (assignment Part D)."""
