{#- Rows whose value lies outside [min_value, max_value] (either bound optional); nulls pass.
    Severity warn: an implausible value is bad data for reviewers to judge, and the blocking Great
    Expectations gate (expectations/) holds the batch; failing the dbt build here would stop the
    batch before it can even be reviewed. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
{{ config(severity = 'warn') }}
select {{ column_name }} as out_of_range_value
from {{ model }}
where {{ column_name }} is not null
  and (
    false
    {% if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
    {% if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %}
  )
{% endtest %}
