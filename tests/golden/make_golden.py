"""Make the golden fixtures: three runs drawn from Setting A (0.2% log-normal noise, fixed seed) and
the JSON that `cptjax fit | design | predict --json` printed on them. Rerun only to re-pin on
purpose (a deliberate change of behaviour): `python tests/golden/make_golden.py`."""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PT = "wsd(steps=4000,peak=2e-4,warmup=200,decay=0.2,final=2e-5)"
CPTS = {"cosine": "cosine(steps=1500,peak=1e-4,warmup=100,final=0)",
        "constant": "constant(steps=1500,peak=5e-5,warmup=100)"}

# name -> cptjax arguments; {d} is this folder. The same list drives tests/test_golden.py.
COMMANDS = {
    "fit_general": ["fit", "{d}/pt.csv", "{d}/cpt_cosine.csv", "{d}/cpt_constant.csv", "--law", "cpt",
                    "--loss-column", "general_loss", "--json"],
    "fit_domain": ["fit", "{d}/pt.csv", "{d}/cpt_cosine.csv", "{d}/cpt_constant.csv", "--law", "cpt",
                   "--loss-column", "domain_loss", "--json"],
    "predict": ["predict", "{d}/general.json", "--pt", PT, "--cpt", CPTS["cosine"], "--json"],
    "predict_pair": ["predict", "setting-a", "--pt", PT, "--cpt", CPTS["constant"], "--json"],
    "design": ["design", "--law", "{d}/general.json,{d}/domain.json", "--pt", PT, "--cpt-steps",
               "1500", "--warmup", "100", "--iterations", "200", "--max-lr", "2e-4", "--json",
               "--out", "{out}"],
}


def make_runs():
    import jax

    jax.config.update("jax_enable_x64", True)
    import cptjax
    from cptjax import schedules as S

    rng = np.random.default_rng(0)
    law = cptjax.preset("setting-a")
    pt = S.parse(PT)
    runs = {"pt": (pt, np.zeros(0))} | {f"cpt_{k}": (pt, S.parse(v)) for k, v in CPTS.items()}
    for name, (p, c) in runs.items():
        lr, n_pt = S.join(p, c)
        idx = np.arange(199, lr.size, 50)
        g, d = (np.asarray(v) for v in cptjax.predict(law, lr, n_pt, idx=idx))
        g, d = (v * np.exp(0.002 * rng.standard_normal(v.size)) for v in (g, d))
        rows = [f"{i + 1},{float(lr[i])!r},{float(a)!r},{float(b)!r}" for i, a, b in zip(idx, g, d)]
        head = f"# n_pt: {n_pt}\nstep,lr,general_loss,domain_loss\n" if c.size else \
            "step,lr,general_loss,domain_loss\n"
        with open(os.path.join(HERE, name + ".csv"), "w") as fh:
            fh.write(head + "\n".join(rows) + "\n")


def run(name, out):
    args = [a.format(d=HERE, out=out) for a in COMMANDS[name]]
    r = subprocess.run([sys.executable, "-m", "cptjax.cli", *args], capture_output=True, text=True,
                       env={**os.environ, "CPTJAX_NO_CACHE": "1"})
    assert r.returncode == 0, r.stderr
    # Paths are written relative to this folder and the output folder, so the goldens hold in any
    # checkout.
    text = r.stdout.replace(HERE, "{d}")
    return json.loads(text.replace(out, "{out}") if out else text)


if __name__ == "__main__":
    import tempfile

    make_runs()
    for kind in ("general", "domain"):
        res = run(f"fit_{kind}", None)
        with open(os.path.join(HERE, f"{kind}.json"), "w") as fh:
            json.dump(res, fh, indent=2)
    with tempfile.TemporaryDirectory() as t:
        outs = {n: run(n, os.path.join(t, "design")) for n in COMMANDS}
    with open(os.path.join(HERE, "golden.json"), "w") as fh:
        json.dump(outs, fh, indent=1)
