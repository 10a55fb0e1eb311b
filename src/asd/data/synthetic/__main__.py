"""``python -m asd.data.synthetic <root> [--seed N] [--profile P] [--channels 2] [--year 2020]`` and the
size options (a profile's own size unless given); prints the time it took, which the marker file keeps."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from asd.data.synthetic import GENERATION_TIME, MARKER, PROFILES, NotSyntheticError, SyntheticSpec, generate

SIZE_OPTIONS = ("duration_s", "source_train", "target_train", "test_per_domain_and_label")


def add_size_options(parser: argparse.ArgumentParser) -> None:
    """The options that replace a profile's size (this command's and benchmarks/calibrate_dcase.py's)."""
    size = parser.add_argument_group("size (default: the profile's)")
    size.add_argument("--duration-s", type=float, help="clip length in seconds")
    size.add_argument("--source-train", type=int, help="source-domain training clips per machine type")
    size.add_argument("--target-train", type=int, help="target-domain training clips per machine type")
    size.add_argument("--test-per-domain-and-label", type=int, help="test clips per domain and label")


def chosen_spec(parser: argparse.ArgumentParser, args: argparse.Namespace, profile: str) -> SyntheticSpec:
    """``profile``'s size with the size options given replacing it; a size out of range is a usage error."""
    sizes = {key: getattr(args, key) for key in SIZE_OPTIONS if getattr(args, key) is not None}
    for key, value in sizes.items():
        if key == "target_train" and value < 0:  # no target clips is a size, as DCASE 2020 had
            parser.error(f"--target-train must not be negative, got {value}")
        if key != "target_train" and value <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive, got {value}")
    return replace(PROFILES[profile].spec, **sizes)


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
    add_size_options(parser)
    parser.add_argument(
        "--year", type=int, default=2024, help="2020: DCASE 2020 names (normal_id_00_...; no domains, no eval copy)"
    )
    args = parser.parse_args(argv)
    spec = chosen_spec(parser, args, args.profile)
    try:
        root = generate(args.root, args.seed, spec=spec, channels=args.channels, profile=args.profile, year=args.year)
    except NotSyntheticError as err:
        parser.exit(2, f"error: {err}\n")
    seconds = json.loads((root / MARKER).read_text())[GENERATION_TIME]
    print(f"synthetic dataset written to {root} in {seconds} s")


if __name__ == "__main__":
    main()
