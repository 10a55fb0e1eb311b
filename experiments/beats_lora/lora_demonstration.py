"""Does LoRA fine-tuning do what it is for? A demonstration on the synthetic data (not a test).

No real pretrained weights reach this machine, so a small wav2vec 2.0 is pretrained here, in full,
to tell apart the section x attribute classes of the synthetic machine types other than the
held-out one; on the held-out machine type it is then used as any downloaded encoder would be:
frozen + kNN (model=pretrained) against LoRA-fine-tuned + kNN (model=finetune), both through
``python -m asd.train`` as a user runs them. Seeds vary the pretraining and the fine-tuning.

    python experiments/beats_lora/lora_demonstration.py --held-out ToyHum ToyClicker --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from asd.data.audio import load_audio
from asd.data.datamodule import class_name
from asd.data.index import index_machine
from asd.data.synthetic import ensure_dataset
from asd.data.synthetic.toy_machines import MACHINES

ROOT = Path(__file__).resolve().parents[2]


def pretrain(machines: list[str], data_root: Path, out: Path, seed: int, epochs: int = 15) -> float:
    """Train a small wav2vec 2.0 (all of it) + a linear classifier on ``machines``' classes; save the encoder."""
    torch.manual_seed(seed)
    clips = [c for m in machines for c in index_machine(data_root, "dev", m) if c.info.split == "train"]
    classes = sorted({class_name(c.info) for c in clips})
    waveforms = torch.stack([load_audio(c.path) for c in clips])
    labels = torch.tensor([classes.index(class_name(c.info)) for c in clips])
    config = Wav2Vec2Config(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        conv_dim=(32, 32, 32),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 8),
        num_feat_extract_layers=3,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    encoder, classifier = Wav2Vec2Model(config), torch.nn.Linear(64, len(classes))
    optimizer = torch.optim.AdamW([*encoder.parameters(), *classifier.parameters()], lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(clips)).split(16):
            inputs = (waveforms[batch] - waveforms[batch].mean(1, keepdim=True)) / (
                waveforms[batch].std(1, keepdim=True) + 1e-7
            )  # as the feature extractor normalises
            logits = classifier(encoder(inputs).last_hidden_state.mean(1))
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    encoder.save_pretrained(out)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(out)
    return time.perf_counter() - start


def run(overrides: list[str], run_dir: Path, machine: str) -> tuple[float, float]:
    """Run ``python -m asd.train`` with these overrides; return (``machine``'s score in %, seconds)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "asd.train", *overrides, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    summary = pd.read_csv(run_dir / "summary.csv")
    return float(summary.loc[summary["machine"] == machine, "score"].iloc[0]), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--held-out", nargs="+", default=["ToyHum", "ToyClicker"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--scope", choices=("joint", "per_machine"), default="joint")
    args = parser.parse_args()
    data_root = ensure_dataset(ROOT / "data" / "synthetic", seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for held_out in args.held_out:
            others = [m for m in MACHINES if m != held_out]
            for seed in args.seeds:
                encoder_dir = scratch / f"encoder_{held_out}_{seed}"
                pretrain_s = pretrain(others, data_root, encoder_dir, seed)
                common = ["encoder=hf", f"encoder.path={encoder_dir}", f"seed={seed}"]
                frozen, frozen_s = run(
                    ["model=pretrained", f"machine={held_out}", *common],
                    scratch / f"frozen_{held_out}_{seed}",
                    held_out,
                )
                # fine-tuned on every machine type's normal training clips (scope=joint, the
                # published practice: more classes), the held-out one's included
                lora, lora_s = run(
                    [
                        "model=finetune",
                        *common,
                        "machine=synthetic" if args.scope == "joint" else f"machine={held_out}",
                        f"scope={args.scope}",
                        "model.lora_rank=8",
                        "model.lora_alpha=16",
                        "model.embedding_dim=64",
                        f"trainer.max_epochs={args.finetune_epochs}",
                        f"model.lr={args.finetune_lr}",
                    ],
                    scratch / f"lora_{held_out}_{seed}",
                    held_out,
                )
                rows.append(
                    dict(
                        held_out=held_out,
                        pretrained_on="+".join(others),
                        finetuned_on="all" if args.scope == "joint" else held_out,
                        seed=seed,
                        frozen_knn=frozen,
                        lora_knn=lora,
                        pretrain_s=round(pretrain_s),
                        frozen_s=round(frozen_s),
                        lora_s=round(lora_s),
                    )
                )
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    print("\nmean ± std over seeds (official score, %):")
    summary = table.groupby("held_out")[["frozen_knn", "lora_knn"]].agg(["mean", "std"]).round(2)
    print(summary.to_string())
    wins = (table["lora_knn"] > table["frozen_knn"]).sum()
    print(f"LoRA + kNN above frozen + kNN in {wins} of {len(table)} (machine type, seed) pairs")


if __name__ == "__main__":
    main()
