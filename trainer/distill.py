"""Distillation of the musicnn teacher into the classifier: the ``tags`` head and an embedding term.

A run distils when its config names a teacher cache (``[distill] teacher_dir``,
written by ``scripts/teacher_label.py``; see docs/teacher.md). Then:

- **vocabulary**: :data:`VOCABULARY` merges the teacher's MTT and MSD top-50 tags
  into 55 tags (synonyms merged by their maximum, e.g. ``vocals = max(vocal,
  vocals, singing, voice)``; decades and tags the teacher cannot tell apart on
  audio, such as ``sexy`` or ``catchy``, dropped);
- **data**: the labelled Debian music joins the training split (music, no other
  labels, clean only); every clip with teacher windows gets per-window targets;
- **loss**: today's masked losses + ``tags_weight`` x BCE of the new sigmoid head
  ``tags`` to the teacher's per-window probabilities + ``embed_weight`` x MSE of
  a linear projection of the student's embedding to the teacher's standardised
  400-d penultimate features (MTT and MSD side by side). The projection is
  dropped at export; the existing heads keep their labels;
- **judgement**: on validation and test clips the ``tags`` targets are the
  teacher's decisions, track-mean probability >= :data:`DECISION` (a clip
  without teacher windows is masked).

A training window at frame ``s`` takes the teacher window whose start is nearest,
when it lies within one window hop (the teacher labels the runtime's own windows,
or an evenly spaced subset of them; a random training phase falls between two).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mirtag.runtime.errors import ParameterError
from mirtag.runtime.frontend import window_starts

from .teacher_cache import TeacherCache, TeacherWindows

VOCABULARY: tuple[tuple[str, tuple[str, ...]], ...] = (
    # instruments
    ("guitar", ("mtt:guitar", "msd:guitar")),
    ("piano", ("mtt:piano",)),
    ("strings", ("mtt:strings",)),
    ("violin", ("mtt:violin",)),
    ("cello", ("mtt:cello",)),
    ("harpsichord", ("mtt:harpsichord",)),
    ("flute", ("mtt:flute",)),
    ("harp", ("mtt:harp",)),
    ("sitar", ("mtt:sitar",)),
    ("drums", ("mtt:drums",)),
    ("beat", ("mtt:beat", "mtt:beats")),
    ("synth", ("mtt:synth",)),
    ("choir", ("mtt:choir", "mtt:choral")),
    # voice
    ("vocals", ("mtt:vocal", "mtt:vocals", "mtt:singing", "mtt:voice")),
    ("instrumental", ("mtt:no vocals", "mtt:no vocal", "mtt:no voice", "msd:instrumental")),
    ("male vocals", ("mtt:male", "mtt:man", "mtt:male vocal", "mtt:male voice", "msd:male vocalists")),
    (
        "female vocals",
        (
            "mtt:female",
            "mtt:woman",
            "mtt:female vocal",
            "mtt:female voice",
            "msd:female vocalists",
            "msd:female vocalist",
        ),
    ),
    ("opera", ("mtt:opera",)),
    # styles
    ("classical", ("mtt:classical", "mtt:classic")),
    ("electronic", ("mtt:electronic", "msd:electronic", "msd:electronica", "msd:electro")),
    ("techno", ("mtt:techno",)),
    ("house", ("msd:House",)),
    ("dance", ("mtt:dance", "msd:dance")),
    ("ambient", ("mtt:ambient", "msd:ambient")),
    ("new age", ("mtt:new age",)),
    ("rock", ("mtt:rock", "msd:rock")),
    ("hard rock", ("msd:hard rock",)),
    ("classic rock", ("msd:classic rock",)),
    ("progressive rock", ("msd:Progressive rock",)),
    ("alternative", ("msd:alternative", "msd:alternative rock")),
    ("indie", ("msd:indie", "msd:indie rock", "msd:indie pop")),
    ("punk", ("msd:punk",)),
    ("metal", ("mtt:metal", "msd:metal", "msd:heavy metal")),
    ("pop", ("mtt:pop", "msd:pop")),
    ("jazz", ("msd:jazz",)),
    ("blues", ("msd:blues",)),
    ("soul", ("msd:soul",)),
    ("rnb", ("msd:rnb",)),
    ("funk", ("msd:funk",)),
    ("hip-hop", ("msd:Hip-Hop",)),
    ("folk", ("msd:folk",)),
    ("country", ("mtt:country", "msd:country")),
    ("indian", ("mtt:indian",)),
    ("acoustic", ("msd:acoustic",)),
    ("experimental", ("msd:experimental",)),
    ("easy listening", ("msd:easy listening",)),
    # character and mood
    ("slow", ("mtt:slow",)),
    ("fast", ("mtt:fast",)),
    ("loud", ("mtt:loud",)),
    ("quiet", ("mtt:quiet", "mtt:soft")),
    ("mellow", ("msd:Mellow",)),
    ("chill", ("msd:chill", "msd:chillout")),
    ("beautiful", ("msd:beautiful",)),
    ("happy", ("msd:happy",)),
    ("sad", ("msd:sad",)),
)
"""Merged tag -> the teacher tags (``<model>:<tag>``) whose maximum it is."""

GENRES_FROM_TEACHER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Classical", ("mtt:classical", "mtt:classic", "mtt:opera")),
    ("Electronic", ("mtt:electronic", "mtt:techno", "msd:electronic", "msd:electronica", "msd:electro", "msd:House")),
    (
        "Pop/Rock",
        (
            "mtt:rock",
            "mtt:pop",
            "mtt:metal",
            "msd:rock",
            "msd:pop",
            "msd:alternative",
            "msd:indie",
            "msd:metal",
            "msd:punk",
            "msd:classic rock",
            "msd:hard rock",
        ),
    ),
    ("Jazz", ("msd:jazz",)),
    ("New Age", ("mtt:new age",)),
    ("Blues", ("msd:blues",)),
    ("Country", ("mtt:country", "msd:country")),
    ("Folk", ("msd:folk",)),
    ("Rap", ("msd:Hip-Hop",)),
    ("R&B", ("msd:rnb", "msd:soul")),
)
"""AllMusic genre of the ``genre`` head -> the teacher tags whose maximum is its soft target on unlabelled
(Debian) music, with ``teacher_genres`` on. Genres the teacher has no tag for (Vocal, Latin, Reggae,
International) stay unsupervised there."""

TAGS_HEAD = "tags"
GENRE_HEAD = "genre"
DECISION = 0.3
"""The teacher's decision on a track: its track-mean (merged) probability is at least this."""


def tag_names(vocabulary=VOCABULARY) -> list[str]:
    """The ``tags`` head's labels, in vocabulary order."""
    return [name for name, _ in vocabulary]


def merge_matrix(teacher_tags: dict[str, Sequence[str]], vocabulary=VOCABULARY) -> list[list[tuple[str, int]]]:
    """For each merged tag, the (model, column) pairs it takes the maximum of.

    Raises
    ------
    ParameterError
        The vocabulary names a tag the teacher does not have.
    """
    out = []
    for name, sources in vocabulary:
        cols = []
        for src in sources:
            model, _, tag = src.partition(":")
            try:
                cols.append((model, list(teacher_tags[model]).index(tag)))
            except (KeyError, ValueError):
                raise ParameterError(f"tag {name!r}: the teacher has no {src!r}") from None
        out.append(cols)
    return out


def merged_probs(tw: TeacherWindows, merge: list[list[tuple[str, int]]]) -> np.ndarray:
    """(n_windows, n_tags) float32: each merged tag the maximum of its sources."""
    return np.stack([np.max(np.stack([tw.probs[m][:, j] for m, j in cols]), axis=0) for cols in merge], axis=1)


def track_decisions(window_probs: np.ndarray) -> np.ndarray:
    """(n_tags,) bool: the teacher's decisions on a track from its merged window probabilities ``(n_windows, n_tags)``."""
    return window_probs.mean(axis=0) >= DECISION


@dataclass
class TeacherTargets:
    """Per-clip teacher windows of one split, aligned with ``split.clips``.

    Attributes
    ----------
    starts : list of np.ndarray or None
        Per clip: the labelled window starts (None: the teacher never saw the clip).
    tags : list of np.ndarray or None
        Per clip: (n, n_tags) merged probabilities.
    features : list of np.ndarray or None
        Per clip: (n, 400) standardised penultimate features.
    sparse : np.ndarray [shape=(n_clips,), bool]
        Clips whose labelled windows are a subset (long Debian tracks): the epoch
        samples windows only near them.
    """

    starts: list
    tags: list
    features: list
    sparse: np.ndarray

    def nearest(self, i: int, s: int, tolerance: int) -> int | None:
        """Index of clip ``i``'s labelled window nearest to frame ``s``, or None if none is within ``tolerance``."""
        st = self.starts[i]
        if st is None or not len(st):
            return None
        j = int(np.searchsorted(st, s))
        best = min((k for k in (j - 1, j) if 0 <= k < len(st)), key=lambda k: abs(int(st[k]) - s))
        return best if abs(int(st[best]) - s) <= tolerance else None


def attach(
    split,
    cache: TeacherCache,
    root,
    frontend_config,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    genre_labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the teacher windows of every clip of ``split`` into ``split.teacher`` and set its clip-level targets.

    Parameters
    ----------
    split : Split
        Its ``targets``/``masks`` get a ``tags`` entry: the teacher's decisions
        (track mean >= :data:`DECISION`) where the clip has teacher windows.
    cache : TeacherCache
    root : path-like
        The data root (clips resolve against it).
    frontend_config : FrontendConfig
        The run's frontend (a clip with fewer labelled windows than the runtime cuts is sparse).
    stats : (mean, std) of the teacher features, optional
        Standardisation; None computes it from this split (the training split).
    genre_labels : sequence of str, optional
        The ``genre`` head's labels: when given, each Debian clip gets soft
        ``genre`` targets on those of :data:`GENRES_FROM_TEACHER` (the track mean
        of the teacher's merged probabilities), so unlabelled music also teaches
        the genre head what it is not (orchestral game music is not Electronic).

    Returns
    -------
    (mean, std) : the standardisation used.
    """
    merge = merge_matrix(cache.tags)
    genre_cols = genre_merge = None
    if genre_labels is not None and GENRE_HEAD in split.targets:
        pairs = [(g, src) for g, src in GENRES_FROM_TEACHER if g in genre_labels]
        genre_merge = merge_matrix(cache.tags, pairs)
        genre_cols = [list(genre_labels).index(g) for g, _ in pairs]
    n_tags = len(merge)
    n = len(split.clips)
    starts, tags, feats = [None] * n, [None] * n, [None] * n
    sparse = np.zeros(n, bool)
    target = np.zeros((n, n_tags), np.float32)
    mask = np.zeros((n, n_tags), np.float32)
    for i, clip in enumerate(split.clips):
        row = cache.row(clip, root)
        if row is None:
            continue
        tw = cache.load(row)
        starts[i], tags[i], feats[i] = tw.starts, merged_probs(tw, merge), tw.features
        # unlabelled widening (Debian) is sampled only near its labelled windows; labelled clips keep the
        # trainer's own sampler (noise variants, random phase) whatever the teacher's density on them
        sparse[i] = clip.dataset == "debian" and len(tw.starts) < len(
            window_starts(split.mels[i][0].shape[2], frontend_config)
        )
        target[i] = track_decisions(tags[i])
        mask[i] = 1.0
        if genre_merge is not None and clip.dataset == "debian":
            split.targets[GENRE_HEAD][i, genre_cols] = merged_probs(tw, genre_merge).mean(axis=0)
            split.masks[GENRE_HEAD][i, genre_cols] = 1.0
    if stats is None:
        have = [f for f in feats if f is not None]
        allf = np.concatenate(have) if have else np.zeros((1, 400), np.float32)
        stats = (allf.mean(axis=0), allf.std(axis=0) + 1e-3)
    mean, std = stats
    feats = [None if f is None else ((f - mean) / std).astype(np.float32) for f in feats]
    split.teacher = TeacherTargets(starts, tags, feats, sparse)
    split.targets[TAGS_HEAD] = target
    split.masks[TAGS_HEAD] = mask
    return stats


def epoch_windows(split, cfg, rng: np.random.Generator, base: Callable) -> list[tuple[int, int, int]]:
    """The epoch's windows: ``base`` (the trainer's sampler) for every clip but the sparse ones, which
    contribute ``cfg.debian_windows`` of their labelled windows each (random picks, jittered by up to
    a quarter hop)."""
    t = split.teacher
    items = [it for it in base(split, cfg, rng) if not t.sparse[it[0]]]
    wf, wh = cfg.frontend.window_frames, cfg.frontend.window_hop
    for i in np.flatnonzero(t.sparse):
        st = t.starts[i]
        n = split.mels[i][0].shape[2]
        pick = rng.choice(len(st), size=min(cfg.debian_windows, len(st)), replace=False)
        for j in pick:
            s = int(st[j]) + int(rng.integers(-(wh // 4), wh // 4 + 1))
            items.append((int(i), 0, int(np.clip(s, 0, max(0, n - wf)))))
    rng.shuffle(items)
    return items


def window_targets(split, items, targets: dict, masks: dict, tolerance: int) -> None:
    """Per-window ``tags`` targets/masks and the teacher features (``targets["_teacher_features"]``) for a batch."""
    t = split.teacher
    n_tags = targets[TAGS_HEAD].shape[1]
    tags = np.zeros((len(items), n_tags), np.float32)
    tmask = np.zeros((len(items), n_tags), np.float32)
    dim = next((f.shape[1] for f in t.features if f is not None), 400)
    feats = np.zeros((len(items), dim), np.float32)
    fmask = np.zeros((len(items), 1), np.float32)
    for b, (i, _v, s) in enumerate(items):
        j = t.nearest(i, s, tolerance)
        if j is None:
            continue
        tags[b], tmask[b] = t.tags[i][j], 1.0
        feats[b], fmask[b] = t.features[i][j], 1.0
    targets[TAGS_HEAD], masks[TAGS_HEAD] = tags, tmask
    targets["_teacher_features"], masks["_teacher_features"] = feats, fmask


class EmbeddingTap:
    """Keeps the student's embedding of the last forward pass (the input of the classifier's dropout)."""

    def __init__(self, model):
        self.value = None
        self._handle = model.dropout.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.value = inputs[0]

    def close(self) -> None:
        self._handle.remove()


def add_projection(model, dim: int = 400):
    """Give the student a linear projection of its embedding onto the teacher's features (training only)."""
    from . import require_torch

    torch = require_torch()
    model.teacher_proj = torch.nn.Linear(model.embed_dim, dim)
    return model


def embedding_loss(model, tap: EmbeddingTap, targets: dict, masks: dict):
    """Masked MSE between the projected student embedding and the standardised teacher features."""
    from . import require_torch

    torch = require_torch()
    feats, m = targets["_teacher_features"], masks["_teacher_features"]
    if float(m.sum()) == 0:
        return torch.zeros((), device=feats.device)
    pred = model.teacher_proj(tap.value.float())
    err = ((pred - feats) ** 2).mean(dim=1, keepdim=True)
    return (err * m).sum() / m.sum()
