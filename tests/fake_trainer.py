"""A stand-in for a user's trainer (tests of `cptjax tune`): reads the per-step CPT schedule, writes
the replay preset's losses (+0.3% noise, seeded) every 60 steps as CSV (few points: few compilations in the tuner), CPT steps from 1.
`--fail-replay R` exits 1 (with a message on stderr) for that replay ratio."""
import argparse
import sys

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import cptjax  # noqa: E402
from cptjax import schedules as S  # noqa: E402

p = argparse.ArgumentParser()
for a in ("--lr-file", "--log", "--pt"):
    p.add_argument(a)
p.add_argument("--replay", type=float)
p.add_argument("--seed", type=int)
p.add_argument("--fail-replay", type=float, default=None)
a = p.parse_args()
if a.fail_replay is not None and abs(a.replay - a.fail_replay) < 1e-12:
    sys.exit("out of memory on the fake GPU")
cpt = np.loadtxt(a.lr_file, delimiter=",", skiprows=1)[:, 1]
lr, n_pt = S.join(S.parse(a.pt), cpt)
idx = np.arange(n_pt + 59, lr.size, 60)
rng = np.random.default_rng(a.seed)
g, d = (np.asarray(v) * np.exp(0.003 * rng.standard_normal(idx.size))
        for v in cptjax.predict(cptjax.preset("replay"), lr, n_pt, idx=idx, replay=a.replay))
with open(a.log, "w") as fh:
    fh.write("step,general_loss,domain_loss\n")
    fh.writelines(f"{i + 1 - n_pt},{float(x)!r},{float(y)!r}\n" for i, x, y in zip(idx, g, d))
