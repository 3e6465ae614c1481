//! Every telemetry name llmtap emits, in one place. GenAI names follow semantic-conventions
//! v1.41.1 by default and the `semantic-conventions-genai` `main` branch (unreleased,
//! Development) with `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` (the
//! `opentelemetry-semantic-conventions` crate has deprecated its gen_ai constants); a name
//! that exists in one of the two only says so. llmtap's own names live under `llmtap.`.

// Span attributes (semconv).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// A double in v1.41.1, an int in genai `main`.
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
pub const GEN_AI_REQUEST_REASONING_LEVEL: &str = "gen_ai.request.reasoning.level";
pub const GEN_AI_OUTPUT_TYPE: &str = "gen_ai.output.type";
pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = "gen_ai.embeddings.dimension.count";
pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
/// genai `main` only (emitted with `gen_ai_latest_experimental`): the prompt template's
/// version, beside `gen_ai.prompt.name`. semantic-conventions-genai #179 ("Add prompt
/// versioning and variable support to GenAI attributes", merged).
pub const GEN_AI_PROMPT_VERSION: &str = "gen_ai.prompt.version";
/// genai `main` only (with `gen_ai_latest_experimental`): the previous response a request
/// continues (Responses `previous_response_id`), Recommended on inference spans.
/// semantic-conventions-genai #372 ("Add new sem conv request attribute
/// `gen_ai.request.previous_response.id`", merged).
pub const GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID: &str = "gen_ai.request.previous_response.id";
pub const OPENAI_REQUEST_SERVICE_TIER: &str = "openai.request.service_tier";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// Tokens written to a provider-managed cache (Anthropic's `cache_creation_input_tokens`):
/// v1.41.1's name, and genai `main`'s after the rename (#440).
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str =
    "gen_ai.usage.cache_creation.input_tokens";
pub const GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
// Token counts by modality, genai `main` only (with `gen_ai_latest_experimental`):
// semantic-conventions-genai #440 ("Add span/event attributes for usage breakdown per
// modality / cache / phases", merged). Each is a subset of the input or output count,
// set only when the provider reports that modality's count. #440 also defines
// `gen_ai.usage.{text,image,audio}.cache_read.input_tokens`, which none of llmtap's APIs
// report, so they have no constant here.
pub const GEN_AI_USAGE_TEXT_INPUT_TOKENS: &str = "gen_ai.usage.text.input_tokens";
pub const GEN_AI_USAGE_IMAGE_INPUT_TOKENS: &str = "gen_ai.usage.image.input_tokens";
pub const GEN_AI_USAGE_AUDIO_INPUT_TOKENS: &str = "gen_ai.usage.audio.input_tokens";
pub const GEN_AI_USAGE_TEXT_OUTPUT_TOKENS: &str = "gen_ai.usage.text.output_tokens";
pub const GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.image.output_tokens";
pub const GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS: &str = "gen_ai.usage.audio.output_tokens";
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
pub const GEN_AI_TOOL_DESCRIPTION: &str = "gen_ai.tool.description";
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";
/// genai `main`: required on the usage counters; `unknown` when usage is not broken down.
pub const GEN_AI_TOKEN_MODALITY: &str = "gen_ai.token.modality";
pub const OPENAI_API_TYPE: &str = "openai.api.type";
pub const OPENAI_RESPONSE_SYSTEM_FINGERPRINT: &str = "openai.response.system_fingerprint";
pub const OPENAI_RESPONSE_SERVICE_TIER: &str = "openai.response.service_tier";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

// MCP (genai `docs/gen-ai/mcp.md`) and the general attributes its spans use.
pub const MCP_METHOD_NAME: &str = "mcp.method.name";
pub const MCP_SESSION_ID: &str = "mcp.session.id";
pub const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";
pub const MCP_RESOURCE_URI: &str = "mcp.resource.uri";
pub const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
pub const JSONRPC_PROTOCOL_VERSION: &str = "jsonrpc.protocol.version";
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// The configured name of the MCP server (`mcp_servers`), on MCP spans and metrics.
pub const LLMTAP_MCP_SERVER: &str = "llmtap.mcp.server";

// llmtap's own span attributes.
pub const LLMTAP_UPSTREAM: &str = "llmtap.upstream";
/// The client key's tenant (`auth.keys[].tenant`), on every span of its request; on metrics
/// when `metrics.tenant_attribute` is on.
pub const LLMTAP_TENANT: &str = "llmtap.tenant";
pub const LLMTAP_CHUNK_COUNT: &str = "llmtap.response.chunk_count";
/// True when llmtap stopped reading a stream it relayed on unchanged (a frame or event it
/// could not parse: a bad event-stream CRC, an impossible length, an event that is not JSON).
pub const LLMTAP_RESPONSE_PARSE_FAILED: &str = "llmtap.response.parse_failed";
/// The call's latency as the provider measured it, in ms (Bedrock's `metrics.latencyMs`).
pub const LLMTAP_RESPONSE_PROVIDER_LATENCY: &str = "llmtap.response.provider_latency_ms";
pub const LLMTAP_USAGE_INJECTED: &str = "llmtap.usage.injected";
pub const LLMTAP_USAGE_INJECTION_REFUSED: &str = "llmtap.usage.injection_refused";
/// True when token counts were estimated by llmtap (no usage from the upstream); on spans,
/// and on metric points made from an estimate when estimates are reported as usage.
pub const LLMTAP_USAGE_ESTIMATED: &str = "llmtap.usage.estimated";
/// Where an estimate goes when estimates are not reported as usage (the default).
pub const LLMTAP_USAGE_ESTIMATED_INPUT_TOKENS: &str = "llmtap.usage.estimated.input_tokens";
pub const LLMTAP_USAGE_ESTIMATED_OUTPUT_TOKENS: &str = "llmtap.usage.estimated.output_tokens";
pub const LLMTAP_PROMPT_LENGTH: &str = "llmtap.prompt.length";
pub const LLMTAP_PROMPT_MESSAGES: &str = "llmtap.prompt.messages";
pub const LLMTAP_PROMPT_HASH: &str = "llmtap.prompt.hash";
pub const LLMTAP_PROMPT_TEMPLATE: &str = "llmtap.prompt.template";
pub const LLMTAP_TOOL_RESULT_RECEIVED: &str = "llmtap.tool.result_received";
/// The names of the tool calls that were the response's structured output (string array):
/// recognised output tools (`telemetry::output_tools`), which get no `execute_tool` span.
pub const LLMTAP_OUTPUT_TOOL: &str = "llmtap.output.tool";
/// The request's cost in USD from the price table, on the inference span when the model is
/// priced and usage was reported (or estimates are reported as usage): the sum of what
/// `llmtap.cost` counts for the request, per token type.
pub const LLMTAP_COST_USD: &str = "llmtap.cost.usd";
/// Prefixes for configured baggage keys and request headers copied onto spans.
pub const LLMTAP_BAGGAGE_PREFIX: &str = "llmtap.baggage.";
pub const LLMTAP_HEADER_PREFIX: &str = "llmtap.request.header.";

/// The opt-in log record with the request, response and (captured) content of one call.
pub const EVENT_INFERENCE_DETAILS: &str = "gen_ai.client.inference.operation.details";

// Metrics, v1.41.1 (the default).
pub const METRIC_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
pub const METRIC_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const METRIC_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
pub const METRIC_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";

// Metrics, genai `main` (with `gen_ai_latest_experimental`, instead of the four above).
pub const METRIC_INFERENCE_DURATION: &str = "gen_ai.client.inference.duration";
pub const METRIC_EMBEDDINGS_DURATION: &str = "gen_ai.client.embeddings.duration";
pub const METRIC_INFERENCE_USAGE_INPUT: &str = "gen_ai.client.inference.usage.input_tokens";
pub const METRIC_INFERENCE_USAGE_OUTPUT: &str = "gen_ai.client.inference.usage.output_tokens";
pub const METRIC_INFERENCE_USAGE_CACHE_READ: &str =
    "gen_ai.client.inference.usage.cache_read.input_tokens";
pub const METRIC_INFERENCE_USAGE_CACHE_WRITE: &str =
    "gen_ai.client.inference.usage.cache_write.input_tokens";
pub const METRIC_INFERENCE_USAGE_REASONING: &str =
    "gen_ai.client.inference.usage.reasoning.output_tokens";
pub const METRIC_INFERENCE_INPUT_TOKENS: &str = "gen_ai.client.inference.operation.input_tokens";
pub const METRIC_INFERENCE_OUTPUT_TOKENS: &str = "gen_ai.client.inference.operation.output_tokens";
pub const METRIC_EMBEDDINGS_INPUT_TOKENS: &str = "gen_ai.client.embeddings.operation.input_tokens";
pub const METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: &str =
    "gen_ai.client.inference.time_to_first_chunk";
pub const METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK: &str =
    "gen_ai.client.inference.time_per_output_chunk";
pub const METRIC_EXECUTE_TOOL_DURATION: &str = "gen_ai.execute_tool.duration";

// MCP client metrics (genai `docs/gen-ai/mcp.md`), and llmtap's count of MCP tool calls.
pub const METRIC_MCP_OPERATION_DURATION: &str = "mcp.client.operation.duration";
pub const METRIC_MCP_SESSION_DURATION: &str = "mcp.client.session.duration";
pub const METRIC_MCP_TOOL_CALLS: &str = "llmtap.mcp.tool.calls";

// llmtap's own metrics (both modes).
pub const METRIC_REQUESTS: &str = "llmtap.requests";
pub const METRIC_COST: &str = "llmtap.cost";
/// Cost computed from estimated usage, kept out of `llmtap.cost` unless estimates are
/// reported as usage.
pub const METRIC_COST_ESTIMATED: &str = "llmtap.cost.estimated";
pub const METRIC_COST_UNPRICED: &str = "llmtap.cost.unpriced";
/// Per conversation (`gen_ai.conversation.id`, bounded by `metrics.max_conversations`):
/// inference requests, tokens (`gen_ai.token.type`) and cost (USD) of calls that carry one.
pub const METRIC_CONVERSATION_REQUESTS: &str = "llmtap.conversation.requests";
pub const METRIC_CONVERSATION_TOKENS: &str = "llmtap.conversation.tokens";
pub const METRIC_CONVERSATION_COST: &str = "llmtap.conversation.cost";
pub const METRIC_TOOL_CALLS: &str = "llmtap.tool.calls";
pub const METRIC_TOOL_DURATION: &str = "llmtap.tool.duration";
pub const METRIC_REQUESTS_ACTIVE: &str = "llmtap.requests.active";
pub const METRIC_TELEMETRY_DROPPED: &str = "llmtap.telemetry.dropped";
pub const METRIC_STATE_ERRORS: &str = "llmtap.state.errors";
/// Bounds hit (`limit` attribute: a [`Limit`](crate::vocab::limits::Limit) name); see docs/limits.md.
pub const METRIC_LIMITS_HIT: &str = "llmtap.limits.hit";
/// Span attribute: the names of the bounds this request hit (string array).
pub const LLMTAP_LIMITS_HIT: &str = "llmtap.limits.hit";
/// Tasks alive on llmtap's runtime: flat under steady load, or something leaks.
pub const METRIC_RUNTIME_TASKS: &str = "llmtap.runtime.tasks";
/// Attribute of `llmtap.telemetry.dropped`: which signal lost data.
pub const SIGNAL: &str = "signal";

// Bucket boundaries, from the semconv metric definitions (the SDK defaults are for ms).
/// Every client time histogram: operation/inference/embeddings duration, time to first
/// chunk, time per output chunk, tool duration. (The 0.001 … 10 s and 0.01 … 2.5 s arrays
/// in the spec are the advice for the *server* metrics, which llmtap does not emit.)
pub const BUCKETS_DURATION: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// The MCP duration histograms (the MCP conventions' advice).
pub const BUCKETS_MCP: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Every token histogram.
pub const BUCKETS_TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Upstream error codes (and error `type`s) kept as they are in the `error.type` of metrics.
/// Any other code becomes the response's HTTP status (`429`, `503`), or `stream_error` inside
/// a 200 stream, so a provider cannot grow the label set. Spans keep the provider's code.
pub const KNOWN_UPSTREAM_ERROR_CODES: &[&str] = &[
    // OpenAI (and most OpenAI-compatible servers) `error.code`.
    "rate_limit_exceeded",
    "insufficient_quota",
    "context_length_exceeded",
    "invalid_api_key",
    "model_not_found",
    "content_filter",
    "server_error",
    "unsupported_value",
    "unsupported_parameter",
    "invalid_value",
    "invalid_image_url",
    "invalid_prompt",
    // OpenAI and Anthropic `error.type`.
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    // Azure OpenAI.
    "DeploymentNotFound",
    "content_policy_violation",
    // Google (OpenAI-compatible endpoint) and gRPC-style gateways.
    "resource_exhausted",
    "unavailable",
    "deadline_exceeded",
    // Google's own APIs (Gemini, Vertex AI): `error.status`, google.rpc.Code's names (matched
    // without regard to case, so the three above cover theirs: metrics write them lower-case).
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "NOT_FOUND",
    "ABORTED",
    "ALREADY_EXISTS",
    "CANCELLED",
    "DATA_LOSS",
    "UNKNOWN",
    "INTERNAL",
    "UNIMPLEMENTED",
    // Gemini's `promptFeedback.blockReason`: a prompt refused before any candidate.
    "prompt_blocked",
    // Amazon Bedrock's modelled errors: `crate::dialect::BEDROCK_EXCEPTIONS`, matched too.
];
