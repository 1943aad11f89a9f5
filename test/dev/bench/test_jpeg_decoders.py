"""The JPEG decoder comparison (dev/bench/jpeg_decoders.py) on a tiny frame: every decoder
decodes, and the DCT scales give the sizes libjpeg gives (each side rounded up). No time is
asserted."""

from __future__ import annotations

from dev.bench import jpeg_decoders


def test_each_decoder_decodes_at_its_scale() -> None:
    rows = jpeg_decoders.run(1, {"100x60": (100, 60)})
    outputs = {r["decoder"]: r["output"] for r in rows}
    assert [outputs[f"opencv 1/{k}"] for k in (1, 2, 4, 8)] == ["100x60", "50x30", "25x15", "13x8"]
    assert [outputs[f"pillow draft 1/{k}"] for k in (1, 2, 4, 8)] == [
        "100x60",
        "50x30",
        "25x15",
        "13x8",
    ]
    for name, size in outputs.items():
        if name.startswith("simplejpeg 8/8"):  # only when simplejpeg is installed
            assert size == "100x60"
    assert all(r["cpu_p50_ms"] >= 0 and r["jpeg_kb"] >= 0 for r in rows)
    assert "decoder" in jpeg_decoders.table(rows)
