"""Every estimate constant of the memory / speed / cost model, in one place, with its provenance.

Each value names its source (file, issue or measurement) and the engine + version it describes.
"sizing_anchors" below means ``/work/shared/research/sizing_anchors.md`` (section numbers given);
that note cites the upstream repository files. Values are grouped in small frozen dataclasses so a
caller can swap a whole topic (e.g. another engine version) with ``dataclasses.replace``.

Engine modelled for the memory budget: **vLLM V1, current (>= v0.22, 2026)**, with the activation
and non-torch constants of the latest published calibration (llm-d-planner, vLLM v0.19, H100-80GB)
used as priors. vLLM's activation peak dropped ~60 % between v0.16 and v0.17 (sizing_anchors 2.4):
re-check these numbers when the engine version moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

GIB = 1024**3
GB = 1e9

# --------------------------------------------------------------------------------------------------
# Precisions and dtypes
# --------------------------------------------------------------------------------------------------

#: Bytes per cached KV element by KV-cache dtype. KV dtype is its own axis, independent of the weight
#: precision (vLLM ``--kv-cache-dtype``; bf16 = 2, fp8 e4m3/e5m2 = 1). vLLM's per-token-head fp8 scale
#: variant adds scales; the default per-tensor fp8 KV does not (sizing_anchors 2.3 "KV dtype").
KV_DTYPE_BYTES: Mapping[str, int] = MappingProxyType({"bf16": 2, "fp16": 2, "fp8": 1})

#: gpus-frame column holding the dense tensor peak used for a weight precision's matmuls.
#: int4 is modelled as a weight-only format (W4A16: GPTQ/AWQ Marlin kernels) so it computes in bf16.
#: Precisions whose column is null on a GPU (no hardware support) fall back to ``bf16_tflops``
#: (weight-only kernels dequantise to bf16), see ``sizing.speed``.
PEAK_COLUMN_BY_PRECISION: Mapping[str, str] = MappingProxyType(
    {"bf16": "bf16_tflops", "fp8": "fp8_tflops", "int8": "int8_tops", "int4": "bf16_tflops", "fp4": "fp4_tflops"}
)


# --------------------------------------------------------------------------------------------------
# Memory budget (vLLM)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VLLMMemory:
    """vLLM's KV-pool budget: ``usable = physical x gpu_memory_utilization``;
    ``KV pool = usable - weights/GPU - activation peak - non-torch - CUDA-graph memory``.

    Source of the rule: ``vllm-project/vllm : vllm/v1/worker/gpu_worker.py determine_available_memory``
    (sizing_anchors 2.4). Engine: vLLM V1 >= v0.22.
    """

    engine: str = "vLLM V1"
    version: str = ">=0.22 (activation/non-torch priors measured on v0.19)"
    #: Fraction of TOTAL device memory vLLM may use. 0.90 for v0.14-0.19, 0.92 from v0.22
    #: (ai-dynamo/aiconfigurator ``vllm_backend.py``; sizing_anchors 2.4 "budgets").
    gpu_memory_utilization: float = 0.92
    #: Share of the datasheet capacity CUDA reports as total memory (what gpu_memory_utilization
    #: multiplies): an H100 "80 GB" (80 GiB of HBM) shows 79.19 GiB to CUDA; budgeting on the catalog
    #: figure over-predicted the KV pool by 0.77 GiB in llm-d-planner's vLLM v0.19 accuracy report
    #: (sizing_anchors 2.5 "Physical vs catalog memory"). Applied to every GPU as a ratio.
    cuda_visible_fraction: float = 79.19 / 80
    #: Non-torch memory (CUDA context, cuBLAS workspaces, NCCL buffers) per GPU, GiB.
    #: llm-d-incubation/llm-d-planner ``data/configuration/vllm_memory_constants.json`` (vLLM v0.19,
    #: H100): 0.27 GiB at TP1, 2.10 GiB at TP>=2 (NCCL); the accuracy report found the older 0.6 GiB
    #: TP>=2 value 71 % low (sizing_anchors 2.4, 4).
    non_torch_gib_tp1: float = 0.27
    non_torch_gib_tp_multi: float = 2.10
    #: CUDA-graph memory estimate per GPU, GiB, subtracted from the budget since vLLM v0.21
    #: (``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`` default on). Measured pool 0.5-1.85 GiB, mean 1.04
    #: (llm-d/llm-d-benchmark ``config_explorer/empirical-vllm-memory-results.md``, H100; sizing_anchors 2.4).
    cuda_graph_gib: float = 1.04
    #: Peak activation during the profile run, GiB per GPU, by HF architecture class. Independent of
    #: max_model_len and TP (drops with PP, not modelled). llm-d-planner v0.19 constants
    #: (sizing_anchors 2.4). Classes not measured there are mapped to the vLLM model file they run on,
    #: marked "(mapped)".
    activation_gib_by_architecture: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {
                "LlamaForCausalLM": 1.89,
                "MistralForCausalLM": 1.89,  # (mapped) runs on vLLM llama.py
                "Qwen2ForCausalLM": 2.25,
                "Qwen3ForCausalLM": 2.21,
                "Qwen3MoeForCausalLM": 2.68,
                "Qwen2MoeForCausalLM": 2.47,
                "MixtralForCausalLM": 1.21,
                "DeepseekV2ForCausalLM": 1.93,
                "DeepseekV3ForCausalLM": 1.93,  # (mapped) vLLM deepseek_v2.py
                "GemmaForCausalLM": 3.63,
                "Gemma2ForCausalLM": 3.65,
                "Gemma3ForCausalLM": 3.94,
                "Gemma3ForConditionalGeneration": 3.94,  # (mapped) same text stack
                "GraniteForCausalLM": 0.85,
                "Phi3ForCausalLM": 1.52,
                "Mistral3ForConditionalGeneration": 2.10,
                "PixtralForConditionalGeneration": 2.10,
                "LlavaNextForConditionalGeneration": 0.79,
            }
        )
    )
    #: Fallbacks for unlisted classes (llm-d-planner v0.19): dense 2.0, MoE 2.5, multimodal 2.0 GiB.
    activation_gib_dense: float = 2.0
    activation_gib_moe: float = 2.5
    activation_gib_multimodal: float = 2.0
    #: Paged-KV block size in tokens; a sequence holds ceil(s/16) blocks
    #: (vLLM ``vllm/v1/kv_cache_interface.py``, default ``--block-size 16``; sizing_anchors 2.3).
    block_size: int = 16
    #: Sliding-window / chunked-local groups hold at most window tokens plus one block per sequence
    #: (vLLM ``SlidingWindowSpec.max_memory_usage_bytes``: min(window - 1 + mnbt, max_len) + 1 block;
    #: we use the steady-state decode allocation window + 1 block, sizing_anchors 2.3).
    window_extra_blocks: int = 1
    #: ``--max-num-seqs`` default: 256 (vLLM SchedulerConfig and usage-context default on GPUs with
    #: < 70 GiB or A100); vLLM ``engine/arg_utils.py _set_default_args`` raises it to 1024 on >= 70 GiB
    #: non-A100 GPUs (H100/H200/B200/MI300). Read from vLLM v0.9-era source; assumed unchanged.
    max_num_seqs_small: int = 256
    max_num_seqs_large: int = 1024
    large_gpu_gib: float = 70.0


VLLM_MEMORY = VLLMMemory()


@dataclass(frozen=True)
class FitClasses:
    """Fit class from the number of whole sequences of the chosen context the KV pool holds
    (sizing_anchors section 6 item 4; users ask "how many concurrent users at context X",
    AlexsJones/llmfit #140). Lower bounds, inclusive."""

    very_tight: int = 1
    tight: int = 2
    moderate: int = 4
    good: int = 16
    excellent: int = 64
    labels: tuple[str, ...] = ("no_fit", "very_tight", "tight", "moderate", "good", "excellent")


FIT_CLASSES = FitClasses()


# --------------------------------------------------------------------------------------------------
# Speed (rooflines)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodeEfficiency:
    """Decode-step roofline ``ITL(B) = max(bytes/(BW*MBU), FLOPs/(peak*MFU)) + step + layers*layer + comm``.

    Priors from sizing_anchors 2.6/2.8/6.5 (BLIS roofline v1: MBU 0.72, 500 us/step, 20 us/layer,
    all-reduce 20 us; aiconfigurator SOL fallback MBU 0.80; llm-analysis all-reduce floor 8 us).
    Values below: fitted by benchmarks/calibrate.py on 2026-11-27 against
    /work/shared/data/benchmarks/serving_calibration.csv (TensorRT-LLM v1.0 PyTorch backend,
    max-throughput runs, H100/H200 FP8) -- see ``CALIBRATION`` for the error it achieved.
    """

    engine: str = "TensorRT-LLM v1.0 (PyTorch backend) -- fitted; applied to vLLM-budgeted configs"
    # fitted by benchmarks/calibrate.py --fit on 2026-11-27, median err 8.2 % (94 rows, see CALIBRATION)
    mbu: float = 0.85
    mfu_decode: float = 0.40
    step_overhead_s: float = 1e-3
    layer_overhead_s: float = 30e-6
    #: per-sequence CPU/scheduling + sampling cost per decode step (scales with the batch)
    seq_overhead_s: float = 5e-6  # fitted (calibrate.py, 2026-11-27)
    #: MFU multiplier for MoE models (grouped expert GEMMs with few tokens per expert, routing,
    #: EP all-to-all run well below dense-GEMM efficiency; fitted on the Qwen3-235B / Llama-4 rows).
    moe_mfu_scale: float = 1.0  # fitted (calibrate.py, 2026-11-27): no decode penalty needed
    #: latency per NCCL all-reduce (2 per layer per step) and the fraction of the link's unidirectional
    #: bandwidth a ring achieves.
    allreduce_latency_s: float = 20e-6  # fitted (calibrate.py, 2026-11-27); BLIS uses 20 us
    comm_efficiency: float = 0.7  # prior (not fitted: TP comm is latency-dominated in the data)
    #: Pipeline-parallel hop between stages in different scale-up domains: one send of the batch's
    #: hidden states over the scale-out NIC plus this latency (RDMA send/recv ~ 10-30 us; prior).
    pipeline_hop_latency_s: float = 30e-6


DECODE = DecodeEfficiency()


@dataclass(frozen=True)
class PrefillEfficiency:
    """Prefill roofline ``TTFT = FLOPs/(TP*peak*MFU_prefill) + fixed + TP comm`` (sizing_anchors 2.7, 6.6:
    MFU 0.45-0.7, fixed 5-10 ms). Fitted together with ``DecodeEfficiency`` (see CALIBRATION)."""

    # fitted by benchmarks/calibrate.py --fit on 2026-11-27 (prefill-heavy rows 2048/128, 5000/500)
    mfu_prefill: float = 0.55
    moe_mfu_scale: float = 0.3  # fitted (search floor): MoE prefill at 0.55 x 0.3 = 17 % of peak
    #: not fitted (the calibration runs report no TTFT); sizing_anchors 6.6 suggests 5-10 ms
    fixed_overhead_s: float = 8e-3


PREFILL = PrefillEfficiency()


@dataclass(frozen=True)
class Calibration:
    """Provenance of the fitted speed constants (written by hand from benchmarks/calibrate.py output)."""

    fitted_by: str = "benchmarks/calibrate.py"
    date: str = "2026-11-27"
    dataset: str = "/work/shared/data/benchmarks/serving_calibration.csv (TensorRT-LLM v1.0 perf-overview)"
    #: 94 rows with a spec (Llama 3.1 8B/405B, 3.3 70B, Qwen3-235B-A22B, Llama 4 Maverick via
    #: sizing.architecture.describe; Llama 4 Scout skipped: no config). Metric: output tok/s total.
    #: Worst rows: Llama 4 Maverick on H100 (TRT-LLM runs it with attention-DP + EP; we model TP).
    #: Only H100/H200 FP8 rows exist: B200/FP4 constants are extrapolated.
    rows_used: int = 94
    median_abs_rel_err: float | None = 0.082
    worst_abs_rel_err: float | None = 0.831
    command: str = ".venv/bin/python benchmarks/calibrate.py --fit"


CALIBRATION = Calibration()


# --------------------------------------------------------------------------------------------------
# Workload, SLO and cost defaults (product choices, not measurements)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Default request shape and service-level objective used by recommendations.

    input/output 1024/1024: a chat-like mix also used by TensorRT-LLM's perf tables
    (serving_calibration.csv ISL/OSL 1000/1000). ITL SLO 50 ms = 20 tokens/s per user, a common
    interactive target (product choice). Batch sizes evaluated: powers of two up to 1024 plus the
    exact concurrency limit."""

    input_len: int = 1024
    output_len: int = 1024
    itl_slo_ms: float = 50.0
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    default_estimate_context: int = 32768  # estimate(): min(max_context, this); llmfit #302


WORKLOAD = Workload()


@dataclass(frozen=True)
class Cost:
    """Cost conventions. 730 h/month = 8760 h / 12 (the convention of cloud price sheets and the
    reference page's $7,516 / (280 x 3600 x 730) = $10.21/M). Default utilisation (duty cycle) 0.5 is
    a product assumption: a self-hosted endpoint busy half the time."""

    hours_per_month: float = 730.0
    default_utilisation: float = 0.5


COST = Cost()

@dataclass(frozen=True)
class Topology:
    """Topology assumed for GPU frames that carry none (library callers; the published ``gpus`` mart
    always carries its own per GPU, from ``dbt_project/seeds/gpu_topology.csv``): an 8-GPU HGX-style
    node (DGX H100/B200 convention) on InfiniBand NDR 400 Gb/s per GPU (= 50 GB/s, aiconfigurator
    ``h100_sxm.yaml`` ``inter_node_bw``), and a PCIe Gen4 x16 link (~25 GB/s effective) when the GPU
    has no interconnect figure."""

    scale_up_domain_gpus: int = 8
    scale_out_gbps: float = 50.0
    pcie_gbps: float = 25.0


DEFAULT_TOPOLOGY = Topology()


@dataclass(frozen=True)
class Ranking:
    """How recommendations break near-ties (product rules; the grid's docstring restates them).

    Costs (or, for unpriced rows, GPU-time per token) within ``tie_band`` (1 %) of each other are a
    tie: the estimate's own error is far larger, so a 0.01 % edge (INT8 over FP8 on Hopper from a
    0.1 GB scale-size difference) must not decide a pick. Ties are measured in bands of 1 % from the
    cheapest row of the comparison and broken by: deployable as is (no other checkpoint needed),
    then higher precision (``precision_preference``), then fewer GPUs.

    ``precision_preference``: more bits first; at equal bits the float format first -- FP8 is the
    hardware-native 8-bit format from Ada/Hopper on with better accuracy than INT8 W8A8, and NVFP4
    (FP8 scales per 16 weights) keeps more accuracy than INT4 g128 (NVIDIA ModelOpt and vLLM
    quantization docs)."""

    tie_band: float = 0.01
    precision_preference: tuple[str, ...] = ("bf16", "fp8", "int8", "fp4", "int4")


RANKING = Ranking()

#: Grid defaults.
DEFAULT_GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16)
DEFAULT_CONTEXTS: tuple[int, ...] = (4096, 32768, 131072)
#: KV-cache dtypes of the published fit matrix: the engine default (the model dtype, BF16) and FP8
#: (vLLM ``--kv-cache-dtype fp8``), which roughly doubles concurrency (sizing_anchors 3, demand #2).
PUBLISHED_KV_DTYPES: tuple[str, ...] = ("bf16", "fp8")
#: Recommendations are ranked at the engine's default KV dtype: FP8 KV trades some accuracy, so it
#: is shown in the fit matrix as an option rather than chosen silently.
RECOMMENDATION_KV_DTYPE: str = "bf16"
