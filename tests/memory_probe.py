"""The child of tests/test_memory.py: measure training's and serving's peak memory on a grid of model shapes.

Run as `python tests/memory_probe.py CASES.json` with a JSON list of cases; prints one JSON list of results. Each
case builds a random classifier of the shape asked, saves it, and then, with the peak reset (`/proc/self/clear_refs`
<- 5) and the process's resident memory read as its base, loads it from disk as training does and takes a few steps
with the training loop's own pieces (the padding-free or padded forward, FastDropout, fused AdamW, Stepper under
autocast), then evaluates one batch of twice the size, as `train.evaluate` does. measured = VmHWM - base: what this
case added to the process, the interpreter and its libraries excluded (the budget counts the model, not Python).
Every row is max_len tokens long, so that padding-free packing saves nothing: the worst case for activations.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import tempfile
from pathlib import Path

import torch
from transformers import get_cosine_schedule_with_warmup

from kobert_demo.engine.classifier import PaddedClassifier, training_forward, use_fast_dropout
from kobert_demo.engine.families import FAMILIES
from kobert_demo.engine.loading import quiet_transformers
from kobert_demo.engine.memory import memory_estimate, parameter_count
from kobert_demo.engine.train import Stepper, decay_groups, make_accelerator, resolve_precision

STEPS = 3


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> int:
    """Release what the allocator holds, reset VmHWM to the current RSS, and return that RSS in bytes."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") * 1024


def run_case(case: dict, folder: Path) -> dict:
    family = FAMILIES[case["family"]]
    config = family.config_class(num_labels=2, **case["shape"])
    with quiet_transformers():
        family.model_class(config).save_pretrained(folder)
    checkpoint = (folder / "model.safetensors").stat().st_size
    batch, length = case["batch"], case["max_len"]
    precision = resolve_precision(case["precision"], torch.device("cpu"))
    params = parameter_count(config)
    estimate = memory_estimate(params, config, length, checkpoint, training=True, batch_size=batch)

    base = reset_peak()
    with quiet_transformers():
        model = family.model_class.from_pretrained(folder, dtype=torch.float32)
    use_fast_dropout(model)
    wrapped = PaddedClassifier(model) if case.get("padded") else training_forward(model)[0]
    optimizer = torch.optim.AdamW(decay_groups(wrapped, 0.01), lr=1e-4, eps=1e-6, fused=True)
    accelerator = make_accelerator()
    scheduler = get_cosine_schedule_with_warmup(optimizer, 1, STEPS)
    step = Stepper(wrapped, optimizer, scheduler, accelerator, precision, 1.0)
    generator = torch.Generator().manual_seed(0)
    wrapped.train()
    for _ in range(STEPS):
        ids = torch.randint(5, config.vocab_size, (batch, length), generator=generator)
        mask = torch.ones_like(ids)
        step({"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
              "labels": torch.randint(0, 2, (batch,), generator=generator)})  # fmt: skip
    wrapped.eval()
    with torch.inference_mode():
        ids = torch.randint(5, config.vocab_size, (2 * batch, length), generator=generator)
        wrapped(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    peak = _status_kb("VmHWM") * 1024
    del model, wrapped, optimizer, accelerator, scheduler, step
    return {**case, "precision": precision, "params": params, "estimate": estimate, "measured": peak - base,
            "base": base}  # fmt: skip


def main() -> None:
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = []
    for number, case in enumerate(cases):
        with tempfile.TemporaryDirectory() as folder:
            results.append(run_case(case, Path(folder) / str(number)))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
