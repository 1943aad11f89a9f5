"""Where an in-process engine's model comes from, decided in seconds before any library loads it.

A robot is usually offline. Given a hub name that is not in the local Hugging Face cache,
transformers and vLLM retry the hub for every file, with backoff, for minutes before they
fail. So, before loading:

- a folder is used as it is (a path that is no folder is one error line);
- a name whose ``config.json`` is in the local cache (``huggingface_hub.try_to_load_from_cache``)
  is used from the cache when the hub cannot be reached (no network call at all);
- otherwise, one short request says whether the hub can be reached: if it can, the name goes to
  the library, which downloads (or updates) as usual; if not, one line says how to get the
  model (``hf download NAME``).

``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) means "cannot be reached" without asking.
"""

from __future__ import annotations

from pathlib import Path

from egm_ros.core.types import GroundingError, Status

#: Seconds the hub has to answer the reachability check.
HUB_CHECK_TIMEOUT_S = 3.0


def looks_like_a_path(model: str) -> bool:
    """A hub name is ``name`` or ``org/name``; anything else is meant as a folder."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1


def cached_folder(model: str) -> str | None:
    """The cache's snapshot folder of hub name ``model`` (its ``main`` revision), or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not a valid repository id
        return None
    return str(Path(config).parent) if isinstance(config, str) else None


def hub_reachable(timeout: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """Whether the hub answers anything at all within ``timeout`` (one request, no retry)."""
    import httpx
    from huggingface_hub import constants

    offline = getattr(constants, "is_offline_mode", lambda: constants.HF_HUB_OFFLINE)
    if offline():
        return False
    try:
        httpx.head(constants.ENDPOINT, timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def locate_model(model: str) -> str:
    """``model`` as the engine should load it: the folder, the cached snapshot folder (hub out
    of reach), or the hub name (hub reachable). Raises ``GroundingError(engine_unavailable)``
    with one line otherwise."""
    if Path(model).is_dir():
        return model
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    if looks_like_a_path(model):
        raise GroundingError(Status.ENGINE_UNAVAILABLE, f"no model folder {model!r}")
    if hub_reachable():
        return model
    folder = cached_folder(model)
    if folder is not None:
        return folder
    from huggingface_hub import constants

    raise GroundingError(
        Status.ENGINE_UNAVAILABLE,
        f"model {model!r} is neither a folder nor in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and {constants.ENDPOINT} cannot be reached: run "
        f"`hf download {model}` where there is a network, then pass the folder it prints "
        f"(or keep the name, found in the cache from then on)",
    )
