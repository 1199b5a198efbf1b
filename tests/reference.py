"""Independent float64 step-by-step reference implementations (plain Python loops)."""


import numpy as np


def areas_loop(lr, n_pt=None, lam=0.999, eta0=None):
    lr = [float(x) for x in lr]
    T = len(lr)
    n_pt = T if n_pt is None else n_pt
    prev = lr[0] if eta0 is None else float(eta0)
    m = 0.0
    s1p = s1c = s2p = s2c = 0.0
    out = np.zeros((4, T))
    for i, eta in enumerate(lr):
        m = lam * m + (prev - eta)
        prev = eta
        if i < n_pt:
            s1p += eta
            s2p += m
        else:
            s1c += eta
            s2c += m
        out[:, i] = (s1p, s1c, s2p, s2c)
    return out


def shift(B, E, beta, s):
    return B * (1 - (1 + E * s) ** (-beta))


def cpt_loop(p, a):
    L0, A, al, C1, C2, B, E, be = p
    return [L0 + A * (a[0, i] + a[1, i]) ** (-al) - C1 * a[2, i] - C2 * a[3, i]
            + shift(B, E, be, a[1, i]) for i in range(a.shape[1])]


def mpl_naive(p, lr, t_idx, skip_warmup=False):
    """O(T) per output step, straight from the definition: every decrement (the warmup's
    negative ones included, as the MPL authors' code), or only those after the peak."""
    L0, A, al, B, C, be, ga = p
    lr = np.asarray(lr, float)
    peak = int(np.argmax(lr)) if skip_warmup else 0
    out = []
    for t in t_idx:
        s1 = lr[: t + 1].sum()
        ld = 0.0
        for k in range(peak + 1, t + 1):
            dk = lr[k - 1] - lr[k]
            if dk != 0.0:
                sk = lr[k: t + 1].sum()
                ld += dk * (1 - (C * lr[k] ** (-ga) * sk + 1) ** (-be))
        out.append(L0 + A * s1 ** (-al) - B * ld)
    return np.array(out)


def mpl_cpt_naive(p, lr, n_pt, t_idx):
    """Eq. 4 with MPL's annealing term (cptjax.MPLCPTLaw), straight from the definition: per
    output step, every decrement at or before it, split into PT (k < n_pt) and CPT sums."""
    L0, A, al, C1, C2, B, E, be, ka, rho, ga = p
    lr = np.asarray(lr, float)
    out = []
    for t in t_idx:
        s1 = lr[: t + 1].sum()
        ld = [0.0, 0.0]
        for k in range(1, t + 1):
            dk = lr[k - 1] - lr[k]
            if dk != 0.0:
                sk = lr[k: t + 1].sum()
                eta = max(lr[k], 1e-6 * lr.max())
                ld[k >= n_pt] += dk * (1 - (ka * eta ** (-ga) * sk + 1) ** (-rho))
        s1c = lr[n_pt: t + 1].sum()
        out.append(L0 + A * s1 ** (-al) - C1 * ld[0] - C2 * ld[1] + B * (1 - (1 + E * s1c) ** (-be)))
    return np.array(out)
