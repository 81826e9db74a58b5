"""Datasets for training: manifests -> clips, splits, label targets, noise mixing, feature cache.

Pure numpy (no torch), so features can be cached on a machine without the
``train`` extra. The modules, in the order the trainer uses them:

1. :mod:`.datasets`: :func:`data_root` finds the data folder (argument or
   ``MIRTAG_DATA``); readers turn each dataset's manifest into :class:`Clip`
   records (:func:`read_4q`, :func:`read_emotify`, :func:`read_esc50`,
   :func:`read_gtzan`, the generic :func:`read_manifest`);
2. :mod:`.splits`: :func:`make_splits` assigns train / validation / test
   (group- and stratum-aware); the committed assignment is read with
   :func:`read_splits`;
3. :mod:`.targets`: :func:`build_taxonomy` picks the labels of every head,
   :func:`encode_targets` turns clips into target and mask arrays;
4. :mod:`.augment`: :class:`Augment` / :func:`plan_augments` / :func:`mix_noise`
   describe and apply background-noise mixing (ESC-50 under music at an SNR);
5. :mod:`.cache`: :class:`FeatureCache` stores the frontend's pre-window mel
   spectrogram of every (clip, augment); :func:`load_windows` cuts them into
   training arrays.

The names below are the package's API; each lives in one of those modules.
"""

from __future__ import annotations

from .augment import CLEAN, ESC50_CLIP_SECONDS, Augment, max_noise_offset, mix_noise, plan_augments
from .cache import CacheStats, FeatureCache, load_windows
from .datasets import (
    DATA_ENV,
    EMOTIFY_GENRE_LABELS,
    EMOTIFY_GENRES,
    EMOTIONS,
    GTZAN_GENRES,
    GTZAN_LISTS,
    MANIFEST_KINDS,
    QUADRANTS,
    SPLITS,
    Clip,
    data_root,
    normalise_artist,
    parse_label_columns,
    read_4q,
    read_csv_rows,
    read_emotify,
    read_esc50,
    read_gtzan,
    read_manifest,
)
from .splits import SPLIT_FRACTIONS, leaking_groups, make_splits, read_splits, write_splits
from .targets import build_taxonomy, encode_targets

__all__ = [
    "CLEAN",
    "DATA_ENV",
    "EMOTIFY_GENRES",
    "EMOTIFY_GENRE_LABELS",
    "EMOTIONS",
    "ESC50_CLIP_SECONDS",
    "GTZAN_GENRES",
    "GTZAN_LISTS",
    "MANIFEST_KINDS",
    "QUADRANTS",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "Augment",
    "CacheStats",
    "Clip",
    "FeatureCache",
    "build_taxonomy",
    "data_root",
    "encode_targets",
    "leaking_groups",
    "load_windows",
    "make_splits",
    "max_noise_offset",
    "mix_noise",
    "normalise_artist",
    "parse_label_columns",
    "plan_augments",
    "read_4q",
    "read_csv_rows",
    "read_emotify",
    "read_esc50",
    "read_gtzan",
    "read_manifest",
    "read_splits",
    "write_splits",
]
