"""Vision and audio towers, reported apart from the language model as ``ModelSpec.params_vision``.

Closed forms over each tower's ``vision_config`` (its own encoder, not the decoder layers the other
modules of this package lay out), checked against the oracle's vision column.
"""

from __future__ import annotations

from sizing.hf_config import HFConfig


def _sub(cfg: HFConfig, key: str) -> dict:
    value = cfg.raw.get(key)
    return value if isinstance(value, dict) else {}


def _v(conf: dict, key: str, default):
    value = conf.get(key)
    return default if value is None else value


def vision_params(cfg: HFConfig) -> int:
    """Parameters of the vision (and audio) towers plus their projectors into the language model,
    as the transformers ConditionalGeneration class builds them from ``vision_config`` (transformers'
    own config defaults fill absent fields, as ``from_pretrained`` does). 0 for text-only models
    and, explicitly, where the tower cannot be counted exactly from the config:

    - ``step3p7``: Step-3.7-Flash ships a flat config with no vision fields; transformers would build
      a default tower that the checkpoint may not match (the oracle's count is of that default).
    - ``gemma4`` with a non-null ``audio_config`` (E2B/E4B, unsupported anyway for their per-layer
      inputs): the audio conformer is not accounted, so no partial number is reported.
    - any other multimodal wrapper (e.g. ``mistral3`` Pixtral): not accounted yet, 0.

    Layouts (transformers 5.x modeling files):

    - qwen3_vl / qwen3_vl_moe / qwen3_5 / qwen3_5_moe: Conv3d patch embed (3 x temporal_patch x
      patch^2 x h + bias), learned pos_embed (num_position_embeddings x h), ``depth`` blocks of two
      LayerNorms with bias, fused qkv + proj with bias and an fc1/fc2 MLP with bias; a merger
      (LayerNorm(h), fc1 (h m^2 -> h m^2), fc2 (-> out_hidden_size), biased) and, Qwen3-VL only, one
      more merger per ``deepstack_visual_indexes`` entry (default [8, 16, 24]) whose norm is over
      h m^2.
    - llama4: unfold patch linear (3 p^2 -> h), class embedding, (image/p)^2 + 1 positions, pre/post
      LayerNorms, layers of biased q/k/v/o + fc1/fc2 and two LayerNorms, pixel-shuffle adapter
      (intermediate -> projector_input, projector_output^2, no bias), projector (vision_output_dim ->
      text hidden, no bias).
    - gemma4: patch input_proj (3 p^2 -> h), 2 x position_embedding_size x h table, layers of q/k/v/o
      (no bias), per-head q/k RMSNorm, gated MLP, four RMSNorms; embed_vision projection h -> text h.
    - kimi_k25 (MoonViT): Conv2d patch embed with bias, pos_emb_height x pos_emb_width x h table,
      layers of biased q/k/v/proj + fc1/fc2 and two LayerNorms, final LayerNorm; mm_projector:
      LayerNorm(projection width), in_proj (h m^2 square) and out_proj (-> text hidden), biased.
    """
    top = cfg.model_type or ""
    vc = _sub(cfg, "vision_config")
    text_hidden = cfg.int("hidden_size")
    if top in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"):
        h, depth = int(_v(vc, "hidden_size", 1152)), int(_v(vc, "depth", 27))
        inter, patch = int(_v(vc, "intermediate_size", 4304)), int(_v(vc, "patch_size", 16))
        tp, ch = int(_v(vc, "temporal_patch_size", 2)), int(_v(vc, "in_channels", 3))
        merge, out = int(_v(vc, "spatial_merge_size", 2)), int(_v(vc, "out_hidden_size", 3584))
        positions = int(_v(vc, "num_position_embeddings", 2304))
        total = ch * tp * patch * patch * h + h + positions * h
        total += depth * (4 * h + 3 * h * h + 3 * h + h * h + h + 2 * h * inter + inter + h)
        m = h * merge * merge
        merger = m * m + m + out * m + out
        total += 2 * h + merger
        if top.startswith("qwen3_vl"):
            deepstack = vc.get("deepstack_visual_indexes")
            n = len(deepstack) if isinstance(deepstack, list) else 3
            total += n * (2 * m + merger)
        return total
    if top == "llama4":
        h, layers = int(_v(vc, "hidden_size", 768)), int(_v(vc, "num_hidden_layers", 34))
        inter, patch = int(_v(vc, "intermediate_size", 5632)), int(_v(vc, "patch_size", 14))
        image, ch = int(_v(vc, "image_size", 448)), int(_v(vc, "num_channels", 3))
        p_in, p_out = int(_v(vc, "projector_input_dim", 4096)), int(_v(vc, "projector_output_dim", 4096))
        v_out = int(_v(vc, "vision_output_dim", 7680))
        total = ch * patch * patch * h + h + ((image // patch) ** 2 + 1) * h + 4 * h
        total += layers * (4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h)
        total += inter * p_in + p_out * p_out
        bias = bool(_v(vc, "multi_modal_projector_bias", False))
        return total + v_out * text_hidden + (text_hidden if bias else 0)
    if top == "gemma4":
        if cfg.raw.get("audio_config") is not None:
            return 0
        if not vc:
            return 0
        h, layers = int(_v(vc, "hidden_size", 768)), int(_v(vc, "num_hidden_layers", 16))
        inter, patch = int(_v(vc, "intermediate_size", 3072)), int(_v(vc, "patch_size", 16))
        heads, kv = int(_v(vc, "num_attention_heads", 12)), int(_v(vc, "num_key_value_heads", 12))
        hd = int(_v(vc, "head_dim", 64))
        total = 3 * patch * patch * h + 2 * int(_v(vc, "position_embedding_size", 10240)) * h
        total += layers * (2 * h * heads * hd + 2 * h * kv * hd + 2 * hd + 3 * h * inter + 4 * h)
        return total + h * text_hidden
    if top == "kimi_k25":
        h = int(_v(vc, "hidden_size", _v(vc, "vt_hidden_size", 1152)))
        layers = int(_v(vc, "num_hidden_layers", _v(vc, "vt_num_hidden_layers", 27)))
        inter = int(_v(vc, "intermediate_size", _v(vc, "vt_intermediate_size", 4304)))
        patch = int(_v(vc, "patch_size", 14))
        ph = int(_v(vc, "pos_emb_height", _v(vc, "init_pos_emb_height", 64)))
        pw = int(_v(vc, "pos_emb_width", _v(vc, "init_pos_emb_width", 64)))
        mk = _v(vc, "merge_kernel_size", [2, 2])
        proj_norm = int(_v(cfg.raw, "projection_hidden_size", _v(vc, "mm_hidden_size", 1152)))
        total = 3 * patch * patch * h + h + ph * pw * h
        total += layers * (4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h) + 2 * h
        m = h * int(mk[0]) * int(mk[1])
        return total + 2 * proj_norm + m * m + m + m * text_hidden + text_hidden
    return 0
