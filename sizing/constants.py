"""Every estimate constant of the memory / speed / cost model, in one place, with its provenance.

Each value names its source (file, issue or measurement) and the engine + version it describes.
"sizing_anchors" below means the research note ``shared/research/sizing_anchors.md`` (section numbers given);
that note cites the upstream repository files. Values are grouped in small frozen dataclasses so a
caller can swap a whole topic (e.g. another engine version) with ``dataclasses.replace``.

Engine modelled for the memory budget: **vLLM V1, current (>= v0.22, 2026)**, with the activation
and non-torch constants of the latest published calibration (llm-d-planner, vLLM v0.19, H100-80GB)
used as priors. vLLM's activation peak dropped ~60 % between v0.16 and v0.17 (sizing_anchors 2.4):
re-check these numbers when the engine version moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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
class SpeedClass:
    """Fitted efficiency multipliers of one speed class ``generation:precision:dense|moe``
    (``sizing.speed.speed_class_expr``): ``mbu_scale`` multiplies ``DecodeEfficiency.mbu`` and
    ``mfu_scale`` multiplies the decode and prefill MFU. Fitted by ``benchmarks/calibrate.py --fit``
    on the ``train_ids`` rows of ``benchmarks/measurements/`` (held-out rows never enter the fit);
    ``held_out_*`` is the error on the class's held-out rows, as ``max(est/meas, meas/est)``."""

    mbu_scale: float
    mfu_scale: float
    train_ids: tuple[str, ...]
    held_out_rows: int
    held_out_median: float | None
    held_out_p90: float | None
    fitted: str = "2026-11-30"


#: Fitted class constants (paste from ``benchmarks/calibrate.py --fit``). A class absent here is
#: ``extrapolated``: it runs on the global ``DECODE``/``PREFILL`` constants (scale 1).
#: Precisions with no measurements of their own that run the constants of a measured one: INT8 W8A8
#: moves the same bytes as FP8 and Hopper/Blackwell run it at the same dense tensor rate (H100
#: datasheet: 1,979 INT8 TOPS = 1,979 FP8 TFLOPS); INT4 (W4A16) streams 4-bit weights like FP4. A row
#: borrowing a class's constants is still ``extrapolated`` (its own precision was never measured);
#: without this, a calibrated FP8 row and an uncalibrated INT8 row of the same GPU would differ by
#: the fitted multipliers alone, and that difference would pick INT8 over FP8.
CALIBRATION_PRECISION_PROXY: Mapping[str, str] = MappingProxyType({"int8": "fp8", "int4": "fp4"})

SPEED_CLASSES: Mapping[str, SpeedClass] = MappingProxyType(
    {
        "blackwell:fp4:dense": SpeedClass(
            mbu_scale=0.65, mfu_scale=0.6, held_out_rows=55, held_out_median=1.165, held_out_p90=1.402, fitted="2026-11-30",
            train_ids=(
                "X115", "X116", "X118", "X119", "X121", "X122", "X124", "X125", "X127", "X128", "X130",
                "X131", "X133", "X134", "X136", "X137", "X139", "X140", "X142", "X143", "X145", "X146",
                "X148", "X149", "X151", "X152", "X154", "X155", "X157", "X158", "X160", "X161", "X163",
                "X164", "X166", "X167", "X169", "X299", "X301", "X302", "X304", "X305", "X307", "X308",
                "X310", "X311", "X313", "X314", "X316", "X317", "X319", "X320", "X322", "X323", "X325",
                "X326", "X328", "X329", "X331", "X332", "X334", "X335", "X337", "X338", "X340", "X341",
                "X451", "X452", "X454", "X455", "X457", "X458", "X460", "X461", "X463", "X464", "X466",
                "X467", "X469", "X508", "X509", "X511", "X512", "X514", "X515", "X517", "X518", "X520",
                "X521", "X523", "X524", "X526", "X527", "X586", "X587", "X590", "X593", "X596", "X601",
                "X719", "X721", "X722", "X724", "X725", "X727", "X730", "X731", "X734", "X736", "X737",
            ),
        ),
        "blackwell:fp4:moe": SpeedClass(
            mbu_scale=0.7, mfu_scale=0.8, held_out_rows=61, held_out_median=1.178, held_out_p90=1.542, fitted="2026-11-30",
            train_ids=(
                "X470", "X472", "X473", "X475", "X476", "X478", "X479", "X481", "X482", "X484", "X485",
                "X487", "X488", "X490", "X491", "X493", "X494", "X496", "X497", "X499", "X500", "X502",
                "X503", "X505", "X506", "X529", "X532", "X535", "X538", "X541", "X542", "X547", "X550",
                "X551", "X553", "X554", "X556", "X557", "X560", "X604", "X607", "X610", "X613", "X616",
                "X619", "X620", "X625", "X628", "X629", "X632", "X634", "X637", "X640", "X641", "X643",
                "X644", "X646", "X647", "X649", "X650", "X652", "X653", "X656", "X658", "X659", "X661",
                "X662", "X664", "X665", "X667", "X668", "X670", "X671", "X673", "X676", "X677", "X680",
                "X682", "X683", "X685", "X686", "X689", "X691", "X692", "X739", "X740", "X742", "X745",
                "X746", "X749", "X751", "X752", "X754", "X755", "X758", "X760", "X761", "X763", "X764",
                "X766", "X767", "X769", "X770", "X772", "X773", "X775", "X776", "X778", "X779",
            ),
        ),
        "hopper:fp8:dense": SpeedClass(
            mbu_scale=1.05, mfu_scale=0.9, held_out_rows=126, held_out_median=1.12, held_out_p90=1.363, fitted="2026-11-30",
            train_ids=(
                "S056", "S061", "S064", "S065", "S068", "S073", "S076", "S077", "S080", "S085", "S088",
                "S089", "S092", "S247", "S248", "S251", "S256", "S259", "S260", "S263", "S268", "S271",
                "S272", "S275", "S280", "S283", "S284", "S286", "S287", "S289", "S290", "S292", "S293",
                "S295", "S296", "S298", "S299", "S301", "S302", "S304", "X001", "X002", "X004", "X005",
                "X007", "X008", "X010", "X011", "X013", "X014", "X016", "X017", "X019", "X020", "X022",
                "X023", "X025", "X026", "X028", "X031", "X034", "X037", "X040", "X043", "X046", "X047",
                "X050", "X052", "X053", "X055", "X056", "X058", "X059", "X061", "X062", "X064", "X065",
                "X067", "X068", "X070", "X071", "X073", "X074", "X076", "X077", "X079", "X080", "X082",
                "X083", "X085", "X086", "X088", "X089", "X091", "X092", "X094", "X095", "X097", "X098",
                "X100", "X101", "X103", "X104", "X106", "X107", "X109", "X110", "X112", "X113", "X170",
                "X172", "X173", "X175", "X176", "X178", "X179", "X181", "X182", "X184", "X185", "X187",
                "X188", "X190", "X191", "X193", "X194", "X197", "X199", "X200", "X202", "X203", "X205",
                "X206", "X208", "X209", "X211", "X212", "X214", "X215", "X217", "X218", "X220", "X221",
                "X223", "X224", "X227", "X229", "X230", "X232", "X233", "X235", "X236", "X238", "X239",
                "X241", "X244", "X245", "X247", "X248", "X251", "X253", "X254", "X256", "X257", "X259",
                "X260", "X262", "X263", "X265", "X268", "X269", "X271", "X272", "X274", "X275", "X277",
                "X278", "X280", "X281", "X283", "X284", "X286", "X287", "X289", "X290", "X292", "X293",
                "X295", "X296", "X298", "X343", "X344", "X346", "X347", "X349", "X350", "X352", "X353",
                "X355", "X356", "X358", "X359", "X361", "X362", "X364", "X365", "X367", "X368", "X370",
                "X371", "X373", "X374", "X376", "X377", "X379", "X380", "X382", "X383", "X385", "X386",
                "X388", "X389", "X391", "X392", "X394", "X395", "X397", "X398", "X400", "X401", "X403",
                "X404", "X406", "X407", "X409", "X410", "X412", "X413", "X415", "X416", "X418", "X589",
                "X592", "X595", "X598", "X599", "X602", "X728", "X733",
            ),
        ),
        "hopper:fp8:moe": SpeedClass(
            mbu_scale=0.95, mfu_scale=1.0, held_out_rows=24, held_out_median=1.243, held_out_p90=2.364, fitted="2026-11-30",
            train_ids=(
                "S137", "S140", "S143", "S146", "S149", "S152", "S154", "S155", "S157", "S158", "S160",
                "S221", "S223", "S224", "S226", "S227", "S229", "S232", "S235", "S239", "S241", "S242",
                "S244", "X419", "X421", "X422", "X424", "X425", "X427", "X428", "X530", "X533", "X536",
                "X539", "X544", "X545", "X548", "X559", "X562", "X563", "X605", "X608", "X611", "X614",
                "X617", "X622", "X623", "X626", "X631", "X635", "X638", "X655", "X674", "X679", "X688",
                "X743", "X748", "X757",
            ),
        ),
    }
)


@dataclass(frozen=True)
class DecodeEfficiency:
    """Decode-step roofline ``ITL(B) = max(bytes/(BW*MBU), FLOPs/(peak*MFU)) + step + layers*layer + comm``.

    Priors from sizing_anchors 2.6/2.8/6.5 (BLIS roofline v1: MBU 0.72, 500 us/step, 20 us/layer,
    all-reduce 20 us; aiconfigurator SOL fallback MBU 0.80; llm-analysis all-reduce floor 8 us).
    Values below: fitted by benchmarks/calibrate.py on 2026-11-27 against
    pipelines/snapshot/benchmarks/serving_calibration.csv (from shared/data; TensorRT-LLM v1.0 PyTorch backend,
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
    #: Model MoE decode as TensorRT-LLM serves it: attention data parallel + expert parallel
    #: (``sizing.speed`` module doc). Off by default so hand-built efficiency sets keep pure TP.
    moe_attention_dp: bool = False
    #: Per-class multipliers (``SPEED_CLASSES``); empty = none (idealised / hand-built sets).
    class_scales: Mapping[str, SpeedClass] = field(default_factory=lambda: MappingProxyType({}))


DECODE = DecodeEfficiency(moe_attention_dp=True, class_scales=SPEED_CLASSES)


@dataclass(frozen=True)
class PrefillEfficiency:
    """Prefill roofline ``TTFT = FLOPs/(TP*peak*MFU_prefill) + fixed + TP comm`` (sizing_anchors 2.7, 6.6:
    MFU 0.45-0.7, fixed 5-10 ms). Fitted together with ``DecodeEfficiency`` (see CALIBRATION)."""

    # fitted by benchmarks/calibrate.py --fit on 2026-11-27 (prefill-heavy rows 2048/128, 5000/500)
    mfu_prefill: float = 0.55
    moe_mfu_scale: float = 0.3  # fitted (search floor): MoE prefill at 0.55 x 0.3 = 17 % of peak
    #: not fitted (the calibration runs report no TTFT); sizing_anchors 6.6 suggests 5-10 ms
    fixed_overhead_s: float = 8e-3
    #: Per-class multipliers (``SPEED_CLASSES``; ``mfu_scale`` applies to prefill); empty = none.
    class_scales: Mapping[str, SpeedClass] = field(default_factory=lambda: MappingProxyType({}))


PREFILL = PrefillEfficiency(class_scales=SPEED_CLASSES)


@dataclass(frozen=True)
class Calibration:
    """Provenance of the fitted speed constants (written by hand from benchmarks/calibrate.py output)."""

    fitted_by: str = "benchmarks/calibrate.py"
    date: str = "2026-11-27"
    dataset: str = "pipelines/snapshot/benchmarks/serving_calibration.csv (TensorRT-LLM v1.0 perf-overview)"
    #: 94 rows with a spec (Llama 3.1 8B/405B, 3.3 70B, Qwen3-235B-A22B, Llama 4 Maverick via
    #: sizing.architecture.describe; Llama 4 Scout skipped: no config). Metric: output tok/s total.
    #: Worst rows: Llama 4 Maverick on H100 (TRT-LLM runs it with attention-DP + EP; we model TP).
    #: Only H100/H200 FP8 rows exist: B200/FP4 constants are extrapolated.
    rows_used: int = 94
    median_abs_rel_err: float | None = 0.082
    worst_abs_rel_err: float | None = 0.831
    command: str = ".venv/bin/python benchmarks/calibrate.py --fit"
    #: Class calibration (``SPEED_CLASSES``): the 112 bundled serving_calibration.csv rows
    #: (pipelines/snapshot/benchmarks) + 788 benchmarks/measurements/serving_measurements_extra.csv rows, MLPerf and
    #: unknown-precision rows excluded). Split: a row is held out when the number in its id is a
    #: multiple of 3 (``sizing.calibration.split_expr``); the fit never sees held-out rows.
    class_fit_date: str = "2026-11-30"
    class_fit_command: str = ".venv/bin/python benchmarks/calibrate.py --fit"
    held_out_rows: int = 266
    held_out_median: float = 1.155
    #: p90 of max(est/meas, meas/est) over all held-out rows: the error band of extrapolated rows.
    held_out_p90: float = 1.481
    #: a class's own p90 is its band only with at least this many held-out rows
    min_held_out_for_class_band: int = 5


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


# --------------------------------------------------------------------------------------------------
# Untrusted configs: bounds checked before sizing (sizing.validation) and the per-model budget
# --------------------------------------------------------------------------------------------------
#
# A config.json is untrusted input: anyone can publish a repo, and a watchlist entry pulls whatever
# it holds. Every bound below is a plausibility limit, not an engine limit: it is set with a wide
# margin (8x to 1000x) over the largest value of any published model -- including every config of
# the bundled snapshot (pipelines/snapshot/hf) and of ../shared/data/hf_configs (220 files, whose
# maxima are quoted) -- so a real model never trips it, while a value past it can only be an error or
# an attack. A config outside a bound is unsupported with the field, its value and the bound named:
# never sized, never guessed, never a crash (tests/test_config_validation.py).


@dataclass(frozen=True)
class ConfigBound:
    """Inclusive integer range for one kind of config field, with why it is plausible."""

    low: int
    high: int
    why: str


#: Bound per kind of field. Integer fields must be JSON integers (not floats such as 1e308, not
#: booleans, not strings) inside [low, high]; null means "absent" and is left to the accounting.
CONFIG_BOUNDS: Mapping[str, ConfigBound] = MappingProxyType(
    {
        "layers": ConfigBound(1, 2_048, "the deepest published decoders have ~100-200 layers "
                              "(Llama-3.1-405B: 126; snapshot max 126): 10x margin"),
        "layer_count": ConfigBound(0, 2_048, "a count of some of the layers (MTP, dense prefix, shared "
                                   "KV, vision depth) is at most the layer bound"),
        "layer_period": ConfigBound(0, 2_048, "a layer period or offset (every k-th layer is MoE / global "
                                    "attention) lies within the layer bound; snapshot max 6"),
        "hidden": ConfigBound(1, 131_072, "the widest published models use 16,384-18,432 (Llama-3.1-405B, "
                              "Nemotron-4-340B; snapshot max 16,384): 7x margin"),
        "width": ConfigBound(0, 131_072, "other widths (LoRA ranks of MLA, latent/projection sizes, SSM "
                             "state) are at most a hidden size; snapshot max 7,168"),
        "heads": ConfigBound(1, 16_384, "published models use <= 128 attention heads (snapshot max 128): "
                             "128x margin"),
        "kv_heads": ConfigBound(1, 16_384, "KV heads never exceed attention heads (snapshot max 128)"),
        "head_count": ConfigBound(0, 16_384, "other head/group counts (Mamba heads and groups, linear-"
                                  "attention heads, indexer heads, router groups; snapshot max 256)"),
        "head_dim": ConfigBound(0, 16_384, "head dimensions are 64-512 in published models (snapshot max "
                                "512): 32x margin; 0 means derive it from hidden / heads"),
        "intermediate": ConfigBound(0, 1_048_576, "the widest published MLPs are 53,248 (Llama-3.1-405B; "
                                    "snapshot max 53,248): ~20x margin"),
        "experts": ConfigBound(0, 65_536, "the most routed experts published are 384-896 (Kimi K2 / K3; "
                               "snapshot max 896): 73x margin"),
        "experts_per_token": ConfigBound(0, 65_536, "experts per token never exceed the experts (snapshot "
                                         "max 22); also checked against the expert count"),
        "vocab": ConfigBound(1, 4_194_304, "the largest published vocabularies are 256k-262k (Gemma 3/4; "
                             "snapshot max 262,144): 16x margin"),
        "context": ConfigBound(1, 2**27, "the longest published context is 10M tokens (Llama 4 Scout; "
                               "snapshot max 1,048,576): 2^27 = 134M is 13x that"),
        "window": ConfigBound(0, 2**27, "a sliding/chunked-attention window or indexer top-k is never "
                              "longer than the context bound (snapshot max 262,144)"),
        "small": ConfigBound(0, 4_096, "kernel widths, expansion factors, patch sizes, merge sizes and "
                             "channel counts are 1-16 in published models (Mamba conv 4, expand 2, "
                             "ViT patch 14-16)"),
        "positions": ConfigBound(0, 1_048_576, "vision position tables and image sizes (snapshot max "
                                 "10,240 positions)"),
    }
)

#: Which kind each config field is (HF names and their aliases, decoder and vision towers alike).
#: A field is checked wherever it appears: top level, the nested text config (text_config,
#: language_config, llm_config) and vision_config.
CONFIG_FIELD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "n_layers", "vt_num_hidden_layers"),
                        "layers"),
        **dict.fromkeys(("depth", "mtp_num_hidden_layers", "num_nextn_predict_layers", "first_k_dense_replace",
                         "num_kv_shared_layers", "num_mtp_modules", "mtp_transformer_layers", "max_window_layers"),
                        "layer_count"),
        **dict.fromkeys(("sliding_window_pattern", "full_attention_interval", "interleave_moe_layer_step",
                         "decoder_sparse_step", "moe_layer_freq", "attn_layer_period", "attn_layer_offset",
                         "expert_layer_period", "expert_layer_offset", "no_rope_layer_interval"),
                        "layer_period"),
        **dict.fromkeys(("hidden_size", "n_embd", "d_model", "model_dim", "dim", "mm_hidden_size",
                         "vt_hidden_size", "out_hidden_size", "text_hidden_size", "qkv_hidden_size",
                         "routed_expert_hidden_size"), "hidden"),
        **dict.fromkeys(("hidden_size_per_layer_input", "kv_lora_rank", "q_lora_rank", "o_lora_rank",
                         "moe_latent_size", "ssm_state_size", "mamba_d_state", "mamba_dt_rank",
                         "projector_input_dim", "projector_output_dim", "vision_output_dim",
                         "projection_hidden_size"), "width"),
        **dict.fromkeys(("num_attention_heads", "n_head", "num_heads", "n_heads", "vt_num_attention_heads"),
                        "heads"),
        **dict.fromkeys(("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num",
                         "kv_n_heads", "num_global_key_value_heads"), "kv_heads"),
        **dict.fromkeys(("index_n_heads", "linear_num_key_heads", "linear_num_value_heads", "mamba_num_heads",
                         "n_groups", "o_groups", "n_group", "topk_group", "num_expert_group"), "head_count"),
        **dict.fromkeys(("head_dim", "v_head_dim", "qk_nope_head_dim", "qk_rope_head_dim", "qk_head_dim",
                         "index_head_dim", "global_head_dim", "linear_key_head_dim", "linear_value_head_dim",
                         "mamba_head_dim", "kv_channels", "rotary_dim"), "head_dim"),
        **dict.fromkeys(("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim", "moe_intermediate_size",
                         "shared_expert_intermediate_size", "moe_shared_expert_intermediate_size",
                         "dense_intermediate_size", "intermediate_size_mlp", "shared_intermediate_size",
                         "vt_intermediate_size", "share_expert_dim"), "intermediate"),
        **dict.fromkeys(("num_experts", "n_routed_experts", "num_local_experts", "moe_num_experts",
                         "n_shared_experts", "num_shared_experts"), "experts"),
        **dict.fromkeys(("num_experts_per_tok", "num_experts_per_token", "top_k_experts", "moe_top_k", "moe_k",
                         "experts_per_token"), "experts_per_token"),
        **dict.fromkeys(("vocab_size", "padded_vocab_size", "n_vocab", "vocab_size_per_layer_input"), "vocab"),
        **dict.fromkeys(("max_position_embeddings", "n_positions", "seq_length", "max_seq_len",
                         "max_sequence_length", "original_max_position_embeddings"), "context"),
        **dict.fromkeys(("sliding_window", "sliding_window_size", "attention_chunk_size", "index_topk",
                         "chunk_size"), "window"),
        **dict.fromkeys(("conv_kernel", "mamba_d_conv", "linear_conv_kernel_dim", "mamba_expand", "expand",
                         "patch_size", "temporal_patch_size", "spatial_merge_size", "merge_kernel_size",
                         "in_channels", "num_channels"), "small"),
        **dict.fromkeys(("image_size", "num_position_embeddings", "position_embedding_size", "pos_emb_height",
                         "pos_emb_width", "init_pos_emb_height", "init_pos_emb_width"), "positions"),
    }
)

#: Per-layer pattern fields (lists or strings with one entry per layer): at most this many entries,
#: the layer bound. Nemotron-H counts its layers from ``hybrid_override_pattern`` /
#: ``layers_block_type``, so this is what bounds its depth. Bounded integer fields may also be
#: per-layer lists of integers (e.g. ``moe_layer_freq``), up to the same length.
CONFIG_LAYER_PATTERN_FIELDS: tuple[str, ...] = (
    "layer_types", "hybrid_override_pattern", "layers_block_type", "mlp_layer_types", "attn_type_list",
    "indexer_types", "mlp_only_layers", "no_rope_layers", "moe_layers",
)
CONFIG_MAX_LIST_ENTRIES: int = CONFIG_BOUNDS["layers"].high


@dataclass(frozen=True)
class ConfigLimits:
    """Landing caps and sanity limits on what sizing derives from a config."""

    #: config.json / hf_quant_config.json bodies. Real configs are 0.5-90 KB (snapshot max 88.6 KB,
    #: Kimi-K3); 16 MiB is ~190x that and a quarter of the HTTP cap (FITATLAS_HTTP_MAX_BYTES, 64 MiB,
    #: which also covers model.safetensors.index.json, whose weight maps run to megabytes).
    max_config_bytes: int = 16 * 1024 * 1024
    #: JSON nesting (objects and arrays). Real configs nest at most 7 levels (snapshot: Kimi-K3's
    #: quantization_config); 64 is 9x that and far below the recursion limits of Python's json
    #: (~1,000) and of every recursive walk downstream (landing, DuckDB JSON, json.dumps).
    max_json_depth: int = 64
    #: Total parameters of a sized model. The largest published models have 1-2T parameters;
    #: 10^15 is 500x that, and keeps every byte count (x 4 bytes at most) inside int64, the type of
    #: the published columns. Products of in-bound fields can still exceed it (65,536 experts x
    #: 1M-wide MLPs), so it is checked on the result.
    max_params_total: int = 10**15


CONFIG_LIMITS = ConfigLimits()


@dataclass(frozen=True)
class SizingBudget:
    """Per-model budget of ``describe`` in the pipeline (``sizing.isolation``): each config is sized
    in a worker process; one over the wall-clock or memory budget is unsupported with that reason
    and its worker is replaced, the rest go on.

    Describing any real config takes 1-30 ms and peaks at ~50 MB RSS (bundled 110: 0.3 s in all).
    10 s is ~300x the slowest; 2,048 MiB of address space (RLIMIT_AS, virtual: the worker maps
    ~0.4 GB of libraries, Polars included, before it allocates anything) leaves ~1.6 GB of heap,
    30x the largest real need, and stops a runaway config long before it can exhaust the machine.
    ``workers``: 0 = one per CPU, at most ``max_workers``.
    """

    timeout_s: float = 10.0
    memory_mb: int = 2048
    workers: int = 0
    max_workers: int = 4


SIZING_BUDGET = SizingBudget()
