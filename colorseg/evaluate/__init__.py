"""``python -m colorseg.evaluate``: the same command as ``python -m colorseg evaluate``
(colorseg.cli.evaluate), kept under this name because scores are reported with it."""
