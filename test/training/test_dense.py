"""Dense targets of the visual tokens: the right object per cell, in the processor's token
order; the frozen sine-cosine positions; the loss and its metrics."""

from __future__ import annotations

import numpy as np
import pytest

from egm_ros.data.scenes import KINDS, generate_scene
from egm_ros.training.dense import dense_targets, merged_grid, sincos_table


def test_cells_take_the_object_that_covers_them() -> None:
    scene = generate_scene(11)
    rows, cols = 7, 7
    targets = dense_targets(scene, rows, cols)
    assert targets.kind.shape == (49,)
    assert (targets.kind > 0).any() and (targets.kind == 0).any()
    for k in np.flatnonzero(targets.kind > 0):
        r, c = divmod(int(k), cols)
        cell = scene.mask[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32]
        owner = np.bincount(cell[cell != 255].ravel()).argmax()
        obj = scene.objects[owner]
        assert KINDS[targets.kind[k] - 1] == obj.kind
        box = targets.boxes[k, :4] * 224
        assert box == pytest.approx(
            [obj.visible.x1, obj.visible.y1, obj.visible.x2, obj.visible.y2]
        )
        assert targets.extra[k, 0] == pytest.approx(obj.visible_fraction)
    background = targets.kind == 0
    assert (targets.colour[background] == -100).all() and (targets.size[background] == -100).all()


def test_wide_scene_cells_follow_the_grid() -> None:
    scene = generate_scene(3, width=398, height=224)
    targets = dense_targets(scene, 6, 12)
    assert targets.kind.shape == (72,) and targets.boxes.shape == (72, 8)
    assert ((targets.boxes >= 0) & (targets.boxes <= 1)).all()


def test_merged_tokens_are_row_major_cells_of_the_image() -> None:
    """The processor emits each 2 x 2 group of patches together, groups row by row: a dark
    left half must show up as dark tokens in the left columns of the merged grid."""
    pytest.importorskip("torch")
    from PIL import Image

    from egm_ros.models.tiny_qwen3_vl import build_processor

    processor = build_processor().image_processor
    image = np.full((224, 320, 3), 255, np.uint8)
    image[:, :160] = 0
    out = processor(images=[Image.fromarray(image)], return_tensors="pt")
    grid = out["image_grid_thw"][0].tolist()
    rows, cols = merged_grid(grid, processor.merge_size)
    per_token = out["pixel_values"].reshape(rows * cols, -1).mean(dim=1).reshape(rows, cols)
    assert (per_token[:, : cols // 2] < 0).all() and (per_token[:, cols // 2 :] > 0).all()


def test_sincos_table_gives_each_cell_its_own_position() -> None:
    table = sincos_table(14, 128)
    assert table.shape == (196, 128)
    assert len({row.tobytes() for row in table}) == 196
    # Row and column halves: cells of one row share the first half.
    assert np.allclose(table[0, :64], table[13, :64]) and not np.allclose(
        table[0, 64:], table[13, 64:]
    )


def test_frozen_positions_and_a_loss_that_learns() -> None:
    torch = pytest.importorskip("torch")
    from egm_ros.models.tiny_qwen3_vl import build_model, build_processor
    from egm_ros.training.data import encode_images
    from egm_ros.training.dense import build_head, dense_loss, freeze_sincos_positions

    processor = build_processor()
    model = build_model(processor.tokenizer)
    freeze_sincos_positions(model)
    assert not model.model.visual.pos_embed.weight.requires_grad
    batch = encode_images(processor, [generate_scene(s) for s in range(4)])
    head = build_head(model.config.text_config.hidden_size)
    params = [p for p in model.model.visual.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([*params, *head.parameters()], lr=3e-3)
    losses = []
    for _ in range(15):
        tokens = model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
        loss, metrics = dense_loss(head, tokens.pooler_output, batch["dense"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert 0.0 <= metrics["kind_acc"] <= 1.0 and metrics["edge"] >= 0.0
