"""colorseg: CNN colourization (Parts A-C) and segmentation (Part D) of the CSC413 assignment."""

__version__ = "0.1.0"
