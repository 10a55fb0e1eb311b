"""``python -m asd.data.synthetic <root> [--seed N] [--profile P] [--channels 2] [--year 2020]`` and the
size options (a profile's own size unless given); prints the time it took, which the marker file keeps."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from asd.data.synthetic import PROFILES, NotSyntheticError, generate

SIZE_OPTIONS = ("duration_s", "source_train", "target_train", "test_per_domain_and_label")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m asd.data.synthetic", description="Write the synthetic DCASE-layout dataset."
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), default=1, help="2: stereo near/far microphone files (DCASE 2026)"
    )
    parser.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="default",
        help="benchmark: harder and larger; dcase: modelled on the DCASE 2024 recordings (see PROFILES)",
    )
    size = parser.add_argument_group("size (default: the profile's)")
    size.add_argument("--duration-s", type=float, help="clip length in seconds")
    size.add_argument("--source-train", type=int, help="source-domain training clips per machine type")
    size.add_argument("--target-train", type=int, help="target-domain training clips per machine type")
    size.add_argument("--test-per-domain-and-label", type=int, help="test clips per domain and label")
    parser.add_argument(
        "--year", type=int, default=2024, help="2020: DCASE 2020 names (normal_id_00_...; no domains, no eval copy)"
    )
    args = parser.parse_args(argv)
    sizes = {key: getattr(args, key) for key in SIZE_OPTIONS if getattr(args, key) is not None}
    for key, value in sizes.items():
        if value <= 0 if key == "duration_s" else value < (0 if key == "target_train" else 1):
            parser.error(f"--{key.replace('_', '-')} must be positive, got {value}")
    spec = replace(PROFILES[args.profile].spec, **sizes)
    started = time.perf_counter()
    try:
        generate(args.root, args.seed, spec=spec, channels=args.channels, profile=args.profile, year=args.year)
    except NotSyntheticError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"synthetic dataset written to {args.root} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
