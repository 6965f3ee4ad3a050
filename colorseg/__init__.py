"""colorseg: CNN colourization (Parts A-C) and segmentation (Part D) of the CSC413 assignment.

Layout: ``colorseg.colour`` (Parts A-C), ``colorseg.segmentation`` (Part D), and the common
infrastructure beside them; docs/architecture.md walks through it.
"""

__version__ = "0.1.0"
