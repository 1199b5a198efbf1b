"""The CPT lab: real continual pre-training of a small byte-level GPT in JAX/optax, to test what
the laws predict and what ``cptjax design`` plans.

PT trains once per PT schedule on the general corpus; every CPT run branches from the saved PT
checkpoint and trains on the domain corpus, with a replay ratio r (the share of PT sequences in
each CPT batch, mixed deterministically: step t takes ⌊(t+1)·r·B⌋ − ⌊t·r·B⌋ of them). Both
validation losses (nats per byte) are measured on fixed validation batches every
``eval_interval`` steps and at the last step. Everything is a function of the seeds: the batch of
step t is drawn from ``default_rng([seed, stream, t])``, so a run resumed from a checkpoint
(written at evaluation boundaries) ends with the same bytes as an uninterrupted one.

A run file is the CSV that ``cptjax fit`` reads, with ``# n_pt:`` and ``# replay:`` header lines:
``step,lr,general_loss,domain_loss`` (one row per step; losses at evaluation steps only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import math
import os
import pickle
import time
import tomllib
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import schedules as _schedules
from ..files import atomic_write, dumps
from ..errors import InputError

__all__ = ["ModelConfig", "MODELS", "Study", "RunSpec", "load_study", "run_study", "train_run",
           "init_params", "loss_fn", "DEFAULT_STUDY", "QUICK_STUDY"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A pre-LayerNorm GPT on bytes: ``n_layer`` blocks of causal self-attention + GELU MLP (4×),
    learned positions, tied input/output embeddings."""

    d_model: int = 128
    n_layer: int = 2
    n_head: int = 4
    seq_len: int = 128
    batch: int = 16
    vocab: int = 256
    weight_decay: float = 0.1
    clip: float = 1.0

    def __post_init__(self):
        for f in ("d_model", "n_layer", "n_head", "seq_len", "batch"):
            v = getattr(self, f)
            if not (isinstance(v, int) and v >= 1):
                raise InputError(f"model.{f} must be an integer >= 1, got {v!r}")
        if self.vocab < 256:
            raise InputError(f"model.vocab must be >= 256 (the lab's tokens are bytes), got {self.vocab!r}")
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip > 0):
            raise InputError(f"model.clip (the gradient-norm clip) must be a number > 0, got {self.clip!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay <= 1):
            raise InputError(f"model.weight_decay must be a number in [0, 1], got {self.weight_decay!r}")
        for f, hi in (("d_model", 8192), ("n_layer", 128), ("n_head", 128), ("seq_len", 65536), ("batch", 65536),
                      ("vocab", 1 << 20)):
            if getattr(self, f) > hi:
                raise InputError(f"model.{f} = {getattr(self, f)} is above the lab's limit of {hi}")
        if self.d_model % self.n_head:
            raise InputError(f"model.d_model ({self.d_model}) must be a multiple of model.n_head "
                             f"({self.n_head})")

    def memory_bytes(self) -> int:
        """A rough float32 training footprint: parameters, gradients and Adam's two moments, and
        the activations kept for the backward pass (per layer ~16·d per token plus the attention
        weights, and the logits)."""
        tok = self.batch * self.seq_len
        act = (tok * self.n_layer * 16 * self.d_model
               + 2 * self.batch * self.n_head * self.seq_len ** 2 * self.n_layer + 3 * tok * self.vocab)
        return 4 * (4 * self.n_params() + act)

    def check_memory(self, where: str = "model") -> None:
        """Refuse, before any allocation, a model whose footprint exceeds what this process may use
        (physical memory, or the address-space limit when one is set)."""
        need, have = self.memory_bytes(), _memory_available()
        if have and need > 0.8 * have:
            big = ", ".join(f"model.{f} = {getattr(self, f)}" for f in ("vocab", "d_model", "n_layer", "seq_len", "batch"))
            raise InputError(f"{where}: the model needs ~{need / 2**30:.1f} GiB to train ({big}), more than the "
                             f"{have / 2**30:.1f} GiB this machine allows; make it smaller")

    def n_params(self) -> int:
        d = self.d_model
        return self.vocab * d + self.seq_len * d + self.n_layer * (12 * d * d + 13 * d) + 2 * d

    def flops_per_step(self) -> float:
        """Training FLOPs per step: 6·N per token for the dense layers plus attention
        (6·2·S·d per token per layer, forward and backward)."""
        N = self.n_params() - self.seq_len * self.d_model
        tok = self.batch * self.seq_len
        return tok * (6 * N + 12 * self.n_layer * self.seq_len * self.d_model)


def _memory_available() -> int | None:
    """Bytes this process may allocate: the smaller of physical memory and RLIMIT_AS (None: unknown)."""
    out = []
    try:
        out.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            out.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    return min(out) if out else None


MODELS = {
    "tiny": ModelConfig(d_model=32, n_layer=1, n_head=2, seq_len=32, batch=8),
    "cpu": ModelConfig(),  # >= 10 steps/s on a 2-core CPU (benchmarks/lab.py)
    "gpu": ModelConfig(d_model=384, n_layer=6, n_head=6, seq_len=256, batch=64),
}


# -- the model --------------------------------------------------------------------------------
def init_params(cfg: ModelConfig, seed: int = 0) -> dict:
    """GPT-2-style initialisation (normal 0.02; residual projections scaled by 1/√(2·layers))."""
    k = iter(jax.random.split(jax.random.PRNGKey(seed), 2 + 4 * cfg.n_layer))
    d, std = cfg.d_model, 0.02
    proj = std / math.sqrt(2 * cfg.n_layer)
    normal = lambda key, shape, s: s * jax.random.normal(key, shape, jnp.float32)
    blocks = []
    for _ in range(cfg.n_layer):
        blocks.append({
            "ln1": {"g": jnp.ones(d), "b": jnp.zeros(d)}, "ln2": {"g": jnp.ones(d), "b": jnp.zeros(d)},
            "qkv": normal(next(k), (d, 3 * d), std), "qkv_b": jnp.zeros(3 * d),
            "out": normal(next(k), (d, d), proj), "out_b": jnp.zeros(d),
            "fc": normal(next(k), (d, 4 * d), std), "fc_b": jnp.zeros(4 * d),
            "fc2": normal(next(k), (4 * d, d), proj), "fc2_b": jnp.zeros(d)})
    return _f32({"tok": normal(next(k), (cfg.vocab, d), std), "pos": normal(next(k), (cfg.seq_len, d), 0.01),
                 "blocks": blocks, "ln_f": {"g": jnp.ones(d), "b": jnp.zeros(d)}})


def _f32(tree):
    """Every floating leaf in float32: the lab trains in float32 whether or not x64 is enabled."""
    return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _ln(p, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["g"] + p["b"]


def forward(params, tokens, n_head: int):
    """Logits (B, S, vocab) for byte tokens (B, S)."""
    B, S = tokens.shape
    x = params["tok"][tokens] + params["pos"][:S]
    d = x.shape[-1]
    mask = jnp.tril(jnp.ones((S, S), bool))
    for blk in params["blocks"]:
        h = _ln(blk["ln1"], x) @ blk["qkv"] + blk["qkv_b"]
        q, k, v = (t.reshape(B, S, n_head, d // n_head) for t in jnp.split(h, 3, -1))
        att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // n_head)
        att = jax.nn.softmax(jnp.where(mask, att, -1e30), -1)
        x = x + jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, S, d) @ blk["out"] + blk["out_b"]
        x = x + jax.nn.gelu(_ln(blk["ln2"], x) @ blk["fc"] + blk["fc_b"]) @ blk["fc2"] + blk["fc2_b"]
    return _ln(params["ln_f"], x) @ params["tok"].T


def loss_fn(params, batch, n_head: int):
    """Mean next-byte cross-entropy (nats per byte) of a batch of sequences (B, S + 1)."""
    logits = forward(params, batch[:, :-1], n_head)
    logp = jax.nn.log_softmax(logits, -1)
    return -jnp.take_along_axis(logp, batch[:, 1:, None].astype(jnp.int32), -1).mean()


def _optimizer(cfg: ModelConfig):
    return optax.chain(optax.clip_by_global_norm(cfg.clip),
                       optax.inject_hyperparams(optax.adamw)(learning_rate=0.0, b1=0.9, b2=0.95,
                                                             weight_decay=cfg.weight_decay))


def _with_lr(state, lr):
    inner = state[1]
    return (state[0], inner._replace(hyperparams={**inner.hyperparams, "learning_rate": lr}))


def _make_fns(cfg: ModelConfig):
    opt = _optimizer(cfg)

    @jax.jit
    def train_chunk(params, state, batches, lrs):
        def step(carry, x):
            p, s = carry
            batch, lr = x
            loss, g = jax.value_and_grad(loss_fn)(p, batch, cfg.n_head)
            u, s = opt.update(g, _with_lr(s, lr), p)
            return (optax.apply_updates(p, u), s), loss
        (params, state), losses = jax.lax.scan(step, (params, state), (batches, lrs))
        return params, state, losses

    @jax.jit
    def evaluate(params, batches):
        return jax.lax.map(lambda b: loss_fn(params, b, cfg.n_head), batches).mean()

    return opt, train_chunk, evaluate


# -- data ---------------------------------------------------------------------------------------
def _draw(data: np.ndarray, n: int, S: int, rng) -> np.ndarray:
    starts = rng.integers(0, data.size - S - 1, size=n)
    return data[starts[:, None] + np.arange(S + 1)]


def _batches(corpora, cfg, seed, stream, steps, replay):
    """The batches of the given 1-based steps: PT (``replay`` None) draws every sequence from the
    general corpus, CPT mixes ⌊(t+1)·r·B⌋ − ⌊t·r·B⌋ general sequences into domain ones."""
    out = []
    for t in steps:
        rng = np.random.default_rng([seed, stream, int(t)])
        if replay is None:
            out.append(_draw(corpora["general"].train, cfg.batch, cfg.seq_len, rng))
            continue
        n_g = int(math.floor(t * replay * cfg.batch) - math.floor((t - 1) * replay * cfg.batch))
        parts = [_draw(corpora["general"].train, n_g, cfg.seq_len, rng),
                 _draw(corpora["domain"].train, cfg.batch - n_g, cfg.seq_len, rng)]
        out.append(np.concatenate(parts))
    return np.stack(out).astype(np.int32)


def _eval_batches(corpora, cfg, n_batches):
    """Fixed validation batches per corpus (the same for every run of a study)."""
    out = {}
    for i, (name, c) in enumerate(sorted(corpora.items())):
        rng = np.random.default_rng([7919, i])
        out[name] = jnp.asarray(_draw(c.val, n_batches * cfg.batch, cfg.seq_len, rng)
                                .reshape(n_batches, cfg.batch, cfg.seq_len + 1).astype(np.int32))
    return out


# -- studies --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: a PT schedule (and its name), optionally a CPT schedule branching from its end."""

    name: str
    pt_name: str
    pt: str
    cpt: str | None = None
    replay: float = 0.0
    seed: int = 0
    peak: float | None = None
    family: str | None = None


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    model: ModelConfig
    pt: dict  # name -> schedule text
    runs: tuple  # CPT RunSpecs
    seed: int = 0
    eval_interval: int = 100
    eval_batches: int = 8

    def pt_runs(self):
        return tuple(RunSpec(f"pt-{n}", n, s, seed=self.seed) for n, s in self.pt.items())


def _require(d, key, kind, where):
    if key not in d:
        raise InputError(f"{where}: missing key {key!r}")
    if not isinstance(d[key], kind):
        raise InputError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, got {d[key]!r}")
    return d[key]


def _known(d, keys, where):
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a table, got {d!r}")
    unknown = sorted(set(d) - set(keys))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; expected {sorted(keys)}")


def _parse_in(text, where):
    try:
        return _schedules.parse(text)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def _numbers(values, kind, where, lo=None):
    """A TOML list of numbers (ints for ``kind=int``), each >= ``lo``."""
    if not isinstance(values, list):
        raise InputError(f"{where}: expected a list, got {values!r}")
    for v in values:
        ok = isinstance(v, int) if kind is int else isinstance(v, (int, float)) and math.isfinite(v)
        if isinstance(v, bool) or not ok or (lo is not None and v < lo):
            raise InputError(f"{where}: {v!r} is not {'an integer' if kind is int else 'a number'}"
                             + (f" >= {lo}" if lo is not None else ""))
    return values


def _model(d, where, model):
    """The study's model: a preset (``model`` or ``[model].preset``) with ``[model]`` overrides."""
    _known(d.get("model", {}), ["preset"] + [f.name for f in dataclasses.fields(ModelConfig)], f"{where}: [model]")
    m = dict(d.get("model", {}))
    for f in dataclasses.fields(ModelConfig):
        if f.name in m:
            _numbers([m[f.name]], int if f.type in (int, "int") else float, f"{where}: model.{f.name}")
    base = MODELS.get(model or m.pop("preset", "cpu"))
    if base is None:
        raise InputError(f"{where}: model.preset must be one of {sorted(MODELS)}")
    m.pop("preset", None)
    try:
        return dataclasses.replace(base, **m)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def _grid_runs(g, w, pt, scheds, steps, seed0, where):
    """The runs of one ``[[cpt.grid]]`` table: PT × schedule × peak × replay × seed."""
    _known(g, ("pt", "schedule", "peak", "replay", "seed"), w)
    peaks = _numbers(_require(g, "peak", list, w), float, f"{w}: peak", 0)
    replays = _numbers(g.get("replay", [0.0]), float, f"{w}: replay")
    seeds = _numbers(g.get("seed", [seed0]), int, f"{w}: seed", 0)
    if any(v >= 2**31 for v in seeds):
        raise InputError(f"{w}: seed {max(seeds)} is above the limit of 2^31 - 1")
    if any(not 0 <= r <= 1 for r in replays):
        raise InputError(f"{w}: replay {next(r for r in replays if not 0 <= r <= 1)!r} is not in [0, 1]")
    for p_name in _require(g, "pt", list, w):
        if p_name not in pt:
            raise InputError(f"{w}: unknown PT schedule {p_name!r}; have {sorted(pt)}")
        for fam in _require(g, "schedule", list, w):
            if fam not in scheds:
                raise InputError(f"{w}: unknown CPT schedule {fam!r}; have {sorted(scheds)}")
            for peak, r, seed in itertools.product(peaks, replays, seeds):
                try:
                    text = scheds[fam].format(steps=steps, peak=peak)
                except (KeyError, IndexError, ValueError) as e:
                    raise InputError(f"{where}: cpt.schedules.{fam}: only {{steps}} and {{peak}} can be "
                                     f"filled in ({e!r})") from None
                _parse_in(text, f"{where}: cpt.schedules.{fam}")
                yield RunSpec(f"{p_name}_{fam}_p{peak:g}_r{float(r):g}_s{seed}", p_name, pt[p_name], text,
                              float(r), int(seed), float(peak), fam)


def parse_study(d: dict, where: str = "study", model: str | None = None) -> Study:
    """A `Study` from a TOML table (see ``DEFAULT_STUDY`` for the layout)."""
    _known(d, ("name", "seed", "eval_interval", "eval_batches", "model", "pt", "cpt"), where)
    for key, lo in (("seed", 0), ("eval_interval", 1), ("eval_batches", 1)):
        if key in d:
            _numbers([d[key]], int, f"{where}: {key}", lo)
    if d.get("seed", 0) >= 2**31:
        raise InputError(f"{where}: seed = {d['seed']} is above the limit of 2^31 - 1")
    if d.get("eval_batches", 8) > 1024:
        raise InputError(f"{where}: eval_batches = {d['eval_batches']} is above the limit of 1024")
    cfg = _model(d, where, model)
    cfg.check_memory(where)
    pt = _require(d, "pt", dict, where)
    if not pt:
        raise InputError(f"{where}: [pt] needs at least one named PT schedule")
    for n, s in pt.items():
        if not isinstance(s, str):
            raise InputError(f"{where}: pt.{n} must be a schedule in text form")
        _parse_in(s, f"{where}: pt.{n}")
    cpt = _require(d, "cpt", dict, where)
    _known(cpt, ("steps", "schedules", "grid"), f"{where}: [cpt]")
    steps = _numbers([_require(cpt, "steps", int, f"{where}: [cpt]")], int, f"{where}: cpt.steps", 2)[0]
    scheds = _require(cpt, "schedules", dict, f"{where}: [cpt]")
    for n, text in scheds.items():
        if not isinstance(text, str):
            raise InputError(f"{where}: cpt.schedules.{n} must be a schedule in text form, got {text!r}")
    runs = {}  # by name, first kept: grids may overlap
    for gi, g in enumerate(_require(cpt, "grid", list, f"{where}: [cpt]")):
        for r in _grid_runs(g, f"{where}: cpt.grid[{gi}]", pt, scheds, steps, d.get("seed", 0), where):
            runs.setdefault(r.name, r)
    shortest = min(_parse_in(pt[r.pt_name], where).size for r in runs.values()) if runs else steps
    if d.get("eval_interval", 100) > shortest // 2:
        raise InputError(f"{where}: eval_interval = {d['eval_interval']} leaves fewer than 3 evaluations in the "
                         f"shortest PT run ({shortest} steps): the laws need a curve; use at most {max(shortest // 2, 1)}")
    return Study(d.get("name", "study"), cfg, dict(pt), tuple(runs.values()), int(d.get("seed", 0)),
                 int(d.get("eval_interval", 100)), int(d.get("eval_batches", 8)))


def load_study(path, model: str | None = None) -> Study:
    """Read a study TOML file (``tomllib``); errors name the file and the key."""
    from ..files import read_text

    path = os.fspath(path)
    text = read_text(path, "study file", limit=1 << 20)
    try:
        d = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise InputError(f"{path}: not valid TOML ({str(e)[:200]})") from None
    return parse_study(d, path, model)


DEFAULT_STUDY = """\
# The default lab study (about an hour on a 2-core CPU with the 'cpu' model).
name = "default"
seed = 0
eval_interval = 100
eval_batches = 8

[model]
preset = "cpu"

# PT with two loss potentials: constant to the branch, or annealed to 10% at the branch.
[pt]
constant = "constant(steps=3000,peak=2e-3,warmup=100)"
annealed = "wsd(steps=3000,peak=2e-3,warmup=100,decay=0.3,final=2e-4)"

[cpt]
steps = 1500

[cpt.schedules]
constant = "constant(steps={steps},peak={peak})"
cosine = "cosine(steps={steps},peak={peak},final=0)"
wsd = "wsd(steps={steps},peak={peak},decay=0.2,final=0)"
rewarm = "cosine(steps={steps},peak={peak},warmup=150,final=0)"

[[cpt.grid]]   # every schedule at two peak LRs after both PTs, no replay
pt = ["constant", "annealed"]
schedule = ["constant", "cosine", "wsd", "rewarm"]
peak = [2e-3, 5e-4]
replay = [0.0]

[[cpt.grid]]   # replay
pt = ["constant"]
schedule = ["cosine", "wsd"]
peak = [2e-3]
replay = [0.25, 0.5]

[[cpt.grid]]   # one run again with another data-order seed: the noise floor
pt = ["constant"]
schedule = ["cosine"]
peak = [2e-3]
replay = [0.0]
seed = [1]
"""

QUICK_STUDY = """\
name = "quick"
seed = 0
eval_interval = 10
eval_batches = 2

[model]
preset = "tiny"

[pt]
constant = "constant(steps=60,peak=3e-3,warmup=5)"

[cpt]
steps = 40

[cpt.schedules]
constant = "constant(steps={steps},peak={peak})"
cosine = "cosine(steps={steps},peak={peak},final=0)"

[[cpt.grid]]
pt = ["constant"]
schedule = ["constant", "cosine"]
peak = [3e-3]
replay = [0.0, 0.5]
"""


# -- checkpoints and run files ----------------------------------------------------------------------
def _save_ckpt(path, step, params, state, log):
    leaves = jax.tree.leaves((params, state))
    buf = io.BytesIO()
    np.savez(buf, step=np.asarray(step), log=np.asarray(log, np.float64).reshape(-1, 4),
             **{f"x{i}": np.asarray(v) for i, v in enumerate(leaves)})
    atomic_write(path, buf.getvalue())


def _load_ckpt(path, like):
    """A checkpoint, checked: a truncated or foreign file is an InputError naming it."""
    treedef = jax.tree.structure(like)
    try:
        with np.load(path, allow_pickle=False) as z:
            leaves = [jnp.asarray(z[f"x{i}"]) for i in range(treedef.num_leaves)]
            shapes = [np.shape(x) for x in jax.tree.leaves(like)]
            if [tuple(x.shape) for x in leaves] != [tuple(s) for s in shapes]:
                raise ValueError("its arrays do not match this study's model")
            return int(z["step"]), jax.tree.unflatten(treedef, leaves), [tuple(r) for r in z["log"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise InputError(f"{path}: a damaged or foreign checkpoint ({str(e)[:120]}): delete it to "
                         "retrain that run from its start") from None


def run_csv(lr, n_pt, replay, log, extra=None) -> str:
    """The run file: ``# n_pt:`` / ``# replay:`` headers, then step,lr,general_loss,domain_loss."""
    at = {int(s): (g, d) for s, g, d, _ in log}
    head = [f"# n_pt: {n_pt}", f"# replay: {replay:g}"] + [f"# {k}: {v}" for k, v in (extra or {}).items()]
    rows = ["step,lr,general_loss,domain_loss"]
    for i, v in enumerate(lr, start=1):
        g, d = at.get(i, (None, None))
        rows.append(f"{i},{float(v)!r}," + ("," if g is None else f"{g:.7f},{d:.7f}"))
    return "\n".join(head + rows) + "\n"


class _Progress:
    """One status line on stderr: run, step, steps/s and the study's ETA."""

    def __init__(self, total, out=None, quiet=False):
        self.total, self.done, self.t0, self.quiet = total, 0, time.perf_counter(), quiet
        self.out = out
        self.timed_steps = 0

    def update(self, label, step, steps, n):
        self.done += n
        self.timed_steps += n
        if self.quiet:
            return
        dt = time.perf_counter() - self.t0
        rate = self.timed_steps / dt if dt > 0 else float("nan")
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        msg = (f"[cptjax lab] {label}: step {step}/{steps}  {rate:.1f} steps/s  "
               f"study {self.done}/{self.total} steps, ETA {eta / 60:.1f} min")
        import sys

        print(msg, file=sys.stderr, flush=True)


def _start(spec: RunSpec, ck: str, pt_final: str, out_dir: str, fresh):
    """Where a run starts: its own checkpoint (resume), its PT's final checkpoint (a CPT run), or step 0."""
    if os.path.exists(ck):
        return _load_ckpt(ck, fresh)
    if spec.cpt is not None:
        if not os.path.exists(pt_final):
            raise InputError(f"{spec.name}: the PT checkpoint {pt_final} is missing (the folder's .ckpt was "
                             f"deleted?): remove {os.path.join(out_dir, 'pt-' + spec.pt_name + '.csv')} "
                             "to retrain the PT run, or use a fresh --out")
        return _load_ckpt(pt_final, fresh)
    return 0, fresh, []


def train_run(spec: RunSpec, study: Study, corpora, out_dir, fns, progress=None, stop_after=None,
              evals=None):
    """Train one run (PT, or CPT branching from its PT checkpoint), resuming from its checkpoint;
    write its run file. ``stop_after`` (tests) stops after that many steps, as a kill would."""
    cfg = study.model
    opt, train_chunk, evaluate = fns
    ckdir = os.path.join(out_dir, ".ckpt")
    os.makedirs(ckdir, exist_ok=True)
    pt_lr = _schedules.parse(spec.pt)
    n_pt = pt_lr.size
    is_cpt = spec.cpt is not None
    cpt_lr = _schedules.parse(spec.cpt) if is_cpt else np.zeros(0)
    lr = np.concatenate([pt_lr, cpt_lr])
    params = init_params(cfg, study.seed)
    state = _f32(opt.init(params))
    ck = os.path.join(ckdir, spec.name + ".npz")
    pt_final = os.path.join(ckdir, f"pt-{spec.pt_name}.final.npz")
    evals = _eval_batches(corpora, cfg, study.eval_batches) if evals is None else evals
    step, (params, state), log = _start(spec, ck, pt_final, out_dir, (params, state))
    T = lr.size
    ev = study.eval_interval
    done_here = 0
    while step < T:
        # Chunks end at evaluation steps (multiples of eval_interval), the PT end and the last step.
        nxt = min(T, (step // ev + 1) * ev, n_pt if step < n_pt else T)
        steps = np.arange(step + 1, nxt + 1)
        in_cpt = steps[0] > n_pt
        data = _batches(corpora, cfg, spec.seed if in_cpt else study.seed, 1 if in_cpt else 0,
                        steps - (n_pt if in_cpt else 0), spec.replay if in_cpt else None)
        params, state, _ = train_chunk(params, state, jnp.asarray(data),
                                       jnp.asarray(lr[steps - 1], jnp.float32))
        step = nxt
        g, d = (float(evaluate(params, evals[k])) for k in ("general", "domain"))
        if not (math.isfinite(g) and math.isfinite(d)):
            raise InputError(f"{spec.name}: the model diverged (loss not finite) at step {step}, LR "
                             f"{float(lr[step - 1]):.3g}: lower this run's peak LR in the study (or raise "
                             "model.clip's protection by lowering it)")
        log.append((step, g, d, float(lr[step - 1])))
        if progress is not None:
            progress.update(spec.name, step, T, steps.size)
        done_here += steps.size
        if step == n_pt and not is_cpt:
            _save_ckpt(pt_final, step, params, state, log)
        if step < T:
            _save_ckpt(ck, step, params, state, log)
        if stop_after is not None and done_here >= stop_after and step < T:
            return None
    path = os.path.join(out_dir, spec.name + ".csv")
    extra = {"pt": spec.pt, "cpt": spec.cpt or "", "seed": spec.seed}
    atomic_write(path, run_csv(lr, n_pt if is_cpt else T, spec.replay if is_cpt else 0.0, log, extra))
    if os.path.exists(ck):
        os.remove(ck)
    return path


def load_corpora(general=None, domain=None, ood=None):
    """The lab's corpora: CPython prose / source by default, or the user's files."""
    from . import _corpora as C

    parts = None if (general and domain) else C._stdlib_parts()
    out = {"general": C.files_corpus("general", general) if general else C.general_corpus(parts),
           "domain": C.files_corpus("domain", domain) if domain else C.domain_corpus(parts)}
    if ood:
        out["ood"] = C.files_corpus("ood", ood)
    return out


_SETTINGS = ("model", "seed", "eval_interval", "eval_batches", "corpora")
_RUN_KEYS = ("pt_schedule", "cpt", "replay", "seed", "lr_sha256")


def _digest(*texts) -> str:
    """A digest of the schedules' values (not their text: ``file(...)`` may change under a name)."""
    h = hashlib.sha256()
    for t in texts:
        if t is not None:
            h.update(np.ascontiguousarray(_schedules.parse(t), np.float64).tobytes())
    return h.hexdigest()[:16]


def _old_manifest(mpath):
    """The manifest a folder already has (``None`` for a new folder), checked."""
    if not os.path.exists(mpath):
        return None
    import json

    from ..files import read_text

    try:
        old = json.loads(read_text(mpath, "manifest", limit=64 << 20))
    except (ValueError, RecursionError):
        old = None
    if not isinstance(old, dict):
        raise InputError(f"{mpath}: not a readable cptjax lab manifest: use a fresh --out folder")
    return old


def _same_settings(old, manifest, folder) -> dict:
    """A study folder knows what it was made with: rerunning it with another model, seed,
    evaluation, corpora, or another schedule under a run's name is refused (finished runs would
    otherwise be reused as if they belonged to the new settings). Returns the manifest to write:
    the new one with the runs an earlier study (of the same settings) left in the folder."""
    if old is None:
        return manifest
    import json

    same = lambda a, b: json.loads(dumps(a)) == b
    bad = [k for k in _SETTINGS if k in old and not same(manifest[k], old[k])]
    runs = {r.get("file"): r for r in old.get("runs", []) if isinstance(r, dict)}
    for r in manifest["runs"]:
        o = runs.get(r["file"])
        if o is not None and any(not same(r[k], o.get(k)) for k in _RUN_KEYS):
            bad.append(f"run {r['file']}")
    if bad:
        raise InputError(f"{folder}: this study folder was made with other settings "
                         f"({', '.join(bad[:5])} differ{'s' if len(bad) == 1 else ''}): use a fresh --out "
                         "folder, or the study it was made with")
    have = {r["file"] for r in manifest["runs"]}
    return {**manifest, "runs": manifest["runs"] + [r for f, r in runs.items() if f not in have]}


def run_study(study: Study, out_dir, *, corpora=None, quiet=False, only=None) -> dict:
    """Train every run of a study that has no run file yet (PT first, then its CPT branches);
    write ``manifest.json``. Returns the manifest."""
    corpora = corpora or load_corpora()
    fns = _make_fns(study.model)
    pts = [r for r in study.pt_runs() if only is None or r.name in only or
           any(c.pt_name == r.pt_name for c in study.runs if c.name in only)]
    cpts = [r for r in study.runs if only is None or r.name in only]
    todo = [r for r in pts + cpts if not os.path.exists(os.path.join(out_dir, r.name + ".csv"))]
    steps_of = lambda r: _schedules.parse(r.pt).size if r.cpt is None else _schedules.parse(r.cpt).size
    prog = _Progress(sum(steps_of(r) for r in todo), quiet=quiet)
    manifest = {
        "study": study.name, "model": dataclasses.asdict(study.model),
        "n_params": study.model.n_params(), "seed": study.seed,
        "eval_interval": study.eval_interval, "eval_batches": study.eval_batches,
        "corpora": {k: c.describe() for k, c in corpora.items()},
        "runs": [{"file": r.name + ".csv", "pt": r.pt_name, "pt_schedule": r.pt, "cpt": r.cpt,
                  "family": r.family, "peak": r.peak, "replay": r.replay if r.cpt else None,
                  "seed": r.seed, "kind": "cpt" if r.cpt else "pt", "lr_sha256": _digest(r.pt, r.cpt)}
                 for r in pts + cpts],
    }
    mpath = os.path.join(out_dir, "manifest.json")
    merged = _same_settings(_old_manifest(mpath), manifest, out_dir)
    # Written before any training, so that a killed study's folder already says what it was made
    # with; the folder is made only here, so that an interrupt before it leaves none.
    os.makedirs(out_dir, exist_ok=True)
    atomic_write(mpath, dumps(merged, indent=2))
    evals = _eval_batches(corpora, study.model, study.eval_batches)  # the same for every run
    for r in pts + cpts:
        if r in todo:
            train_run(r, study, corpora, out_dir, fns, prog, evals=evals)
    return manifest
