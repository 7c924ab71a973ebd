"""Training speed past one laptop: the kit's loop against a bare loop, the speed-up of AMP, and DDP scaling.

Three measurements on the device the kit picks (a GPU when present; the CPU otherwise — then say so):

1. images/s of ``cxrkit.train.fit`` against a bare PyTorch loop, same model, data, batch, optimiser, precision and
   memory format (``cxrkit.train.benchmark_throughput``; goal >= 0.95);
2. the speed-up of mixed precision: ``fit(amp=True)`` (bf16, or fp16 with a scaler) over ``fit(amp=False)``;
3. DDP scaling: ``torchrun --standalone --nproc_per_node=k`` for k = 1 … ``--max-procs`` (default: every GPU, or 2
   CPU processes), each rank training its share of the same global batch; efficiency = rate(k) / (k × rate(1)),
   goal >= 0.9 per added GPU.

    python benchmarks/gpu_training.py [--model densenet121 --size 224 --batch-size 64 --steps 20] [--out results.md]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cxrkit.devices import describe_device, pick_device, resolve_amp
from cxrkit.models.image import build_image_model
from cxrkit.train import BatchLoader, ImageDataset, benchmark_throughput, fit
from cxrkit.train.distributed import close_distributed, init_distributed, world


def _data(args: argparse.Namespace, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, size=(n, args.size, args.size), dtype=np.uint8),
            (rng.random((n, 14)) < 0.3).astype(np.float32))


def _model(args: argparse.Namespace) -> torch.nn.Module:
    options = {"width": args.width} if args.model == "small_cnn" else {}
    return build_image_model(args.model, 14, **options)


def _fit_rate(args: argparse.Namespace, amp: bool | None, device: torch.device | None = None) -> float:
    """Images/s of fit's second epoch (the first warms up) over the whole world's batches."""
    images, labels = _data(args, args.steps * args.batch_size)
    torch.manual_seed(0)
    loader = BatchLoader(ImageDataset(images, labels), batch_size=args.batch_size, shuffle=True, drop_last=True)
    history = fit(_model(args), loader, None, epochs=2, device=device, amp=amp, progress=False)
    return float(history.table["train_images_per_s"].iloc[-1])


def _worker(args: argparse.Namespace) -> None:
    w = init_distributed()
    rate = _fit_rate(args, None)
    if w.rank == 0:
        Path(args.worker).write_text(json.dumps({"world": world().size, "rate": rate}))
    close_distributed()


def _scaling(args: argparse.Namespace, device: torch.device) -> list[dict]:
    procs = args.max_procs or (torch.cuda.device_count() if device.type == "cuda" else 2)
    rows = []
    for k in range(1, procs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rate.json"
            env = {**os.environ, "OMP_NUM_THREADS": str(max((os.cpu_count() or 1) // k, 1))}
            if device.type == "cpu":
                env["CXRKIT_DEVICE"] = "cpu"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}", __file__,
                   "--worker", str(out), *args.passthrough]
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            rate = json.loads(out.read_text())["rate"]
        base = rows[0]["images_per_s"] if rows else rate
        rows.append({"processes": k, "images_per_s": round(rate, 1), "efficiency": round(rate / (k * base), 3)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small_cnn", help="image_model name (small_cnn, densenet121, vgg16_bn …)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--width", type=int, default=24, help="small_cnn width")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="batches per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-procs", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.passthrough = ["--model", args.model, "--size", str(args.size), "--width", str(args.width),
                        "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    if args.worker:
        _worker(args)
        return {}

    device = pick_device()
    images, labels = _data(args, args.steps * args.batch_size)
    loop = benchmark_throughput(lambda: _model(args), images, labels, args.batch_size, args.steps,
                                repeats=args.repeats, device=device)
    fp32, mixed = _fit_rate(args, False, device), _fit_rate(args, True, device)
    amp_name = str(resolve_amp(device, True)).removeprefix("torch.")
    scaling = _scaling(args, device)
    stamp = datetime.date.today().isoformat()
    lines = [f"## {stamp} — {describe_device(device)}; {args.model} at {args.size} px, global batch {args.batch_size}, "
             f"{args.steps} steps/epoch", "",
             "| measurement | value |", "|---|---|",
             f"| kit loop / bare loop (best of {args.repeats}) | {loop['kit']:.1f} / {loop['bare']:.1f} images/s = "
             f"**{loop['ratio']:.3f}** (goal ≥ 0.95) |",
             f"| AMP ({amp_name}) / float32 | {mixed:.1f} / {fp32:.1f} images/s = **{mixed / fp32:.2f}×** |"]
    lines += [f"| DDP, {r['processes']} process{'es' if r['processes'] > 1 else ''} | {r['images_per_s']} images/s, "
              f"efficiency **{r['efficiency']}** |" for r in scaling]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")
    return {"loop": loop, "amp": mixed / fp32, "scaling": scaling}


if __name__ == "__main__":
    main()
