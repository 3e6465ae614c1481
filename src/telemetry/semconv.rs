//! Every telemetry name llmtap emits, in one place. GenAI names follow semantic-conventions
//! v1.41 (the `opentelemetry-semantic-conventions` crate has deprecated its gen_ai constants);
//! llmtap's own names live under `llmtap.`.

// Span attributes (semconv).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";
pub const OPENAI_API_TYPE: &str = "openai.api.type";
pub const OPENAI_RESPONSE_SYSTEM_FINGERPRINT: &str = "openai.response.system_fingerprint";
pub const OPENAI_RESPONSE_SERVICE_TIER: &str = "openai.response.service_tier";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";

// llmtap's own span attributes.
pub const LLMTAP_UPSTREAM: &str = "llmtap.upstream";
/// The client key's tenant (`auth.keys[].tenant`), on every span of its request; on metrics
/// when `metrics.tenant_attribute` is on.
pub const LLMTAP_TENANT: &str = "llmtap.tenant";
pub const LLMTAP_CHUNK_COUNT: &str = "llmtap.response.chunk_count";
pub const LLMTAP_USAGE_INJECTED: &str = "llmtap.usage.injected";
pub const LLMTAP_USAGE_INJECTION_REFUSED: &str = "llmtap.usage.injection_refused";
pub const LLMTAP_USAGE_ESTIMATED: &str = "llmtap.usage.estimated";
pub const LLMTAP_PROMPT_LENGTH: &str = "llmtap.prompt.length";
pub const LLMTAP_PROMPT_MESSAGES: &str = "llmtap.prompt.messages";
pub const LLMTAP_PROMPT_HASH: &str = "llmtap.prompt.hash";
pub const LLMTAP_PROMPT_TEMPLATE: &str = "llmtap.prompt.template";
pub const LLMTAP_TOOL_RESULT_RECEIVED: &str = "llmtap.tool.result_received";
pub const LLMTAP_COST_USD: &str = "llmtap.cost.usd";
/// Prefixes for configured baggage keys and request headers copied onto spans.
pub const LLMTAP_BAGGAGE_PREFIX: &str = "llmtap.baggage.";
pub const LLMTAP_HEADER_PREFIX: &str = "llmtap.request.header.";

// Metrics.
pub const METRIC_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
pub const METRIC_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
pub const METRIC_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
pub const METRIC_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
pub const METRIC_REQUESTS: &str = "llmtap.requests";
pub const METRIC_COST: &str = "llmtap.cost";
pub const METRIC_COST_UNPRICED: &str = "llmtap.cost.unpriced";
pub const METRIC_TOOL_CALLS: &str = "llmtap.tool.calls";
pub const METRIC_TOOL_DURATION: &str = "llmtap.tool.duration";
pub const METRIC_REQUESTS_ACTIVE: &str = "llmtap.requests.active";
pub const METRIC_TELEMETRY_DROPPED: &str = "llmtap.telemetry.dropped";
/// Tasks alive on llmtap's runtime: flat under steady load, or something leaks.
pub const METRIC_RUNTIME_TASKS: &str = "llmtap.runtime.tasks";
/// Attribute of `llmtap.telemetry.dropped`: which signal lost data.
pub const SIGNAL: &str = "signal";

// Bucket boundaries, from the semconv metric definitions (the SDK defaults are for ms).
pub const BUCKETS_DURATION: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
pub const BUCKETS_TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
pub const BUCKETS_TIME_TO_FIRST_CHUNK: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
pub const BUCKETS_TIME_PER_OUTPUT_CHUNK: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
