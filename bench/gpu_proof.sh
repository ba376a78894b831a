#!/usr/bin/env bash
# GPU proof run: every figure that needs a GPU, in one prepared call of at most 8 minutes.
#
# Parts, in this order, each under its own time share (one that finishes early leaves the rest of its share
# to the next ones; a slow one is stopped at the end of its share), all written to ONE JSON,
# ${OUT:-bench-out}/gpu_proof.json, and printed as a table (each part's log in ${OUT}/logs/):
#
#   setup           install the carried wheels (.whl/) into /tmp/site; versions, device, video backends
#   data            `videokr sample` + `videokr build sft` / `build rl` (--no-check), and a checkpoint of the
#                   real Qwen2.5-VL-7B architecture cut to $GPU_PROOF_LAYERS (2) text layers, random bf16
#                   weights, with the tiny processor (bench.common.real_config, videokr.models.tiny)
#   sft, grpo       the training scripts as a user runs them: accelerate launch --config_file
#                   train/accelerate/single_gpu.yaml -m videokr.training.sft / .grpo --config <the 7B
#                   recipe>, on that checkpoint and those folders, a few steps (bf16, sdpa, the recipes'
#                   frame settings; GRPO with the recipe's rollout engine, compiled)
#   train_step_32   python -m bench.train_step at 7B width and depth, 32 frames: SFT step time, TFLOP/s, MFU,
#   train_step_128  peak memory (its GRPO phases cut to a minimum: group 2, 16 tokens, not compiled); and at
#                   128 frames
#   eval            python -m bench.eval_throughput (with --json when it has one), when that file exists and
#                   lighteval imports: it does not on the GPU machine (see below), so there it is skipped
#   rollout         python -m bench.rollout at 7B: generate vs the engine (dynamic, static, compiled), batch 8
#                   (1 prompt x 8 completions), 256 new tokens, share of the bandwidth floor
#
# A part that fails or runs out of time is recorded with its error (the tail of its log), the others still
# run, and the script exits 1. The benches write their figures as they go (--json), so a part cut short
# keeps what it measured. Environment: OUT (output folder), GPU_PROOF_PARTS (comma list; default all),
# GPU_PROOF_SHARE_<part> (seconds, e.g. GPU_PROOF_SHARE_rollout=200), GPU_PROOF_LAYERS, GPU_PROOF_EVAL_ARGS,
# GPU_PROOF_FAIL=<part> (that part runs a module that does not exist: how the test checks a failure).
#
# What travels. The GPU machine has Python 3.12, torch 2.11 (CUDA 13), transformers 5.17, accelerate 1.15,
# tokenizers, huggingface_hub, safetensors, numpy, pandas, pyarrow, pyyaml, tqdm, peft, fsspec, xxhash,
# pillow, requests, and no network. What the project needs beyond that, .whl/ carries (versions of
# constraints.txt, but torchvision):
#
#   av 18.1.0                35.8 MB  PyAV: sample encoding, probing, and decoding (torchcodec and decord
#                                     are absent there: PyAV is the backend that runs)
#   transformers 5.24.0      13.5 MB  the version the project is tested with; on the machine's 5.17 the
#                                     recipes do not parse (activation_checkpointing) and the benches fail
#   torchvision 0.26.0        7.5 MB  the build for torch 2.11 + CUDA 13 (the project's 0.29.1 needs torch
#                                     2.14); videokr.vision and the Qwen video processors import it
#   nltk 3.9.1                1.5 MB  with absl-py 2.5.1 (0.1 MB) and rouge_score 0.1.2 (built here, pure
#                                     Python: no wheel on the index): the rewards import the ROUGE scorer
#   trl 1.16.0                0.9 MB
#   datasets 5.2.0            0.6 MB  with multiprocess 0.70.19 (0.2 MB) and dill 0.4.1 (0.1 MB)
#   videokr 0.1.0             0.5 MB  this project (setup checks it is this working tree; if not, runs the tree)
#
# 58 MiB in all, 59.4 MiB with the working tree: within the 64 MiB that travel, with little to spare (torch
# stays the machine's own). lighteval does not travel: it imports inspect_ai, a 35 MB wheel. Fetch the
# wheels, from the repository root, with `bash bench/gpu_proof.sh --fetch-wheels` (versions read from
# constraints.txt; prints each size and the total with the working tree), which runs:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl torchvision==0.26.0 av==18.1.0 transformers==5.24.0 trl==1.16.0 datasets==5.2.0 \
#       multiprocess==0.70.19 dill==0.4.1 nltk==3.9.1 absl-py==2.5.1
#   python3 -m pip wheel --no-deps -w .whl rouge_score==0.1.2
#   python3 -m pip wheel --no-deps --no-build-isolation -w .whl .
#
# .whl/ is ignored by git (list it in .git/info/exclude): carry it with the working tree. Then, on the GPU
# machine, from the repository root:
#
#   OUT=bench-out bash bench/gpu_proof.sh
#
# Here, with no GPU, the same parts end to end on the tiny configs, on CPU, in the current environment (.venv
# when there is one; nothing installed), with every installed package the GPU machine would not have hidden
# (neither there nor carried): a missing import shows here first.
#
#   bash bench/gpu_proof.sh --cpu-dry-run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE=gpu
case "${1:-}" in
    --cpu-dry-run) MODE=cpu ;;
    --fetch-wheels) MODE=fetch ;;
    "") ;;
    *)
        echo "usage: bash bench/gpu_proof.sh [--cpu-dry-run | --fetch-wheels]" >&2
        exit 2
        ;;
esac

if [[ -z "${PYTHON:-}" ]]; then
    if [[ $MODE != gpu && -x .venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
WHEELS="$ROOT/.whl"
SITE="${GPU_PROOF_SITE:-/tmp/site}"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# What the GPU machine has (with what those require), and what .whl/ brings it (pinned in constraints.txt;
# torchvision is the build that pairs with the machine's torch 2.11, CUDA 13).
DEVICE_HAS="torch transformers accelerate tokenizers huggingface_hub safetensors numpy pandas pyarrow pyyaml tqdm
    peft fsspec xxhash pillow requests"
CARRIED=(av torchvision transformers trl datasets multiprocess dill nltk absl-py)
PINNED_HERE=(torchvision==0.26.0)  # not the project's 0.29.1, which needs torch 2.14
BUILT=(rouge_score)  # no wheel on the index: built here, pure Python

# ------------------------------------------------------------------------------------------ --fetch-wheels

if [[ $MODE == fetch ]]; then
    pins=("${PINNED_HERE[@]}")
    for name in "${CARRIED[@]}"; do
        [[ " ${PINNED_HERE[*]}" == *" $name=="* ]] && continue
        pin="$(grep -i -E "^${name}==" constraints.txt || true)"
        [[ -n $pin ]] || { echo "constraints.txt pins no $name" >&2; exit 1; }
        pins+=("$pin")
    done
    built=()
    for name in "${BUILT[@]}"; do built+=("$(grep -i -E "^${name}==" constraints.txt)"); done
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d "$WHEELS" "${pins[@]}"
    "$PYTHON" -m pip wheel -q --no-deps -w "$WHEELS" "${built[@]}"
    rm -f "$WHEELS"/videokr-*.whl
    "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" .
    du -b "$WHEELS"/*.whl | awk '{printf "%8.1f MB  %s\n", $1 / 1e6, $2}'
    wheels=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
    # What travels with the wheels: tracked files and untracked ones git does not ignore.
    tree=$({ git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null || true; } |
        awk '$2 == "total" {s += $1} END {print s + 0}')
    awk -v w="$wheels" -v t="$tree" 'BEGIN {
        printf "wheels %.1f MiB + working tree %.1f MiB = %.1f MiB of the 64 MiB that travel\n",
            w / 2^20, t / 2^20, (w + t) / 2^20; exit (w + t > 62 * 2^20) }'
    exit
fi

# ------------------------------------------------------------------------------------------ set-up (helpers)

OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOGS="$OUT/logs"
PARTS_DIR="$OUT/parts"
rm -rf "$LOGS" "$PARTS_DIR"
mkdir -p "$LOGS" "$PARTS_DIR"
# Checkpoints and datasets stay out of OUT (gigabytes that should not travel back).
WORK="${GPU_PROOF_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-proof.XXXXXX")}"
mkdir -p "$WORK"
cleanup() { [[ -n "${GPU_PROOF_WORK:-}" ]] || rm -rf "$WORK"; }
trap cleanup EXIT

ARCH=qwen2_5_vl
LAYERS="${GPU_PROOF_LAYERS:-2}"
# In this order; the rollout last, where it gets whatever the others left of their shares.
ALL_PARTS=(setup data sft grpo train_step_32 train_step_128 eval rollout)
if [[ $MODE == gpu ]]; then
    # Seconds per part, 480 in all.
    declare -A SHARE=([setup]=35 [data]=50 [sft]=50 [grpo]=65 [train_step_32]=50 [train_step_128]=60
        [eval]=40 [rollout]=130)
    export PYTHONPATH="$SITE:$ROOT"
    export GPU_PROOF_HIDE=""
else
    declare -A SHARE=([setup]=60 [data]=90 [sft]=120 [grpo]=120 [train_step_32]=120 [train_step_128]=120
        [eval]=120 [rollout]=120)
    # The dry run sees what the GPU machine will see: the packages it lacks are hidden (a sitecustomize
    # on the path hides their modules and distributions from this process and its children).
    mkdir -p "$WORK/hide"
    cat >"$WORK/hide/sitecustomize.py" <<'PY'
import os
import sys
from importlib.machinery import PathFinder

HIDDEN = frozenset(os.environ.get("GPU_PROOF_HIDE", "").replace(",", " ").split())


def _norm(name):
    return (name or "").lower().replace("-", "_").replace(".", "_")


class HidingPathFinder(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in HIDDEN:
            return None
        return super().find_spec(fullname, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        hidden = {_norm(name) for name in HIDDEN}
        found = super().find_distributions(*args, **kwargs)
        return [d for d in found if _norm(d.metadata["Name"]) not in hidden]


if HIDDEN:
    sys.meta_path[:] = [HidingPathFinder if f is PathFinder else f for f in sys.meta_path]
PY
    # What is already on PYTHONPATH stays after these (e.g. another transformers to try).
    export PYTHONPATH="$WORK/hide:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    export CUDA_VISIBLE_DEVICES=""
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_HOME="$WORK/hf" TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export VIDEOKR_VIDEO_BACKEND=pyav
export PYTHON MODE ROOT WORK OUT PARTS_DIR SITE WHEELS ARCH LAYERS DEVICE_HAS
export CARRIED_ALL="${CARRIED[*]} ${BUILT[*]} videokr"

# ------------------------------------------------------------------------------------------ helpers (Python)

HELPER="$WORK/gpu_proof_helper.py"
cat >"$HELPER" <<'PY'
"""bench/gpu_proof.sh's Python side: environment report, data + checkpoint, and the JSON and table."""

import ast
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

MODE, WORK, PARTS = os.environ["MODE"], Path(os.environ["WORK"]), Path(os.environ["PARTS_DIR"])
PACKAGES = ("torch", "transformers", "accelerate", "trl", "datasets", "av", "tokenizers", "huggingface_hub",
            "safetensors", "regex", "peft", "numpy", "pyarrow")


def hidden():
    """What the dry run hides: every installed distribution (and its top-level modules) that is neither on
    the GPU machine (DEVICE_HAS and what those require, markers read for Python 3.12 on Linux) nor carried."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    target = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}

    def norm(name):
        return re.sub(r"[-_.]+", "_", name or "").lower()

    dists = {norm(d.metadata["Name"]): d for d in md.distributions()}
    allowed, todo = set(), [norm(n) for n in os.environ["DEVICE_HAS"].split()]
    while todo:
        name = todo.pop()
        if name in allowed:
            continue
        allowed.add(name)
        for line in dists[name].requires or [] if name in dists else []:
            requirement = Requirement(line)
            if not requirement.marker or requirement.marker.evaluate(target):
                todo.append(norm(requirement.name))
    allowed |= {norm(n) for n in os.environ["CARRIED_ALL"].split()}
    modules = {}
    for module, names in md.packages_distributions().items():
        for name in names:
            modules.setdefault(norm(name), set()).add(module)
    kept = set().union(*(modules.get(name, set()) for name in allowed))
    gone = set(dists) - allowed
    print(" ".join(sorted(gone | (set().union(*(modules.get(name, set()) for name in gone)) - kept))))


def dump(name, figures):
    (PARTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def env():
    import importlib
    import importlib.metadata as md

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", None) or md.version(name)
        except Exception as e:  # noqa: BLE001 - absent, or present and broken: both are findings
            versions[name] = None if isinstance(e, ImportError) else f"broken: {e}"
    import torch

    import videokr
    from videokr.vision.decode import available_backends

    figures = {"python": platform.python_version(), "versions": versions, "device": "cpu"}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figures.update(device=props.name, memory_gb=round(props.total_memory / 2**30, 1),
                       capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda)
    site = Path(os.environ["SITE"]).resolve()
    figures["videokr_from"] = "wheel" if site in Path(videokr.__file__).resolve().parents else "working tree"
    figures["video_backends"] = list(available_backends())
    figures["hidden"] = os.environ.get("GPU_PROOF_HIDE", "").split()
    dump("setup", figures)
    print(json.dumps(figures, indent=2))


def rows(folder):
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in Path(folder).rglob("*.parquet"))


def data():
    """The sample corpus and the two training folders through the CLI's own entry point, then a checkpoint."""
    from videokr.cli import main

    figures = {}
    hub = WORK / "hub"
    commands = {
        "sample": ["sample", str(WORK / "sample")],
        "build_sft": ["build", "sft", "--source", str(WORK / "sample"), "--out", str(hub / "sft"),
                      "--workers", "2", "--no-check"],
        "build_rl": ["build", "rl", "--source", str(WORK / "sample"), "--out", str(hub / "rl"),
                     "--workers", "2", "--no-check"],
    }
    for name, argv in commands.items():
        start = time.perf_counter()
        print("videokr", " ".join(argv), flush=True)
        if main(argv) != 0:
            raise SystemExit(f"videokr {' '.join(argv)} failed")
        figures[f"{name}_s"] = round(time.perf_counter() - start, 2)
    figures["sft_rows"], figures["rl_rows"] = rows(hub / "sft"), rows(hub / "rl")
    figures.update(checkpoint(WORK / "checkpoint"))
    dump("data", figures)
    print(json.dumps(figures, indent=2))


def checkpoint(out):
    """Tiny model on CPU (dry run); on the GPU the 7B architecture cut to LAYERS text layers, random bf16."""
    import torch

    arch, start = os.environ["ARCH"], time.perf_counter()
    if MODE == "cpu":
        from videokr.models.tiny import save_tiny_model

        save_tiny_model(arch, out)
        kind = "tiny"
    else:
        from bench.common import build_model, real_config
        from videokr.models.tiny import build_tiny_processor, tiny_generation_config

        processor = build_tiny_processor(arch)
        config = real_config(arch, processor.tokenizer, int(os.environ["LAYERS"]))
        model = build_model(config, torch.device("cuda"))
        model.generation_config = tiny_generation_config(processor.tokenizer)
        model.save_pretrained(out)
        processor.save_pretrained(out)
        kind = f"7B architecture, {os.environ['LAYERS']} text layers"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out)
    # GRPO never samples a vision placeholder (as bench.common.never_sampled): with random weights over a
    # 152K vocabulary one would now and then be drawn, and a placeholder with no pixels breaks the next forward.
    vision = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    suppress = {"suppress_tokens": sorted({getattr(config, key) for key in vision} - {None})}
    (WORK / "generation_kwargs.json").write_text(json.dumps(suppress))
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    return {"checkpoint": kind, "hidden": config.text_config.hidden_size,
            "layers": config.text_config.num_hidden_layers, "vision_depth": config.vision_config.depth,
            "checkpoint_gb": round(size / 1e9, 2), "checkpoint_s": round(time.perf_counter() - start, 2)}


# ------------------------------------------------------------------------------------------ the report


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def trainer_logs(log):
    """The dicts the trainers log (``{'loss': ...}`` lines), values as numbers."""
    found = []
    for line in log.splitlines():
        line = line.strip()
        start = line.find("{'")
        if start < 0 or not line.endswith("}"):
            continue
        try:
            entry = ast.literal_eval(line[start:])
        except (ValueError, SyntaxError):
            continue
        if isinstance(entry, dict):
            found.append({k: number(v) for k, v in entry.items()})
    return found


def launch_figures(name, log):
    logs = trainer_logs(log)
    steps = [e for e in logs if "loss" in e]
    final = next((e for e in logs if "train_runtime" in e), {})
    figures = {"logged_steps": len(steps)}
    if steps:
        figures["first_loss"], figures["last_loss"] = steps[0]["loss"], steps[-1]["loss"]
    for key in ("train_runtime", "train_steps_per_second", "train_samples_per_second", "train_loss"):
        if key in final:
            figures[key] = final[key]
    if name == "grpo":
        keys = ("reward", "rollout/prefill_s", "rollout/decode_s", "rollout/new_tokens_per_s",
                "completions/mean_length", "kl", "step_time")
        for key in keys:
            values = [e[key] for e in steps if isinstance(e.get(key), float)]
            if values:
                figures[key] = sum(values) / len(values)
    out = WORK / f"{name}-out"
    figures["saved"] = any(out.glob("*.safetensors"))
    return figures


def tail(text, lines=60, chars=6000):
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-chars:]


def headline(error):
    """The line that names the error: the last exception line that is not the launcher's own."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    named = [line for line in named if not line.startswith("subprocess.CalledProcessError")] or named
    return (named or lines or [""])[-1][:120]


def assemble():
    """Every part's status and figures into gpu_proof.json; the table; exit 1 when a part failed."""
    out = Path(os.environ["OUT"])
    report = {"mode": MODE, "budget_s": int(os.environ["BUDGET"]), "parts": {}}
    failed = []
    for name in os.environ["ALL_PARTS"].split():
        meta_file = PARTS / f"{name}.meta"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {"status": "skipped"}
        log_file = out / "logs" / f"{name}.log"
        log = log_file.read_text(errors="replace") if log_file.exists() else ""
        figures_file = PARTS / f"{name}.json"
        figures = json.loads(figures_file.read_text()) if figures_file.exists() else {}
        if name in ("sft", "grpo") and log:
            figures = launch_figures(name, log)
        part = {**meta, "figures": figures}
        if meta["status"] in ("failed", "timeout"):
            part["error"] = tail(log) or meta.get("reason", "")
            part["headline"] = headline(part["error"])
            failed.append(name)
        report["parts"][name] = part
    report["failed"] = failed
    report["wall_s"] = float(os.environ["WALL_S"])
    (out / "gpu_proof.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwrote {out / 'gpu_proof.json'} (logs: {out / 'logs'})")
    return 1 if failed else 0


def fmt(value, spec=",.0f", unit=""):
    return "-" if value is None else f"{value:{spec}}{unit}"


def summary(name, part):
    status = part["status"]
    if status == "skipped":
        return part.get("reason", "")
    if status == "failed" or (status == "timeout" and not part["figures"]):
        return part.get("headline", "")
    text = figures_summary(name, part["figures"])
    return f"cut short: {text}" if status == "timeout" else text


def figures_summary(name, f):
    if name == "setup":
        v = f.get("versions", {})
        return (f"{f.get('device')}; torch {v.get('torch')}, transformers {v.get('transformers')}, "
                f"trl {v.get('trl')}, av {v.get('av')}; videokr from {f.get('videokr_from')}")
    if name == "data":
        return (f"sft {f.get('sft_rows')} rows, rl {f.get('rl_rows')} rows; checkpoint {f.get('checkpoint')}, "
                f"{f.get('checkpoint_gb')} GB")
    if name in ("sft", "grpo"):
        text = (f"{f.get('logged_steps')} steps, loss {fmt(f.get('first_loss'), '.3g')} -> "
                f"{fmt(f.get('last_loss'), '.3g')}, {fmt(f.get('train_steps_per_second'), '.2f')} steps/s")
        if name == "grpo":
            text += (f", reward {fmt(f.get('reward'), '.2f')}, rollout decode "
                     f"{fmt(f.get('rollout/decode_s'), '.2f')} s")
        return text + ("; saved" if f.get("saved") else "; NOT saved")
    if name.startswith("train_step"):
        video, config = f.get("sft", {}).get("video"), f.get("config", {})
        if not video:
            return f"{config.get('prompt_tokens', '?')} prompt tokens; no SFT figures"
        return (f"SFT {video['tokens']:,} tok: {video['seconds']:.3f} s, {video['tflops']:.1f} TFLOP/s, MFU "
                f"{100 * video['mfu']:.1f}% ({100 * video['mfu_vs_matmul']:.0f}% of matmul "
                f"{config.get('matmul_tflops', 0):.0f}), peak {fmt(video.get('peak_gb'), '.1f', ' GB')}")
    if name == "rollout":
        parts = []
        for row in f.get("rows", []):
            text = f"{row['label'].replace('videokr ', '')} {row['tokens_per_s']:,.0f}"
            if row.get("x_generate"):
                text += f" ({row['x_generate']:.1f}x)"
            if row.get("floor_share"):
                text += f" {100 * row['floor_share']:.0f}% floor"
            parts.append(text)
        return "new tok/s: " + "; ".join(parts) if parts else "no rows"
    return ", ".join(f"{k} {v}" for k, v in f.items() if not isinstance(v, (dict, list)))[:120]


def table(report):
    lines = [f"GPU proof run ({report['mode']}): {report['wall_s']} s of a {report['budget_s']} s budget",
             f"{'part':<16}{'status':<9}{'seconds':>8}  figures", "-" * 110]
    for name, part in report["parts"].items():
        seconds = f"{part['seconds']:.1f}" if "seconds" in part else "-"
        lines.append(f"{name:<16}{part['status']:<9}{seconds:>8}  {summary(name, part)}")
    if report["failed"]:
        lines.append(f"FAILED: {', '.join(report['failed'])} (errors in the JSON and logs)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit({"hidden": hidden, "env": env, "data": data, "assemble": assemble}[sys.argv[1]]() or 0)
PY
export HELPER
if [[ $MODE == cpu ]]; then
    GPU_PROOF_HIDE="${GPU_PROOF_HIDE-$("$PYTHON" "$HELPER" hidden)}"
    export GPU_PROOF_HIDE
fi

# ------------------------------------------------------------------------------------------ the parts

CPU_LAUNCH=(--num_processes 1 --num_machines 1 --cpu --mixed_precision no --dynamo_backend no)
CPU_TRAIN=(--bf16 false --use_cpu true --num_frames 4 --max_pixels 4096 --min_pixels 784)
RECIPES="train/recipes/qwen2_5_vl_7b"

part_setup() {
    if [[ $MODE == gpu ]]; then
        shopt -s nullglob
        wheels=("$WHEELS"/*.whl)
        ((${#wheels[@]})) || { echo "no wheels in .whl/: run bash bench/gpu_proof.sh --fetch-wheels" >&2; exit 1; }
        PYTHONPATH='' "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "${wheels[@]}"
        # The project's wheel must be this working tree; if it is not, run the tree (next on the path).
        if ! diff -rq -x __pycache__ "$SITE/videokr" videokr; then
            echo "the videokr wheel differs from the working tree: running the working tree"
            rm -rf "$SITE"/videokr "$SITE"/videokr_sft "$SITE"/videokr_rl "$SITE"/videokr_eval
        fi
    fi
    "$PYTHON" "$HELPER" env
}

part_data() { "$PYTHON" "$HELPER" data; }

launch() {
    local script=$1
    shift
    local how=(--config_file train/accelerate/single_gpu.yaml)
    [[ $MODE == gpu ]] || how=("${CPU_LAUNCH[@]}")
    "$PYTHON" -m accelerate.commands.launch "${how[@]}" -m "videokr.training.$script" \
        --config "$RECIPES/$script.yaml" --model_name_or_path "$WORK/checkpoint" \
        --output_dir "$WORK/$script-out" --logging_steps 1 --save_strategy no --report_to none "$@"
}

part_sft() {
    local extra=(--max_steps 4)
    [[ $MODE == gpu ]] || extra=(--max_steps 2 "${CPU_TRAIN[@]}")
    launch sft --dataset_name "$WORK/hub/sft" --per_device_train_batch_size 1 --gradient_accumulation_steps 1 \
        "${extra[@]}"
}

part_grpo() {
    local extra=(--max_completion_length 64 --max_steps 2)
    [[ $MODE == gpu ]] || extra=(--max_completion_length 8 --max_steps 1 "${CPU_TRAIN[@]}")
    launch grpo --dataset_name "$WORK/hub/rl" --num_generations 4 --per_device_train_batch_size 4 \
        --gradient_accumulation_steps 1 --steps_per_generation 1 --log_completions false \
        --generation_kwargs "$(cat "$WORK/generation_kwargs.json")" "${extra[@]}"
}

bench_args() {  # the model options: 7B on CUDA, or the tiny config and small frames on CPU
    if [[ $MODE == gpu ]]; then
        echo "--arch $ARCH --device cuda"
    else
        echo "--arch $ARCH --device cpu --tiny --height 112 --width 224"
    fi
}

train_step() {
    # The SFT figures are what is asked of this part; its GRPO phases are cut to a minimum, not compiled.
    local args=(--frames "$1" --steps 2 --warmup 1 --group 2 --micro-batch 2 --new-tokens 16 --response 512)
    [[ $MODE == gpu ]] || args=(--frames "$(($1 / 16))" --steps 1 --warmup 0 --group 2 --micro-batch 2
        --new-tokens 4 --response 16)
    # shellcheck disable=SC2046
    TORCHDYNAMO_DISABLE=1 "$PYTHON" -m bench.train_step $(bench_args) "${args[@]}" \
        --json "$PARTS_DIR/train_step_$1.json"
}

part_train_step_32() { train_step 32; }
part_train_step_128() { train_step 128; }

part_rollout() {
    local extra=(--frames 32 --new-tokens 256)
    [[ $MODE == gpu ]] || extra=(--frames 2 --new-tokens 4 --no-compile)
    # shellcheck disable=SC2046
    "$PYTHON" -m bench.rollout $(bench_args) --prompts 1 --group 8 --scale '' --no-update "${extra[@]}" \
        --json "$PARTS_DIR/rollout.json"
}

part_eval() {
    local file=bench/eval_throughput.py args=(--frames 32 --new-tokens 64)
    [[ $MODE == gpu ]] || args=(--frames 2 --new-tokens 4)
    grep -q -- '"--repeats"' "$file" && args+=(--repeats 1)
    grep -q -- '"--json"' "$file" && args+=(--json "$PARTS_DIR/eval.json")
    # shellcheck disable=SC2046,SC2086
    "$PYTHON" -m bench.eval_throughput $(bench_args) "${args[@]}" ${GPU_PROOF_EVAL_ARGS:-}
}

export -f part_setup part_data launch part_sft part_grpo bench_args train_step part_train_step_32 \
    part_train_step_128 part_rollout part_eval
export RECIPES
# Each part runs in a child shell (under `timeout`): strict mode there too, and the arrays (bash cannot
# export them) rebuilt.
PRELUDE="set -euo pipefail; CPU_LAUNCH=(${CPU_LAUNCH[*]}); CPU_TRAIN=(${CPU_TRAIN[*]});"

# ------------------------------------------------------------------------------------------ run

selected=",${GPU_PROOF_PARTS:-$(IFS=,; echo "${ALL_PARTS[*]}")},"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
START=$(now_ms)
BUDGET=0
for name in "${ALL_PARTS[@]}"; do
    var="GPU_PROOF_SHARE_$name"
    BUDGET=$((BUDGET + ${!var:-${SHARE[$name]}}))
done
export BUDGET
echo "GPU proof run ($MODE): parts ${selected:1:-1}; $BUDGET s budget; python $PYTHON; logs in $LOGS"

meta() {  # name status seconds timeout_s rc [reason]
    printf '{"status": "%s", "seconds": %s, "timeout_s": %s, "rc": %s, "reason": "%s"}\n' \
        "$2" "$3" "$4" "$5" "${6:-}" >"$PARTS_DIR/$1.meta"
}

deadline=$START
for name in "${ALL_PARTS[@]}"; do
    var="GPU_PROOF_SHARE_$name"
    deadline=$((deadline + 1000 * ${!var:-${SHARE[$name]}}))
    if [[ $selected != *",$name,"* ]]; then
        meta "$name" skipped 0 0 0 "not in GPU_PROOF_PARTS"
        continue
    fi
    if [[ $name == eval && ! -f bench/eval_throughput.py ]]; then
        meta "$name" skipped 0 0 0 "bench/eval_throughput.py is not in this tree"
        continue
    fi
    if [[ $name == eval ]] && ! "$PYTHON" -c "import lighteval" >/dev/null 2>&1; then
        # lighteval imports inspect_ai, a 35 MB wheel: beside PyAV's 36 MB it cannot travel in 64 MiB.
        meta "$name" skipped 0 0 0 "needs lighteval, not installed (too large to carry with PyAV)"
        continue
    fi
    left=$(((deadline - $(now_ms)) / 1000))
    if ((left < 5)); then
        meta "$name" timeout 0 "$left" 124 "no time left in its share"
        echo "-- $name: no time left"
        continue
    fi
    command="$PRELUDE part_$name"
    if [[ $name == "${GPU_PROOF_FAIL:-}" ]]; then
        command="\"\$PYTHON\" -m bench.gpu_proof_forced_failure"  # no such module: the part fails
    fi
    echo "-- $name (at most ${left} s)"
    t0=$(now_ms)
    rc=0
    timeout --kill-after=15 "$left" bash -c "$command" >"$LOGS/$name.log" 2>&1 || rc=$?
    seconds=$(awk -v ms=$(($(now_ms) - t0)) 'BEGIN {printf "%.1f", ms / 1000}')
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    meta "$name" "$status" "$seconds" "$left" "$rc"
    echo "   $status in $seconds s"
done

WALL_S=$(awk -v ms=$(($(now_ms) - START)) 'BEGIN {printf "%.1f", ms / 1000}') ALL_PARTS="${ALL_PARTS[*]}" \
    "$PYTHON" "$HELPER" assemble
