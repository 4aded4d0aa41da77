{#- Unit conversions shared by staging models; each names the unit it returns. -#}

{#- A JSON or text number, or null for the placeholders sources print ('X' unsupported, '?' unknown, 'V' unpublished, ''). -#}
{% macro number_or_null(expression) -%}
    try_cast(nullif(trim(cast({{ expression }} as varchar)), '') as double)
{%- endmacro %}

{#- USD per token (OpenRouter strings, LiteLLM numbers) -> USD per 1e6 tokens, via decimal so 4.5e-07 gives exactly 0.45. -#}
{% macro usd_per_token_to_per_mtok(expression) -%}
    cast(round(try_cast(cast({{ expression }} as varchar) as decimal(28, 18)) * 1000000, 9) as double)
{%- endmacro %}

{#- Datasheet "GB" of device memory is binary: an 80 GB H100 holds 80 GiB (85.9e9 bytes). -#}
{% macro gib_to_gb(expression) -%}
    ({{ expression }}) * 1073741824 / 1e9
{%- endmacro %}
