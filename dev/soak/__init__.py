"""Soak run: the grounding node, as its own process, under a steady load for a set time.

``python -m dev.soak [--seconds 600]`` (``make soak``) starts

* an engine: by default the **scripted** OpenAI-compatible server
  (:mod:`dev.scripted_server`) as a process on loopback. Its answers are scripted,
  not a model's: the run exercises the node, the queue and the engine client (HTTP, streaming,
  retries, parsing), not a model. ``--base-url URL`` uses a running server instead, and
  ``--backend embedded|transformers|vllm --model FOLDER`` an in-process engine;
* the grounding node (``python -m egm_ros.node.main``) in a namespace of its own;
* a driver in this process that publishes camera frames (default 30 Hz) and commands (default
  5 a second), some of them malformed: empty, too long or control-character commands, frames
  with an unknown encoding or data shorter than ``step`` x ``height``, a ``frame_stamp`` with no
  frame near it, and expressions that make the scripted server answer garbage or truncated text,
  fail with HTTP 500, break the stream, drop the connection or hang.

It reports commands sent against results received (every command must get exactly one), the
results by status and by kind of command (with the status the scripted server should cause),
the node's queue high-water mark (from ``/diagnostics``), latency percentiles and the node's
resident memory at the start (after a warm-up) and at the end, as a table and as JSON. The exit
code is 0 when sent == received and the memory stayed within ``--max-rss-growth-mb``.
"""

from dev.soak.driver import KINDS, Kind

__all__ = ["KINDS", "Kind"]
