"""Tracks like these: seeds (indexed paths or any audio file) -> nearest neighbours in an embeddings file.

A seed that is in the embeddings file uses its stored vector; any other audio
file is tagged on the fly with the model that made the file (matched by its
sha256: the shipped model, or ``model``), so its vector is comparable. Several
seeds query their centroid (the normalised mean of their unit vectors); the
seeds themselves are left out of the answer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from .card import load_card, resolve_model
from .embeddings import Embeddings, EmbeddingsError, Hit
from .errors import MirtagError

_LOGGER = logging.getLogger(__name__)


def _model_for(emb: Embeddings, model: str | os.PathLike[str] | None):
    sha = emb.meta.get("model_sha256")
    card = resolve_model(None) if model is None else load_card(model)
    if sha and card.sha256 != sha:
        raise EmbeddingsError(
            f"{emb.path} was made by {emb.meta.get('model')} (sha256 {sha[:12]}...), not {card.ref}: "
            "pass that model with --model to tag seeds that are not in it"
        )
    return card


def seed_vectors(
    emb: Embeddings,
    seeds: Sequence[str | os.PathLike[str]],
    *,
    model: str | os.PathLike[str] | None = None,
    device: str | None = "auto",
) -> tuple[np.ndarray, list[int]]:
    """The vectors of the seeds [shape=(S, D), float32] and the indices of those found in the file.

    Raises
    ------
    MirtagError
        A seed is neither in the file nor a readable audio file (the message names it).
    """
    vectors, found, outside = [], [], []
    for seed in seeds:
        i = emb.find(seed)
        if i is None:
            i = emb.find(os.path.abspath(seed))
        if i is not None:
            vectors.append(emb.vector(i))
            found.append(i)
        elif os.path.isfile(seed):
            outside.append(os.fspath(seed))
        else:
            raise MirtagError(f"{seed}: not in {emb.path} and not a file")
    if outside:
        from .tagger import Tagger

        card = _model_for(emb, model)
        tagger = Tagger.load(card.path, device=device)
        for path in outside:
            result = tagger.tag_file(path)
            if result.embedding is None:
                raise EmbeddingsError(f"{card.ref}: the model has no 'embedding' output")
            _LOGGER.info("%s: tagged on the fly (%s)", path, card.ref)
            vectors.append(result.embedding)
    return np.stack(vectors).astype(np.float32), found


def similar(
    emb: Embeddings,
    seeds: Sequence[str | os.PathLike[str]],
    n: int = 20,
    *,
    model: str | os.PathLike[str] | None = None,
    device: str | None = "auto",
) -> list[Hit]:
    """The ``n`` tracks most like the seeds (exact cosine; seeds excluded), best first."""
    if not seeds:
        raise MirtagError("give at least one seed")
    vectors, found = seed_vectors(emb, seeds, model=model, device=device)
    seed_paths = {os.fsencode(os.path.abspath(s)) for s in seeds}
    hits = emb.nearest(vectors, n=n + len(seeds), exclude=found)
    hits = [h for h in hits if os.fsencode(os.path.abspath(h.path)) not in seed_paths]
    return hits[:n]
