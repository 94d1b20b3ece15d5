"""Is a difference between two runs more than noise? Confidence intervals on the raw samples.

- Percentiles: a percentile bootstrap of the difference (now - baseline), each run resampled on its
  own, seeded (the same inputs give the same interval).

  Whole seconds are resampled when the phase has per-second marks (at least 5 seconds with values
  a side): latency on a shared machine comes in bursts (a stall, a vacuum, a noisy neighbour puts many
  slow requests into one second), and resampling requests one by one would take a burst for many
  independent observations and call a burst-driven difference significant. A resample draws k of
  the k seconds with replacement; its quantile is read off its distribution function on a grid of
  the run's own values (~1,600 points, finer around the asked percentiles): one matrix product per
  250 resamples, 2,000 resamples.

  Otherwise requests are resampled (10,000 resamples): a resample's q-quantile is its m-th smallest
  value, and the m-th smallest of n uniform draws is Beta(m, n - m + 1) distributed; a resample
  picks index floor(n * U), so its m-th smallest value is ``sorted[floor(n * Beta(m, n - m + 1))]``.
  That is sampled directly: one sort and 10,000 beta draws instead of 10,000 x n draws.
- Error rates: Newcombe's hybrid score interval for a difference of two proportions (Wilson
  intervals of each; sound at 0 errors and at small counts, where the normal approximation is not).
- Iteration rates: per-second counts of the two runs, a Welch interval of the difference of means;
  with fewer than 5 seconds a side, the Poisson interval of the two totals.

Intervals describe the sampling noise within the two runs, not the run-to-run variation of the
system itself; that is what the regression threshold is for. A change counts as a regression only
when it is over the threshold *and* its interval excludes zero on the bad side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
BLOCK_RESAMPLES = 2_000
MIN_BLOCKS = 5  # seconds with values, a side, for the block bootstrap
LEVEL = 0.95
Z = 1.959963984540054  # two-sided 95 %


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def scaled(self, factor: float) -> Interval:
        return Interval(self.low * factor, self.high * factor)


def bootstrap_quantiles(
    values: np.ndarray, qs: Sequence[float], rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """(len(qs), resamples): each percentile q (0-100) of ``resamples`` bootstrap resamples."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    out = np.empty((len(qs), resamples))
    for i, q in enumerate(qs):
        m = min(n, max(1, math.ceil(q / 100 * n)))  # the resample's m-th smallest value (1-based)
        picks = np.minimum((n * rng.beta(m, n - m + 1, resamples)).astype(np.int64), n - 1)
        out[i] = ordered[picks]
    return out


def block_bootstrap_quantiles(
    blocks: Sequence[np.ndarray], qs: Sequence[float], rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """(len(qs), resamples): percentiles of resamples that draw whole blocks (seconds) with replacement."""
    blocks = [np.sort(np.asarray(b, dtype=np.float64)) for b in blocks if len(b)]
    k = len(blocks)
    values = np.concatenate(blocks)
    levels = [np.linspace(0, 100, 801)]
    levels += [np.linspace(max(0.0, q - 10), q + 0.9 * (100 - q), 400) for q in qs]  # finer near each q
    grid = np.unique(np.percentile(values, np.unique(np.concatenate(levels)), method="inverted_cdf"))
    below = np.stack([np.searchsorted(b, grid, side="right") for b in blocks]).astype(np.float64)  # k x T
    sizes = np.array([b.size for b in blocks], dtype=np.float64)
    out = np.empty((len(qs), resamples))
    for start in range(0, resamples, 250):
        stop = min(resamples, start + 250)
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=stop - start).astype(np.float64)
        cdf = (weights @ below) / (weights @ sizes)[:, None]
        for i, q in enumerate(qs):
            out[i, start:stop] = grid[np.argmax(cdf >= q / 100 - 1e-12, axis=1)]
    return out


def _resampled(
    values: np.ndarray, blocks: Sequence[np.ndarray] | None, qs: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    if blocks is not None and sum(1 for b in blocks if len(b)) >= MIN_BLOCKS:
        return block_bootstrap_quantiles(blocks, qs, rng, BLOCK_RESAMPLES)
    return bootstrap_quantiles(values, qs, rng, RESAMPLES)


def percentile_changes(
    base: np.ndarray,
    now: np.ndarray,
    qs: Sequence[float],
    *,
    base_blocks: Sequence[np.ndarray] | None = None,
    now_blocks: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> dict[float, tuple[Interval, Interval]]:
    """Per percentile q (0-100): 95 % intervals of the difference and of the relative change.

    ``*_blocks``: the same values split by second (``Timeline.trend``), for the block bootstrap.
    """
    if base.size < 2 or now.size < 2 or not qs:
        return {}
    rng = np.random.default_rng(seed)
    qa = _resampled(base, base_blocks, qs, rng)
    qb = _resampled(now, now_blocks, qs, rng)
    if qa.shape != qb.shape:  # one side by blocks, the other by requests: compare equal counts
        n = min(qa.shape[1], qb.shape[1])
        qa, qb = qa[:, :n], qb[:, :n]
    diff = qb - qa
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(qa > 0, diff / qa, np.nan)
    tail = (1 - LEVEL) / 2 * 100
    out = {}
    for i, q in enumerate(qs):
        d_lo, d_hi = np.percentile(diff[i], [tail, 100 - tail])
        r = rel[i][np.isfinite(rel[i])]
        r_lo, r_hi = np.percentile(r, [tail, 100 - tail]) if r.size else (math.nan, math.nan)
        out[q] = (Interval(float(d_lo), float(d_hi)), Interval(float(r_lo), float(r_hi)))
    return out


def wilson(hits: int, total: int) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if total <= 0:
        return 0.0, 1.0
    p = hits / total
    centre = (p + Z * Z / (2 * total)) / (1 + Z * Z / total)
    half = Z * math.sqrt(p * (1 - p) / total + Z * Z / (4 * total * total)) / (1 + Z * Z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_change(base: tuple[int, int], now: tuple[int, int]) -> Interval | None:
    """Newcombe's interval for ``now_rate - base_rate`` from (hits, total) of each; None without data."""
    (h1, n1), (h2, n2) = base, now
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = h1 / n1, h2 / n2
    l1, u1 = wilson(h1, n1)
    l2, u2 = wilson(h2, n2)
    d = p2 - p1
    return Interval(
        d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    )


def rate_change(
    base_per_second: np.ndarray | None,
    now_per_second: np.ndarray | None,
    base_total: tuple[float, float],
    now_total: tuple[float, float],
) -> Interval | None:
    """Interval of the difference of two rates (per second): Welch on per-second counts, else Poisson.

    ``*_total`` are (count, seconds) for the Poisson fallback.
    """
    if base_per_second is not None and now_per_second is not None:
        a, b = np.asarray(base_per_second, float), np.asarray(now_per_second, float)
        if a.size >= 5 and b.size >= 5:
            d = float(b.mean() - a.mean())
            se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
            return Interval(d - Z * se, d + Z * se)
    (na, ta), (nb, tb) = base_total, now_total
    if ta <= 0 or tb <= 0:
        return None
    d = nb / tb - na / ta
    se = math.sqrt(max(na, 1.0) / ta**2 + max(nb, 1.0) / tb**2)
    return Interval(d - Z * se, d + Z * se)
