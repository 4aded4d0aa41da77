{#-
    Naming rules of the price path (documented in provider_prices.yml and the README, "Prices we compare").
-#}

{#- A provider name with the routing decorations of its source removed, before any alias lookup:
    `huggingface_<x>` (a Hugging Face inference-provider route, billed at <x>'s rate) -> <x>,
    `text-completion-<x>` (LiteLLM's completion-endpoint route) -> <x>, and LiteLLM's per-family
    sub-providers `<x>-<family>_models` / `<x>-<kind>-models` -> <x>. Lower case, trimmed. -#}
{% macro provider_slug_base(raw) -%}
    regexp_replace(
        regexp_replace(
            regexp_replace(lower(trim({{ raw }})), '^huggingface_', ''),
            '^text-completion-', ''),
        '-[a-z0-9_-]+[-_]models$', '')
{%- endmacro %}

{#- The generic canonical slug: the base name without a separated `ai` suffix
    (together_ai -> together, fireworks-ai -> fireworks, azure_ai -> azure; moonshotai keeps it). -#}
{% macro provider_slug_generic(raw) -%}
    regexp_replace({{ provider_slug_base(raw) }}, '[-_]ai$', '')
{%- endmacro %}

{#- The model line of an HF repo id, finer than models.family: the repo name (after the owner),
    lower case, cut before its first size token (8B, 0.6B, 360M, 8x22B), split on '-', without
    variant tokens (instruct, chat, it, base, hf, precisions, thinking, size names such as nano /
    super / ultra / flash / pro / mini), date tokens (2507, 0528, 1124) and a leading vendor
    token (Meta-Llama -> llama, NVIDIA-Nemotron -> nemotron).
    Llama-3.1-405B-Instruct and Meta-Llama-3.1-8B -> llama-3.1; Qwen2.5-72B -> qwen2.5;
    Qwen3-235B-A22B-FP8 -> qwen3; NVIDIA-Nemotron-3-Super-120B-A12B-FP8 -> nemotron-3;
    DeepSeek-V3-0324 -> deepseek-v3; DeepSeek-R1-Distill-Qwen-32B -> deepseek-r1-distill-qwen. -#}
{% macro model_line(model_id) -%}
    nullif(array_to_string(list_filter(
        string_split(
            regexp_replace(lower(split_part({{ model_id }}, '/', 2)), '-(\d+(\.\d+)?[bm]|\d+x\d+(\.\d+)?b)(-.*)?$', ''),
            '-'),
        lambda token, position: token <> ''
            and not (position = 1 and token in ('meta', 'nvidia'))
            and token not in (
                'instruct', 'chat', 'it', 'base', 'hf', 'fp8', 'fp4', 'nvfp4', 'mxfp4', 'bf16', 'int4', 'int8',
                'awq', 'gptq', 'gguf', 'thinking', 'reasoning', 'turbo', 'preview', 'exp', 'nano', 'mini',
                'small', 'medium', 'large', 'super', 'ultra', 'flash', 'pro', 'lite', 'max', 'plus',
                'highspeed', 'lightning')
            and not regexp_full_match(token, '\d{4}|\d{6,8}')
    ), '-'), '')
{%- endmacro %}
