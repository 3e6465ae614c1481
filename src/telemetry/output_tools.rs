//! Output tools: tool calls that are the response's structured output, not work for the
//! application. Frameworks that ask for structured output through a tool (instructor's
//! forced `tool_choice`, pydantic-ai's `final_result`, Google ADK's `set_model_response`)
//! never send a result back for it, so treating such a call as a tool execution would leave
//! it pending until the TTL and then emit an unanswered `execute_tool` span and count a tool
//! call. A call recognised here is recorded as output instead: no pending state, no
//! `execute_tool` span, no `llmtap.tool.calls` point, and `llmtap.output.tool` on the model
//! span. docs/telemetry-notes.md lists what is recognised and why.

use crate::request::RequestInfo;
use crate::summary::ToolCall;
use crate::vocab::text::glob_match;

/// Tool names frameworks give their output tools, as globs.
/// - `final_result`, `final_result_*`: pydantic-ai's output tools (`DEFAULT_OUTPUT_TOOL_NAME`;
///   with several output types, `final_result_<TypeName>`), `pydantic_ai/_output.py`.
/// - `set_model_response`: Google ADK's tool for `output_schema` beside other tools
///   (`SetModelResponseTool`).
pub const BUILTIN_OUTPUT_TOOL_NAMES: &[&str] =
    &["final_result", "final_result_*", "set_model_response"];

/// pydantic-ai's default output-tool description (`DEFAULT_OUTPUT_TOOL_DESCRIPTION`), which
/// it keeps, prefixed with the type's name, for output types without a docstring and a name
/// given through `ToolOutput(name=...)`.
pub const PYDANTIC_AI_OUTPUT_DESCRIPTION: &str = "The final response which ends this conversation";

/// Why a call counts as output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRule {
    /// The request forced `tool_choice` to this one function.
    ForcedChoice,
    /// A framework's known output-tool name or description.
    Known,
    /// A name listed under `telemetry.output_tools`.
    Configured,
}

/// Recognises output tools: the built-in shapes and the configured names.
#[derive(Debug, Clone, Default)]
pub struct OutputTools {
    configured: Vec<String>,
}

impl OutputTools {
    /// `configured`: the globs of `telemetry.output_tools`.
    pub fn new(configured: &[String]) -> OutputTools {
        OutputTools {
            configured: configured.to_vec(),
        }
    }

    /// Whether a call to `name`, in the response to `request`, is output, and by which rule.
    pub fn rule(&self, name: &str, request: Option<&RequestInfo>) -> Option<OutputRule> {
        if name.is_empty() {
            return None;
        }
        if request.and_then(|r| r.forced_tool.as_deref()) == Some(name) {
            return Some(OutputRule::ForcedChoice);
        }
        let described = request.is_some_and(|r| {
            r.tool_descriptions
                .iter()
                .any(|(n, d)| n == name && d.ends_with(PYDANTIC_AI_OUTPUT_DESCRIPTION))
        });
        if described
            || BUILTIN_OUTPUT_TOOL_NAMES
                .iter()
                .any(|p| glob_match(p, name))
        {
            return Some(OutputRule::Known);
        }
        if self.configured.iter().any(|p| glob_match(p, name)) {
            return Some(OutputRule::Configured);
        }
        None
    }

    /// Whether `call` is output.
    pub fn is_output(&self, call: &ToolCall, request: Option<&RequestInfo>) -> bool {
        self.rule(&call.name, request).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(forced: Option<&str>, tools: &[(&str, &str)]) -> RequestInfo {
        RequestInfo {
            forced_tool: forced.map(str::to_owned),
            tool_descriptions: tools
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
            ..RequestInfo::default()
        }
    }

    #[test]
    fn every_recognised_shape_and_nothing_else() {
        let o = OutputTools::new(&["Answer*".to_string()]);
        let plain = req(None, &[("get_weather", "Weather for a city")]);
        assert_eq!(o.rule("get_weather", Some(&plain)), None);
        assert_eq!(o.rule("get_weather", None), None);
        // instructor / LangChain / llama-index: tool_choice forced to the one function.
        let forced = req(Some("UserInfo"), &[]);
        assert_eq!(
            o.rule("UserInfo", Some(&forced)),
            Some(OutputRule::ForcedChoice)
        );
        assert_eq!(o.rule("Other", Some(&forced)), None);
        // pydantic-ai by name, and by its default description under a custom name.
        for n in ["final_result", "final_result_Fruit", "set_model_response"] {
            assert_eq!(o.rule(n, None), Some(OutputRule::Known), "{n}");
        }
        let custom = req(
            None,
            &[(
                "return_fruit",
                "Fruit: The final response which ends this conversation",
            )],
        );
        assert_eq!(
            o.rule("return_fruit", Some(&custom)),
            Some(OutputRule::Known)
        );
        assert_eq!(o.rule("final_results", None), None);
        // Configured globs.
        assert_eq!(o.rule("AnswerV2", None), Some(OutputRule::Configured));
        assert_eq!(o.rule("", Some(&forced)), None);
    }
}
