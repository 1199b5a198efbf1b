"""The fitter's batch driver: padding, chunks, sharding over local devices, rounds, the grid
retry, statistics, and processes under ``jax.distributed``; `fit` (one problem: the λ
profile, the basins) on top. The maths — residuals, starts, the solver, statistics — lives in
``_fit`` and ``_solver``; this module only decides what runs where and in which order.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _problem as _fit
from .. import laws as _laws
from . import _stats
from ._problem import MAX_ITERATIONS, NONFINITE, make_problem
from ._stats import FitResult, provenance
from ..errors import FitError, InputError

__all__ = ["fit", "fit_batch"]

ROUND = 10  # iterations per round; unfinished problems are regrouped into full chunks between rounds
LAM_GRID = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
BASIN_TIE = 1e-3  # relative objective gap under which two basins "fit almost equally well"
BASIN_SPREAD = 5e-3  # relative prediction gap over which they "predict differently"
BOUND_BASINS = 3  # a fit at a bound tries this many times more basins
# Problems with more than COARSE_ABOVE (point, decrement) pairs (MPL-type laws on long runs with a
# decrement at every step) search on a copy thinned to about COARSE_PAIRS pairs first (see
# _coarse_to_fine); each run keeps >= COARSE_MIN_POINTS points there, and the search's optima
# within COARSE_KEEP of its best are polished on every point.
COARSE_ABOVE, COARSE_PAIRS, COARSE_MIN_POINTS, COARSE_KEEP = 1_000_000, 300_000, 16, 0.1


class _Plan(NamedTuple):
    """What a batch runs on: the padded problems of one law, the chunk size, the sharding."""

    kind: str
    opts: tuple
    problems: list
    chunk: int
    sharding: object  # NamedSharding over the local devices, or None (one device)
    data: tuple  # every problem's (features, observations, mask), stacked once: numpy, or on the device
    lo: np.ndarray  # every problem's lowest observed loss (the start grids' L0 scale)
    workers: int  # chunks in flight at once (WORKERS on the CPU; 1 on accelerators, not measured there)

    def put(self, tree):
        if self.sharding is None:
            return tree
        return jax.tree.map(lambda x: jax.device_put(x, self.sharding), tree)

    def chunks(self, idx, work, shrink=False):
        """``(sel, pick, work(pick, data))`` for full chunks of the problems ``idx``, in order;
        ``data`` is the chunk's (features, observations, mask) on the device(s). The last chunk
        is padded by repeating its last problem to ``chunk`` or, with ``shrink`` (the later
        rounds, where 1-2 slow problems can run on for many rounds), to the smallest of
        ``chunk``, ``chunk/4``, ``chunk/16`` (whole devices) that holds it: a few shapes, each
        compiled once, and a slow tail no longer pays for 32 lanes an iteration (elsewhere a
        smaller shape would cost a fresh process another trace of each kernel, ~0.3 s).
        ``WORKERS`` chunks are worked on at once on the CPU, in threads (JAX releases the GIL
        while it computes): on the 2-core CPU one chunk's solver runs beside another's (×1.35 the
        throughput at N = 1 000); on accelerators one at a time (not measured there). ``work`` must only
        read the rows of its own chunk of any shared state; results are consumed in order."""
        picks = []
        for c0 in range(0, idx.size, self.chunk):
            sel = idx[c0:c0 + self.chunk]
            size = self.chunk
            while shrink and size % 4 == 0 and size // 4 >= sel.size and (size // 4) % self.ndev == 0:
                size //= 4
            picks.append((sel, np.concatenate([sel, np.full(size - sel.size, sel[-1])])))
        # The first chunk alone: it traces and compiles the pass's kernels once (two threads
        # that both start cold would both trace them).
        for sel, pick in picks[:1] if self.workers > 1 else picks:
            yield sel, pick, work(pick, self.rows(pick))
        if self.workers < 2 or len(picks) < 2:
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cptjax-fit")
        try:
            futures = [pool.submit(lambda p=pick: work(p, self.rows(p))) for _, pick in picks[1:]]
            for (sel, pick), fut in zip(picks[1:], futures):
                yield sel, pick, fut.result()
        finally:  # also on Ctrl-C or an error: nothing more starts, the running chunks end
            pool.shutdown(wait=True, cancel_futures=True)

    def rows(self, pick):
        """The problems ``pick``'s (features, observations, mask) on the device(s)."""
        if isinstance(self.data[1], np.ndarray):
            feats, obs, mask = self.data
            return self.put((tuple(f[pick] for f in feats), obs[pick], mask[pick]))
        return _rows(self.data, pick)  # resident on the one device: gathered there

    def grids(self, pick):
        """The fallback start grids of the problems ``pick`` (`_fit.starts`), (n, starts, p)."""
        return _fit.starts_batch(self.kind, self.lo[pick])

    @property
    def ndev(self):
        return 1 if self.sharding is None else len(self.sharding.mesh.devices.flat)


class _State(NamedTuple):
    """Every problem's solver state (numpy, length N): θ, objective, status, iterations, the LM
    damping (μ, ν) and the iterations granted so far."""

    theta: np.ndarray
    f: np.ndarray
    st: np.ndarray
    it: np.ndarray
    mu: np.ndarray
    nu: np.ndarray
    used: np.ndarray

    @classmethod
    def empty(cls, n, p):  # not started counts as running
        return cls(np.zeros((n, p)), np.zeros(n), np.full(n, MAX_ITERATIONS), np.zeros(n, int),
                   np.zeros(n), np.zeros(n), np.zeros(n, int))

    def set(self, sel, **cols):
        """Write ``cols`` at rows ``sel``, in place (O(rows): a copy per chunk would make a pass
        over N problems O(N²/chunk)); returns the state."""
        for k, v in cols.items():
            getattr(self, k)[sel] = v
        return self

    def copy(self):
        return _State(*(a.copy() for a in self))

    def running(self, idx, max_iter):
        return idx[(self.st[idx] == MAX_ITERATIONS) & (self.used[idx] < max_iter)]


class _Progress:
    """Calls ``progress(done, total)`` after each chunk, never going back (a grid retry re-opens
    problems); counts the finished problems incrementally, from the rows a chunk wrote."""

    def __init__(self, fn, total, max_iter):
        self.fn, self.total, self.max_iter, self.done = fn, total, max_iter, 0
        self.finished, self.count = np.zeros(total, bool), 0

    def __call__(self, state, sel):
        if self.fn is None:
            return
        now = (state.st[sel] != MAX_ITERATIONS) | (state.used[sel] >= self.max_iter)
        self.count += int(now.sum()) - int(self.finished[sel].sum())
        self.finished[sel] = now
        self.done = max(self.done, self.count)
        self.fn(self.done, self.total)


def _stack(problems):
    feats = tuple(np.stack([p.feats[j] for p in problems]) for j in range(len(problems[0].feats)))
    return feats, np.stack([p.obs for p in problems]), np.stack([p.mask for p in problems])


def _repad(p, n):
    """A problem padded to ``n`` points (masked); per-run extras are `_pad_extras`' job."""
    extra = n - p.obs.size
    if not extra:
        return p
    k = p.n_point_feats
    feats = tuple(np.concatenate([f, np.repeat(f[:1], extra)]) for f in p.feats[:k]) + p.feats[k:]
    return dataclasses.replace(p, feats=feats, obs=np.concatenate([p.obs, np.ones(extra)]),
                               mask=np.concatenate([p.mask, np.zeros(extra, bool)]))


def _pad_extras(problems):
    """Per-run extras (MPL's decrements) padded to one length with the law's inert entry."""
    k = problems[0].n_point_feats
    if len(problems[0].feats) == k:
        return problems
    m = max(p.feats[-1].size for p in problems)
    pad = _fit._spec(problems[0].kind)[0].extra_pad
    return [dataclasses.replace(p, feats=p.feats[:k] + tuple(
        np.concatenate([f, np.full(m - f.size, v)]) for f, v in zip(p.feats[k:], pad))) for p in problems]


_rows = jax.jit(lambda data, pick: jax.tree.map(lambda a: a[pick], data))
WORKERS = 2  # chunks in flight at once (Plan.chunks); 1: one after another
RESIDENT = 0.25  # data kept on a lone accelerator when under this fraction of its memory (0: never)


def _resident(data, sharding):
    """Whether the stacked problems stay on the device for the whole fit (one accelerator, room
    to spare): each pass then gathers its chunks there, instead of copying them from the host
    (the host was the bottleneck on an H200: ~110 µs per problem, compute a fraction of it)."""
    if sharding is not None or not RESIDENT or jax.default_backend() == "cpu":
        return False
    limit = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit", 0)
    return sum(a.nbytes for a in jax.tree.leaves(data)) < RESIDENT * limit


def _plan(problems, chunk):
    """Pad the problems to one shape and choose the chunk: 32 per device on CPU (a chunk's working
    set stays in cache), 4 096 per device on accelerators (an H200, 2·10⁴ problems: 13.2K
    problems/s at 512, 17.7K at 4 096, 18.7K at 16 384; 4 096 keeps a chunk near 1.5 GB); laws
    with per-run extras (MPL: (point, decrement) pairs) keep a chunk's temporaries near 32 MB."""
    # The kernels see the law's options less λ and ε (they shape the features, not the
    # computation): problems at different λ share one compilation and one batch.
    kind, opts = problems[0].kind, _fit.kernel_opts(problems[0].opts)
    if any(p.kind != kind or _fit.kernel_opts(p.opts) != opts for p in problems):
        raise InputError("fit_batch: all problems must use the same law and options")
    n_max = max(p.obs.size for p in problems)
    problems = _pad_extras([_repad(p, n_max) for p in problems])
    ndev = jax.local_device_count()
    if chunk is None:
        chunk = (32 if jax.default_backend() == "cpu" else 4096) * ndev
    if len(problems[0].feats) > problems[0].n_point_feats:
        chunk = min(chunk, max(1, int(32e6 / (8 * 8 * problems[0].feats[-1].size))))
    chunk = max(ndev, (min(chunk, len(problems)) // ndev) * ndev)
    sharding = None
    if ndev > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        sharding = NamedSharding(Mesh(np.array(jax.local_devices()), ("b",)), PartitionSpec("b"))
    data = _stack(problems)
    lo = np.nanmin(np.where(data[2], data[1], np.nan), axis=1)
    if _resident(data, sharding):
        data = jax.device_put(data)
    workers = WORKERS if jax.default_backend() == "cpu" else 1
    return _Plan(kind, opts, problems, chunk, sharding, data, lo, workers)


def _first_round(plan, state, todo, delta, max_iter, progress):
    """Starts (variable projection + the grid, screened by objective) and the first ``ROUND``
    iterations of the problems ``todo``."""
    first = min(max_iter, ROUND)

    def work(pick, data):
        theta = _fit._start_batch(plan.kind, plan.opts, plan.put(plan.grids(pick)), *data, delta)
        warm = plan.put((np.full(len(pick), _fit.MU0), np.full(len(pick), 2.0), np.full(len(pick), first)))
        return jax.device_get(_fit._continue_batch(plan.kind, plan.opts, theta, warm[0], warm[1], *data, delta,
                                                   warm[2], irls=_fit.IRLS_START))

    for sel, pick, out in plan.chunks(todo, work):
        th, f, st, it, mu, nu = (np.asarray(o)[:sel.size] for o in out)
        state = state.set(sel, theta=th, f=f, st=st, it=it, mu=mu, nu=nu, used=first)
        progress(state, sel)
    return state


def _screen_grid(plan, state, todo, init, delta, max_iter, progress):
    """Grid-only starts (the law's grid, or ``init``, natural units): each run for ``SCREEN_ITER``
    iterations (one start: a first round) with the continuation's compiled solver, the best kept
    per problem."""
    n0 = min(max_iter, ROUND if init is not None else _fit.SCREEN_ITER)

    def work(pick, data):
        grid = plan.grids(pick) if init is None else np.repeat(np.atleast_2d(init)[None], len(pick), 0)
        theta = np.asarray(_fit._to_theta_batch(plan.kind, grid))
        best, score = None, None
        for j in range(theta.shape[1]):
            warm = plan.put((theta[:, j], np.full(len(pick), _fit.MU0), np.full(len(pick), 2.0)))
            out = [np.asarray(o) for o in jax.device_get(_fit._continue_batch(
                plan.kind, plan.opts, *warm, *data, delta, plan.put(np.full(len(pick), n0)), irls=_fit.IRLS_GRID))]
            s = np.where((out[2] == NONFINITE) | ~np.isfinite(out[1]), np.inf, out[1])
            if best is None or (s < score).any():
                better = np.ones(s.size, bool) if best is None else s < score
                best = [np.where(better.reshape((-1,) + (1,) * (o.ndim - 1)), o, b) for o, b in
                        zip(out, out if best is None else best)]
                score = np.where(better, s, score)
        return best

    for sel, pick, best in plan.chunks(todo, work):
        th, f, st, it, mu, nu = (o[:sel.size] for o in best)
        # Screening iterations do not count against max_iter (the best start gets a full budget).
        state = state.set(sel, theta=th, f=f, st=st, it=it, mu=mu, nu=nu, used=n0 if init is not None else 0)
        progress(state, sel)
    return state


def _more_rounds(plan, state, todo, grid_only, delta, max_iter, progress):
    """Problems still running continue in regrouped full chunks, ``ROUND`` iterations at a time."""
    def work(pick, data):
        budget = np.minimum(ROUND, max_iter - state.used[pick])
        warm = plan.put((state.theta[pick], state.mu[pick], state.nu[pick]))
        return budget, jax.device_get(_fit._continue_batch(plan.kind, plan.opts, *warm, *data, delta,
                                                           plan.put(budget), irls=_fit.IRLS_GRID if grid_only else 0))

    while (act := state.running(todo, max_iter)).size:
        for sel, pick, (budget, out) in plan.chunks(act, work, shrink=True):
            th, f, st, it, mu, nu = (np.asarray(o)[:sel.size] for o in out)
            state = state.set(sel, theta=th, f=f, st=st, it=state.it[sel] + it, mu=mu, nu=nu,
                              used=state.used[sel] + budget[:sel.size])
            progress(state, sel)
    return state


def _solve(plan, state, todo, init, grid_only, delta, max_iter, progress):
    if grid_only:
        state = _screen_grid(plan, state, todo, init, delta, max_iter, progress)
    else:
        state = _first_round(plan, state, todo, delta, max_iter, progress)
    return _more_rounds(plan, state, todo, grid_only, delta, max_iter, progress)


def _retry_at_bound(plan, state, delta, max_iter, progress):
    """One data-driven start is fast but can land in a boundary minimum (a positive parameter
    driven to 0); such fits, and non-finite ones, are redone from the grid with iterative
    screening, keeping the better result."""
    retry = np.flatnonzero(_fit._at_bound(plan.kind, state.theta)[0].any(1) | (state.st == NONFINITE))
    if not retry.size:
        return state
    score = lambda s: np.where((s.st[retry] != NONFINITE) & np.isfinite(s.f[retry]), s.f[retry], np.inf)
    new = _solve(plan, state.copy(), retry, None, True, delta, max_iter, progress)
    better = score(new) < score(state)
    keep = retry[~better]
    return new.set(keep, theta=state.theta[keep], f=state.f[keep], st=state.st[keep], it=state.it[keep])


def _retry_max_iter(plan, state, delta, max_iter, progress):
    """Fits still moving when their ``max_iter`` ran out are restarted once from where they
    stopped, with the damping reset (Levenberg–Marquardt that crawls along a curved valley with a
    large μ often finishes quickly from a fresh μ) and another ``max_iter``; the iterations add
    up. What still does not converge keeps its status, and its result says so."""
    again = np.flatnonzero(state.st == MAX_ITERATIONS)
    if not again.size:
        return state
    state.set(again, mu=np.full(again.size, _fit.MU0), nu=np.full(again.size, 2.0), used=0)
    return _more_rounds(plan, state, again, False, delta, max_iter, progress)


def _statistics(plan, theta, delta):
    """Fit statistics of every problem at θ, as arrays with a leading problem axis."""
    work = lambda pick, data: jax.device_get(_stats._stats_batch(plan.kind, plan.opts, plan.put(theta[pick]),
                                                                 *data, delta))
    parts = [{k: np.asarray(v)[:sel.size] for k, v in stats.items()}
             for sel, pick, stats in plan.chunks(np.arange(theta.shape[0]), work)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _fit_local(problems, delta, max_iter, chunk, init, progress, stats=True):
    """(solver state, statistics or None) of problems on this process's devices."""
    plan = _plan(problems, chunk)
    n, p = len(plan.problems), len(_fit._spec(plan.kind)[1])
    report = _Progress(progress, n, max_iter)
    state = _solve(plan, _State.empty(n, p), np.arange(n), init, init is not None, delta, max_iter, report)
    if init is None:
        state = _retry_at_bound(plan, state, delta, max_iter, report)
    state = _retry_max_iter(plan, state, delta, max_iter, report)
    return state, (_statistics(plan, state.theta, delta) if stats else None)


def _results(kind, opts, arrays, delta):
    """FitResults from per-problem arrays (θ, objective, status, iterations, statistics);
    ``opts``: each problem's law options (a list of them)."""
    x = np.asarray(_fit._to_natural_batch(kind, arrays["theta"]))  # all problems in one call
    bound, beta_zero = _fit._at_bound(kind, arrays["theta"])
    # Python scalars up front (tolist is one C loop; float() of numpy scalars per field is not).
    cols = {k: (v if v.ndim > 1 else v.tolist()) for k, v in arrays.items() if k not in ("theta", "f", "st", "it")}
    xs, fs, sts, its = x.tolist(), arrays["f"].tolist(), arrays["st"].tolist(), arrays["it"].tolist()
    return [_stats._finish(kind, opts[i], None, arrays["theta"][i], xs[i], fs[i], sts[i], its[i],
                           {k: v[i] for k, v in cols.items()}, delta, bounds=(bound[i], beta_zero[i]))
            for i in range(len(xs))]


def _no_rows(prob, delta):
    """The per-problem arrays of zero problems (shapes and dtypes by ``jax.eval_shape``: nothing
    is solved)."""
    plan = _plan([prob], 1)
    data = plan.rows(np.arange(1))
    theta = np.zeros((1, len(_fit._spec(plan.kind)[1])))
    stats = jax.eval_shape(lambda t, *d: _stats._stats_batch(plan.kind, plan.opts, t, *d, delta), theta, *data)
    rows = {k: np.zeros((0,) + v.shape[1:], v.dtype) for k, v in stats.items()}
    state = _State.empty(0, theta.shape[1])
    return {"theta": state.theta, "f": state.f, "st": state.st, "it": state.it, **rows}


def _gather(arrays: dict, n_total: int, share: int) -> dict:
    """Every process's rows (``share`` each, padded) of each array, in input order."""
    from jax.experimental import multihost_utils

    out = {}
    for k, v in arrays.items():
        pad = np.zeros((share - v.shape[0],) + v.shape[1:], v.dtype)
        g = np.asarray(multihost_utils.process_allgather(np.concatenate([v, pad])))
        out[k] = g.reshape((-1,) + v.shape[1:])[:n_total]
    return out


def fit_batch(problems, *, delta: float = 1e-3, max_iter: int = 200, chunk: int | None = None,
              init=None, progress=None, throw: bool = False) -> list:
    """Fit N independent problems of one law kind at once: padded + masked (one compilation),
    chunked to bound memory, sharded over all local devices when there are several, and split
    across processes under ``jax.distributed`` (one process per host; every process passes the
    same problems, solves its contiguous share, and gets all results back in input order).

    ``chunk`` is the number of problems solved together on this process (default: 32 per device
    on CPU, 4 096 per device on accelerators). Problems run in rounds of ``ROUND`` iterations; after
    each round the unfinished ones are regrouped into full chunks, so no lane idles while a slow
    problem in its chunk converges. Returns a list of `FitResult` (each with its status).
    ``progress(done, total)`` is called after each chunk of work with the number of finished
    problems (this process's share).

    Example (two hosts; run the same script on each):

        jax.distributed.initialize()  # or (coordinator_address, num_processes, process_id)
        results = cptjax.fit_batch(problems)  # each process fits half, all get every result
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InputError(f"`max_iter` must be an integer >= 1, got {max_iter!r}")
    if not problems:
        return []
    problems = list(problems)
    kind = problems[0].kind
    n_proc, rank = jax.process_count(), jax.process_index()
    if n_proc == 1:
        state, stats = _fit_local(problems, delta, max_iter, chunk, init, progress)
        arrays = {"theta": state.theta, "f": state.f, "st": state.st, "it": state.it, **stats}
    else:
        share = -(-len(problems) // n_proc)
        mine = problems[rank * share:(rank + 1) * share]
        if mine:
            state, stats = _fit_local(mine, delta, max_iter, chunk, init, progress)
            arrays = {"theta": state.theta, "f": state.f, "st": state.st, "it": state.it, **stats}
        else:  # more processes than problems: this one only takes part in the gather
            arrays = _no_rows(problems[0], delta)
        arrays = _gather(arrays, len(problems), share)
    out = _results(kind, [p.opts for p in problems], arrays, delta)
    bad = [i for i, r in enumerate(out) if not r.finite] if throw else []  # ~20 µs a problem
    if bad:
        raise FitError(f"{len(bad)} of {len(out)} fits ended non-finite (first: problem {bad[0]})")
    return out


def _basin_runs(prob, k, delta, max_iter, skip=0):
    """The solver alone (no statistics) from each of the ``k`` best distinct variable-projection
    starts of ``prob`` after the ``skip`` best: a list of one-problem solver states."""
    feats = tuple(map(jnp.asarray, prob.feats))
    th = np.asarray(_fit._vp_starts_jit(prob.kind, _fit.kernel_opts(prob.opts), feats, jnp.asarray(prob.obs),
                                        jnp.asarray(prob.mask), 4 * (k + skip), _fit.VP_POINTS_BASINS))
    picked = []
    for t in th:  # distinct: every coordinate of θ apart by > 5%, or a sign change
        if all(np.max(np.abs(t - q)) > 0.05 for q in picked):
            picked.append(t)
        if len(picked) == k + skip:
            break
    if len(picked) <= skip:
        return []
    return _runs_from(prob, np.asarray(_fit._to_natural_batch(prob.kind, np.stack(picked[skip:]))), delta, max_iter)


def _basins(prob, res, k, delta, max_iter):
    """Multi-basin search (see `fit`): LM from each of the k best distinct
    variable-projection starts; the best objective wins; near-ties that predict differently are
    reported. When the winner has a parameter at a bound (the shift term at one of its limits,
    E → 0 or ∞: a flat valley the solver walks out along) or statistics that are not finite,
    ``BOUND_BASINS``·k more starts are tried (on hard synthetic CPT problems a better interior
    optimum was there), then restarts next to the winner (`_inside_starts`)."""
    ok = [res] if res.status != "non-finite" and math.isfinite(res.objective) else []
    runs = _basin_runs(prob, k, delta, max_iter)
    best = _choose(prob, ok, runs, 1 + len(runs), delta, fallback=res)
    if k < 1 or best.status == "non-finite" or not _stuck(prob.kind, best):
        return best
    more = _basin_runs(prob, BOUND_BASINS * k, delta, max_iter, skip=k)
    best = _choose(prob, [best], more, 1 + len(runs) + len(more), delta, fallback=best)
    if best.status == "non-finite" or not _stuck(prob.kind, best):
        return best
    inside = _runs_from(prob, _inside_starts(prob.kind, best), delta, max_iter)
    return _choose(prob, [best], inside, best.extra["basins_tried"] + len(inside), delta, fallback=best)


def _inside_starts(kind, res):
    """Starts next to a winner whose shift term ran to a bound (or whose statistics are not
    finite: a flat direction such as β → ∞): its parameters, with the shift's
    nonlinear ones (E, β) over their grid (and ``Param.wide`` values) and every other positive
    parameter at a bound (a C at 0) moved back inside (e⁻⁵). On a real CPT pair (the lab's runs,
    one with replay) the winner had E → ∞ and C1 = C2 = 0; from these starts LM found an optimum
    1.2e-4 lower than it, below 128-start scipy's."""
    cls, names, _ = _fit._spec(kind)
    x = np.array([res.params[n] for n in names])
    bound, beta_zero = _fit._at_bound(kind, np.asarray(_fit._to_theta_batch(kind, x[None]))[0])
    bound[names.index("beta")] |= beta_zero
    x = np.where(bound, math.exp(-5), x)
    shift = [names.index(n) for n in ("E", "beta")]
    values = [cls.params[i].grid + cls.params[i].wide for i in shift]
    out = np.repeat(x[None], math.prod(map(len, values)), 0)
    out[:, shift] = list(itertools.product(*values))
    return out


def _runs_from(prob, xs, delta, max_iter):
    """The solver alone from each start ``xs`` (natural units, (k, p)), one after another on the
    one-problem kernels the basins compiled (a batch of k would compile another shape: ~1 s in a
    fresh process, more than the k solves): a list of one-problem solver states."""
    return [_fit_local([prob], delta, max_iter, None, x, None, stats=False)[0] for x in xs]


def _stuck(kind, res) -> bool:
    """Whether a law with Eq. 3's shift ended with the shift at a limit or with statistics that
    are not finite (a flat direction): then more starts are worth their cost."""
    return _fit._spec(kind)[0].shift and (_at_a_bound(kind, res) or not res.finite)


def _at_a_bound(kind, res) -> bool:
    """Whether the shift term (E, β) ran to one of its limits (laws with Eq. 3's shift only: a PT
    law's C or L0 at 0 is common and cheap to leave)."""
    cls, names, _ = _fit._spec(kind)
    if not cls.shift:
        return False
    x = np.array([res.params[n] for n in names])
    if not np.all(np.isfinite(x)):
        return False
    bound, beta_zero = _fit._at_bound(kind, np.asarray(_fit._to_theta_batch(kind, x[None]))[0])
    return bool(beta_zero or bound[[names.index("E"), names.index("beta")]].any())


def _choose(prob, ok, runs, tried, delta, fallback=None):
    """The best of finished fits ``ok`` (FitResults) and solver states ``runs``: statistics only
    for the runs that can matter (the best and its near-ties: most basins lose, and their
    Hessians would cost more than their solves); near-ties that predict differently are kept
    and warned about."""
    finite = [r for r in runs if r.st[0] != NONFINITE and np.isfinite(r.f[0])]
    top = min([f.objective for f in ok] + [float(r.f[0]) for r in finite], default=math.inf)
    result = lambda r: _results(prob.kind, [prob.opts], {"theta": r.theta, "f": r.f, "st": r.st, "it": r.it,
                                                       **_statistics(_plan([prob], None), r.theta, delta)}, delta)[0]
    ok = ok + [result(r) for r in finite if r.f[0] <= top * (1 + BASIN_TIE) + 1e-12]
    if not ok:  # nothing finite: the first fit as it ended
        return fallback if fallback is not None else result(runs[0])
    best = min(ok, key=lambda f: f.objective)
    # A winner whose statistics are not finite (a flat direction: β → ∞ as well as E → ∞) gives
    # way to a finite fit within BASIN_TIE of its objective.
    finite = [f for f in ok if f.finite and f.objective <= best.objective * (1 + BASIN_TIE) + 1e-12]
    best = best if best.finite or not finite else min(finite, key=lambda f: f.objective)
    best.warnings = list(best.warnings)
    best.extra["basins_tried"] = tried
    rivals = _rivals(best, ok, prob)
    if rivals:
        best.extra["basins"] = rivals
        best.warnings.append(
            f"{len(rivals)} other basin(s) fit within {100 * BASIN_TIE:g}% of the best objective but "
            f"predict up to {100 * max(b['max_prediction_gap'] for b in rivals):.2g}% "
            "differently (at the logged steps or at twice the longest run): the fit is ambiguous; "
            "both parameter sets are in the result ('basins')")
    return best


def _coarse(prob, column, above=None):
    """A thinned copy of a problem whose per-run extras (MPL's (point, decrement) pairs) exceed
    ``above`` (default ``COARSE_ABOVE``), with about ``COARSE_PAIRS`` of them: every run keeps an
    evenly strided subset of its points (and its last), the same schedule and options; None for
    other problems."""
    extras = prob.feats[prob.n_point_feats:]
    if not extras or extras[0].size <= max(COARSE_PAIRS, COARSE_ABOVE if above is None else above):
        return None
    stride = -(-extras[0].size // COARSE_PAIRS)
    runs = []
    for run in prob.runs:
        y = run.losses[column]
        ok = np.flatnonzero(np.isfinite(y))
        keep = np.union1d(ok[::max(1, min(stride, ok.size // COARSE_MIN_POINTS))], ok[-1:])
        runs.append(dataclasses.replace(run, steps=run.steps[keep], losses={column: y[keep]}))
    thin = make_problem(runs, prob.kind, column, **dict(prob.opts))
    # Runs with few points cannot be thinned much: then the search on every point is cheaper.
    return thin if thin.feats[-1].size <= extras[0].size / 2 else None


def _polish(prob, x, delta, max_iter):
    """Levenberg–Marquardt on ``prob`` from natural parameters ``x`` (an optimum of a thinned
    copy: no IRLS warm-up, no grid), as a one-problem solver state."""
    plan = _plan([prob], None)
    theta = np.asarray(_fit._to_theta_batch(prob.kind, np.atleast_2d(x)))
    state = _State.empty(1, theta.shape[1]).set([0], theta=theta, mu=_fit.MU0, nu=2.0)
    return _more_rounds(plan, state, np.arange(1), False, delta, max_iter, _Progress(None, 1, max_iter))


def _coarse_to_fine(prob, coarse, k, delta, max_iter):
    """Fit a heavy problem (see `_coarse`): the whole search (variable projection, the grid
    retry, ``k`` basins) on the thinned copy, then every distinct optimum of it within
    ``COARSE_KEEP`` of its best objective polished on all points; the best polished fit wins and
    near-ties are reported as in `_basins`. Each polish starts next to its optimum: a few
    iterations on the full pairs instead of a whole search."""
    found = [_fit_local([coarse], delta, max_iter, None, None, None, stats=False)[0]]
    if k > 1:
        found += _basin_runs(coarse, k, delta, max_iter)
    found = sorted((r for r in found if r.st[0] != NONFINITE and np.isfinite(r.f[0])), key=lambda r: r.f[0])
    picked = []
    for r in found:
        if r.f[0] <= found[0].f[0] * (1 + COARSE_KEEP) and all(
                np.max(np.abs(r.theta[0] - q.theta[0])) > 1e-3 for q in picked):
            picked.append(r)
    if not picked:  # nothing finite on the thinned copy: the caller fits all points directly
        return None
    picked = picked[:max(1, k)]
    x = np.asarray(_fit._to_natural_batch(prob.kind, np.concatenate([r.theta for r in picked])))
    runs = [_polish(prob, xi, delta, max_iter) for xi in x]
    res = _choose(prob, [], runs, len(found), delta)
    res.extra["coarse_points"] = int(coarse.mask.sum())
    return res


def _rivals(best, fits, prob):
    """The fits within ``BASIN_TIE`` of the best objective that predict > ``BASIN_SPREAD``
    differently, one per distinct parameter set, as JSON-ready records."""
    same = lambda f: np.allclose(list(f.params.values()), list(best.params.values()), rtol=1e-3)
    near = [f for f in fits if f is not best and f.objective <= best.objective * (1 + BASIN_TIE) + 1e-12
            and not same(f)]  # the same basin found again predicts the same
    if not near:
        return []
    ref = _basin_predictions(best, prob)
    out, seen = [], []
    for f in near:
        gap = float(np.max(np.abs(_basin_predictions(f, prob) - ref) / ref))
        values = list(f.params.values())
        if gap > BASIN_SPREAD and not any(np.allclose(values, s, rtol=1e-3) for s in seen):
            seen.append(values)
            out.append({"objective": f.objective, "law": f.law.to_dict(), "max_prediction_gap": gap})
    return out


def _basin_predictions(res, prob):
    """A fit's predictions at every run's logged steps and at twice its length (the final LR held):
    where two near-equal fits can disagree."""
    out = []
    for run in prob.runs:
        lr = np.concatenate([run.lr, np.full(run.lr.size, run.lr[-1])])
        idx = np.concatenate([run.steps - 1, [lr.size - 1]])
        cond = {u: getattr(run, u) for u in res.law.uses}
        try:
            out.append(np.asarray(_laws.predict(res.law, lr, run.n_pt, idx=idx, **cond)))
        except ValueError:
            out.append(np.full(idx.size, np.nan))
    return np.concatenate(out)


def _profile_lam(runs, law, column, target, form, eps, delta, max_iter, pad_to=None):
    """Fit at every λ of ``LAM_GRID`` and keep the best objective (with the profile in ``extra``)."""
    if _fit._spec(law)[0].needs_schedule:
        raise InputError(f"lam='profile' needs an area law; {law!r} takes the schedule itself")
    probs = [make_problem(runs, law, column, target=target, form=form, lam=v, eps=eps, pad_to=pad_to)
             for v in LAM_GRID]
    fits = fit_batch(probs, delta=delta, max_iter=max_iter, throw=False)  # one batch: the λs share a kernel
    score = [f.objective if f.status != "non-finite" and math.isfinite(f.objective) else math.inf
             for f in fits]
    res = fits[int(np.argmin(score))]
    res.extra["lam_profile"] = {"lam": list(LAM_GRID), "objective": [
        v if math.isfinite(v) else None for v in score], "kept": res.law.lam}
    return res


def _check_search(delta, max_iter, basins):
    if isinstance(delta, bool) or not (isinstance(delta, (int, float, np.floating, np.integer)) and delta > 0):
        raise InputError(f"`delta` must be > 0, got {delta!r}")
    for name, v, lo in (("max_iter", max_iter, 1), ("basins", basins, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InputError(f"`{name}` must be an integer >= {lo}, got {v!r}")


def _search(runs, law, column, target, form, lam, eps, basins, coarse, delta, max_iter, pad_to):
    """The best fit of one problem (λ profile, coarse-to-fine, basins): ``(FitResult, problem)``."""
    if isinstance(lam, str):
        if lam != "profile":
            raise InputError(f"`lam` must be a number in (0, 1) or 'profile', got {lam!r}")
        res = _profile_lam(runs, law, column, target, form, eps, delta, max_iter, pad_to)
        prob = make_problem(runs, law, column, target=target, form=form, lam=res.law.lam, eps=eps, pad_to=pad_to)
        if basins > 1:
            res = _basins(prob, res, basins, delta, max_iter)
    else:  # the basins reuse this problem: the same static options, so the same compilations
        prob = make_problem(runs, law, column, target=target, form=form, lam=lam, eps=eps, pad_to=pad_to)
        # A heavy problem searches on a thinned copy first (coarse=None: above COARSE_ABOVE pairs).
        thin = None if coarse is False else _coarse(prob, column, 0 if coarse else None)
        res = None if thin is None else _coarse_to_fine(prob, thin, basins, delta, max_iter)
        if res is None:
            res = fit_batch([prob], delta=delta, max_iter=max_iter)[0]
            if basins > 1:
                res = _basins(prob, res, basins, delta, max_iter)
    return res, prob


def fit(runs, law: str = "cpt", column: str = "loss", *, target: str | None = None,
        form: str | None = None, delta: float = 1e-3, max_iter: int = 200,
        lam: float | str | None = None, eps: float = 0.0, basins: int = 4,
        coarse: bool | None = None, throw: bool = True, pad_to: int | None = None) -> FitResult:
    """Fit one law to one loss column of one or more runs (parameters shared across runs).

    Args:
        runs: a `Run` or a list of them (e.g. all PT and CPT runs of one validation set),
            or file paths, read with `load_run`.
        law: a law kind (``cptjax.LAWS``: ``pt``, ``cpt``, ``cpt-shared``, ``cpt-mpl``, ``replay``,
            ``size``, ``open``, ``mpl``).
        column: the loss column to fit.
        target: ``general`` or ``domain`` (only the replay law's form depends on it).
        form: the replay law's shift form (``swapped``, default, or ``printed``).
        delta: Huber δ on log residuals.
        lam: the momentum decay λ of the areas (default 0.999, the paper's), or ``"profile"``:
            fit at every λ of ``LAM_GRID`` (one batched fit) and keep the best objective — the
            paper's appendix fits λ; on the lab's runs the best λ is ~0.99 (experiments/lab).
            The fitted law carries its λ (``law.lam``), which predict and design use.
        eps: the LR weight of S2 (CPT paper App. J: S2 = Σ m_i·η_i^ε; 0.1–0.2 in the paper):
            zero-LR steps then add no annealing credit. The law carries it (``law.eps``).
        basins: also run Levenberg–Marquardt to convergence from the ``basins`` best distinct
            variable-projection starts and keep the best objective; when another basin fits
            within 0.1% of the objective but predicts the runs' losses differently (> 0.5% at
            some logged step or at 2× the longest run), say so: a warning, and both parameter
            sets in ``res.extra["basins"]`` (and the JSON).
        coarse: search (starts, grid retry, basins) on a copy thinned to ~``COARSE_PAIRS``
            (point, decrement) pairs, then polish its distinct optima on every point; ``None``
            (default) does so for problems with more than ``COARSE_ABOVE`` pairs (MPL-type laws on
            long runs with a decrement at every step: ~6x faster, the same optimum on the
            MultiPowerLaw data), ``False`` never (the search on every point).
            ``res.extra["coarse_points"]`` says when it was used.
        throw: raise `cptjax.FitError` when the fit does not end with every reported
            number finite (parameters, objective, metrics, covariance); ``False`` returns it
            with its status instead (as `fit_batch` does).
        pad_to: pad the problem to this many points (masked; see `make_problem`), so that
            repeated fits of a growing data set (a tuner's, a live forecast's) reuse one
            compilation per size bucket instead of compiling at every new size.

    The result carries its provenance (``res.provenance``: runs, data range, LR and CPT-area
    spans), saved with ``res.save(path)`` and read back by ``FitResult.load`` / ``load_law``.
    """
    _check_search(delta, max_iter, basins)
    res, prob = _search(runs, law, column, target or "general", form, lam, eps, basins, coarse, delta,
                        max_iter, pad_to)
    res.column = column
    res.provenance = provenance(res.law, prob.runs, column)
    if throw and not res.finite:
        raise FitError(f"the fit of {law!r} to {column!r} did not reach finite parameters and "
                       f"statistics (status {res.status}): check the runs' LR and loss columns (is "
                       "the LR logged in raw units, and not all zero?)")
    for w in res.warnings:
        warnings.warn(w, RuntimeWarning, stacklevel=2)
    return res
