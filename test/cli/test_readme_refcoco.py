"""The README's RefCOCO recipe says what the EGM authors' release does (their README,
verl/scripts/vllm_infer.sh), and its egm-eval command is one egm-eval accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from egm_ros.cli.eval import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def recipe() -> str:
    text = README.read_text()
    start = text.index("## Reproducing the paper's RefCOCO row on a GPU")
    return text[start : text.index("\n## ", start + 1)]


def commands(section: str) -> list[str]:
    """The shell commands of the section's code blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_data_and_images_as_the_authors_prepare_them() -> None:
    section = recipe()
    lines = commands(section)
    assert "cat ./data/EGM_Datasets/coco.tar.part_* > ./data/EGM_Datasets/coco.tar" in lines
    assert "tar -xf ./data/EGM_Datasets/coco.tar -C ./data/" in lines
    assert "tar -xf ./data/EGM_Datasets/coco_flip.tar -C ./data/" in lines
    assert 'export BASE_IMG_DIR="${BASE_DIR}"' in lines
    assert "data/EGM_Datasets/metadata/eval/*.jsonl" in section
    for split in ("refcoco_{val,testA,testB}", "refcoco+_{val,testA,testB}", "refcocog_{val,test}"):
        assert split in section
    assert "do not say how they average" in section


def test_the_server_flags_are_the_authors() -> None:
    (server,) = [c for c in commands(recipe()) if "vllm.entrypoints.openai.api_server" in c]
    flags = (
        "--host 0.0.0.0 --trust-remote-code --port 8000 --data-parallel-size 8 "
        "--tensor-parallel-size 1 --dtype auto --gpu-memory-utilization 0.9"
    )
    assert " ".join(server.split()).endswith(flags)
    assert "--served-model-name" not in server and "--max-model-len" not in server


def test_the_egm_eval_command_parses_with_the_authors_protocol() -> None:
    (line,) = [c for c in commands(recipe()) if c.startswith("egm-eval")]
    argv = shlex.split(line.split(">")[0])[1:]
    args = build_parser().parse_args(argv)
    assert args.protocol == "authors" and args.concurrency == 64
    assert args.max_new_tokens == 4096 and args.family == "qwen3_vl"
