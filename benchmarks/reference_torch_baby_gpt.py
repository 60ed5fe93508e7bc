"""The reference configuration in PyTorch, as an independent yardstick for lessons_lib's training run.

The same recipe as `python -m lessons_lib.training` (GPT-2-style pre-norm GPT, 4 layers, 4 heads, d_model 128,
context 64, batch 12, no biases, tied embeddings, AdamW 1e-3 -> 1e-4 with 100 warm-up steps over 2,000 steps,
betas 0.9/0.99, weight decay 0.1 on matrices, clipping 1.0), written from that recipe for this repository, and
evaluated with the course's metric: the mean loss over all non-overlapping 64-character windows of the validation
split (plus a noisy 20-batch estimate, the kind nanoGPT prints).

PyTorch is not a course dependency; run it in its own environment:

    python -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0 numpy
    /tmp/torch-venv/bin/python benchmarks/reference_torch_baby_gpt.py SEED [PATH/TO/tinyshakespeare.txt]
"""
import math, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1337
torch.manual_seed(seed)
import os
default = os.path.join(os.environ.get("LESSONS_DATA_DIR", os.path.expanduser("~/.cache/llm-course")), "tinyshakespeare.txt")
text = open(sys.argv[2] if len(sys.argv) > 2 else default, encoding="utf-8").read()
chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
data = np.array([stoi[c] for c in text], dtype=np.int64); n = int(len(data) * 0.9)
train, val = torch.from_numpy(data[:n]), torch.from_numpy(data[n:])
V, T, D, H, L, B = 65, 64, 128, 4, 4, 12

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
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, D)
        x = x + s.proj(y)
        return x + s.out(F.gelu(s.fc(s.ln2(x))))

class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        s.blocks = nn.ModuleList(Block() for _ in range(L)); s.lnf = nn.LayerNorm(D, bias=False)
        for name, p in s.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L) if name.endswith(("proj.weight", "out.weight")) else 0.02)
    def forward(s, idx):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for blk in s.blocks: x = blk(x)
        return s.lnf(x) @ s.wte.weight.T

m = GPT()
decay = [p for p in m.parameters() if p.dim() >= 2]; nodecay = [p for p in m.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99))
def lr_at(it):
    if it < 100: return 1e-3 * (it + 1) / 101
    r = min(1.0, (it - 100) / 1900); return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * 9e-4
t0 = time.time()
for it in range(2000):
    for g in opt.param_groups: g["lr"] = lr_at(it)
    ix = torch.randint(len(train) - T, (B,))
    x = torch.stack([train[i:i + T] for i in ix]); y = torch.stack([train[i + 1:i + T + 1] for i in ix])
    loss = F.cross_entropy(m(x).view(-1, V), y.view(-1))
    opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
wall = time.time() - t0
m.eval()
with torch.no_grad():
    nw = (len(val) - 1) // T
    xs = val[:nw * T].view(nw, T); ys = val[1:nw * T + 1].view(nw, T)
    full = sum(F.cross_entropy(m(xs[i:i+256]).reshape(-1, V), ys[i:i+256].reshape(-1), reduction="sum").item() for i in range(0, nw, 256)) / (nw * T)
    est = []
    for _ in range(20):
        ix = torch.randint(len(val) - T, (B,))
        x = torch.stack([val[i:i + T] for i in ix]); y = torch.stack([val[i + 1:i + T + 1] for i in ix])
        est.append(F.cross_entropy(m(x).view(-1, V), y.view(-1)).item())
print(f"seed {seed}: full-val loss {full:.4f}; 20-batch estimate {np.mean(est):.4f}; {1000*wall/2000:.1f} ms/step")
