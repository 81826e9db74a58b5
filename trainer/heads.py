"""The classifier's heads, described once: kind, metrics, selection target, confusion title, card rows.

:data:`HEADS` is the one table the trainer, the evaluation and the model card
read. Each row is a *view* of the model's outputs that gets its own metrics:
one per head, plus ``emotify_genre``, the genre head read as a 3-way choice on
the Emotify clips. A head the table does not name (a manifest's own head) gets
:func:`spec_for`'s default: a softmax head when its manifest column is
single-label, else a sigmoid head judged like ``genre``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .data.datasets import EMOTIFY_GENRE_LABELS

SOFTMAX = "softmax"
SIGMOID = "sigmoid"


@dataclass(frozen=True)
class CardRow:
    """One row of the model card's test-results table.

    Attributes
    ----------
    key : str
        The metric's key in a report section (``report.json["test"]``).
    name : str
        What the card calls it.
    minimum : float or None
        The target it must reach, or None for a number shown without a target.
    """

    key: str
    name: str
    minimum: float | None = None


@dataclass(frozen=True)
class HeadSpec:
    """How one view of the model's outputs is trained, judged and reported.

    Attributes
    ----------
    name : str
        The view's name: the report-key prefix (``<name>_accuracy``...).
    head : str
        The model output it reads (``name`` except for derived views).
    kind : str
        ``"softmax"`` (one label per clip) or ``"sigmoid"`` (independent labels).
    metrics : str
        Which metric family :func:`mirtag.trainer.evaluate.head_metrics` computes:
        ``"single"`` (accuracy, vote, F1s, confusion), ``"multi"`` (ROC/PR-AUC,
        thresholded decisions), ``"subset"`` (argmax among ``labels`` on the
        clips of ``dataset``), ``"binary"`` (one-label detection) or ``"soft"``
        (mean absolute error of shares).
    target : str or None
        The report key early stopping and checkpoint selection maximise (their
        mean over views), or None.
    confusion : str or None
        Title of the view's confusion matrix, when it has one.
    decisions : str or None
        How its decisions are made, for the card's decisions table.
    card : tuple of CardRow
        The card's test-results rows of this view.
    labels : tuple of str
        ``"subset"`` views: the labels the argmax is taken among.
    dataset : str or None
        ``"subset"`` views: the clips the view is judged on.
    descriptions : mapping or None
        Label -> description, written into the exported card.
    confusion_labels : tuple of str or None
        Names of a ``"binary"`` view's two classes (negative, positive).
    """

    name: str
    kind: str
    metrics: str
    target: str | None = None
    confusion: str | None = None
    decisions: str | None = None
    card: tuple[CardRow, ...] = ()
    head: str = ""
    labels: tuple[str, ...] = ()
    dataset: str | None = None
    descriptions: Mapping[str, str] | None = None
    confusion_labels: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.head:
            object.__setattr__(self, "head", self.name)


HEADS: tuple[HeadSpec, ...] = (
    HeadSpec(
        "quadrant",
        SOFTMAX,
        "single",
        target="quadrant_accuracy",
        confusion="Quadrant",
        decisions="argmax",
        card=(
            CardRow("quadrant_accuracy", "Quadrant accuracy (4Q, track mean)", 0.70),
            CardRow("quadrant_accuracy_vote", "Quadrant accuracy (4Q, majority vote)"),
            CardRow("quadrant_macro_f1", "Quadrant macro-F1"),
        ),
        descriptions={"Q1": "happy/excited", "Q2": "angry/tense", "Q3": "sad/depressed", "Q4": "calm/relaxed"},
    ),
    HeadSpec(
        "genre",
        SIGMOID,
        "multi",
        target="genre_macro_roc_auc",
        decisions="validation thresholds",
        card=(
            CardRow("genre_macro_roc_auc", "Genre macro ROC-AUC (labels with >= 5 test positives)", 0.85),
            CardRow("genre_macro_pr_auc", "Genre macro PR-AUC"),
        ),
    ),
    HeadSpec(
        "moods",
        SIGMOID,
        "multi",
        target="moods_macro_roc_auc",
        decisions="validation thresholds",
        card=(
            CardRow("moods_macro_roc_auc", "Mood macro ROC-AUC", 0.78),
            CardRow("moods_macro_pr_auc", "Mood macro PR-AUC"),
        ),
    ),
    HeadSpec(
        "emotify_genre",
        SOFTMAX,
        "subset",
        head="genre",
        labels=EMOTIFY_GENRE_LABELS,
        dataset="emotify",
        target="emotify_genre_accuracy",
        confusion="Emotify genre (argmax of 3)",
        decisions="argmax of 3",
        card=(CardRow("emotify_genre_accuracy", "Emotify genre accuracy (Classical / Electronic / Pop/Rock)", 0.90),),
    ),
    HeadSpec(
        "music",
        SIGMOID,
        "binary",
        target="music_roc_auc",
        confusion="Music vs not music",
        decisions="validation threshold",
        confusion_labels=("not music", "music"),
        card=(CardRow("music_roc_auc", "Music vs not-music ROC-AUC (unseen ESC-50 categories)", 0.98),),
    ),
    HeadSpec("emotions", SIGMOID, "soft"),
    HeadSpec(
        "tags",
        SIGMOID,
        "multi",
        decisions="validation threshold",
        card=(
            CardRow(
                "tags_macro_roc_auc", "Teacher tags macro ROC-AUC (vs the teacher's decisions on test audio)", 0.90
            ),
        ),
    ),
)
"""The built-in views, in the order reports and the model card list them."""

_BY_NAME = {s.name: s for s in HEADS}


def spec_for(name: str, kind: str | None = None) -> HeadSpec:
    """The table's row of a view, or the default row of a head it does not name.

    Parameters
    ----------
    name : str
        A head or view name.
    kind : str, optional
        For a head outside the table: ``"softmax"`` gives a single-label head
        (target: its accuracy), anything else a multi-label sigmoid head
        (target: its macro ROC-AUC).
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    if kind == SOFTMAX:
        return HeadSpec(name, SOFTMAX, "single", target=f"{name}_accuracy", confusion=name, decisions="argmax")
    return HeadSpec(name, SIGMOID, "multi", target=f"{name}_macro_roc_auc", decisions="validation thresholds")


def views(heads: Iterable[str], kinds: Mapping[str, str] | None = None) -> list[HeadSpec]:
    """The views of a model with these heads: the table's rows whose head it has, then its own heads."""
    heads = list(heads)
    out = [s for s in HEADS if s.head in heads]
    out += [spec_for(h, (kinds or {}).get(h)) for h in heads if h not in _BY_NAME]
    return out


def head_kinds(heads: Iterable[str], manifest_kinds: Mapping[str, str] | None = None) -> dict[str, str]:
    """``softmax`` or ``sigmoid`` for each head.

    Parameters
    ----------
    heads : iterable of str
        Head names (a taxonomy's keys).
    manifest_kinds : mapping, optional
        Head -> manifest column kind (``single`` / ``multi`` / ``soft``) of the
        heads that manifests add: a ``single`` head is a softmax head.
    """
    manifest_kinds = manifest_kinds or {}
    out = {}
    for h in heads:
        if h in _BY_NAME:
            out[h] = _BY_NAME[h].kind
        else:
            out[h] = SOFTMAX if manifest_kinds.get(h) == "single" else SIGMOID
    return out


def manifest_head_kinds(manifests: Iterable[Mapping]) -> dict[str, str]:
    """Head -> column kind of the heads the training config's ``[[data.manifests]]`` tables label.

    A head labelled ``single`` in one manifest and ``multi`` in another is
    multi-label.
    """
    out: dict[str, str] = {}
    for spec in manifests:
        for col in (spec.get("labels") or {}).values():
            head, kind = col[0], col[1]
            out[head] = kind if out.get(head, kind) == kind else "multi"
    return out


def selection_targets(specs: Iterable[HeadSpec] = HEADS) -> list[str]:
    """The report keys early stopping and checkpoint selection average."""
    return [s.target for s in specs if s.target]


def card_rows(specs: Iterable[HeadSpec] = HEADS) -> list[CardRow]:
    """Every row of the model card's test-results table, in table order."""
    return [row for s in specs for row in s.card]


def decision_rows(specs: Iterable[HeadSpec] = HEADS) -> list[tuple[str, str]]:
    """``(report-key prefix, name)`` of each view in the card's decisions table."""
    out = []
    for s in specs:
        if s.decisions is None:
            continue
        title = (s.confusion or s.name) if s.metrics == "subset" else s.name
        name = title if s.metrics == "subset" else f"{title} ({s.decisions})"
        out.append((s.name, name))
    return out


def confusion_title(name: str) -> str:
    """Title of the confusion matrix of view ``name`` (its own name when the table has none)."""
    spec = _BY_NAME.get(name)
    return spec.confusion if spec is not None and spec.confusion else name
