#!/usr/bin/env bash
# The OpenAI API through llmtap with nothing but curl: a chat completion, a streamed one,
# embeddings, and the model list.
#
#   llmtap demo &            # or: docker compose up
#   ./chat.sh
#
# Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
# sk-demo), OPENAI_MODEL (default gpt-4o-mini), OPENAI_EMBEDDING_MODEL (default
# text-embedding-3-small). Output is pretty-printed when jq is installed.
set -euo pipefail

BASE_URL="${OPENAI_BASE_URL:-http://127.0.0.1:8080/v1}"
BASE_URL="${BASE_URL%/}"
API_KEY="${OPENAI_API_KEY:-sk-demo}"
MODEL="${OPENAI_MODEL:-gpt-4o-mini}"
EMBEDDING_MODEL="${OPENAI_EMBEDDING_MODEL:-text-embedding-3-small}"

pretty() {
  if command -v jq >/dev/null 2>&1; then jq .; else cat; echo; fi
}

# --fail-with-body: a 4xx/5xx still prints the error body, and the script stops there.
# post PATH JSON [extra curl options...]
post() {
  curl --silent --show-error --fail-with-body "$BASE_URL$1" \
    -H "Authorization: Bearer $API_KEY" \
    -H "Content-Type: application/json" \
    -d "$2" "${@:3}"
}

echo "== chat completion"
post /chat/completions "{
  \"model\": \"$MODEL\",
  \"messages\": [{\"role\": \"user\", \"content\": \"Say hello in three languages.\"}],
  \"max_tokens\": 100
}" | pretty

echo "== streamed chat completion (server-sent events, printed as they arrive)"
# --no-buffer: show each `data:` line as soon as llmtap forwards it. llmtap adds
# stream_options.include_usage upstream for its own token counts and removes the extra
# usage chunk again, since this request did not ask for it.
post /chat/completions "{
  \"model\": \"$MODEL\",
  \"messages\": [{\"role\": \"user\", \"content\": \"Count from one to five.\"}],
  \"stream\": true
}" --no-buffer
echo

echo "== embeddings"
post /embeddings "{
  \"model\": \"$EMBEDDING_MODEL\",
  \"input\": \"llmtap records a span for every call\"
}" | pretty

echo "== models"
curl --silent --show-error --fail-with-body "$BASE_URL/models" \
  -H "Authorization: Bearer $API_KEY" | pretty
