"""The reference configuration in PyTorch: an independent yardstick for lessons_lib's training run.

The same recipe as `python -m lessons_lib.training` (GPT-2-style pre-norm GPT, 4 layers, 4 heads,
d_model 128, context 64, batch 12, no biases, tied embeddings, AdamW 1e-3 -> 1e-4 with 100 warm-up
steps over 2,000 steps, betas 0.9/0.99, weight decay 0.1 on matrices, clipping 1.0), written from
that recipe for this repository, and evaluated with the course's metric: the mean loss over all
non-overlapping 64-character windows of the validation split. It also draws the noisy estimate
nanoGPT prints (the mean of 20 random batches of 12 windows), many times over, to show how far one
such estimate strays from the full-split figure.

PyTorch is not a course dependency; run it in its own environment:

    python -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0 numpy
    /tmp/torch-venv/bin/python benchmarks/reference_torch_baby_gpt.py 1337 1 2

Many seeds at once, on a GPU (one process per seed):

    python benchmarks/reference_torch_baby_gpt.py $(seq 100 131) --device cuda --jobs 16 \\
        --json seeds.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

V, T, D, H, L, B, STEPS = 65, 64, 128, 4, 4, 12, 2000


def run(seed: int, text_path: str, device: str, estimates: int, steps: int = STEPS) -> dict:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(int(os.environ.get("REF_THREADS", torch.get_num_threads())))
    torch.manual_seed(seed)
    text = open(text_path, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    n = int(len(data) * 0.9)
    train, val = torch.from_numpy(data[:n]), torch.from_numpy(data[n:])
    offsets = torch.arange(T)

    def batch(
        split, k=B
    ):  # random windows, drawn on the CPU generator so a seed means the same on any device
        ix = torch.randint(len(split) - T, (k,))
        idx = ix[:, None] + offsets
        return split[idx].to(device), split[idx + 1].to(device)

    class Block(nn.Module):
        def __init__(s):
            super().__init__()
            s.ln1, s.ln2 = nn.LayerNorm(D, bias=False), nn.LayerNorm(D, bias=False)
            s.qkv, s.proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
            s.fc, s.out = nn.Linear(D, 4 * D, bias=False), nn.Linear(4 * D, D, bias=False)

        def forward(s, x):
            b, t, _ = x.shape
            q, k, v = s.qkv(s.ln1(x)).split(D, dim=2)
            q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
            y = (
                F.scaled_dot_product_attention(q, k, v, is_causal=True)
                .transpose(1, 2)
                .reshape(b, t, D)
            )
            x = x + s.proj(y)
            return x + s.out(F.gelu(s.fc(s.ln2(x))))

    class GPT(nn.Module):
        def __init__(s):
            super().__init__()
            s.wte, s.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
            s.blocks = nn.ModuleList(Block() for _ in range(L))
            s.lnf = nn.LayerNorm(D, bias=False)
            for name, p in s.named_parameters():
                if p.dim() >= 2:
                    std = (
                        0.02 / math.sqrt(2 * L)
                        if name.endswith(("proj.weight", "out.weight"))
                        else 0.02
                    )
                    nn.init.normal_(p, 0.0, std)

        def forward(s, idx):
            x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1], device=idx.device))
            for blk in s.blocks:
                x = blk(x)
            return s.lnf(x) @ s.wte.weight.T

    m = GPT().to(device)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    nodecay = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.99),
    )

    def lr_at(it):
        if it < 100:
            return 1e-3 * (it + 1) / 101
        r = min(1.0, (it - 100) / 1900)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * 9e-4

    t0 = time.time()
    for it in range(steps):  # fewer than STEPS only for a quick smoke test
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch(train)
        loss = F.cross_entropy(m(x).view(-1, V), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    wall = time.time() - t0
    m.eval()
    with torch.no_grad():
        nw = (len(val) - 1) // T
        xs, ys = val[: nw * T].view(nw, T).to(device), val[1 : nw * T + 1].view(nw, T).to(device)
        full = sum(
            F.cross_entropy(
                m(xs[i : i + 256]).reshape(-1, V), ys[i : i + 256].reshape(-1), reduction="sum"
            ).item()
            for i in range(0, nw, 256)
        ) / (nw * T)
        est = []
        for _ in range(
            estimates
        ):  # one nanoGPT-style estimate = mean over 20 random batches of 12 windows
            x, y = batch(val, 20 * B)
            per_batch = (
                F.cross_entropy(m(x).view(-1, V), y.view(-1), reduction="none").view(20, -1).mean(1)
            )
            est.append(per_batch.mean().item())
    return {
        "seed": seed,
        "full_val_loss": full,
        "estimates": est,
        "ms_per_step": 1000 * wall / steps,
        "device": device,
    }


def _run(args):
    return run(*args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("seeds", type=int, nargs="*", default=[1337])
    p.add_argument(
        "--data",
        default=os.path.join(
            os.environ.get("LESSONS_DATA_DIR", os.path.expanduser("~/.cache/llm-course")),
            "tinyshakespeare.txt",
        ),
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at once, one process each")
    p.add_argument(
        "--estimates", type=int, default=1, help="nanoGPT-style 20-batch estimates drawn per seed"
    )
    p.add_argument(
        "--steps", type=int, default=STEPS, help="stop early (a smoke test; the schedule stays)"
    )
    p.add_argument("--json", help="also write every result to this file")
    a = p.parse_args()
    work = [(s, a.data, a.device, a.estimates, a.steps) for s in a.seeds]
    results = []

    def report(r):
        results.append(r)
        print(
            f"seed {r['seed']}: full-val loss {r['full_val_loss']:.4f}; "
            f"20-batch estimate {r['estimates'][0]:.4f}; "
            f"{r['ms_per_step']:.1f} ms/step ({r['device']})",
            flush=True,
        )
        if a.json:  # rewritten after every seed, so a run cut short keeps what it finished
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)

    if a.jobs > 1:
        import multiprocessing as mp

        # share the cores out: more threads than cores between processes slows every step badly
        os.environ.setdefault("REF_THREADS", str(max(1, (os.cpu_count() or 1) // a.jobs)))
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            for r in pool.imap_unordered(_run, work):
                report(r)
    else:
        for w in work:
            report(run(*w))
    results.sort(key=lambda r: r["seed"])
    if len(results) > 1:
        full = np.array([r["full_val_loss"] for r in results])
        dev = np.concatenate([np.array(r["estimates"]) - r["full_val_loss"] for r in results])
        print(
            f"{len(full)} seeds: full-val loss mean {full.mean():.4f}, sd {full.std(ddof=1):.4f}, "
            f"min {full.min():.4f}, max {full.max():.4f}; "
            f"<= 1.90 in {(full <= 1.90).sum()} of {len(full)}"
        )
        print(
            f"20-batch estimate minus full-split loss over {dev.size} draws: "
            f"sd {dev.std(ddof=1):.4f}; "
            f"{100 * (np.abs(dev) >= 0.02).mean():.0f}% of draws are off by 0.02 or more"
        )


if __name__ == "__main__":
    main()
