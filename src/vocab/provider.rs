//! Who answers a request: the kind of server an upstream is, and the upstream as spans and
//! metrics name it.

use std::sync::Arc;

use serde::Deserialize;

/// What kind of server an upstream is. Drives `gen_ai.provider.name` and the credential header.
/// The default is that of an upstream in the file without `provider`; `--upstream` without
/// `--provider` is `openai`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    Azure,
    Vllm,
    Ollama,
    Anthropic,
    // The docs and the YAML spell it with an underscore; clap's own spelling is hyphenated.
    #[value(alias = "openai_compatible")]
    #[default]
    OpenaiCompatible,
    /// Google's Gemini Developer API (`generativelanguage.googleapis.com`).
    Gemini,
    /// Google Vertex AI (`{location}-aiplatform.googleapis.com`).
    #[value(alias = "vertex_ai")]
    VertexAi,
    /// Amazon Bedrock Runtime (`bedrock-runtime.{region}.amazonaws.com`).
    Bedrock,
}

impl Provider {
    /// The spelling of the config file and `--provider` (`openai_compatible`).
    pub fn config_name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure",
            Provider::Vllm => "vllm",
            Provider::Ollama => "ollama",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Gemini => "gemini",
            Provider::VertexAi => "vertex_ai",
            Provider::Bedrock => "bedrock",
        }
    }

    /// The `gen_ai.provider.name` value (well-known values from semconv, custom ones otherwise).
    pub fn semconv_name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Azure => "azure.ai.openai",
            Provider::Vllm => "vllm",
            Provider::Ollama => "ollama",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai_compatible",
            Provider::Gemini => "gcp.gemini",
            Provider::VertexAi => "gcp.vertex_ai",
            Provider::Bedrock => "aws.bedrock",
        }
    }
}

/// The upstream a request went to, as the spans and metrics name it.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub name: String,
    pub provider: Provider,
    /// Shared, so every span and metric point takes it without copying the text.
    pub address: Arc<str>,
    pub port: u16,
}
