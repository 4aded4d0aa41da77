{#- Groups (by `group_by`, among the rows matching `condition`) that do not have exactly one row, and
    groups of the model with no matching row at all. -#}
{% test one_row_per_group(model, group_by, condition) %}
select {{ group_by | join(', ') }}, count(*) filter (where {{ condition }}) as matching_rows
from {{ model }}
group by {{ group_by | join(', ') }}
having count(*) filter (where {{ condition }}) <> 1
{% endtest %}
