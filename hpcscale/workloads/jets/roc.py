"""ROC curve and its area for a binary classifier's scores (pure numpy)."""

from __future__ import annotations

import numpy as np


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if labels.all() or not labels.any():
        raise ValueError("the ROC needs samples of both classes")
    return labels.astype(bool), scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (the Mann–Whitney statistic, from tie-averaged ranks)."""
    pos, scores = _check(labels, scores)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average rank (1-based) of each group of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0, 0) to
    (1, 1); equal scores make one point."""
    pos, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    s, p = scores[order], pos[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # end of each group of ties
    tp = np.cumsum(p)[last]
    fp = np.cumsum(~p)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def thin(fpr: np.ndarray, tpr: np.ndarray, points: int = 200) -> tuple[list, list]:
    """At most ``points`` points of a ROC curve (for the summary), first and last kept."""
    if fpr.size <= points:
        return fpr.tolist(), tpr.tolist()
    keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, points).round().astype(int)])
    return fpr[keep].tolist(), tpr[keep].tolist()
