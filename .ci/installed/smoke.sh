#!/usr/bin/env bash
# The installed package, used from outside the tree: the command, a fit -> predict -> forecast
# round trip on a generated log, and the import test. Run by .ci/installed.sh in a fresh venv.
set -euo pipefail
cptjax --version
cptjax --help >/dev/null
for cmd in predict fit design lab tune forecast watch; do cptjax "$cmd" --help >/dev/null; done
# A PT run drawn from the Setting A general law on a WSD schedule (every 100th step logged), and
# the same run cut at step 6 000, before its cooldown.
python - <<'PY'
import json

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import cptjax
from cptjax import schedules as S

lr = S.wsd(10000, 3e-4, warmup=200, decay=0.2, final=3e-5)
law = cptjax.preset("setting-a").general
pt = cptjax.PTLaw(L0=law.L0, A=law.A, alpha=law.alpha, C=law.C1)
steps = np.arange(100, 10001, 100)
loss = np.asarray(pt(cptjax.areas(lr, lr.size)))[steps - 1]
loss = loss * (1 + 1e-3 * np.random.default_rng(0).standard_normal(loss.size))
for name, cut in (("run.csv", steps.size), ("so_far.csv", 60)):
    np.savetxt(name, np.c_[steps[:cut], lr[steps[:cut] - 1], loss[:cut]], delimiter=",",
               header="step,lr,loss", comments="", fmt=["%d", "%.6e", "%.6f"])
clean = np.asarray(pt(cptjax.areas(lr, lr.size)))
json.dump({"L0": law.L0, "at_6000": float(clean[5999]), "at_10000": float(clean[-1])}, open("truth.json", "w"))
PY
cptjax fit run.csv --law pt --out fit.json
cptjax predict fit.json --pt 'wsd(steps=10000,peak=3e-4,warmup=200,decay=0.2,final=3e-5)' --cpt '' --at 10000 --json > predict.json
cptjax forecast so_far.csv --budget 10000 --json > forecast.json
python - <<'PY'
import json

truth, fit = json.load(open("truth.json")), json.load(open("fit.json"))
pred, fc = json.load(open("predict.json")), json.load(open("forecast.json"))
assert abs(pred["final"]["loss"] / truth["at_10000"] - 1) < 0.005, (pred["final"], truth)
assert fit["status"] == "converged" and fit["metrics"]["r2"] > 0.999, fit["metrics"]
assert abs(fit["law"]["L0"] / truth["L0"] - 1) < 0.05, (fit["law"], truth)
stop = next(a for a in fc["alternatives"] if a["name"] == "stop now")
assert abs(stop["loss"] / truth["at_6000"] - 1) < 0.005 and stop["lo"] < stop["loss"] < stop["hi"], (stop, truth)
print("installed package: fit, predict and forecast agree with the generating law")
PY
