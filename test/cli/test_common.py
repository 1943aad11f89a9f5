"""What the CLIs share: TLS verification stays on unless --insecure says otherwise, and the API
key has no flag (it comes from the environment or --api-key-file)."""

from __future__ import annotations

import pytest

from egm_ros.cli.common import engine_settings
from egm_ros.cli.ground import build_parser


def test_tls_is_verified_unless_insecure() -> None:
    parser = build_parser()
    assert engine_settings(parser.parse_args(["scene.png", "the mug"])).verify_tls is True
    insecure = parser.parse_args(["scene.png", "the mug", "--insecure"])
    assert engine_settings(insecure).verify_tls is False


def test_the_key_is_named_never_given() -> None:
    args = build_parser().parse_args(["scene.png", "the mug", "--api-key-file", "/run/key"])
    settings = engine_settings(args)
    assert settings.api_key_env == "EGM_API_KEY" and settings.api_key_file == "/run/key"
    assert not [
        a
        for a in vars(args)
        if a.startswith("api_key") and a not in ("api_key_env", "api_key_file")
    ]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scene.png", "the mug", "--api-key", "sk-1"])


def test_the_token_budget_is_the_egm_authors_4096_everywhere() -> None:
    """Their vllm_infer.sh passes --max_tokens 4096; an EGM reasoning cut short has no box."""
    from pathlib import Path

    import yaml

    from egm_ros.cli import eval as egm_eval
    from egm_ros.cli.common import grounder_config
    from egm_ros.core.engine import SamplingParams
    from egm_ros.node.parameters import PARAMETERS

    ground_args = build_parser().parse_args(["scene.png", "the mug"])
    eval_args = egm_eval.build_parser().parse_args(["--synthetic"])
    assert ground_args.max_new_tokens == eval_args.max_new_tokens == 4096
    assert grounder_config(ground_args).sampling.max_new_tokens == 4096
    assert SamplingParams().max_new_tokens == 4096
    assert PARAMETERS["max_new_tokens"].default == 4096
    config = Path(__file__).resolve().parents[2] / "config" / "grounding.yaml"
    params = yaml.safe_load(config.read_text())["/**"]["ros__parameters"]
    assert params["max_new_tokens"] == 4096


def test_cpu_threads_flag_of_both_tools_defaults_to_the_nodes_one_thread() -> None:
    from egm_ros.cli import eval as egm_eval
    from egm_ros.node.parameters import PARAMETERS

    ground_args = build_parser().parse_args(["scene.png", "the mug"])
    eval_args = egm_eval.build_parser().parse_args(["--synthetic", "--cpu-threads", "3"])
    assert engine_settings(ground_args).cpu_threads == PARAMETERS["cpu_threads"].default == 1
    assert engine_settings(eval_args).cpu_threads == 3
