"""A tiny Qwen3-VL made by the project: ``Qwen3VLForConditionalGeneration`` with a small
config, a byte-level BPE tokenizer trained locally with ``tokenizers``, and a Qwen3-VL processor,
saved as a normal model folder that ``AutoProcessor``/``AutoModelForImageTextToText`` load offline
and vLLM serves. Nothing is downloaded.

With random weights it is the test model of the in-process engines (its answers are noise:
tests check plumbing). With trained weights it is the embedded default (EGM-Tiny).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
#: Added as ordinary (non-special) tokens, as in Qwen3: decoding keeps them in the text.
THINK_TOKENS = ["<think>", "</think>"]
#: Every box coordinate (0..1000) is one token, so a coordinate is one decision of the model
#: rather than a digit sequence of varying length; their embeddings start ordered by value
#: (``init_number_embeddings``) so that near numbers start near.
NUMBER_TOKENS = [str(i) for i in range(1001)]

#: Qwen3-VL's chat layout (thinking variant): the generation prompt opens ``<think>`` so the
#: model writes its reasoning, ``</think>``, then the answer. ``enable_thinking=False`` (as in
#: Qwen3's templates) closes the think block at once, so the model answers directly.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}<think>{{ '\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{ '\\n' }}</think>{{ '\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)

_BASE_CORPUS = [
    "Please provide the bounding box coordinate of the region this sentence describes: "
    "<ref>the red mug</ref>",
    "Please provide the amodal bounding box coordinate of the region this sentence describes: "
    "<ref>the ball behind the green box</ref>",
    "Locate the mug, output its bbox coordinates using JSON format",
    'The red mug is left of the box. </think>\n```json\n[{"bbox_2d": [12, 345, 678, 901], '
    '"label": "red mug"}]\n```',
    "<ref>mug</ref><box>[[100, 200, 300, 400]]</box>",
    " ".join(str(i) for i in range(1001)),
]


@dataclass
class TinyConfig:
    """Sizes of the tiny model. The defaults are the test model; EGM-Tiny is bigger."""

    text_layers: int = 2
    hidden: int = 128
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 256
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    image_size: int = 224
    patch_size: int = 16
    merge_size: int = 2
    vocab_size: int = 512
    max_positions: int = 4096
    extra: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """A byte-level BPE (digits split one by one, as Qwen does) with the Qwen special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return tok


def build_processor(corpus: Iterable[str] | None = None, config: TinyConfig | None = None):
    """Tokenizer + image/video processors wrapped as a ``Qwen3VLProcessor``."""
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLImageProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    cfg = config or TinyConfig()
    tok = train_tokenizer([*_BASE_CORPUS, *(corpus or [])], cfg.vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=8192,
        padding_side="left",
    )
    tokenizer.add_tokens(THINK_TOKENS)
    tokenizer.add_tokens(NUMBER_TOKENS)
    pixels = cfg.image_size * cfg.image_size
    image_processor = Qwen2VLImageProcessor(
        patch_size=cfg.patch_size,
        merge_size=cfg.merge_size,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": pixels // 4, "longest_edge": pixels},
    )
    video_processor = Qwen3VLVideoProcessor(
        patch_size=cfg.patch_size,
        merge_size=cfg.merge_size,
        temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": pixels // 4, "longest_edge": pixels},
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer, config: TinyConfig | None = None, seed: int = 0):
    """A randomly initialised ``Qwen3VLForConditionalGeneration`` matching ``tokenizer``."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    cfg = config or TinyConfig()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = cfg.head_dim
    # mrope splits head_dim / 2 rotary frequencies over (time, height, width).
    half = head_dim // 2
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    model_config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": cfg.hidden,
            "intermediate_size": cfg.intermediate,
            "num_hidden_layers": cfg.text_layers,
            "num_attention_heads": cfg.heads,
            "num_key_value_heads": cfg.kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": cfg.max_positions,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope,
                "mrope_interleaved": True,
            },
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": cfg.vision_depth,
            "hidden_size": cfg.vision_hidden,
            "intermediate_size": cfg.vision_hidden * 2,
            "num_heads": cfg.vision_heads,
            "patch_size": cfg.patch_size,
            "spatial_merge_size": cfg.merge_size,
            "temporal_patch_size": 2,
            "out_hidden_size": cfg.hidden,
            "num_position_embeddings": (cfg.image_size // cfg.patch_size) ** 2,
            "deepstack_visual_indexes": [cfg.vision_depth - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model_config.eos_token_id = ids["<|im_end|>"]
    model_config.pad_token_id = ids["<|endoftext|>"]
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(model_config)
    init_number_embeddings(model, tokenizer)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    return model.eval()


def number_token_ids(tokenizer) -> list[int]:
    """Token ids of "0".."1000", in value order."""
    return tokenizer.convert_tokens_to_ids(NUMBER_TOKENS)


def init_number_embeddings(model, tokenizer) -> None:
    """Sinusoidal embeddings of each number's value (at the model's init scale): the tied
    output layer then scores near coordinates alike from the first step, which a tiny model
    trained for an hour needs to learn boxes at all."""
    import torch

    ids = torch.tensor(number_token_ids(tokenizer))
    embedding = model.get_input_embeddings().weight
    dim = embedding.shape[1]
    values = torch.arange(len(ids), dtype=torch.float32)[:, None] / 1000.0
    freqs = torch.pi * torch.logspace(0, 2.3, dim // 2)[None, :]
    table = torch.cat([torch.sin(values * freqs), torch.cos(values * freqs)], dim=1)
    std = model.config.text_config.initializer_range
    with torch.no_grad():
        embedding[ids] = (table / table.std() * std).to(embedding.dtype)


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    config: TinyConfig | None = None,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Build and save processor + random model into ``out_dir``; returns the folder."""
    cfg = config or TinyConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor = build_processor(corpus, cfg)
    model = build_model(processor.tokenizer, cfg, seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "egm_tiny.json").write_text(json.dumps(asdict(cfg), indent=2))
    return out


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
