"""Lab training throughput: tokens/s and achieved FLOP/s as a fraction of this machine's measured
dense-matmul FLOP/s (float32), per model preset.

Baseline: a square float32 matmul of the model's width class (1024 on CPU, 4096 on GPU), the
ceiling for a model this small. Training FLOPs per step: ModelConfig.flops_per_step (6·N per token
plus attention). Run: python benchmarks/lab.py [--models cpu tiny] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from cptjax.lab import _train as L


def matmul_flops(n: int, reps: int = 10) -> float:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def train_rate(cfg: L.ModelConfig, steps: int, repeats: int = 3) -> float:
    """Steps/s of the lab's own train_chunk (scan over ``steps`` steps), best of ``repeats``."""
    opt, train_chunk, _ = L._make_fns(cfg)
    params = L.init_params(cfg)
    state = L._f32(opt.init(params))
    data = jnp.asarray(np.random.default_rng(0).integers(0, 256, (steps, cfg.batch, cfg.seq_len + 1)),
                       jnp.int32)
    lrs = jnp.full(steps, 1e-3, jnp.float32)
    params, state, loss = train_chunk(params, state, data, lrs)
    loss.block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        params, state, loss = train_chunk(params, state, data, lrs)
        loss.block_until_ready()
        best = min(best, time.perf_counter() - t)
    return steps / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    gpu = jax.default_backend() != "cpu"
    models = args.models or (["cpu", "gpu"] if gpu else ["tiny", "cpu"])
    n = 4096 if gpu else 1024
    peak = matmul_flops(n)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
          f"baseline: float32 {n}x{n} matmul = {peak / 1e9:.1f} GFLOP/s")
    print(f"{'model':>6} {'params':>9} {'steps/s':>9} {'tokens/s':>10} {'GFLOP/s':>9} {'of matmul':>10}")
    for name in models:
        cfg = L.MODELS[name]
        rate = train_rate(cfg, args.steps)
        fl = cfg.flops_per_step() * rate
        print(f"{name:>6} {cfg.n_params() / 1e6:>8.2f}M {rate:>9.1f} {rate * cfg.batch * cfg.seq_len:>10.0f} "
              f"{fl / 1e9:>9.1f} {fl / peak:>9.1%}")


if __name__ == "__main__":
    main()
