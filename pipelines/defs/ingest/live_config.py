"""Where live mode fetches from: the resolved form of `pipelines.resources.LiveSourcesResource`.

`HF_ENDPOINT` and `HF_TOKEN` keep their huggingface_hub meaning, so a machine already set up for
the Hub (or a mirror) needs nothing new. Only the hosts of the configured URLs (plus the Hub's
file CDN when the real Hub is used, plus `FITATLAS_HTTP_ALLOWED_HOSTS`) may be contacted, which
is also the redirect allow-list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipelines.defs.ingest.http import HttpFetcher, HttpPolicy, Secret

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_OPENROUTER_URL = "https://openrouter.ai/api/v1/models"
DEFAULT_LITELLM_URL = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
DEFAULT_GENAI_PRICES_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/data.json"
DEFAULT_GPU_PRICES_URLS = tuple(
    f"https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7/{cloud}/vms.csv"
    for cloud in ("lambda", "runpod", "vast", "gcp", "azure")
)
# The Hub answers large-file resolves with redirects to its CDN / Xet bridge on these domains.
HUB_FILE_HOSTS = (".hf.co", ".huggingface.co")


@dataclass(frozen=True)
class LiveConfig:
    hf_endpoint: str
    hf_token: Secret | None
    openrouter_urls: tuple[str, ...]
    litellm_urls: tuple[str, ...]
    genai_prices_urls: tuple[str, ...]
    gpu_prices_urls: tuple[str, ...]
    extra_allowed_hosts: tuple[str, ...] = ()
    policy: HttpPolicy = field(default_factory=HttpPolicy)

    @property
    def hf_host(self) -> str:
        return (urlsplit(self.hf_endpoint).hostname or "").lower()

    def allowed_hosts(self) -> frozenset[str]:
        urls = (self.hf_endpoint, *self.openrouter_urls, *self.litellm_urls, *self.genai_prices_urls, *self.gpu_prices_urls)
        hosts = {(urlsplit(url).hostname or "").lower() for url in urls}
        if self.hf_endpoint == DEFAULT_HF_ENDPOINT:
            hosts.update(HUB_FILE_HOSTS)
        hosts.update(host.lower() for host in self.extra_allowed_hosts)
        return frozenset(host for host in hosts if host)

    def fetcher(self) -> HttpFetcher:
        return HttpFetcher(self.policy, allowed_hosts=self.allowed_hosts(), hf_host=self.hf_host, hf_token=self.hf_token)
