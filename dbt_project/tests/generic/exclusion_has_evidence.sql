{#- Rows whose excluded_evidence is not set exactly when excluded_reason is (a reviewer must see
    why every price was set aside, and a used price carries none). -#}
{% test exclusion_has_evidence(model) %}
select *
from {{ model }}
where (excluded_reason is null) <> (excluded_evidence is null)
{% endtest %}
