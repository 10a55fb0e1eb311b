"""model=finetune: LoRA adapters (peft) on tiny randomly initialised pretrained encoders."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_tiny_beats_checkpoint, build_tiny_wav2vec2
from hydra.errors import InstantiationException

from asd.models.encoders import BEATsEncoder, HuggingFaceEncoder
from asd.models.schedule import warmup_cosine
from asd.predict import score_files
from asd.run_directory import RunDirectoryError
from asd.system import load_systems
from asd.train import train

MACHINE = "ToyHum"
TINY = ["model.lora_rank=4", "model.embedding_dim=16", "model.sub_centers=2", "trainer.max_epochs=2"]


def base_key(key: str) -> str:
    """A module key as the encoder's own file names it (peft moves an adapted layer's weight to base_layer)."""
    return key.removeprefix("encoder.").replace(".base_layer.", ".")


def assert_base_untouched(module, fresh: torch.nn.Module) -> None:
    original = fresh.state_dict()
    state = module.state_dict()
    names = module.base_weight_names()
    assert names, "no base weights found"
    for key in names:
        assert torch.equal(state[key], original[base_key(key)]), key


def test_lora_trains_adapters_pooling_and_head_only_and_the_system_holds_only_them(make_cfg, tmp_path, synthetic_root):
    encoder_dir = tmp_path / "w2v"
    build_tiny_wav2vec2(encoder_dir)
    cfg = make_cfg("model=finetune", "encoder=hf", f"encoder.path={encoder_dir}", f"machine={MACHINE}", *TINY)
    metrics, _ = train(cfg)
    assert 0.0 <= metrics["official_score"] <= 1.0

    run = Path(cfg.paths.output_dir)
    system = load_systems(run)[MACHINE]
    module = system.module
    assert_base_untouched(module, HuggingFaceEncoder(str(encoder_dir)))  # bit-identical after training
    trained = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name or name.startswith(("pooling.", "head.")) for name in trained), trained - {
        n for n in trained if "lora_" in n
    }
    lora_b = [p for name, p in module.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # peft starts B at zero: the adapters learned

    saved = torch.load(run / "systems" / f"{MACHINE}.pt", weights_only=True)
    assert not set(saved["state_dict"]) & module.base_weight_names()
    assert {k for k in saved["state_dict"] if k.startswith("encoder.")} == {
        k for k in module.state_dict() if "lora_" in k
    }

    # asd.predict rebuilds it from the base weights and reproduces the run's scores
    submitted = pd.read_csv(run / "submission" / f"anomaly_score_{MACHINE}_section_00_test.csv", header=None)
    files = sorted((synthetic_root / "dev_data" / "raw" / MACHINE / "test").glob("*.wav"))
    rows = pd.DataFrame(score_files(system, f"{MACHINE}/section_00", files))
    merged = rows.assign(name=rows["file"].map(lambda f: Path(f).name)).merge(submitted, left_on="name", right_on=0)
    assert len(merged) == 100 and np.allclose(merged["anomaly_score"], merged[1], rtol=1e-6, atol=1e-9)

    # another base file at the same path is refused, naming the path
    shutil.rmtree(encoder_dir)
    build_tiny_wav2vec2(encoder_dir)
    changed = HuggingFaceEncoder(str(encoder_dir)).model
    with torch.no_grad():
        changed.encoder.layers[0].attention.q_proj.weight.add_(1e-3)
    changed.save_pretrained(encoder_dir)
    with pytest.raises(RunDirectoryError, match=f"{encoder_dir}.* is not the one this system was trained with"):
        load_systems(run)


@pytest.mark.beats
def test_lora_in_chosen_layers_and_an_unfrozen_last_layer_of_beats(make_cfg, tmp_path):
    checkpoint = tmp_path / "beats.pt"
    build_tiny_beats_checkpoint(checkpoint)
    cfg = make_cfg(
        "model=finetune",
        "encoder=beats",
        f"encoder.path={checkpoint}",
        f"machine={MACHINE}",
        "model.lora_layers=[0]",
        "model.unfreeze_last_layers=1",
        *TINY,
    )
    before = BEATsEncoder(str(checkpoint)).state_dict()
    train(cfg)
    module = load_systems(cfg.paths.output_dir)[MACHINE].module
    lora = [name for name, _ in module.named_parameters() if "lora_" in name]
    assert lora and all(".layers.0." in name for name in lora)  # adapters in layer 0 only
    assert_base_untouched(module, BEATsEncoder(str(checkpoint)))
    # the last layer trained in full: its weights moved, and the system carries them
    state = module.state_dict()
    last_layer = [k for k in state if ".layers.1." in k and k.endswith("fc1.weight")]
    assert last_layer and not torch.equal(state[last_layer[0]], before[base_key(last_layer[0])])
    assert last_layer[0] not in module.base_weight_names()


def test_target_modules_that_match_nothing_are_a_config_error(make_cfg, tiny_wav2vec2):
    cfg = make_cfg("model=finetune", "encoder=hf", f"encoder.path={tiny_wav2vec2}", "model.target_modules=[query]")
    with pytest.raises(InstantiationException, match=r"model.target_modules=\['query'\]"):
        train(cfg)


def test_warmup_then_cosine_schedule():
    factors = [warmup_cosine(step, 10, 110, 0.1) for step in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert factors[10] == pytest.approx(1.0) and factors[60] == pytest.approx(0.55)  # half-way: midpoint
    assert factors[-1] == pytest.approx(0.1, abs=1e-3) and all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_clips_longer_than_the_window_are_encoded_window_by_window(tiny_wav2vec2):
    from asd.backends import KNNBackend
    from asd.models.finetune import FineTunedEncoderModule

    torch.manual_seed(0)
    module = FineTunedEncoderModule(
        KNNBackend(),
        HuggingFaceEncoder(str(tiny_wav2vec2)),
        lora_rank=2,
        embedding_dim=8,
        window_s=1.0,
        class_names=["a", "b"],
    ).eval()
    clip = torch.randn(40000)  # 2.5 s: two whole windows and a half-window remainder, which is kept
    with torch.no_grad():
        (row,) = module.representations({"waveform": [clip]})
        pieces = [clip[:16000], clip[16000:32000], clip[32000:]]
        frames = torch.cat([module.encoder.encode(p.unsqueeze(0)) for p in pieces], dim=1)
        assert torch.allclose(row, module.pooling(frames), atol=1e-6)
        short = torch.randn(36000)  # a remainder under half a window is left out
        (row,) = module.representations({"waveform": [short]})
        frames = torch.cat([module.encoder.encode(p.unsqueeze(0)) for p in (short[:16000], short[16000:32000])], dim=1)
        assert torch.allclose(row, module.pooling(frames), atol=1e-6)
