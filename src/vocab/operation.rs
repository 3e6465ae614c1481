//! The gen_ai operation a request performs.

/// The gen_ai operation a request performs (`gen_ai.operation.name`, semconv GenAI spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
    /// Gemini's `generateContent` / `streamGenerateContent`: the conventions name this
    /// operation `generate_content` ("multimodal content generation operation such as Gemini
    /// Generate Content"), and they say to use the predefined value that applies.
    GenerateContent,
}

impl Operation {
    /// `gen_ai.operation.name`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GenerateContent => "generate_content",
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }
}
