"""What a Transformer costs on this machine (lesson 14 §4–§6), measured in one run:

1. counts vs measurements: a training step of GPTs of several widths at several sequence lengths;
   the predicted FLOPs (`lessons_lib.cost.Architecture.training_flops`) over the median step time
   is the achieved FLOP/s;
2. attention's T²: one causal self-attention layer (d_model 128, 4 heads) from T = 128 to 4,096,
   forward time and the peak resident memory a call adds (measured in a fresh process) beside the
   scores tensor's size, with the log–log slopes;
3. parallel vs sequential: forward + backward of a GRU and of a Transformer block of about the same
   parameter count against T.

    python benchmarks/bench_cost.py --json benchmarks/results/cost.json
    python benchmarks/bench_cost.py --smoke        # a few seconds: every line, tiny sizes

Lesson 14 plots the JSON beside a smaller run it measures live. Timings move by up to 2x between
runs on shared machines; the slopes and the ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import lessons_lib  # noqa: F401  (first: TensorFlow without its load-time notices)
from lessons_lib._backend import tf
from lessons_lib.cost import Architecture
from lessons_lib.measure import (
    attention_peak_memory,
    attention_seconds,
    loglog_slope,
    recurrent_vs_attention,
    scores_bytes,
    step_seconds,
)
from lessons_lib.training import ModelConfig

FULL = dict(
    widths=[(32, 2), (64, 2), (128, 4), (256, 4)],
    step_lengths=[32, 64, 128, 256],
    attention_lengths=[128, 256, 512, 1024, 2048, 4096],
    rnn_lengths=[16, 32, 64, 128, 256, 512, 1024],
    batch=8,
    repeats=5,
)
SMOKE = dict(
    widths=[(16, 1), (32, 1)],
    step_lengths=[16, 32],
    attention_lengths=[64, 128, 256],
    rnn_lengths=[8, 16],
    batch=2,
    repeats=1,
)


def measure(sizes: dict) -> dict:
    """Run the three measurements; returns the figures as a JSON-ready dict."""
    steps = []
    for d, layers in sizes["widths"]:
        cfg = ModelConfig(
            d_model=d, num_layers=layers, num_heads=4, max_len=max(sizes["step_lengths"])
        )
        model, arch = cfg.build(), Architecture.of(cfg)
        for t in sizes["step_lengths"]:
            s = step_seconds(model, sizes["batch"], t, repeats=sizes["repeats"])
            flops = arch.training_flops(sizes["batch"], t)
            steps.append(
                dict(d_model=d, num_layers=layers, params=arch.params, seq_len=t, seconds=s,
                     flops=flops, gflops_per_s=flops / s / 1e9)
            )  # fmt: skip
            print(
                f"step  d={d:4} L={layers} T={t:4}: {1e3 * s:8.1f} ms, {flops / 1e9:7.3f} GFLOP "
                f"-> {flops / s / 1e9:6.1f} GFLOP/s",
                flush=True,
            )
    lengths = sizes["attention_lengths"]
    att_time = attention_seconds(lengths, repeats=sizes["repeats"])
    att_mem = attention_peak_memory(lengths)
    attention = dict(
        lengths=lengths,
        seconds=[att_time[t] for t in lengths],
        peak_bytes=[att_mem[t] for t in lengths],
        scores_bytes=[scores_bytes(1, 4, t) for t in lengths],
    )
    big = [i for i, t in enumerate(lengths) if t >= lengths[len(lengths) // 2]]
    attention["time_slope"] = loglog_slope(
        [lengths[i] for i in big], [attention["seconds"][i] for i in big]
    )
    attention["memory_slope"] = loglog_slope(
        [lengths[i] for i in big], [max(1, attention["peak_bytes"][i]) for i in big]
    )
    for t, s, m, p in zip(
        lengths, attention["seconds"], attention["peak_bytes"], attention["scores_bytes"]
    ):
        print(
            f"attention T={t:5}: {1e3 * s:8.2f} ms, peak +{m / 2**20:7.1f} MiB "
            f"(scores {p / 2**20:6.1f} MiB)",
            flush=True,
        )
    print(
        f"attention slopes (T >= {lengths[big[0]]}): time {attention['time_slope']:.2f}, "
        f"memory {attention['memory_slope']:.2f}",
        flush=True,
    )
    rnn = recurrent_vs_attention(
        sizes["rnn_lengths"], batch=sizes["batch"], repeats=sizes["repeats"]
    )
    for t, g, b in zip(rnn["lengths"], rnn["gru"], rnn["transformer"]):
        print(
            f"fwd+bwd T={t:5}: GRU {1e3 * g:8.1f} ms | Transformer block {1e3 * b:8.1f} ms "
            f"| GRU/block {g / b:5.2f}",
            flush=True,
        )
    print(
        f"GRU: {rnn['gru_units']} units, {rnn['gru_params']:,} parameters; "
        f"block: {rnn['transformer_params']:,} parameters",
        flush=True,
    )
    return dict(steps=steps, attention=attention, recurrent=rnn)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check every line runs")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    result = measure(SMOKE if a.smoke else FULL)
    result["meta"] = dict(
        command="python benchmarks/bench_cost.py" + (" --smoke" if a.smoke else "")
        + (f" --json {a.json}" if a.json else ""),
        date=datetime.date.today().isoformat(),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        python=platform.python_version(),
        tensorflow=tf.__version__,
        gpu=bool(tf.config.list_physical_devices("GPU")),
        wall_seconds=round(time.perf_counter() - t0, 1),
    )  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
