{#-
    The newest landed version of every record in an append-only raw table.

    Raw tables keep every landing (batch) of every file; staging reads only the latest record per
    record_key (ties on fetched_at broken by batch_id), optionally restricted to one parser's rows.
-#}
{% macro latest_raw_records(table_name, parser=none) %}
    select * exclude (recency)
    from (
        select
            *,
            row_number() over (
                partition by source, record_key order by fetched_at desc, batch_id desc
            ) as recency
        from {{ source('raw', table_name) }}
        {% if parser is not none %}where source = '{{ parser }}'{% endif %}
    )
    where recency = 1
{% endmacro %}
