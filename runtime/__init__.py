"""mirtag.runtime: the embeddable part of mirtag (numpy, numba, soundfile, soxr, onnxruntime)."""
