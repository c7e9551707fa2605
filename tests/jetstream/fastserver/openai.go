package main

// The OpenAI-compatible mode (-openai): POST /v1/completions and /v1/chat/completions streamed as vLLM 0.32
// streams them (SSE `data: <json>\n\n` events, one per -chunk-tokens tokens, a final `choices: []` chunk with
// `usage` when stream_options.include_usage is set, then `data: [DONE]`), with the gRPC mode's delays: the
// first chunk after -ttft-ms, then one every -itl-ms per token (absolute schedule). GET /health answers 200.
// With -stamp-lateness the first chunk's text is "<µs the first token was late>|", so a client's saved
// generated text carries the server's own delay. A non-streamed request is answered in one JSON body.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

type openaiRequest struct {
	Model               string `json:"model"`
	MaxTokens           *int   `json:"max_tokens"`
	MaxCompletionTokens *int   `json:"max_completion_tokens"`
	Stream              bool   `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Prompt   json.RawMessage `json:"prompt"`
	Messages json.RawMessage `json:"messages"`
}

func (r *openaiRequest) tokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 16 // vLLM's default max_tokens
}

// promptTokens counts a prompt as words (the server has no tokenizer); only the usage figure depends on it.
func promptTokens(raw json.RawMessage) int {
	n, word := 0, false
	for _, c := range raw {
		space := c == ' ' || c == '"' || c == '\n'
		if !space && !word {
			n++
		}
		word = !space
	}
	return n
}

func serveOpenAI(port int, waitFor func(time.Time, int) time.Duration, stamp bool, perChunk int, batchWrites bool, late *lateness) int {
	if perChunk < 1 {
		perChunk = 1
	}
	completion := func(chat bool) http.HandlerFunc {
		object, id := "text_completion", "cmpl-fastserver"
		if chat {
			object, id = "chat.completion.chunk", "chatcmpl-fastserver"
		}
		head := fmt.Sprintf(`data: {"id":"%s","object":"%s","created":0,"model":"fastserver","choices":[{"index":0,`, id, object)
		return func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			var req openaiRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":{"message":%q,"type":"BadRequestError","param":null,"code":400}}`, err.Error())
				return
			}
			n := req.tokens()
			prompt := promptTokens(req.Prompt) + promptTokens(req.Messages)
			if !req.Stream {
				for k := 0; k < n; k++ {
					waitFor(start, k)
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"%s","object":"text_completion","choices":[{"index":0,"text":"","finish_reason":"length"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
					id, prompt, n, prompt+n)
				return
			}
			flusher := w.(http.Flusher)
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			buf := make([]byte, 0, 512)
			for k := 0; k < n; k += perChunk {
				l := waitFor(start, k)
				if k+perChunk < n {
					waitFor(start, k+perChunk-1)
				} else if n-1 > k {
					waitFor(start, n-1)
				}
				text := ""
				for j := k; j < n && j < k+perChunk; j++ {
					text += " tok"
				}
				if k == 0 && stamp {
					text = strconv.FormatInt(l.Microseconds(), 10) + "|" + text
				}
				finish := "null"
				if k+perChunk >= n {
					finish = `"length"`
				}
				buf = append(buf[:0], head...)
				if chat {
					buf = append(buf, `"delta":{"content":`...)
					buf = strconv.AppendQuote(buf, text)
					buf = append(buf, '}')
				} else {
					buf = append(buf, `"text":`...)
					buf = strconv.AppendQuote(buf, text)
				}
				buf = append(buf, `,"logprobs":null,"finish_reason":`...)
				buf = append(buf, finish...)
				buf = append(buf, "}]}\n\n"...)
				if _, err := w.Write(buf); err != nil {
					return
				}
				if !batchWrites {
					flusher.Flush()
				}
			}
			if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
				fmt.Fprintf(w, "%s\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
					head[:len(head)-len(`"choices":[{"index":0,`)]+`"choices":[],`, prompt, n, prompt+n)
			}
			w.Write([]byte("data: [DONE]\n\n"))
			flusher.Flush()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", completion(false))
	mux.HandleFunc("POST /v1/chat/completions", completion(true))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"list","data":[{"id":"fastserver","object":"model"}]}`))
	})
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("PORT %d\n", lis.Addr().(*net.TCPAddr).Port)
	server := &http.Server{Handler: mux}
	go handleSignals(late, func() { server.Close() })
	if err := server.Serve(lis); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
