"""Label taxonomy and supervision: which labels each head has, and which of them supervise each clip.

:func:`build_taxonomy` picks the labels of every head; :func:`encode_targets`
turns clips into target and mask arrays (a mask says which labels supervise a
clip: each dataset only knows some of the labels).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mirtag.runtime.errors import ParameterError

from .datasets import EMOTIFY_GENRE_LABELS, EMOTIONS, GTZAN_GENRES, QUADRANTS, Clip


def build_taxonomy(
    clips: Iterable[Clip], min_genre: int = 30, min_mood: int = 25, *, genre_datasets: Sequence[str] = ("4q", "emotify")
) -> dict[str, list[str]]:
    """The labels of every head.

    Heads: ``genre`` (genres of ``genre_datasets`` clips on at least ``min_genre``
    clips, by count then name; GTZAN's lower-case names are another
    vocabulary and stay out by default), ``quadrant`` (Q1-Q4), ``moods`` (tags
    on at least ``min_mood`` clips, sorted), ``music`` (one label),
    ``emotions`` (the 9 GEMS emotions), and every :attr:`Clip.extra` head
    (its labels sorted).
    """
    clips = list(clips)
    genres = Counter(g for c in clips if c.dataset in genre_datasets for g in set(c.genres))
    moods = Counter(m for c in clips for m in set(c.moods))
    tax = {
        "genre": [g for g, n in sorted(genres.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_genre],
        "quadrant": list(QUADRANTS),
        "moods": sorted(m for m, n in moods.items() if n >= min_mood),
        "music": ["music"],
        "emotions": list(EMOTIONS),
    }
    extra: dict[str, set[str]] = defaultdict(set)
    for c in clips:
        for head, labels in c.extra:
            extra[head].update(lab[0] if isinstance(lab, tuple) else lab for lab in labels)
    for head in sorted(extra):
        if head in tax:
            raise ParameterError(f"extra head {head!r} clashes with a built-in head")
        tax[head] = sorted(extra[head])
    return tax


def encode_targets(
    clips: Sequence[Clip], taxonomy: Mapping[str, Sequence[str]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and supervision masks of every head.

    Returns
    -------
    targets, masks : dict of str -> np.ndarray [shape=(n_clips, n_labels), dtype=float32]
        ``masks[h][i, j] = 1`` where label ``j`` of head ``h`` supervises clip
        ``i``; the loss must ignore the rest. Per dataset:

        - 4Q: genre, quadrant (one-hot), moods, music (=1), all labels: its
          genre and mood lists are complete, so absent labels are negatives;
        - Emotify: genre only on Classical, Electronic and Pop/Rock (the labels
          its 4 genres can say anything about: a classical excerpt is not
          evidence against jazz), music (=1), emotions (soft shares);
        - ESC-50: music (=0) only;
        - GTZAN: music (=1); genre on the taxonomy labels that are GTZAN genre
          names, only if the clip's genre is one (exact match: AllMusic names
          are capitalised, so by default GTZAN clips leave genre masked);
        - other manifests: music, and every head the clip has labels for, on
          all its labels.
    """
    n = len(clips)
    index = {h: {lab: j for j, lab in enumerate(labels)} for h, labels in taxonomy.items()}
    targets = {h: np.zeros((n, len(labels)), np.float32) for h, labels in taxonomy.items()}
    masks = {h: np.zeros((n, len(labels)), np.float32) for h, labels in taxonomy.items()}

    def hard(h: str, i: int, labels: Iterable[str], supervise: Iterable[str] | None = None) -> None:
        if h not in index:
            return
        for lab in labels:
            j = index[h].get(lab)
            if j is not None:
                targets[h][i, j] = 1.0
        if supervise is None:
            masks[h][i] = 1.0
        else:
            for lab in supervise:
                if lab in index[h]:
                    masks[h][i, index[h][lab]] = 1.0

    def soft(h: str, i: int, pairs: Iterable[tuple[str, float]]) -> None:
        if h not in index:
            return
        for lab, v in pairs:
            j = index[h].get(lab)
            if j is not None:
                targets[h][i, j] = v
                masks[h][i, j] = 1.0

    for i, c in enumerate(clips):
        if "music" in index:
            targets["music"][i] = 1.0 if c.music else 0.0
            masks["music"][i] = 1.0
        if c.dataset == "esc50":
            continue
        if c.dataset == "emotify":
            hard("genre", i, c.genres, supervise=EMOTIFY_GENRE_LABELS)
            soft("emotions", i, c.emotions or ())
            continue
        if c.dataset == "gtzan":
            if "genre" in index and all(g in index["genre"] for g in c.genres):
                hard("genre", i, c.genres, supervise=GTZAN_GENRES)
            continue
        # 4Q and generic manifests: every head the clip is labelled on, fully.
        if c.genres or c.dataset == "4q":
            hard("genre", i, c.genres)
        if c.quadrant is not None:
            hard("quadrant", i, (c.quadrant,))
        if c.moods or c.dataset == "4q":
            hard("moods", i, c.moods)
        if c.emotions is not None:
            soft("emotions", i, c.emotions)
        for head, labels in c.extra:
            if labels and isinstance(labels[0], tuple):
                soft(head, i, labels)
            else:
                hard(head, i, labels)
    return targets, masks
