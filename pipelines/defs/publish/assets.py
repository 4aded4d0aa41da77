"""Freeze each run's audited tables as a batch, and publish a batch the gate lets through.

Versions (`pipelines.versions`): every audited table and the publication carry the batch's content
hash (`pipelines.batches.content_hash`, the gate's own notion of "the same content") as their data
version. The audit's code version covers the freezing code, the check code and the expectation
suites, so a changed suite re-audits; the publication's covers the gate, the publisher and the site.
"""

import dagster as dg

from pipelines.batches import AUDITED_TABLES, freeze_batch
from pipelines.defs.quality.checks import audited_key
from pipelines.gate import publish_if_allowed
from pipelines.publishing import PublicationRefused, read_publications, site_index
from pipelines.resources import FitAtlasResource
from pipelines.review_ledger import register_batch
from pipelines.versions import code_version, text_version
from pipelines.warehouse import WAREHOUSE_POOL

BATCH_TAG = "fitatlas/batch_id"
AUDIT_CODE_VERSION = code_version(__file__, "pipelines/batches.py", "pipelines/defs/quality", "expectations")
PUBLICATION_CODE_VERSION = code_version(
    __file__, "pipelines/gate.py", "pipelines/publishing.py", "pipelines/review_ledger.py", "pipelines/site"
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            audited_key(table),
            deps=[dg.AssetKey(table)],
            description=f"This run's `{table}`, frozen into the batch file that checks audit and publication copies.",
            kinds={"duckdb"},
            code_version=AUDIT_CODE_VERSION,
        )
        for table in AUDITED_TABLES
    ],
    group_name="audit",
    pool=WAREHOUSE_POOL,
)
def audited_batch(context: dg.AssetExecutionContext, fitatlas: FitAtlasResource):
    settings = fitatlas.settings
    batch = freeze_batch(settings, context.run.run_id)
    register_batch(
        settings,
        batch_id=batch.batch_id,
        run_id=context.run.run_id,
        content_sha256=batch.content_sha256,
        path=batch.path,
        row_counts=batch.row_counts,
    )
    _prerender_site_charts(context, settings, batch)
    for table in AUDITED_TABLES:
        yield dg.MaterializeResult(
            asset_key=audited_key(table),
            data_version=text_version(batch.content_sha256),
            metadata={
                "batch_id": batch.batch_id,
                "content_sha256": batch.content_sha256,
                "rows": batch.row_counts[table],
                "batch_file": dg.MetadataValue.path(str(batch.path)),
            },
        )


def _prerender_site_charts(context: dg.AssetExecutionContext, settings, batch) -> None:
    """Charts are most of the site's build: draw them while the checks run, unless this batch is
    the current publication's content (nothing will be published). Never fails the step: the site
    build draws whatever is not ready."""
    history = read_publications(settings.published_path)
    if history and history[-1]["content_sha256"] == batch.content_sha256:
        return
    from pipelines.site import prerender_charts

    try:
        handed = prerender_charts(batch.path, settings.chart_cache_dir)
    except Exception as error:  # noqa: BLE001 - an optimisation; the site build reports real failures
        context.log.warning(f"site charts not drawn ahead: {type(error).__name__}: {error}")
        return
    context.log.info(f"site charts: {handed} being drawn in the background into {settings.chart_cache_dir}")


PUBLICATION_KEY = dg.AssetKey("publication")
SITE_KEY = dg.AssetKey("site")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PUBLICATION_KEY,
            deps=[audited_key(table) for table in AUDITED_TABLES],
            kinds={"duckdb", "parquet"},
            code_version=PUBLICATION_CODE_VERSION,
            skippable=True,  # no materialization when the batch equals the current publication
            description="Publishes a batch to data/published.duckdb (swapped in with os.replace) and "
            "data/published/current/*.parquet, when the gate allows it: every blocking check passed, or a "
            f"reviewer approved exactly this content. The batch is the run's own, or the `{BATCH_TAG}` tag's.",
        ),
        dg.AssetSpec(
            SITE_KEY,
            deps=[PUBLICATION_KEY],
            kinds={"html"},
            code_version=PUBLICATION_CODE_VERSION,
            skippable=True,
            description="The static site BI readers open: data/published/current/site/index.html, a page per "
            "published model and per GPU (pipelines.site), built from the publication's tables alone into "
            "its Parquet version directory before the swap, so it switches and rolls back with them.",
        ),
    ],
    group_name="publish",
    pool=WAREHOUSE_POOL,
)
def publication(context: dg.AssetExecutionContext, fitatlas: FitAtlasResource):
    settings = fitatlas.settings
    batch_id = context.run.tags.get(BATCH_TAG, context.run.run_id)
    try:
        outcome = publish_if_allowed(settings, batch_id)
    except PublicationRefused as refusal:
        raise dg.Failure(description=f"not published: {refusal}") from refusal
    decision, published = outcome.decision, outcome.publication
    if published is None:
        context.log.info(
            f"not published: batch {batch_id} is unchanged since publication {outcome.unchanged_since} "
            f"(content sha256 {decision.batch.content_sha256})"
        )
        yield dg.AssetObservation(
            asset_key=PUBLICATION_KEY,
            metadata={
                "published": False,
                "unchanged_since": outcome.unchanged_since,
                "batch_id": batch_id,
                "content_sha256": decision.batch.content_sha256,
                "reason": "the batch's content is exactly the current publication's: nothing new to publish",
            },
        )
        return
    context.log.info(f"published batch {batch_id} as {published.publication_id} ({decision.reason})")
    yield dg.MaterializeResult(
        asset_key=PUBLICATION_KEY,
        data_version=text_version(published.content_sha256),
        metadata={
            "publication_id": published.publication_id,
            "batch_id": batch_id,
            "approval": f"{decision.approval_kind}: {decision.approved_by}",
            "content_sha256": published.content_sha256,
            "path": dg.MetadataValue.path(str(settings.published_path)),
            **{f"rows_{table}": count for table, count in published.row_counts.items()},
        },
    )
    index = site_index(settings)
    site_dir = index.parent
    yield dg.MaterializeResult(
        asset_key=SITE_KEY,
        data_version=text_version(published.content_sha256),
        metadata={
            "publication_id": published.publication_id,
            "index": dg.MetadataValue.path(str(index)),
            "model_pages": len(list((site_dir / "models").glob("*.html"))),
            "gpu_pages": len(list((site_dir / "gpus").glob("*.html"))),
            **(
                {
                    "build_seconds": round(published.site.seconds, 2),
                    "charts_drawn": published.site.charts_drawn,
                    "charts_reused": published.site.charts_reused,
                }
                if published.site
                else {}
            ),
        },
    )
