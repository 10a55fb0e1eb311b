"""Training and scoring throughput on CPU (or whatever ``accelerator=auto`` finds).

    python benchmarks/train.py

* one epoch of the AE (frame vectors/s) and of MobileFaceNet (clips/s) on the synthetic
  ``ToyRotor`` training clips;
* ``asd.predict`` scoring of the ToyRotor test clips with the trained AE (clips/s);
* kNN scoring of 1,000 test embeddings against 10,000 training embeddings of 768 dimensions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from asd.backends import KNNBackend
from asd.backends.mse import MSEBackend
from asd.data.datamodule import DCASEDataModule
from asd.data.synthetic import ensure_dataset
from asd.models.ae import AutoEncoderModule
from asd.models.mfn import MobileFaceNetModule
from asd.predict import score_files
from asd.system import System


def one_epoch(model, datamodule) -> float:
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return time.perf_counter() - start


def main() -> None:
    root = ensure_dataset(Path("data/synthetic"))
    print(f"torch threads: {torch.get_num_threads()}, device: {'cuda' if torch.cuda.is_available() else 'cpu'}")
    with tempfile.TemporaryDirectory() as cache:
        frames = DCASEDataModule(str(root), ["ToyRotor"], input="frames", cache_dir=cache)
        frames.prepare_data(), frames.setup()
        vectors = len(frames.train_dataloader().dataset)
        ae = AutoEncoderModule(MSEBackend())
        seconds = one_epoch(ae, frames)
        print(f"AE epoch: {vectors} frame vectors in {seconds:.2f} s = {vectors / seconds:,.0f} vectors/s")
        ae.fit_backend(frames.train_clip_dataloader())
        system = System(ae.eval(), frames.feature_config, frames.audio_config)
        test_files = [clip.path for clip in frames.test_clips]
        start = time.perf_counter()
        score_files(system, system.sections[0], test_files)
        seconds = time.perf_counter() - start
        print(
            f"asd.predict with the AE: {len(test_files)} clips of 2 s in {seconds:.2f} s = {len(test_files) / seconds:.0f} clips/s"
        )
        clips = DCASEDataModule(str(root), ["ToyRotor"], input="clips", cache_dir=cache)
        clips.prepare_data(), clips.setup()
        n_clips = len(clips.train_clips)
        seconds = one_epoch(MobileFaceNetModule(KNNBackend()), clips)
        print(f"MobileFaceNet epoch: {n_clips} clips in {seconds:.2f} s = {n_clips / seconds:.1f} clips/s")
    rng = np.random.default_rng(0)
    train = [row[None] for row in rng.normal(size=(10_000, 768)).astype(np.float32)]
    test = [row[None] for row in rng.normal(size=(1_000, 768)).astype(np.float32)]
    backend = KNNBackend()
    backend.fit(train, ["source"] * 9_000 + ["target"] * 1_000, ["s"] * 10_000)
    start = time.perf_counter()
    backend.score(test, ["s"] * 1_000)
    print(f"kNN scoring: 1,000 x 10,000 x 768 in {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
