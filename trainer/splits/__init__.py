"""Committed train / validation / test assignments (``<dataset>.csv``: ``file,split``), read by ``mirtag.trainer.data.read_splits``."""
