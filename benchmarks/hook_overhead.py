"""Forecast-hook overhead: how much a training loop slows down when
``cptjax.integrations.hooks.ForecastHook`` forecasts every ``--every`` steps in its worker
process. The loop is a plain PyTorch one (a 4-layer MLP, 512 wide, batch 256, AdamW, warmup then a
constant LR — the case the forecaster is for), timed per step; the baseline is the same loop with
no hook, and the runs alternate (baseline, hook, baseline, hook, …) so that the machine's drift
hits both. Ratio = median hooked step / median plain step over all steps after the first
forecast started (> 1 is slower); the goal is a few percent. The Hugging Face and Lightning
callbacks add only a dict update to their own per-log work, on top of this hook.

With ``--threads 1`` the loop leaves a core free, as a GPU training host does (its training
process drives the accelerator from about one core); with all threads (the default) the loop takes
every core, the worst case for any background work. The forecasts completed per run are printed
too: a worker at the lowest priority on a machine the loop saturates makes few.

    python benchmarks/hook_overhead.py [--steps 600] [--every 100] [--reps 2] [--threads N]
"""

import argparse
import statistics
import time

import torch

from cptjax.integrations.hooks import ForecastHook


def loop(steps, hook=None, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(*[m for _ in range(4) for m in (torch.nn.Linear(512, 512), torch.nn.GELU())],
                                torch.nn.Linear(512, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 50))
    X = torch.randn(4096, 512)
    Y = torch.sin(X[:, :8].sum(1))
    times, start = [], None
    for step in range(1, steps + 1):
        t = time.perf_counter()
        i = torch.randint(0, 4096, (256,))
        loss = torch.mean((model(X[i]).squeeze(-1) - Y[i]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr = sched.get_last_lr()[0]
        sched.step()
        if hook is not None:
            hook(step, lr, loss.detach())
            if start is None and hook._job is not None:
                start = step
        times.append(time.perf_counter() - t)
    return times, start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} steps, forecast every {args.every}")
    plain, hooked = [], []
    for r in range(args.reps):
        t, _ = loop(args.steps, seed=r)
        made = []
        hook = ForecastHook(every=args.every, budget=10 * args.steps, on_forecast=made.append)
        th, start = loop(args.steps, hook, seed=r)
        during = len(made)
        hook.close()
        if hook.errors:
            print("forecast errors:", hook.errors[:2])
        plain += t[start:]
        hooked += th[start:]
        print(f"rep {r}: plain {statistics.median(t[start:]) * 1e3:.2f} ms/step, "
              f"hooked {statistics.median(th[start:]) * 1e3:.2f} ms/step (steps {start}..{args.steps}; "
              f"{during} forecast(s) finished during the loop, the last from step "
              f"{made[during - 1].step if during else None})")
    p, h = statistics.median(plain), statistics.median(hooked)
    mp, mh = statistics.fmean(plain), statistics.fmean(hooked)
    print(f"median step: plain {p * 1e3:.2f} ms, hooked {h * 1e3:.2f} ms -> ratio {h / p:.3f}")
    print(f"mean step:   plain {mp * 1e3:.2f} ms, hooked {mh * 1e3:.2f} ms -> ratio {mh / mp:.3f}")


if __name__ == "__main__":
    main()
