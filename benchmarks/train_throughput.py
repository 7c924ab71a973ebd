"""Training throughput of the kit's loop (`cxrkit.train.fit`) against a bare PyTorch loop.

Same model (SmallCNN), same random 128×128 uint8 data, batch size, AdamW settings, precision and
memory format, no augmentation in either; each side runs two epochs of `--steps` batches on a fresh
model and the second epoch is timed; the sides alternate `--repeats` times. The goal (kit / bare >= 0.95) is
judged, as notebook 02 records it, on the median of the back-to-back ratios (each kit run against the bare
run right after it), which cancels the CPU's drifts; the best of each side and the images per CPU-second of
each whole run are printed beside it.

    python benchmarks/train_throughput.py [--steps 20] [--batch-size 64] [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from cxrkit.devices import describe_device, pick_device
from cxrkit.models import SmallCNN
from cxrkit.train import benchmark_throughput


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--width", type=int, default=32, help="SmallCNN width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: automatic)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, size=(n, args.size, args.size), dtype=np.uint8)
    labels = (rng.random((n, args.labels)) < 0.3).astype(np.float32)
    device = pick_device(args.device)

    def model_fn() -> SmallCNN:
        return SmallCNN(in_channels=1, num_outputs=args.labels, width=args.width)

    result = benchmark_throughput(model_fn, images, labels, args.batch_size, args.steps, repeats=args.repeats, device=device)
    print(f"device: {describe_device(device)}; SmallCNN(width={args.width}) at {args.size}x{args.size}, "
          f"batch {args.batch_size}, {args.steps} steps/epoch, {args.repeats} alternations")
    print(f"kit fit loop : {result['kit']:8.1f} images/s (median {result['kit_median']:.1f})")
    print(f"bare loop    : {result['bare']:8.1f} images/s (median {result['bare_median']:.1f})")
    paired = result["paired_ratio_median"]
    print(f"ratio        : {paired:.3f} median of back-to-back ratios ({'meets' if paired >= 0.95 else 'BELOW'} the "
          f"0.95 goal); best of each {result['ratio']:.3f}")
    print(f"per CPU-second (robust to other load): kit {result['kit_cpu']:.1f}, bare {result['bare_cpu']:.1f}, "
          f"ratio {result['cpu_ratio']:.3f}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
